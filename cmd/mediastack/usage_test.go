package main

import (
	"flag"
	"fmt"
	"io"
	"regexp"
	"strings"
	"testing"
)

// help is a command's --help output, parsed: the usage line, and each
// group's flags with their descriptions.
type help struct {
	usage  string
	groups map[string][]string // title -> flag names, in order
	desc   map[string]string   // flag name -> description
}

var helpFlagLine = regexp.MustCompile(`^  --([a-z0-9-]+)`)

func parseHelp(out string) (help, []string) {
	var problems []string
	h := help{groups: map[string][]string{}, desc: map[string]string{}}
	usage, body, _ := strings.Cut(out, "\n\n")
	h.usage = usage
	var group, last string
	for _, line := range strings.Split(body, "\n") {
		switch {
		case line == "":
		case strings.HasSuffix(line, ":") && !strings.HasPrefix(line, " "):
			group = strings.TrimSuffix(line, ":")
		case helpFlagLine.MatchString(line):
			last = helpFlagLine.FindStringSubmatch(line)[1]
			if group == "" {
				problems = append(problems, fmt.Sprintf("flag --%s before any group", last))
			}
			h.groups[group] = append(h.groups[group], last)
		case strings.HasPrefix(line, "        ") && last != "":
			h.desc[last] += strings.TrimSpace(line)
		default:
			problems = append(problems, fmt.Sprintf("unexpected help line %q", line))
		}
	}
	return h, problems
}

// helpProblems checks a command's help against the FlagSet it came from:
// every registered flag shows, in its group (none in no group), with its
// default or "required", and in the usage line; every flag a group names
// is registered.
func helpProblems(name string, ch commandHelp, fs *flag.FlagSet, out string) []string {
	h, problems := parseHelp(out)
	errorf := func(format string, a ...any) { problems = append(problems, fmt.Sprintf(format, a...)) }
	if !strings.HasPrefix(h.usage, "usage: mediastack "+name) {
		errorf("%s: usage line %q", name, h.usage)
	}
	if ungrouped := h.groups[ungroupedTitle]; len(ungrouped) > 0 {
		errorf("%s: flags in no group: %q (add them to the command's commandHelp)", name, ungrouped)
	}
	groupOf := map[string]string{}
	for _, g := range ch.groups {
		for _, f := range g.flags {
			groupOf[f] = g.title
			if fs.Lookup(f) == nil {
				errorf("%s: group %q names --%s, which the command does not register", name, g.title, f)
			}
		}
	}
	usageFlags := map[string]bool{}
	for _, m := range regexp.MustCompile(`--([a-z0-9-]+)`).FindAllStringSubmatch(h.usage, -1) {
		usageFlags[m[1]] = true
	}
	fs.VisitAll(func(f *flag.Flag) {
		title := groupOf[f.Name]
		shown := false
		for _, g := range h.groups[title] {
			shown = shown || g == f.Name
		}
		if title == "" || !shown {
			errorf("%s: --%s is not listed under a group of its own command's help", name, f.Name)
		}
		if d := h.desc[f.Name]; !strings.Contains(d, "(default") && !strings.Contains(d, "required") {
			errorf("%s: --%s's help %q shows no default", name, f.Name, d)
		}
		if !usageFlags[f.Name] {
			errorf("%s: --%s is missing from the usage line %q", name, f.Name, h.usage)
		}
	})
	return problems
}

// flagSetOf runs a command with --help and returns the FlagSet it made and
// what it printed.
func flagSetOf(t *testing.T, name string, run func(args []string, stdout, stderr io.Writer) error) (*flag.FlagSet, string) {
	t.Helper()
	var got *flag.FlagSet
	newFlagSetHook = func(fs *flag.FlagSet) { got = fs }
	defer func() { newFlagSetHook = nil }()
	var out strings.Builder
	if err := run([]string{"--help"}, &out, io.Discard); err != flag.ErrHelp {
		t.Fatalf("%s --help: %v, want flag.ErrHelp", name, err)
	}
	if got == nil {
		t.Fatalf("%s made no FlagSet", name)
	}
	return got, out.String()
}

func TestHelpListsEveryFlagInAGroup(t *testing.T) {
	for _, c := range []struct {
		name string
		help commandHelp
		run  func(args []string, stdout, stderr io.Writer) error
	}{
		{"serve", serveHelp, runServe},
		{"demo", demoHelp, runDemo},
		{"bench", benchHelp, runBench},
		{"version", commandHelp{}, runVersion},
	} {
		fs, out := flagSetOf(t, c.name, c.run)
		for _, p := range helpProblems(c.name, c.help, fs, out) {
			t.Error(p)
		}
	}
}

// TestHelpCatchesUngroupedFlag: the check above fails a flag that no group
// names; the help still shows it.
func TestHelpCatchesUngroupedFlag(t *testing.T) {
	ch := commandHelp{groups: []flagGroup{{"things", []string{"a"}}}}
	fs := newFlagSet("x", ch, io.Discard)
	fs.String("a", "", "a `THING`")
	fs.Bool("stray", false, "in no group")
	var out strings.Builder
	ch.printUsage(&out, "x", fs)
	if !strings.Contains(out.String(), "--stray") {
		t.Fatalf("help hides the ungrouped flag:\n%s", out.String())
	}
	problems := helpProblems("x", ch, fs, out.String())
	if want := "x: flags in no group: [\"stray\"]"; len(problems) == 0 || !strings.HasPrefix(problems[0], want) {
		t.Errorf("helpProblems = %q, want a first problem starting %q:\n%s", problems, want, out.String())
	}
}

func TestServeUsageLine(t *testing.T) {
	_, out := flagSetOf(t, "serve", runServe)
	usage, _, _ := strings.Cut(out, "\n\n")
	usage = strings.Join(strings.Fields(usage), " ")
	for _, want := range []string{
		"usage: mediastack serve --link tap:NAME|raw:IFACE --addr CIDR ... [--gateway IP ...]",
		"[--rtp-ports LO-HI] [--reflect] [--relay A[@IP:PORT]:B[@IP:PORT] ...]",
		"[--control ADDR] [--metrics ADDR]",
		"[--tcp-offload auto|off|soft|vnet] [--http-root DIR] [--http-port PORT]",
		"[--echo] [--pcap FILE]",
	} {
		if !strings.Contains(usage, want) {
			t.Errorf("usage line lacks %q:\n%s", want, out)
		}
	}
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, "usage:") || strings.HasPrefix(line, "                        [") {
			if len(line) > usageWidth {
				t.Errorf("usage line longer than %d: %q", usageWidth, line)
			}
		}
	}
}
