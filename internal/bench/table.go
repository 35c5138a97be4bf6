package bench

import (
	"fmt"
	"io"
	"math"
	"strings"
	"unicode/utf8"
)

// packetColumns are the columns of per-packet workloads.
var packetColumns = []Column{
	{"ns/pkt", func(r Result) string { return fmt.Sprintf("%.0f", r.NsPerPacket) }},
	{"pkts/s", func(r Result) string { return si(r.PacketsPerSecond) }},
	{"allocs/pkt", func(r Result) string { return allocs(r.AllocsPerPacket) }},
}

// Print writes one table per suite that has results in rep, with the
// suite's ratios beside the rows they compare.
func Print(w io.Writer, rep *Report, suites []Suite) {
	fmt.Fprintf(w, "machine: %s\n", rep.Machine)
	if rep.Date != "" {
		fmt.Fprintf(w, "date: %s\n", rep.Date)
	}
	if rep.Settings != "" {
		fmt.Fprintf(w, "settings: %s\n", rep.Settings)
	}
	for _, s := range suites {
		var rows []Result
		for _, r := range rep.Results {
			if r.Suite == s.Name {
				rows = append(rows, r)
			}
		}
		if len(rows) == 0 {
			continue
		}
		fmt.Fprintf(w, "\n%s (median of %d rounds)\n", s.Title, rows[0].Rounds)
		var table [][]string
		head := []string{"workload", "path"}
		for _, c := range s.Columns {
			head = append(head, c.Header)
		}
		type ratioCol struct {
			spec    RatioSpec
			against Path
		}
		var ratioCols []ratioCol
		metrics := map[string]bool{}
		for _, spec := range s.Ratios {
			metrics[spec.Metric.Name] = true
		}
		for _, spec := range s.Ratios {
			for _, a := range spec.Against {
				ratioCols = append(ratioCols, ratioCol{spec, a})
				h := fmt.Sprintf("%s vs %s", spec.Path, a)
				if len(spec.Paths) > 0 {
					h = "× " + string(a)
				}
				if len(metrics) > 1 {
					// Several figures compared: say which.
					h += " " + spec.Metric.Label
				}
				head = append(head, h)
			}
		}
		table = append(table, head)
		ratios := Ratios(s, rows)
		for _, r := range rows {
			cells := []string{r.Workload, string(r.Path)}
			for _, c := range s.Columns {
				cells = append(cells, c.Value(r))
			}
			for _, rc := range ratioCols {
				cell := ""
				for _, q := range ratios {
					if q.Workload == r.Workload && q.Path == r.Path && rc.spec.compares(q.Path) && q.Baseline == rc.against && q.Metric == rc.spec.Metric.Name {
						cell = fmt.Sprintf("%.1f×", q.Value)
					}
				}
				cells = append(cells, cell)
			}
			table = append(table, cells)
		}
		writeTable(w, table)
		if s.Note != nil {
			if note := s.Note(rows); note != "" {
				fmt.Fprintln(w, note)
			}
		}
	}
}

// writeTable writes rows in aligned columns: the first two (names) to the
// left, the figures to the right, two spaces apart.
func writeTable(w io.Writer, rows [][]string) {
	var width []int
	for _, row := range rows {
		for i, c := range row {
			if i == len(width) {
				width = append(width, 0)
			}
			width[i] = max(width[i], utf8.RuneCountInString(c))
		}
	}
	for _, row := range rows {
		var b strings.Builder
		for i, c := range row {
			pad := strings.Repeat(" ", width[i]-utf8.RuneCountInString(c))
			if i > 0 {
				b.WriteString("  ")
			}
			if i < 2 {
				b.WriteString(c + pad)
			} else {
				b.WriteString(pad + c)
			}
		}
		fmt.Fprintln(w, strings.TrimRight(b.String(), " "))
	}
}

// si formats a rate with an SI suffix: 950, 12.3k, 4.56M.
func si(v float64) string {
	switch {
	case v == 0:
		return "-"
	case v >= 1e6:
		return fmt.Sprintf("%.2fM", v/1e6)
	case v >= 1e3:
		return fmt.Sprintf("%.1fk", v/1e3)
	default:
		return fmt.Sprintf("%.0f", v)
	}
}

// allocs formats allocations per packet: exact zeros read as 0.
func allocs(v float64) string {
	if v == 0 {
		return "0"
	}
	if v < 0.005 {
		return fmt.Sprintf("%.1g", v)
	}
	return fmt.Sprintf("%.2f", math.Round(v*100)/100)
}
