// Command benchplot draws the RTMP fan-out benchmark as an SVG: server CPU
// seconds per delivered Gbit and peak memory per player against the number
// of players, one line per server. Its input is the output of
// `go test -bench RTMPFanoutPeers ./tests/bench/` (what `make bench` writes
// to docs/bench-latest.txt): the BenchmarkRTMPFanoutPeers/SERVER/N=N lines
// with their cpu-s/Gbit and KB/player metrics.
//
//	go run ./tests/bench/cmd/benchplot -in docs/bench-latest.txt -out docs/fanout.svg
package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// point is one (server, N) measurement.
type point struct {
	N          int
	CPUPerGbit float64
	KBPerPlay  float64
}

// maxInput bounds how much benchmark output is read.
const maxInput = 16 << 20

var benchLine = regexp.MustCompile(`^BenchmarkRTMPFanoutPeers/([^/]+)/N=(\d+)(?:-\d+)?\s+\d+\s+(.*)$`)

// parse reads benchmark output and returns the points per server.
func parse(r io.Reader) (map[string][]point, error) {
	out := map[string][]point{}
	sc := bufio.NewScanner(io.LimitReader(r, maxInput))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		m := benchLine.FindStringSubmatch(strings.TrimSpace(sc.Text()))
		if m == nil {
			continue
		}
		n, err := strconv.Atoi(m[2])
		if err != nil {
			return nil, fmt.Errorf("bad N in %q: %w", sc.Text(), err)
		}
		p := point{N: n, CPUPerGbit: math.NaN(), KBPerPlay: math.NaN()}
		f := strings.Fields(m[3])
		for i := 0; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				continue
			}
			switch f[i+1] {
			case "cpu-s/Gbit":
				p.CPUPerGbit = v
			case "KB/player":
				p.KBPerPlay = v
			}
		}
		out[m[1]] = append(out[m[1]], p)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read benchmark output: %w", err)
	}
	if len(out) == 0 {
		return nil, errors.New("no BenchmarkRTMPFanoutPeers/SERVER/N=N lines in the input")
	}
	for _, ps := range out {
		sort.Slice(ps, func(i, j int) bool { return ps[i].N < ps[j].N })
	}
	return out, nil
}

// Layout of the SVG.
const (
	panelW, panelH = 420.0, 300.0
	marginL        = 70.0
	marginR        = 20.0
	marginT        = 50.0
	marginB        = 55.0
	legendH        = 40.0
)

var colors = map[string]string{"portier": "#d62728", "nginx-rtmp": "#1f77b4", "mediamtx": "#2ca02c"}

var fallbackColors = []string{"#9467bd", "#8c564b", "#e377c2", "#7f7f7f"}

// series is one line of a panel.
type series struct {
	name  string
	color string
	pts   [][2]float64 // (N, value)
}

// panel is one chart.
type panel struct {
	title, ylabel string
	lines         []series
	target        float64 // a horizontal target line, 0 for none
	targetLabel   string
}

func render(w io.Writer, title string, data map[string][]point) error {
	names := make([]string, 0, len(data))
	for n := range data {
		names = append(names, n)
	}
	// Our relay first, then the references in a stable order.
	slices.SortFunc(names, func(a, b string) int {
		if (a == "portier") != (b == "portier") {
			if a == "portier" {
				return -1
			}
			return 1
		}
		return strings.Compare(a, b)
	})
	cpu := panel{title: "Server CPU per delivered Gbit", ylabel: "CPU seconds / Gbit"}
	mem := panel{title: "Peak memory per player", ylabel: "KB / player", target: 50, targetLabel: "target 50 KB"}
	for i, n := range names {
		c, ok := colors[n]
		if !ok {
			c = fallbackColors[i%len(fallbackColors)]
		}
		sc, sm := series{name: n, color: c}, series{name: n, color: c}
		for _, p := range data[n] {
			if !math.IsNaN(p.CPUPerGbit) {
				sc.pts = append(sc.pts, [2]float64{float64(p.N), p.CPUPerGbit})
			}
			if !math.IsNaN(p.KBPerPlay) {
				sm.pts = append(sm.pts, [2]float64{float64(p.N), p.KBPerPlay})
			}
		}
		cpu.lines = append(cpu.lines, sc)
		mem.lines = append(mem.lines, sm)
	}
	totalW := 2 * (marginL + panelW + marginR)
	totalH := marginT + panelH + marginB + legendH
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" viewBox="0 0 %.0f %.0f" font-family="sans-serif" font-size="12">`+"\n",
		totalW, totalH, totalW, totalH)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	fmt.Fprintf(&b, `<text x="%.0f" y="22" text-anchor="middle" font-size="15" font-weight="bold">%s</text>`+"\n", totalW/2, esc(title))
	for i, p := range []panel{cpu, mem} {
		drawPanel(&b, p, float64(i)*(marginL+panelW+marginR)+marginL, marginT)
	}
	// Legend.
	x := marginL
	y := marginT + panelH + marginB + 18
	for _, s := range cpu.lines {
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s" stroke-width="2.5"/>`+"\n", x, y-4, x+24, y-4, s.color)
		fmt.Fprintf(&b, `<circle cx="%.1f" cy="%.1f" r="3.5" fill="%s"/>`+"\n", x+12, y-4, s.color)
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f">%s</text>`+"\n", x+30, y, esc(displayName(s.name)))
		x += 40 + 8*float64(len(displayName(s.name)))
	}
	b.WriteString("</svg>\n")
	_, err := io.WriteString(w, b.String())
	return err
}

func displayName(n string) string {
	if n == "portier" {
		return "portier relay"
	}
	return n
}

