package main

import (
	"flag"
	"os"
	"strings"
)

// controlToken is the bearer token of --control and --metrics, given on the
// command line, in a file (out of ps's sight), or in the environment.
type controlToken struct {
	flag, file string
	value      string // set by load
}

// controlTokenEnv names the environment variable that may hold the token.
const controlTokenEnv = "MEDIASTACK_CONTROL_TOKEN"

func (c *controlToken) registerFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.flag, "control-token", "", "require `TOKEN` as \"Authorization: Bearer TOKEN\" on --control and --metrics (not /healthz); "+
		"needed for an address other hosts can reach; also read from $"+controlTokenEnv)
	fs.StringVar(&c.file, "control-token-file", "", "read --control-token from `FILE` (its first line), which keeps it out of the process list")
}

// load sets value from the flag, the file or the environment, at most one.
func (c *controlToken) load() error {
	env := os.Getenv(controlTokenEnv)
	set := 0
	for _, s := range []string{c.flag, c.file, env} {
		if s != "" {
			set++
		}
	}
	if set > 1 {
		return usageErrorf("give the control token once: --control-token, --control-token-file or $%s", controlTokenEnv)
	}
	c.value = c.flag + env
	if c.file != "" {
		b, err := os.ReadFile(c.file)
		if err != nil {
			return usageErrorf("--control-token-file: %v", err)
		}
		c.value, _, _ = strings.Cut(string(b), "\n")
		c.value = strings.TrimSpace(c.value)
		if c.value == "" {
			return usageErrorf("--control-token-file %s: the first line is empty", c.file)
		}
	}
	if strings.ContainsAny(c.value, " \t\r\n") {
		return usageErrorf("the control token must not contain white space")
	}
	if c.value != "" && len(c.value) < 16 {
		return usageErrorf("the control token is %d characters; use at least 16 (e.g. openssl rand -hex 16)", len(c.value))
	}
	return nil
}
