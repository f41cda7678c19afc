// Portier operator UI: progressive enhancement only. Every form works
// without this file; it adds the CSRF header to htmx requests, copy buttons,
// instant preset menus and the preview player. No inline script anywhere (see the CSP).
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

  // Preset menus of the task config forms fill the fields at once (without
  // JavaScript, the "Apply preset" button has the server fill them). A
  // restream preset sets the target URL and the key's placeholder and
  // help; a ladder preset replaces the renditions. "Custom" (value "")
  // keeps the fields as they are.
  document.addEventListener("change", function (e) {
    var sel = e.target;
    if (!sel.matches || !sel.matches("select[data-preset]")) { return; }
    var o = sel.options[sel.selectedIndex];
    if (sel.getAttribute("data-preset") === "restream") {
      var target = document.getElementById("cfg-target"), key = document.getElementById("cfg-key"),
        help = document.getElementById("cfg-key-help");
      if (o.value && target) { target.value = o.getAttribute("data-target"); }
      if (key) { key.setAttribute("placeholder", o.getAttribute("data-key-shape") || ""); }
      if (help) { help.textContent = o.getAttribute("data-key-help") || ""; }
    } else if (o.value) {
      var r = document.getElementById("cfg-renditions");
      if (r) { r.value = o.getAttribute("data-lines"); }
    }
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
  // say shows one of the preview's states in the page's language (the
  // status element carries the translations) and marks the video with it.
  function say(state) {
    var el = document.getElementById("preview-status"), v = document.getElementById("preview");
    if (el) { el.textContent = el.getAttribute("data-msg-" + state) || state; }
    if (v && state !== "buffering") { v.setAttribute("data-state", state); }
  }

  // player is the running player (an hls.js or mpegts.js instance, or the
  // name of the library still loading); gen grows at each stop, so a
  // library that finishes loading after a stop starts nothing.
  var player = null, gen = 0, stoppedByUser = false;
  function startPreview() {
    var v = document.getElementById("preview");
    if (!v || player) { return; }
    var my = ++gen;
    var hls = v.getAttribute("data-hls"), flv = v.getAttribute("data-flv");
    if (!v.getAttribute("data-listening")) {
      v.setAttribute("data-listening", "1");
      v.addEventListener("playing", function () { if (player) { say("playing"); } });
      v.addEventListener("waiting", function () { if (player) { say("buffering"); } });
    }
    if (hls) {
      player = "hls";
      loadScript("/static/vendor/hls.min.js", function () {
        if (my !== gen) { return; }
        if (window.Hls && window.Hls.isSupported()) {
          var h = new window.Hls({ lowLatencyMode: true });
          h.on(window.Hls.Events.MANIFEST_PARSED, function () { v.play().catch(function () {}); });
          h.on(window.Hls.Events.ERROR, function (ev, data) {
            if (!data.fatal || my !== gen) { return; }
            // HLS unreachable (e.g. no CORS on the HLS origin): fall back to HTTP-FLV.
            status("HLS failed (" + data.details + "), trying HTTP-FLV");
            h.destroy();
            player = null;
            playFLV(v, flv, my);
          });
          h.loadSource(hls);
          h.attachMedia(v);
          player = h;
        } else if (v.canPlayType("application/vnd.apple.mpegurl")) {
          v.src = hls;
          v.play().catch(function () {});
          player = "native";
        } else {
          player = null;
          playFLV(v, flv, my);
        }
      });
      return;
    }
    playFLV(v, flv, my);
  }

  // stopPreview ends the player; state is "stopped" (the operator's
  // button) or "ended" (the stream went offline).
  function stopPreview(state) {
    var v = document.getElementById("preview");
    gen++;
    if (player && typeof player === "object") {
      try { if (player.destroy) { player.destroy(); } } catch (e) { /* already gone */ }
    }
    player = null;
    if (v) {
      v.pause();
      v.removeAttribute("src");
      v.load();
    }
    say(state);
  }

  function playFLV(v, flv, my) {
    if (!flv) { return; }
    player = "flv";
    loadScript("/static/vendor/mpegts.min.js", function () {
      if (my !== gen) { return; }
      var m = window.mpegts;
      if (!m || !m.getFeatureList().mseLivePlayback) { status("this browser cannot play HTTP-FLV"); player = null; return; }
      var p = m.createPlayer({ type: "flv", isLive: true, url: flv }, {
        enableWorker: false, liveBufferLatencyChasing: true, lazyLoad: false
      });
      p.on(m.Events.ERROR, function (type, detail) { if (my === gen) { status("error: " + type + " " + detail); } });
      p.attachMediaElement(v);
      p.load();
      var r = p.play();
      if (r && r.catch) { r.catch(function () {}); }
      player = p;
    });
  }

  // followLive starts the preview when the stream is live (unless the
  // operator stopped it), and ends it, saying so, when the stream goes
  // offline; it resumes when the stream comes back.
  function followLive() {
    var live = document.getElementById("stream-live");
    if (!live || !document.getElementById("preview")) { return; }
    if (live.getAttribute("data-live") === "true") {
      if (!player && !stoppedByUser) { startPreview(); }
    } else if (player) {
      stopPreview("ended");
    } else if (document.getElementById("preview").getAttribute("data-state") === "playing") {
      say("ended");
    }
  }
  document.addEventListener("DOMContentLoaded", function () {
    var b = document.getElementById("preview-start");
    if (b) { b.addEventListener("click", function () { stoppedByUser = false; startPreview(); }); }
    var s = document.getElementById("preview-stop");
    if (s) { s.addEventListener("click", function () { stoppedByUser = true; if (player) { stopPreview("stopped"); } else { say("stopped"); } }); }
    followLive();
  });
  document.addEventListener("htmx:afterSwap", followLive);
})();