// drawPanel draws p with its plot area's top-left corner at (x0, y0). The
// x axis (players) is logarithmic, the y axis linear from 0.
func drawPanel(b *strings.Builder, p panel, x0, y0 float64) {
	minN, maxN, maxY := math.Inf(1), math.Inf(-1), p.target
	for _, s := range p.lines {
		for _, pt := range s.pts {
			minN, maxN, maxY = math.Min(minN, pt[0]), math.Max(maxN, pt[0]), math.Max(maxY, pt[1])
		}
	}
	if math.IsInf(minN, 0) {
		minN, maxN = 1, 10
	}
	if minN == maxN {
		minN, maxN = minN/2, maxN*2
	}
	yTop := niceCeil(maxY * 1.1)
	lx0, lx1 := math.Log10(minN), math.Log10(maxN)
	pad := (lx1 - lx0) * 0.06
	lx0, lx1 = lx0-pad, lx1+pad
	xs := func(n float64) float64 { return x0 + (math.Log10(n)-lx0)/(lx1-lx0)*panelW }
	ys := func(v float64) float64 { return y0 + panelH - v/yTop*panelH }

	fmt.Fprintf(b, `<text x="%.1f" y="%.1f" text-anchor="middle" font-size="13" font-weight="bold">%s</text>`+"\n", x0+panelW/2, y0-10, esc(p.title))
	fmt.Fprintf(b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="none" stroke="#444"/>`+"\n", x0, y0, panelW, panelH)
	// Y grid and labels.
	for i := 0; i <= 5; i++ {
		v := yTop * float64(i) / 5
		y := ys(v)
		fmt.Fprintf(b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#ddd"/>`+"\n", x0, y, x0+panelW, y)
		fmt.Fprintf(b, `<text x="%.1f" y="%.1f" text-anchor="end">%s</text>`+"\n", x0-6, y+4, fmtTick(v))
	}
	// X ticks at the measured N.
	var ns []float64
	for _, s := range p.lines {
		for _, pt := range s.pts {
			if !slices.Contains(ns, pt[0]) {
				ns = append(ns, pt[0])
			}
		}
	}
	for _, n := range ns {
		x := xs(n)
		fmt.Fprintf(b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#ddd"/>`+"\n", x, y0, x, y0+panelH)
		fmt.Fprintf(b, `<text x="%.1f" y="%.1f" text-anchor="middle">%g</text>`+"\n", x, y0+panelH+16, n)
	}
	fmt.Fprintf(b, `<text x="%.1f" y="%.1f" text-anchor="middle">players (log scale)</text>`+"\n", x0+panelW/2, y0+panelH+36)
	fmt.Fprintf(b, `<text transform="translate(%.1f,%.1f) rotate(-90)" text-anchor="middle">%s</text>`+"\n", x0-50, y0+panelH/2, esc(p.ylabel))
	if p.target > 0 {
		y := ys(p.target)
		fmt.Fprintf(b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#888" stroke-dasharray="6,4"/>`+"\n", x0, y, x0+panelW, y)
		fmt.Fprintf(b, `<text x="%.1f" y="%.1f" text-anchor="end" fill="#666">%s</text>`+"\n", x0+panelW-4, y-4, esc(p.targetLabel))
	}
	for _, s := range p.lines {
		if len(s.pts) == 0 {
			continue
		}
		var path strings.Builder
		for i, pt := range s.pts {
			cmd := "L"
			if i == 0 {
				cmd = "M"
			}
			fmt.Fprintf(&path, "%s%.1f,%.1f ", cmd, xs(pt[0]), ys(pt[1]))
		}
		fmt.Fprintf(b, `<path d="%s" fill="none" stroke="%s" stroke-width="2.5"/>`+"\n", strings.TrimSpace(path.String()), s.color)
		for _, pt := range s.pts {
			fmt.Fprintf(b, `<circle cx="%.1f" cy="%.1f" r="3.5" fill="%s"><title>%s N=%g: %s</title></circle>`+"\n",
				xs(pt[0]), ys(pt[1]), s.color, esc(displayName(s.name)), pt[0], fmtTick(pt[1]))
		}
	}
}

// niceCeil rounds v up to 1, 2, 2.5, 4 or 5 times a power of ten.
func niceCeil(v float64) float64 {
	if v <= 0 {
		return 1
	}
	e := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 2.5, 4, 5, 10} {
		if m*e >= v {
			return m * e
		}
	}
	return 10 * e
}

func fmtTick(v float64) string {
	return strconv.FormatFloat(v, 'g', 3, 64)
}

func esc(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&quot;").Replace(s)
}

func main() {
	in := flag.String("in", "", "benchmark output to read (default: standard input)")
	out := flag.String("out", "", "SVG file to write (default: standard output)")
	title := flag.String("title", "RTMP fan-out: one 2 Mbps H.264+AAC stream, N players on loopback", "chart title")
	flag.Parse()
	if err := run(*in, *out, *title); err != nil {
		slog.Error("benchplot failed", "err", err)
		os.Exit(1)
	}
}

func run(in, out, title string) error {
	var r io.Reader = os.Stdin
	if in != "" {
		f, err := os.Open(in)
		if err != nil {
			return fmt.Errorf("open input: %w", err)
		}
		defer f.Close()
		r = f
	}
	data, err := parse(r)
	if err != nil {
		return err
	}
	var w io.Writer = os.Stdout
	if out != "" {
		f, err := os.Create(out)
		if err != nil {
			return fmt.Errorf("create output: %w", err)
		}
		defer f.Close()
		w = f
	}
	if err := render(w, title, data); err != nil {
		return fmt.Errorf("write SVG: %w", err)
	}
	return nil
}
