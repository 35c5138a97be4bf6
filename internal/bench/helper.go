package bench

import (
	"context"
	"fmt"
	"io"
)

// Helpers that the real-link suite runs in a network namespace, as
// `mediastack bench-helper NAME ...`.
const (
	HelperGenerator       = "generator"
	HelperKernelReflector = "kernel-reflector"
	// HelperRelay is the relay suite's plain relays: `relay kernel` on
	// Linux's UDP sockets, `relay tap:NAME` on gonet sockets of a stack on
	// a TAP it makes.
	HelperRelay = "relay"
)

// RunHelper runs the helper args[0] (HelperGenerator, HelperKernelReflector, HelperRelay)
// with the rest of args. The bench starts it inside the namespace it made and
// talks to it over stdin and stdout.
func RunHelper(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return fmt.Errorf("bench-helper: which helper? (%s, %s or %s)", HelperGenerator, HelperKernelReflector, HelperRelay)
	}
	return runHelper(ctx, args[0], args[1:], stdin, stdout)
}
