//go:build linux

package netns

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"syscall"

	"golang.org/x/sys/unix"
)

// capabilities returns the calling thread's capability sets.
func capabilities() (unix.CapUserHeader, [2]unix.CapUserData, error) {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData // version 3 uses two 32-bit words
	err := unix.Capget(&hdr, &data[0])
	return hdr, data, err
}

func hasCap(data [2]unix.CapUserData, c int) bool {
	return data[c/32].Effective&(1<<(uint(c)%32)) != 0
}

// CheckPrivileges says what is missing for making namespaces and links:
// CAP_NET_ADMIN and CAP_NET_RAW.
func CheckPrivileges() error {
	_, data, err := capabilities()
	if err != nil {
		return fmt.Errorf("reading capabilities: %w", err)
	}
	var missing []error
	if !hasCap(data, unix.CAP_NET_ADMIN) {
		missing = append(missing, errors.New("CAP_NET_ADMIN"))
	}
	if !hasCap(data, unix.CAP_NET_RAW) {
		missing = append(missing, errors.New("CAP_NET_RAW"))
	}
	if missing != nil {
		return fmt.Errorf("missing %v: run as root", errors.Join(missing...))
	}
	return nil
}

// WithoutCapabilities runs f on an OS thread of its own whose effective
// capability set lacks caps (e.g. unix.CAP_NET_ADMIN), to see what a process
// without them gets. Capabilities are per thread on Linux; the thread is
// thrown away afterwards, never reused. f runs on another goroutine: it
// returns its results through its closure.
func WithoutCapabilities(f func(), caps ...int) error {
	done := make(chan error)
	go func() {
		// Never unlocked: the runtime ends the thread with the goroutine.
		runtime.LockOSThread()
		hdr, data, err := capabilities()
		if err == nil {
			for _, c := range caps {
				data[c/32].Effective &^= 1 << (uint(c) % 32)
			}
			err = unix.Capset(&hdr, &data[0])
		}
		if err != nil {
			done <- fmt.Errorf("dropping capabilities: %w", err)
			return
		}
		f()
		done <- nil
	}()
	return <-done
}

func ownProcessGroup(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return signalGroup(cmd, syscall.SIGKILL) }
}

func signalGroup(cmd *exec.Cmd, sig os.Signal) error {
	if cmd.Process == nil {
		return errors.New("process not started")
	}
	s, ok := sig.(syscall.Signal)
	if !ok {
		return cmd.Process.Signal(sig)
	}
	// The group's ID is the leader's PID; a negative PID names the group.
	if err := syscall.Kill(-cmd.Process.Pid, s); err != nil && !errors.Is(err, syscall.ESRCH) {
		return err
	}
	return nil
}

// Enter runs f on an OS thread inside the namespace, so the sockets f
// opens live there; they work from any goroutine afterwards. The thread is
// never unlocked: it ends with its goroutine instead of going back to the
// runtime in the wrong namespace. An empty Name is the caller's namespace.
func (ns Namespace) Enter(f func() error) error {
	if ns.Name == "" {
		return f()
	}
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		fd, err := unix.Open("/var/run/netns/"+ns.Name, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			errc <- err
			return
		}
		defer unix.Close(fd)
		if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("entering %s: %w", ns.Name, err)
			return
		}
		errc <- f()
	}()
	return <-errc
}
