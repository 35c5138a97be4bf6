package playback

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"net/url"
	"os"
	"os/exec"
	"slices"
	"strings"
)

// Target is where Play sends a file: a player command or an RTP address.
type Target struct {
	// Command is the player's argv. With "{}" in an argument it is given
	// the file's path (so it plays a verified file only); without, it reads
	// the file's bytes, in order, on its stdin, and can start while the
	// file downloads (PlayStream).
	Command []string
	RTP     netip.AddrPort // valid: send RTP here
	// Stdout and Stderr take the command's output (nil: the process's own).
	Stdout, Stderr io.Writer
}

// ParseTarget parses a --play value: "rtp://HOST:PORT" (HOST an IP
// literal) or a player command line ("ffplay -nodisp -autoexit {}" gets
// the path, "ffplay -nodisp -autoexit -" the bytes on stdin; single and
// double quotes group words).
func ParseTarget(s string) (Target, error) {
	if strings.HasPrefix(s, "rtp://") {
		ap, err := ParseRTPURL(s)
		return Target{RTP: ap}, err
	}
	argv, err := splitCommand(s)
	if err != nil {
		return Target{}, err
	}
	if len(argv) == 0 {
		return Target{}, errors.New("playback: empty player command")
	}
	return Target{Command: argv}, nil
}

// NeedsPath says that the target is a command given the file's path ("{}"
// in an argument): it cannot play a file still downloading.
func (t Target) NeedsPath() bool {
	return !t.RTP.IsValid() && slices.ContainsFunc(t.Command, func(a string) bool { return strings.Contains(a, pathMark) })
}

// pathMark is what a command's arguments name the file's path with.
const pathMark = "{}"

// ParseRTPURL parses "rtp://HOST:PORT", HOST an IP literal.
func ParseRTPURL(s string) (netip.AddrPort, error) {
	u, err := url.Parse(s)
	if err != nil || u.Scheme != "rtp" || u.Path != "" || u.RawQuery != "" {
		return netip.AddrPort{}, fmt.Errorf("playback: %q: want rtp://HOST:PORT", s)
	}
	ap, err := netip.ParseAddrPort(u.Host)
	if err != nil || ap.Port() == 0 {
		return netip.AddrPort{}, fmt.Errorf("playback: %q: want rtp://HOST:PORT with an IP address and a port", s)
	}
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), nil
}

// Play hands the file at path to t: runs the command to its end, or sends
// the file as RTP with o (o.Dest is set from t).
func (t Target) Play(ctx context.Context, path string, o RTPOptions) (Stats, error) {
	if t.RTP.IsValid() {
		o.Dest = t.RTP
		return SendRTP(ctx, path, o)
	}
	if t.NeedsPath() {
		return Stats{}, t.run(ctx, path, nil)
	}
	f, err := os.Open(path)
	if err != nil {
		return Stats{}, fmt.Errorf("playback: %w", err)
	}
	defer f.Close()
	return Stats{}, t.run(ctx, "", f)
}

// RunCommand runs argv with "{}" replaced by path, or with the file on its
// stdin when no argument has "{}"; without a shell, its output on the
// process's own.
func RunCommand(ctx context.Context, argv []string, path string) error {
	_, err := Target{Command: argv}.Play(ctx, path, RTPOptions{})
	return err
}

// run runs the command with "{}" replaced by path, stdin (when not nil)
// on its standard input.
func (t Target) run(ctx context.Context, path string, stdin io.Reader) error {
	if len(t.Command) == 0 {
		return errors.New("playback: empty player command")
	}
	args := make([]string, len(t.Command))
	for i, a := range t.Command {
		args[i] = strings.ReplaceAll(a, pathMark, path)
	}
	cmd := exec.CommandContext(ctx, args[0], args[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdin, t.Stdout, t.Stderr
	if cmd.Stdout == nil {
		cmd.Stdout = os.Stdout
	}
	if cmd.Stderr == nil {
		cmd.Stderr = os.Stderr
	}
	// A player that quits before the end of its input is no error (exec
	// drops the broken pipe).
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("playback: %s: %w", args[0], err)
	}
	return nil
}

// splitCommand splits a command line into words; single quotes keep
// everything, double quotes keep everything but a backslash-escaped quote
// or backslash, a backslash outside quotes escapes the next character.
func splitCommand(s string) ([]string, error) {
	var out []string
	var cur strings.Builder
	inWord := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n':
			if inWord {
				out = append(out, cur.String())
				cur.Reset()
				inWord = false
			}
		case c == '\'':
			j := strings.IndexByte(s[i+1:], '\'')
			if j < 0 {
				return nil, fmt.Errorf("playback: %q: unterminated single quote", s)
			}
			cur.WriteString(s[i+1 : i+1+j])
			i += j + 1
			inWord = true
		case c == '"':
			i++
			for ; i < len(s) && s[i] != '"'; i++ {
				if s[i] == '\\' && i+1 < len(s) && (s[i+1] == '"' || s[i+1] == '\\') {
					i++
				}
				cur.WriteByte(s[i])
			}
			if i == len(s) {
				return nil, fmt.Errorf("playback: %q: unterminated double quote", s)
			}
			inWord = true
		case c == '\\' && i+1 < len(s):
			i++
			cur.WriteByte(s[i])
			inWord = true
		default:
			cur.WriteByte(c)
			inWord = true
		}
	}
	if inWord {
		out = append(out, cur.String())
	}
	return out, nil
}
