//go:build !linux

package netns

import (
	"errors"
	"os"
	"os/exec"
)

var errNeedsLinux = errors.New("network namespaces need Linux")

// CheckPrivileges says namespaces need Linux.
func CheckPrivileges() error { return errNeedsLinux }

// DisableTSO says namespaces need Linux.
func DisableTSO(string) error { return errNeedsLinux }

// WithoutCapabilities says capabilities are a Linux feature.
func WithoutCapabilities(func(), ...int) error { return errNeedsLinux }

func ownProcessGroup(*exec.Cmd) {}

func signalGroup(cmd *exec.Cmd, sig os.Signal) error {
	if cmd.Process == nil {
		return errors.New("process not started")
	}
	return cmd.Process.Signal(sig)
}

// Enter runs f in the caller's namespace, the only one there is.
func (ns Namespace) Enter(f func() error) error {
	if ns.Name != "" {
		return errNeedsLinux
	}
	return f()
}
