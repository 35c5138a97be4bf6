package netns

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"
)

// waitDelay bounds how long Wait waits for output after the process is
// killed or has exited.
const waitDelay = 10 * time.Second

// Command returns a command that runs args inside the namespace
// (`ip netns exec NAME args...`; in the caller's, args as they are). It runs in a process group of its own,
// and cancelling ctx kills the whole group: a shell pipeline, or a tool that
// forks a helper (tshark's dumpcap), would otherwise outlive it and keep its
// output pipe open. Wait gives up on the pipes waitDelay after the kill.
func (ns Namespace) Command(ctx context.Context, args ...string) *exec.Cmd {
	if ns.Name != "" {
		args = append([]string{"ip", "netns", "exec", ns.Name}, args...)
	}
	cmd := exec.CommandContext(ctx, args[0], args[1:]...)
	ownProcessGroup(cmd)
	cmd.WaitDelay = waitDelay
	return cmd
}

// Process is a command running in the background inside a namespace, in a
// process group of its own.
type Process struct {
	cmd    *exec.Cmd
	out    lockedBuffer
	done   chan struct{}
	err    error
	cancel context.CancelFunc
}

// Start runs args in the background inside the namespace; what it writes
// to stdout and stderr is kept (Output). Stop it with Stop or Kill.
func (ns Namespace) Start(args ...string) (*Process, error) {
	return ns.StartWith(nil, nil, args...)
}

// StartWith is Start with the process's stdin and stdout (each unless nil)
// the child's ends of pipes made with os.Pipe, which StartWith closes in
// this process once the child has them; stderr is kept (Output).
func (ns Namespace) StartWith(stdin, stdout *os.File, args ...string) (*Process, error) {
	ctx, cancel := context.WithCancel(context.Background())
	p := &Process{cmd: ns.Command(ctx, args...), done: make(chan struct{}), cancel: cancel}
	p.cmd.Stdout, p.cmd.Stderr = &p.out, &p.out
	if stdin != nil {
		p.cmd.Stdin = stdin
		defer stdin.Close()
	}
	if stdout != nil {
		p.cmd.Stdout = stdout
		defer stdout.Close()
	}
	if err := p.cmd.Start(); err != nil {
		cancel()
		return nil, fmt.Errorf("starting %s in %s: %w", strings.Join(args, " "), ns.Name, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// Done is closed once the process has exited and its output is all in.
func (p *Process) Done() <-chan struct{} { return p.done }

// Err is how the process ended; call it after Done is closed.
func (p *Process) Err() error { return p.err }

// Wait waits up to timeout for the process to exit and returns its kept
// output and how it ended. If it is still running then, Wait kills it and
// says it did not exit.
func (p *Process) Wait(timeout time.Duration) (string, error) {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-p.done:
		return p.out.String(), p.err
	case <-t.C:
		p.Kill()
		return p.out.String(), fmt.Errorf("%s: still running after %v, killed", strings.Join(p.cmd.Args, " "), timeout)
	}
}

// Kill kills the process and any children it started (its process group)
// and waits for it to be gone (at most waitDelay for its output).
func (p *Process) Kill() {
	p.cancel()
	<-p.done
}

// Stop gives the process up to grace to exit by itself (after its stdin
// was closed, say), then kills it.
func (p *Process) Stop(grace time.Duration) {
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-p.done:
	case <-t.C:
		p.Kill()
	}
}

// Signal sends sig to the process and any children it started (its process
// group), e.g. os.Interrupt to make tshark finish its capture file.
func (p *Process) Signal(sig os.Signal) error {
	return signalGroup(p.cmd, sig)
}

// Output returns what the process has written so far to the output kept
// (stdout and stderr, or stderr alone if StartWith was given a stdout).
func (p *Process) Output() string { return p.out.String() }

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// Pid is the process's id: the command's own, for `ip netns exec` execs
// it (a benchmark reads its CPU time from /proc/PID).
func (p *Process) Pid() int { return p.cmd.Process.Pid }
