//go:build !linux

package netnstest

import (
	"errors"
	"os"
	"os/exec"
	"testing"
)

var errNeedsLinux = errors.New("network namespaces need Linux")

func checkPrivileges() error { return errNeedsLinux }

func disableTSO(string) error { return errNeedsLinux }

// WithoutCapabilities fails the test: capabilities are a Linux feature.
func WithoutCapabilities(t testing.TB, _ func(), _ ...int) {
	t.Helper()
	t.Fatal(errNeedsLinux)
}

func ownProcessGroup(*exec.Cmd) {}

func signalGroup(cmd *exec.Cmd, sig os.Signal) error {
	if cmd.Process == nil {
		return errors.New("process not started")
	}
	return cmd.Process.Signal(sig)
}
