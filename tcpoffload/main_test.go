package tcpoffload_test

import (
	"testing"

	"github.com/mediastack/mediastack/internal/netnstest"
)

// TestMain fails the run if the tests leave goroutines behind (the
// simulated stacks' must all be gone).
func TestMain(m *testing.M) { netnstest.Main(m) }
