package playback

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"os"
	"os/exec"
	"strings"
)

// Target is where Play sends a file: a player command or an RTP address.
type Target struct {
	Command []string       // argv; "{}" in an argument is the file's path
	RTP     netip.AddrPort // valid: send RTP here
}

// ParseTarget parses a --play value: "rtp://HOST:PORT" (HOST an IP
// literal) or a player command line ("ffplay -nodisp -autoexit {}"; single
// and double quotes group words; without "{}" the path is appended).
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
	return Stats{}, RunCommand(ctx, t.Command, path)
}

// RunCommand runs argv with "{}" replaced by path (appended when absent),
// without a shell, its output on the process's own.
func RunCommand(ctx context.Context, argv []string, path string) error {
	if len(argv) == 0 {
		return errors.New("playback: empty player command")
	}
	args := make([]string, 0, len(argv)+1)
	replaced := false
	for _, a := range argv {
		if strings.Contains(a, "{}") {
			a, replaced = strings.ReplaceAll(a, "{}", path), true
		}
		args = append(args, a)
	}
	if !replaced {
		args = append(args, path)
	}
	cmd := exec.CommandContext(ctx, args[0], args[1:]...)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
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
