// Command mediastack runs the mediastack user-space TCP/IP stack.
//
//	mediastack demo      two simulated stacks: a TCP transfer and RTP streams over the fast paths (no root needed)
//	mediastack serve     the stack on a TAP device or a raw AF_PACKET socket; with --rtp-ports, a media sidecar
//	mediastack bench     the fast paths against netstack (and the kernel, with --link)
//	mediastack p2sp      P2SP media file delivery: origin, fetch, peer (on the host's stack or, with --link, on mediastack's)
//	mediastack version   print the version
//
// Each subcommand takes --help.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
)

type command struct {
	name, summary string
	run           func(args []string, stdout, stderr io.Writer) error
}

func commands() []command {
	return []command{
		{"demo", "run two stacks on a simulated network: a TCP transfer and RTP streams over the fast paths ('demo p2sp': P2SP delivery)", runDemo},
		{"serve", "run the stack on a TAP device or an existing interface until SIGINT/SIGTERM", runServe},
		{"bench", "measure the fast paths against netstack (and the kernel: --link)", runBench},
		{"p2sp", "P2SP media file delivery: origin (web + file-info server), fetch (the client), peer (seed a cache)", runP2SP},
		{"version", "print the version", runVersion},
	}
}

// hiddenCommands are run by mediastack itself (in a network namespace it
// made) and not listed in the usage.
func hiddenCommands() []command {
	return []command{
		{"bench-helper", "bench's load generator and kernel reflector", runBenchHelper},
	}
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: mediastack <command> [flags]")
	fmt.Fprintln(w, "\ncommands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-8s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, "\nRun 'mediastack <command> --help' for the command's flags.")
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run executes the command line and returns the process exit code: 0 on
// success, 2 for a usage error, 1 for any other failure.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return 2
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		usage(stdout)
		return 0
	}
	for _, c := range append(commands(), hiddenCommands()...) {
		if c.name != args[0] {
			continue
		}
		err := c.run(args[1:], stdout, stderr)
		switch {
		case err == nil:
			return 0
		case errors.Is(err, flag.ErrHelp):
			return 0
		case errors.As(err, new(usageError)):
			fmt.Fprintf(stderr, "mediastack %s: %v\n", c.name, err)
			return 2
		default:
			fmt.Fprintf(stderr, "mediastack %s: %v\n", c.name, err)
			return 1
		}
	}
	fmt.Fprintf(stderr, "mediastack: unknown command %q\n", args[0])
	usage(stderr)
	return 2
}

// usageError is a bad command line: exit code 2.
type usageError struct{ error }

func usageErrorf(format string, a ...any) error { return usageError{fmt.Errorf(format, a...)} }

// newFlagSet returns a FlagSet whose errors come back as usage errors and
// whose --help is generated from its flags, grouped as help says.
func newFlagSet(name string, help commandHelp, stdout io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stdout)
	fs.Usage = func() { help.printUsage(fs.Output(), name, fs) }
	if newFlagSetHook != nil {
		newFlagSetHook(fs)
	}
	return fs
}

// newFlagSetHook, when set (by tests), sees every FlagSet newFlagSet makes.
var newFlagSetHook func(*flag.FlagSet)

// parseFlags parses args; a bad flag is a usage error (the flag package has
// already printed it with the usage text).
func parseFlags(fs *flag.FlagSet, args []string) error {
	var buf discardCounter
	out := fs.Output()
	fs.SetOutput(&buf)
	err := fs.Parse(args)
	fs.SetOutput(out)
	switch {
	case err == nil:
		if fs.NArg() > 0 {
			return usageErrorf("unexpected argument %q", fs.Arg(0))
		}
		return nil
	case errors.Is(err, flag.ErrHelp):
		fs.Usage()
		return err
	default:
		return usageError{err}
	}
}

type discardCounter struct{}

func (*discardCounter) Write(p []byte) (int, error) { return len(p), nil }

// repeated is a flag that may be given several times.
type repeated []string

func (r *repeated) String() string     { return fmt.Sprint(*r) }
func (r *repeated) Set(v string) error { *r = append(*r, v); return nil }
