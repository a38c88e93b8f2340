package report

import (
	"fmt"
	"html/template"
	"math"
	"sort"
	"strings"
)

// Chart geometry, in SVG user units; the page scales the SVG to its width.
const (
	chartW   = 760
	chartH   = 260
	padLeft  = 56
	padRight = 16
	padTop   = 30 // room for the legend above the plot
	padBot   = 44
)

var palette = []string{"#2563eb", "#d97706", "#059669", "#db2777", "#7c3aed", "#0891b2", "#65a30d", "#dc2626"}

func esc(s string) string { return template.HTMLEscapeString(s) }

type svg struct{ b strings.Builder }

func (s *svg) f(format string, args ...any) { fmt.Fprintf(&s.b, format, args...) }

func (s *svg) open(title string) {
	s.f(`<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 %d %d" role="img" aria-label="%s" class="chart">`, chartW, chartH, esc(title))
	s.f(`<rect x="0" y="0" width="%d" height="%d" fill="#fff"/>`, chartW, chartH)
}

func (s *svg) html() template.HTML {
	s.f(`</svg>`)
	return template.HTML(s.b.String()) // built from numbers and escaped labels only
}

// niceMax rounds v up to 1, 2 or 5 times a power of ten.
func niceMax(v float64) float64 {
	if v <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if v <= m*p {
			return m * p
		}
	}
	return 10 * p
}

// scale picks the top of a count axis and its tick step: whole, round
// steps, about four of them.
func scale(maxV float64) (top, step float64) {
	step = math.Max(1, niceMax(maxV/4))
	n := math.Max(1, math.Ceil(maxV/step))
	return n * step, step
}

func (s *svg) yAxis(top, step float64, label string) {
	plotH := float64(chartH - padTop - padBot)
	n := int(math.Round(top / step))
	for i := 0; i <= n; i++ {
		v := step * float64(i)
		y := float64(chartH-padBot) - plotH*v/top
		s.f(`<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#e5e7eb"/>`, padLeft, y, chartW-padRight, y)
		s.f(`<text x="%d" y="%.1f" font-size="11" text-anchor="end" fill="#374151">%s</text>`, padLeft-6, y+4, trimFloat(v))
	}
	s.f(`<text x="12" y="%d" font-size="11" fill="#374151" transform="rotate(-90 12 %d)" text-anchor="middle">%s</text>`,
		chartH/2, chartH/2, esc(label))
}

func trimFloat(v float64) string {
	if v == math.Trunc(v) {
		return fmt.Sprintf("%.0f", v)
	}
	return fmt.Sprintf("%.1f", v)
}

func empty(title, msg string) template.HTML {
	var s svg
	s.open(title)
	s.f(`<text x="%d" y="%d" font-size="14" text-anchor="middle" fill="#6b7280">%s</text>`, chartW/2, chartH/2, esc(msg))
	return s.html()
}

// LatencyChart draws the latency histogram: logarithmic buckets as bars.
func LatencyChart(bs []Bucket, kind string) template.HTML {
	title := "latency histogram: " + kind
	if len(bs) == 0 {
		return empty(title, "no decisions measured")
	}
	maxC := 0
	for _, b := range bs {
		maxC = max(maxC, b.Count)
	}
	var s svg
	s.open(title)
	top, step := scale(float64(maxC))
	s.yAxis(top, step, "reads")
	plotW := float64(chartW - padLeft - padRight)
	plotH := float64(chartH - padTop - padBot)
	bw := plotW / float64(len(bs))
	for i, b := range bs {
		h := plotH * float64(b.Count) / top
		x := float64(padLeft) + bw*float64(i)
		y := float64(chartH-padBot) - h
		s.f(`<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"><title>%s – %s: %d</title></rect>`,
			x+1, y, math.Max(bw-2, 1), h, palette[0], esc(dur(b.Lo)), esc(dur(b.Hi)), b.Count)
		if i%max(1, len(bs)/8) == 0 {
			s.f(`<text x="%.1f" y="%d" font-size="11" text-anchor="middle" fill="#374151">%s</text>`, x, chartH-padBot+16, esc(dur(b.Lo)))
		}
	}
	s.f(`<text x="%d" y="%d" font-size="11" text-anchor="end" fill="#374151">%s</text>`, chartW-padRight, chartH-padBot+16, esc(dur(bs[len(bs)-1].Hi)))
	s.f(`<text x="%d" y="%d" font-size="11" text-anchor="middle" fill="#374151">%s (log scale)</text>`,
		padLeft+int(plotW/2), chartH-8, esc(kind))
	return s.html()
}

func (s *svg) timeAxis(runSeconds float64) func(float64) float64 {
	plotW := float64(chartW - padLeft - padRight)
	span := math.Max(runSeconds, 1)
	x := func(t float64) float64 { return float64(padLeft) + plotW*math.Min(math.Max(t, 0), span)/span }
	step := niceMax(span / 8)
	for t := 0.0; t <= span+1e-9; t += step {
		s.f(`<text x="%.1f" y="%d" font-size="11" text-anchor="middle" fill="#374151">%s</text>`, x(t), chartH-padBot+16, clockSec(t))
	}
	s.f(`<text x="%d" y="%d" font-size="11" text-anchor="middle" fill="#374151">time since start (m:ss)</text>`,
		padLeft+int(plotW/2), chartH-8)
	return x
}

func clockSec(t float64) string {
	n := int(math.Round(t))
	return fmt.Sprintf("%d:%02d", n/60, n%60)
}

