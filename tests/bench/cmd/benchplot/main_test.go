package main

import (
	"encoding/xml"
	"strings"
	"testing"
)

const sample = `goos: linux
BenchmarkRTMPFanoutPeers/nginx-rtmp/N=100-2         	       1	        12.4 KB/player	       100.0 connected	         0.14 cpu-s/Gbit	        100.0 kept-up	        73.00 lag-ms	         0 ns/op
BenchmarkRTMPFanoutPeers/portier/N=10-2         	       1	       192.8 KB/player	        10.00 connected	         0.9378 cpu-s/Gbit	        10.00 kept-up	       125.0 lag-ms
BenchmarkRTMPFanoutPeers/portier/N=100-2         	       1	       40.5 KB/player	        100.0 connected	         0.2 cpu-s/Gbit	        100.0 kept-up	       39.0 lag-ms
BenchmarkHooks/sqlite/native-2  	       1	      1169 decisions/s
  portier relay  100        100      100        0        0.33          2.40           119.0            39        2014                  2010          0.06
`

func TestParse(t *testing.T) {
	data, err := parse(strings.NewReader(sample))
	if err != nil {
		t.Fatal(err)
	}
	if len(data) != 2 || len(data["portier"]) != 2 || len(data["nginx-rtmp"]) != 1 {
		t.Fatalf("parsed %v", data)
	}
	p := data["portier"]
	if p[0].N != 10 || p[1].N != 100 || p[0].CPUPerGbit != 0.9378 || p[1].KBPerPlay != 40.5 {
		t.Fatalf("portier points %+v", p)
	}
	if _, err := parse(strings.NewReader("no benchmark here\n")); err == nil {
		t.Fatal("no error for input without fan-out lines")
	}
}

func TestRenderIsSVGWithALinePerServerAndPanel(t *testing.T) {
	data, err := parse(strings.NewReader(sample))
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	if err := render(&b, "a <title> & more", data); err != nil {
		t.Fatal(err)
	}
	svg := b.String()
	dec := xml.NewDecoder(strings.NewReader(svg))
	paths := 0
	for {
		tok, err := dec.Token()
		if err != nil {
			if err.Error() == "EOF" {
				break
			}
			t.Fatalf("not well-formed XML: %v", err)
		}
		if se, ok := tok.(xml.StartElement); ok && se.Name.Local == "path" {
			paths++
		}
	}
	if paths != 4 { // two servers × two panels
		t.Fatalf("%d lines, want 4", paths)
	}
	for _, want := range []string{"portier relay", "nginx-rtmp", "target 50 KB", "a &lt;title&gt; &amp; more"} {
		if !strings.Contains(svg, want) {
			t.Errorf("SVG lacks %q", want)
		}
	}
}
