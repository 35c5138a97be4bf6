package simlan

import (
	"testing"

	"github.com/mediastack/mediastack/mediaport"
	"github.com/mediastack/mediastack/stack"
)

// NewManager is mediaport.NewManager; the manager is closed when the test
// ends.
func NewManager(tb testing.TB, st *stack.Stack, o mediaport.Options) *mediaport.Manager {
	tb.Helper()
	m, err := mediaport.NewManager(st, o)
	return closedAtEnd(tb, m, err)
}

// Open opens port on m; the port is closed when the test ends.
func Open(tb testing.TB, m *mediaport.Manager, port uint16) *mediaport.Port {
	tb.Helper()
	p, err := m.Open(port)
	return closedAtEnd(tb, p, err)
}

// closedAtEnd fails the test if err is set, and closes c when it ends.
func closedAtEnd[C interface{ Close() error }](tb testing.TB, c C, err error) C {
	tb.Helper()
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close() })
	return c
}
