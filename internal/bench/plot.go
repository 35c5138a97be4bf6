package bench

import (
	"fmt"
	"image/color"
	"os"
	"path/filepath"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// pathColors are the paths' colours in every chart.
var pathColors = map[Path]color.Color{
	PathFast:     color.RGBA{R: 0x1b, G: 0x9e, B: 0x77, A: 0xff},
	PathNetstack: color.RGBA{R: 0xd9, G: 0x5f, B: 0x02, A: 0xff},
	PathKernel:   color.RGBA{R: 0x75, G: 0x70, B: 0xb3, A: 0xff},
}

// Plot draws rep to a PNG file: the in-process comparison as a bar chart
// (packets per second of each path, the ratio beside each workload), the
// scaling sweep as a line chart, and, when the run had a real link, its
// highest loss-free rates as a bar chart.
func Plot(rep *Report, file string) error {
	if ext := strings.ToLower(filepath.Ext(file)); ext != ".png" {
		return fmt.Errorf("%s: want a .png file", file)
	}
	type panel struct {
		p      *plot.Plot
		height vg.Length
	}
	var panels []panel
	add := func(p *plot.Plot, height vg.Length, err error) error {
		if p != nil {
			panels = append(panels, panel{p, height})
		}
		return err
	}
	if err := add(comparisonPlot(rep, "in-process", "In-process: packets per second on one core (longer is better; × is fast vs netstack per packet)",
		"packets/s (millions)", []Path{PathFast, PathNetstack}, MetricNsPerPacket, 1e-6, "M")); err != nil {
		return err
	}
	if err := add(scalingPlot(rep)); err != nil {
		return err
	}
	if err := add(comparisonPlot(rep, "link", "Real link, the kernel as the peer: highest rate reflected with < 0.1% loss (× is fast vs netstack)",
		"packets/s (thousands)", []Path{PathFast, PathNetstack, PathKernel}, MetricPacketRate, 1e-3, "k")); err != nil {
		return err
	}
	if len(panels) == 0 {
		return fmt.Errorf("no results to plot")
	}
	// Say where and when, and whether the run was --short, above the first
	// panel: a plot travels without its table.
	panels[0].p.Title.Text = caption(rep) + "\n" + panels[0].p.Title.Text
	panels[0].height += vg.Centimeter
	const width, pad = 26 * vg.Centimeter, vg.Centimeter / 2
	var total vg.Length
	for _, pn := range panels {
		total += pn.height + 2*pad
	}
	img := vgimg.New(width, total)
	dc := draw.New(img)
	top := total
	for _, pn := range panels {
		top -= pad
		c := dc
		c.Rectangle = vg.Rectangle{Min: vg.Point{X: pad, Y: top - pn.height}, Max: vg.Point{X: width - pad, Y: top}}
		pn.p.Draw(c)
		top -= pn.height + pad
	}
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// comparisonPlot draws one horizontal bar per path for each workload of the
// suite: packets per second scaled by scale. Each workload's label carries
// the ratio of the first path to the second on metric.
func comparisonPlot(rep *Report, suite, title, xLabel string, paths []Path, metric Metric, scale float64, unit string) (*plot.Plot, vg.Length, error) {
	var workloads []string
	seen := map[string]bool{}
	for _, r := range rep.Results {
		if r.Suite == suite && !seen[r.Workload] {
			seen[r.Workload] = true
			workloads = append(workloads, r.Workload)
		}
	}
	if len(workloads) == 0 {
		return nil, 0, nil
	}
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = xLabel
	p.X.Min = 0
	// Top to bottom in run order: the last NominalY name is drawn on top.
	names := make([]string, len(workloads))
	for i, w := range workloads {
		label := w
		if a, ok := find(rep.Results, w, paths[0]); ok {
			if b, ok := find(rep.Results, w, paths[1]); ok {
				x, y := metric.Get(a), metric.Get(b)
				if metric.LowerIsBetter {
					x, y = y, x
				}
				if x > 0 && y > 0 {
					label = fmt.Sprintf("%s  %.1f×", w, x/y)
				}
			}
		}
		names[len(workloads)-1-i] = label
	}
	p.NominalY(names...)
	const barWidth = vg.Length(9) // points
	groups := 0
	for _, path := range paths {
		for _, w := range workloads {
			if _, ok := find(rep.Results, w, path); ok {
				groups++
				break
			}
		}
	}
	height := vg.Length(len(workloads)*(groups+1))*barWidth + 3*vg.Centimeter
	present := 0
	var charts []*plotter.BarChart
	var labels []*plotter.Labels
	maxX := 0.0
	for _, path := range paths {
		vals := make(plotter.Values, len(workloads))
		var ends plotter.XYLabels
		for i, w := range workloads {
			if r, ok := find(rep.Results, w, path); ok {
				y := len(workloads) - 1 - i
				vals[y] = r.PacketsPerSecond * scale
				maxX = max(maxX, vals[y])
				ends.XYs = append(ends.XYs, plotter.XY{X: vals[y], Y: float64(y)})
				label := si(r.PacketsPerSecond)
				if r.Suite == "link" {
					label = lossFreeRate(r) // as in the table: "≥" where the generator was the limit
				}
				ends.Labels = append(ends.Labels, " "+label)
			}
		}
		if len(ends.XYs) == 0 {
			continue
		}
		bars, err := plotter.NewBarChart(vals, barWidth)
		if err != nil {
			return nil, 0, err
		}
		bars.Horizontal = true
		bars.Color = pathColors[path]
		bars.LineStyle.Width = 0
		bars.Offset = vg.Length(present) * barWidth
		lbl, err := plotter.NewLabels(ends)
		if err != nil {
			return nil, 0, err
		}
		p.Add(bars, lbl)
		p.Legend.Add(string(path), bars)
		charts = append(charts, bars)
		labels = append(labels, lbl)
		present++
	}
	// Centre the group of bars on each name, each value at its bar's end.
	for i, b := range charts {
		b.Offset -= vg.Length(present-1) * barWidth / 2
		labels[i].Offset = vg.Point{Y: b.Offset - barWidth/3}
	}
	p.X.Max = maxX * 1.3 // room for the values and the legend
	p.Add(plotter.NewGrid())
	return p, height, nil
}

// scalingPlot draws the scaling sweep's ns per packet against the stream
// count (log scale).
func scalingPlot(rep *Report) (*plot.Plot, vg.Length, error) {
	var xys plotter.XYs
	for _, r := range rep.Results {
		if r.Suite != "scaling" {
			continue
		}
		if n, ok := ScaleStreams(r.Workload); ok {
			xys = append(xys, plotter.XY{X: float64(n), Y: r.NsPerPacket})
		}
	}
	if len(xys) == 0 {
		return nil, 0, nil
	}
	p := plot.New()
	p.Title.Text = fmt.Sprintf("Scaling: fast reflector, %d-byte IPv4 datagrams round-robin over N streams (flat is good)", scaleSize)
	p.X.Label.Text = "concurrent streams (distinct local ports and peers)"
	p.Y.Label.Text = "ns per packet"
	p.X.Scale = plot.LogScale{}
	p.X.Tick.Marker = plot.LogTicks{Prec: -1}
	p.Y.Min = 0
	maxY := 0.0
	for _, xy := range xys {
		maxY = max(maxY, xy.Y)
	}
	p.Y.Max = maxY * 1.3
	line, points, err := plotter.NewLinePoints(xys)
	if err != nil {
		return nil, 0, err
	}
	line.Color = pathColors[PathFast]
	line.Width = vg.Points(2)
	points.Color = pathColors[PathFast]
	points.Shape = draw.CircleGlyph{}
	points.Radius = vg.Points(4)
	labels := make([]string, len(xys))
	for i, xy := range xys {
		labels[i] = fmt.Sprintf("%.0f ns", xy.Y)
	}
	lbl, err := plotter.NewLabels(plotter.XYLabels{XYs: xys, Labels: labels})
	if err != nil {
		return nil, 0, err
	}
	for i := range lbl.TextStyle {
		lbl.TextStyle[i].YAlign = draw.YBottom
		lbl.Offset = vg.Point{Y: vg.Points(6)}
	}
	p.Add(line, points, lbl, plotter.NewGrid())
	return p, 10 * vg.Centimeter, nil
}

// caption describes the run in one line: machine, date, settings.
func caption(rep *Report) string {
	parts := []string{rep.Machine}
	if rep.Date != "" {
		parts = append(parts, rep.Date)
	}
	if rep.Settings != "" {
		parts = append(parts, rep.Settings)
	}
	return strings.Join(parts, " · ")
}
