package main

import (
	"flag"
	"io"
	"log/slog"
	"strings"
)

// logConfig is --log-level and --log-format.
type logConfig struct {
	level, format string
}

func (c *logConfig) registerFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.level, "log-level", "info", "log lines of this `LEVEL` and above: debug|info|warn|error (debug adds per-packet drop reasons)")
	fs.StringVar(&c.format, "log-format", "text", "log `FORMAT`: text (logfmt key=value) or json (one object a line, for log shippers)")
}

// logger returns the logger the flags ask for, writing to w.
func (c *logConfig) logger(w io.Writer) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(c.level)); err != nil || strings.ContainsAny(c.level, "+-") {
		return nil, usageErrorf("--log-level %q: want debug, info, warn or error", c.level)
	}
	opts := &slog.HandlerOptions{Level: level}
	switch c.format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, usageErrorf("--log-format %q: want text or json", c.format)
}
