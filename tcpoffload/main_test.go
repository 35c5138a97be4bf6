package tcpoffload_test

import (
	"testing"

	"github.com/mediastack/mediastack/internal/leakcheck"
)

// TestMain fails the run if the tests leave goroutines behind (the
// simulated stacks' must all be gone).
func TestMain(m *testing.M) { leakcheck.Main(m) }
