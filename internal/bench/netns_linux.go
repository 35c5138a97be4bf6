package bench

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// uniqueName returns prefix and 8 random hex digits: with a prefix of at
// most 6 bytes, a valid interface name, unique to this run.
func uniqueName(prefix string) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

// ip runs iproute2's ip with args.
func ip(args ...string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}

// ips runs several ip commands, stopping at the first error.
func ips(cmds ...[]string) error {
	for _, c := range cmds {
		if err := ip(c...); err != nil {
			return err
		}
	}
	return nil
}

// cleanup collects what an environment made, to delete it by name in
// reverse order.
type cleanup struct {
	fns []func() error
}

func (c *cleanup) add(f func() error) { c.fns = append(c.fns, f) }

func (c *cleanup) run() error {
	var errs []error
	for i := len(c.fns) - 1; i >= 0; i-- {
		errs = append(errs, c.fns[i]())
	}
	c.fns = nil
	return errors.Join(errs...)
}

// addNamespace creates a network namespace with its loopback up and
// registers its deletion.
func (c *cleanup) addNamespace(name string) error {
	if err := ip("netns", "add", name); err != nil {
		return err
	}
	c.add(func() error { return ip("netns", "del", name) })
	return ip("-n", name, "link", "set", "lo", "up")
}

// deleteLink deletes an interface by name, in a namespace or ours; one
// already gone is fine.
func deleteLink(netns, name string) error {
	args := []string{"link", "del", "dev", name}
	if netns != "" {
		args = append([]string{"-n", netns}, args...)
	}
	err := ip(args...)
	if err != nil && (strings.Contains(err.Error(), "Cannot find device") || strings.Contains(err.Error(), "does not exist")) {
		return nil
	}
	return err
}

// address gives the kernel's end of a link its MAC and addresses and sets
// it up. IPv6 skips duplicate address detection so it is usable at once.
func address(netns, dev string, mac net.HardwareAddr, v4, v6 string) error {
	return ips(
		[]string{"-n", netns, "link", "set", "dev", dev, "address", mac.String()},
		[]string{"-n", netns, "addr", "add", v4, "dev", dev},
		[]string{"-n", netns, "addr", "add", v6, "dev", dev, "nodad"},
		[]string{"-n", netns, "link", "set", "dev", dev, "up"},
	)
}

// addPeerVeth makes a veth pair for a raw link: the end left in this
// namespace (returned first, named from prefix) carries the stack's MAC with
// the kernel's IP kept off it, so only the AF_PACKET socket answers there;
// the other end, in netns, is the peer's, addressed with address. Deleting
// the outside end (registered with clean) deletes both.
func addPeerVeth(clean *cleanup, netns, prefix string) (outside, inside string, err error) {
	base := uniqueName(prefix)
	outside, inside = base+"o", base+"i"
	clean.add(func() error { return deleteLink("", outside) })
	if err := ip("link", "add", "dev", outside, "address", net.HardwareAddr(stackMAC).String(), "type", "veth", "peer", "name", inside, "netns", netns); err != nil {
		return "", "", err
	}
	for _, s := range []struct{ path, value string }{
		{"/proc/sys/net/ipv6/conf/" + outside + "/disable_ipv6", "1"},
		{"/proc/sys/net/ipv4/conf/" + outside + "/forwarding", "0"},
		{"/proc/sys/net/ipv4/conf/" + outside + "/arp_ignore", "8"},
	} {
		if err := os.WriteFile(s.path, []byte(s.value), 0o644); err != nil {
			return "", "", fmt.Errorf("keeping the kernel off %s: %w", outside, err)
		}
	}
	if err := ip("link", "set", "dev", outside, "up"); err != nil {
		return "", "", err
	}
	if err := address(netns, inside, net.HardwareAddr(peerMAC), peerV4.String(), peerV6.String()); err != nil {
		return "", "", err
	}
	return outside, inside, nil
}

// helperProc is a bench helper running in a namespace; it talks JSON
// lines over stdin and stdout, and stops when its stdin closes.
type helperProc struct {
	name   string
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	lines  chan string
	stderr lockedBuffer
	done   chan struct{}
	err    error
}

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
	return strings.TrimSpace(l.b.String())
}

// startHelper runs `HELPER... bench-helper NAME ARGS...` inside netns.
func startHelper(netns string, helper []string, name string, args ...string) (*helperProc, error) {
	if len(helper) == 0 {
		return nil, errors.New("no helper command to run the load generator with (Config.Helper)")
	}
	argv := append([]string{"netns", "exec", netns}, helper...)
	argv = append(argv, "bench-helper", name)
	argv = append(argv, args...)
	h := &helperProc{name: name, cmd: exec.Command("ip", argv...), lines: make(chan string, 16), done: make(chan struct{})}
	// Its own process group: a ^C meant for the bench reaches the helper
	// through its closed stdin, after the bench has cleaned up.
	h.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	h.cmd.Stderr = &h.stderr
	var err error
	if h.stdin, err = h.cmd.StdinPipe(); err != nil {
		return nil, err
	}
	stdout, err := h.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := h.cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting the %s: %w", name, err)
	}
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			h.lines <- sc.Text()
		}
		close(h.lines)
		h.err = h.cmd.Wait()
		close(h.done)
	}()
	return h, nil
}

// readLine waits up to timeout for the helper's next line.
func (h *helperProc) readLine(timeout time.Duration) (string, error) {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case line, ok := <-h.lines:
		if !ok {
			<-h.done
			return "", fmt.Errorf("the %s exited (%v): %s", h.name, h.err, h.stderr.String())
		}
		return line, nil
	case <-t.C:
		return "", fmt.Errorf("the %s did not answer within %v: %s", h.name, timeout, h.stderr.String())
	}
}

// step asks the generator for one step and waits for its reply.
func (h *helperProc) step(req genRequest) (genReply, error) {
	b, err := json.Marshal(req)
	if err != nil {
		return genReply{}, err
	}
	if _, err := h.stdin.Write(append(b, '\n')); err != nil {
		return genReply{}, fmt.Errorf("the %s: %w: %s", h.name, err, h.stderr.String())
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
	select {
	case <-h.done:
	case <-time.After(5 * time.Second):
		_ = syscall.Kill(-h.cmd.Process.Pid, syscall.SIGKILL)
		<-h.done
	}
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
