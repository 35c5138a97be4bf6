package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
)

// p2spCommands are the subcommands of `mediastack p2sp`.
func p2spCommands() []command {
	return []command{
		{"origin", "the P2SP server: a web server (the web seed) and a file-info server (records, metainfo, tracker) publishing a folder", runP2SPOrigin},
		{"fetch", "the client's whole method for one file id: cache, file-info, HTTP and BitTorrent at once, verification, report", runP2SPFetch},
		{"peer", "seed every file of a cache that has metainfo, with upload and download caps", runP2SPPeer},
	}
}

func p2spUsage(w io.Writer) {
	fmt.Fprintln(w, "usage: mediastack p2sp <origin|fetch|peer> [flags]")
	fmt.Fprintln(w, "\ncommands:")
	for _, c := range p2spCommands() {
		fmt.Fprintf(w, "  %-7s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, "\nRun 'mediastack p2sp <command> --help' for the command's flags.")
}

// runP2SP dispatches `mediastack p2sp SUBCOMMAND`. Errors name the
// subcommand ("mediastack p2sp: fetch: ...").
func runP2SP(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return usageErrorf("want a subcommand: origin, fetch or peer (mediastack p2sp --help)")
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		p2spUsage(stdout)
		return flag.ErrHelp
	}
	for _, c := range p2spCommands() {
		if c.name == args[0] {
			err := c.run(args[1:], stdout, stderr)
			if err == nil || errors.Is(err, flag.ErrHelp) {
				return err
			}
			var ue usageError
			if errors.As(err, &ue) {
				return usageErrorf("%s: %v", c.name, ue.error)
			}
			return fmt.Errorf("%s: %w", c.name, err)
		}
	}
	return usageErrorf("unknown subcommand %q (want origin, fetch or peer)", args[0])
}

// signalContext is done on SIGINT or SIGTERM.
func signalContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
}

// parseAddrPort parses a flag's IP:PORT.
func parseAddrPort(flagName, s string) (netip.AddrPort, error) {
	ap, err := netip.ParseAddrPort(s)
	if err != nil {
		return netip.AddrPort{}, usageErrorf("--%s %q: want IP:PORT (e.g. 198.51.100.10:80 or [2001:db8::10]:80)", flagName, s)
	}
	return ap, nil
}

// parseRate parses a rate in bytes per second with an optional k, M or G
// (powers of 1000) suffix: "0", "500k", "2M".
func parseRate(flagName, s string) (int64, error) {
	mult := int64(1)
	switch {
	case strings.HasSuffix(s, "k"), strings.HasSuffix(s, "K"):
		mult, s = 1e3, s[:len(s)-1]
	case strings.HasSuffix(s, "M"):
		mult, s = 1e6, s[:len(s)-1]
	case strings.HasSuffix(s, "G"):
		mult, s = 1e9, s[:len(s)-1]
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return 0, usageErrorf("--%s %q: want bytes per second, e.g. 500k or 2M (0: no cap)", flagName, s)
	}
	return n * mult, nil
}
