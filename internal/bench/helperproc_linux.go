package bench

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/mediastack/mediastack/internal/netns"
)

// helperProc is a bench helper running in a namespace; it talks JSON
// lines over stdin and stdout, and stops when its stdin closes.
type helperProc struct {
	name  string
	proc  *netns.Process
	stdin *os.File
	lines chan string
}

// startHelper runs `HELPER... bench-helper NAME ARGS...` inside ns. It
// runs in a process group of its own: a ^C meant for the bench reaches the
// helper through its closed stdin, after the bench has cleaned up.
func startHelper(ns netns.Namespace, helper []string, name string, args ...string) (*helperProc, error) {
	if len(helper) == 0 {
		return nil, errors.New("no helper command to run the load generator with (Config.Helper)")
	}
	argv := append(append(append([]string{}, helper...), "bench-helper", name), args...)
	stdinR, stdinW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	stdoutR, stdoutW, err := os.Pipe()
	if err != nil {
		stdinR.Close()
		stdinW.Close()
		return nil, err
	}
	proc, err := ns.StartWith(stdinR, stdoutW, argv...)
	if err != nil {
		stdinW.Close()
		stdoutR.Close()
		return nil, fmt.Errorf("starting the %s: %w", name, err)
	}
	h := &helperProc{name: name, proc: proc, stdin: stdinW, lines: make(chan string, 16)}
	go func() {
		defer stdoutR.Close()
		sc := bufio.NewScanner(stdoutR)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			h.lines <- sc.Text()
		}
		close(h.lines)
	}()
	return h, nil
}

// stderr is what the helper wrote to its stderr so far.
func (h *helperProc) stderr() string { return strings.TrimSpace(h.proc.Output()) }

// readLine waits up to timeout for the helper's next line.
func (h *helperProc) readLine(timeout time.Duration) (string, error) {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case line, ok := <-h.lines:
		if !ok {
			<-h.proc.Done() // its stdout is closed: it has exited, or is about to
			return "", fmt.Errorf("the %s exited (%v): %s", h.name, h.proc.Err(), h.stderr())
		}
		return line, nil
	case <-t.C:
		return "", fmt.Errorf("the %s did not answer within %v: %s", h.name, timeout, h.stderr())
	}
}

// step asks the generator for one step and waits for its reply.
func (h *helperProc) step(req genRequest) (genReply, error) {
	b, err := json.Marshal(req)
	if err != nil {
		return genReply{}, err
	}
	if _, err := h.stdin.Write(append(b, '\n')); err != nil {
		return genReply{}, fmt.Errorf("the %s: %w: %s", h.name, err, h.stderr())
	}
	line, err := h.readLine(time.Duration(req.DurationMs+req.DrainMs)*time.Millisecond + 20*time.Second)
	if err != nil {
		return genReply{}, err
	}
	var rep genReply
	if err := json.Unmarshal([]byte(line), &rep); err != nil {
		return genReply{}, fmt.Errorf("the %s said %q: %w", h.name, line, err)
	}
	if rep.Err != "" {
		return rep, fmt.Errorf("the %s: %s", h.name, rep.Err)
	}
	return rep, nil
}

// stop closes the helper's stdin and waits for it to exit, killing it
// after a few seconds.
func (h *helperProc) stop() error {
	h.stdin.Close()
	h.proc.Stop(5 * time.Second)
	return nil
}

// requireRoot says what the real-link suite needs when it is missing.
func requireRoot() error {
	if os.Geteuid() != 0 {
		return errors.New("--link needs root (it makes network namespaces, a TAP or veth pair, and runs a load generator in them)")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return errors.New("--link needs iproute2's ip (apt-get install iproute2)")
	}
	return nil
}

// peerVeth is how the real-link suites set up a veth pair for a raw link:
// the end left here carries the stack's MAC, the peer's end in the
// namespace the peer's MAC and addresses.
func peerVeth(prefix string) netns.PeerVethOptions {
	return netns.PeerVethOptions{
		Prefix:     prefix,
		OutsideMAC: net.HardwareAddr(stackMAC),
		InsideMAC:  net.HardwareAddr(peerMAC),
		Inside:     []netip.Prefix{peerV4, peerV6},
	}
}
