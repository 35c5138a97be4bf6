package bench

import (
	"fmt"
	"io"
	"math"
	"strings"
	"text/tabwriter"
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
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		head := []string{"workload", "path"}
		for _, c := range s.Columns {
			head = append(head, c.Header)
		}
		type ratioCol struct {
			spec    RatioSpec
			against Path
		}
		var ratioCols []ratioCol
		for _, spec := range s.Ratios {
			for _, a := range spec.Against {
				ratioCols = append(ratioCols, ratioCol{spec, a})
				head = append(head, fmt.Sprintf("%s vs %s", spec.Path, a))
			}
		}
		writeRow(tw, head)
		ratios := Ratios(s, rows)
		for _, r := range rows {
			cells := []string{r.Workload, string(r.Path)}
			for _, c := range s.Columns {
				cells = append(cells, c.Value(r))
			}
			for _, rc := range ratioCols {
				cell := ""
				for _, q := range ratios {
					if q.Workload == r.Workload && q.Path == r.Path && q.Path == rc.spec.Path && q.Baseline == rc.against && q.Metric == rc.spec.Metric.Name {
						cell = fmt.Sprintf("%.1f×", q.Value)
					}
				}
				cells = append(cells, cell)
			}
			writeRow(tw, cells)
		}
		tw.Flush()
		if s.Note != nil {
			if note := s.Note(rows); note != "" {
				fmt.Fprintln(w, note)
			}
		}
	}
}

// writeRow writes cells left-aligned in the first two columns (names) and
// right-aligned after (figures).
func writeRow(w io.Writer, cells []string) {
	var b strings.Builder
	for i, c := range cells {
		if i < 2 {
			// tabwriter aligns every column right: pad names on the right
			// so they read left-aligned.
			c = fmt.Sprintf("%-*s", nameWidth[i], c)
		}
		b.WriteString(c)
		b.WriteByte('\t')
	}
	b.WriteByte('\n')
	io.WriteString(w, b.String())
}

// nameWidth is the width of the workload and path columns.
var nameWidth = [2]int{34, 8}

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
