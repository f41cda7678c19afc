// Portier operator UI: progressive enhancement only. Every form works
// without this file; it adds the CSRF header to htmx requests, copy buttons
// and the preview player. No inline script anywhere (see the CSP).
(function () {
  "use strict";
  document.documentElement.classList.add("js");

  function csrfToken() {
    var m = document.querySelector('meta[name="csrf-token"]');
    return m ? m.getAttribute("content") : "";
  }

  document.addEventListener("htmx:configRequest", function (e) {
    var t = csrfToken();
    if (t) { e.detail.headers["X-CSRF-Token"] = t; }
  });

  // Copy buttons: data-copy names the element whose text is copied.
  document.addEventListener("click", function (e) {
    var b = e.target.closest("button.copy");
    if (!b) { return; }
    var src = document.getElementById(b.getAttribute("data-copy"));
    if (!src || !navigator.clipboard) { return; }
    navigator.clipboard.writeText(src.textContent.trim()).then(function () {
      var old = b.textContent;
      b.textContent = "✓";
      setTimeout(function () { b.textContent = old; }, 1500);
    });
  });

  // Preview player: HLS through hls.js where the stream has HLS, else
  // HTTP-FLV through mpegts.js. Libraries load on demand from /static/vendor.
  var loaded = {};
  function loadScript(src, cb) {
    if (loaded[src]) { loaded[src].push(cb); return; }
    loaded[src] = [cb];
    var s = document.createElement("script");
    s.src = src;
    s.onload = function () { loaded[src].forEach(function (f) { f(); }); loaded[src] = { push: function (f) { f(); } }; };
    s.onerror = function () { status("player library missing: " + src); };
    document.head.appendChild(s);
  }
  function status(msg) {
    var el = document.getElementById("preview-status");
    if (el) { el.textContent = msg; }
  }

  var player = null;
  function startPreview() {
    var v = document.getElementById("preview");
    if (!v || player) { return; }
    var hls = v.getAttribute("data-hls"), flv = v.getAttribute("data-flv");
    v.addEventListener("playing", function () { status("playing"); v.setAttribute("data-state", "playing"); });
    v.addEventListener("waiting", function () { status("buffering"); });
    if (hls) {
      player = "hls";
      loadScript("/static/vendor/hls.min.js", function () {
        if (window.Hls && window.Hls.isSupported()) {
          var h = new window.Hls({ lowLatencyMode: true });
          h.on(window.Hls.Events.MANIFEST_PARSED, function () { v.play().catch(function () {}); });
          h.on(window.Hls.Events.ERROR, function (ev, data) {
            if (!data.fatal) { return; }
            // HLS unreachable (e.g. no CORS on the HLS origin): fall back to HTTP-FLV.
            status("HLS failed (" + data.details + "), trying HTTP-FLV");
            h.destroy();
            playFLV(v, flv);
          });
          h.loadSource(hls);
          h.attachMedia(v);
          player = h;
        } else if (v.canPlayType("application/vnd.apple.mpegurl")) {
          v.src = hls;
          v.play().catch(function () {});
        } else {
          playFLV(v, flv);
        }
      });
      return;
    }
    playFLV(v, flv);
  }

  function playFLV(v, flv) {
    if (!flv) { return; }
    player = "flv";
    loadScript("/static/vendor/mpegts.min.js", function () {
      var m = window.mpegts;
      if (!m || !m.getFeatureList().mseLivePlayback) { status("this browser cannot play HTTP-FLV"); return; }
      var p = m.createPlayer({ type: "flv", isLive: true, url: flv }, {
        enableWorker: false, liveBufferLatencyChasing: true, lazyLoad: false
      });
      p.on(m.Events.ERROR, function (type, detail) { status("error: " + type + " " + detail); });
      p.attachMediaElement(v);
      p.load();
      var r = p.play();
      if (r && r.catch) { r.catch(function () {}); }
      player = p;
    });
  }

  function maybeAutostart() {
    var live = document.getElementById("stream-live");
    if (live && live.getAttribute("data-live") === "true") { startPreview(); }
  }
  document.addEventListener("DOMContentLoaded", function () {
    var b = document.getElementById("preview-start");
    if (b) { b.addEventListener("click", startPreview); }
    maybeAutostart();
  });
  document.addEventListener("htmx:afterSwap", maybeAutostart);
})();
