// Package counts prints counters by name, for the String methods of the
// fast paths' statistics (fallback, pass and drop reasons).
package counts

import (
	"fmt"
	"strings"
)

// Named lists the non-zero counts with their names, in order, as
// "name count" joined by ", ", e.g. "no-entry 12, unresolved 1"; "none" when
// every count is zero. names[i] names counts[i].
func Named(names []string, counts []uint64) string {
	var b strings.Builder
	for i, n := range counts {
		if n == 0 {
			continue
		}
		if b.Len() > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s %d", names[i], n)
	}
	if b.Len() == 0 {
		return "none"
	}
	return b.String()
}