// faults shades each fault's span behind the data.
func (s *svg) faults(fs []FaultSpan, x func(float64) float64) {
	for _, f := range fs {
		x0, x1 := x(f.From), x(f.To)
		if x1-x0 < 2 {
			x1 = x0 + 2
		}
		s.f(`<rect x="%.1f" y="%d" width="%.1f" height="%d" fill="#fca5a5" opacity="0.35"><title>%s</title></rect>`,
			x0, padTop, x1-x0, chartH-padTop-padBot, esc(f.Label))
	}
}

// faultLabels names the faults in front of the data, stepped down so that
// faults close together stay readable.
func (s *svg) faultLabels(fs []FaultSpan, x func(float64) float64) {
	for i, f := range fs {
		x0 := x(f.From)
		y := padTop + 11 + 12*(i%4)
		if x0 > chartW-padRight-160 {
			s.f(`<text x="%.1f" y="%d" font-size="10" text-anchor="end" fill="#b91c1c">%s</text>`, x0-2, y, esc(f.Label))
		} else {
			s.f(`<text x="%.1f" y="%d" font-size="10" fill="#b91c1c">%s</text>`, x0+2, y, esc(f.Label))
		}
	}
}

// legend writes a row of colour keys above the plot, right-aligned.
func (s *svg) legend(labels, colors []string) {
	x := float64(chartW - padRight)
	for i := len(labels) - 1; i >= 0; i-- {
		w := 16 + 6.2*float64(len([]rune(labels[i])))
		x -= w + 10
		s.f(`<rect x="%.1f" y="9" width="10" height="10" fill="%s"/><text x="%.1f" y="18" font-size="11" fill="#374151">%s</text>`,
			x, colors[i], x+14, esc(labels[i]))
	}
}

// OccupancyChart draws cars inside each lot over time as step lines, with
// the faults shaded behind them.
func OccupancyChart(occ map[string][]Point, capacity map[string]int, fs []FaultSpan, runSeconds float64) template.HTML {
	title := "occupancy over time"
	if len(occ) == 0 {
		return empty(title, "no lots")
	}
	names := make([]string, 0, len(occ))
	maxV := 1.0
	for n, pts := range occ {
		names = append(names, n)
		for _, p := range pts {
			maxV = math.Max(maxV, p.V)
		}
		maxV = math.Max(maxV, float64(capacity[n]))
	}
	sort.Strings(names)
	var s svg
	s.open(title)
	top, step := scale(maxV + 1)
	s.yAxis(top, step, "cars inside")
	x := s.timeAxis(runSeconds)
	s.faults(fs, x)
	plotH := float64(chartH - padTop - padBot)
	y := func(v float64) float64 { return float64(chartH-padBot) - plotH*v/top }
	var labels, colors []string
	for i, n := range names {
		color := palette[i%len(palette)]
		pts := occ[n]
		var path strings.Builder
		last := 0.0
		for k, p := range pts {
			if k == 0 {
				fmt.Fprintf(&path, "M%.1f,%.1f", x(p.T), y(p.V))
			} else {
				fmt.Fprintf(&path, " H%.1f V%.1f", x(p.T), y(p.V))
			}
			last = p.V
		}
		fmt.Fprintf(&path, " H%.1f", x(runSeconds))
		s.f(`<path d="%s" fill="none" stroke="%s" stroke-width="2"><title>%s (now %s)</title></path>`, path.String(), color, esc(n), trimFloat(last))
		if c := capacity[n]; c > 0 {
			s.f(`<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="%s" stroke-dasharray="4 4" opacity="0.6"/>`,
				padLeft, chartW-padRight, y(float64(c)), y(float64(c)), color)
		}
		labels = append(labels, fmt.Sprintf("%s (%d spots)", n, capacity[n]))
		colors = append(colors, color)
	}
	s.faultLabels(fs, x)
	s.legend(labels, colors)
	return s.html()
}

// EventsChart draws gate decisions per minute as stacked bars (opens below,
// denials above), faults shaded.
func EventsChart(open, deny []Point, bucket float64, fs []FaultSpan, runSeconds float64) template.HTML {
	title := "gate events per minute"
	if len(open) == 0 {
		return empty(title, "no gate events")
	}
	maxV := 1.0
	for i := range open {
		maxV = math.Max(maxV, open[i].V+deny[i].V)
	}
	var s svg
	s.open(title)
	top, step := scale(maxV)
	s.yAxis(top, step, "events per minute")
	span := math.Max(runSeconds, bucket*float64(len(open)))
	x := s.timeAxis(span)
	s.faults(fs, x)
	plotH := float64(chartH - padTop - padBot)
	h := func(v float64) float64 { return plotH * v / top }
	for i := range open {
		x0, x1 := x(open[i].T), x(open[i].T+bucket)
		w := math.Max(x1-x0-2, 1)
		ho, hd := h(open[i].V), h(deny[i].V)
		base := float64(chartH - padBot)
		s.f(`<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"><title>%s: %s opens/min</title></rect>`,
			x0+1, base-ho, w, ho, palette[2], clockSec(open[i].T), trimFloat(open[i].V))
		s.f(`<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"><title>%s: %s denials/min</title></rect>`,
			x0+1, base-ho-hd, w, hd, palette[1], clockSec(open[i].T), trimFloat(deny[i].V))
	}
	s.faultLabels(fs, x)
	s.legend([]string{"open", "deny"}, []string{palette[2], palette[1]})
	return s.html()
}
