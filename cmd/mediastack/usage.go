package main

import (
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"
)

// commandHelp is what a command's --help shows beyond the flags
// themselves: the topics its flags are grouped under, and which flags are
// required. The usage line and the flag list are generated from the
// FlagSet, so neither can drift from the flags registered.
type commandHelp struct {
	groups   []flagGroup
	required []string // flag names the command cannot run without
}

// flagGroup is one topic of a command's help and its flags, by name, in the
// order shown.
type flagGroup struct {
	title string
	flags []string
}

// ungroupedTitle heads the flags no group names: they are still shown, and
// the help test fails on them.
const ungroupedTitle = "not in any group (add them to the command's flagGroups)"

// usageWidth is where the generated usage line wraps.
const usageWidth = 100

// printUsage writes the usage line and the flags of fs by group, each with
// its default.
func (h commandHelp) printUsage(w io.Writer, name string, fs *flag.FlagSet) {
	fmt.Fprint(w, h.synopsis(name, fs))
	for _, g := range h.grouped(fs) {
		fmt.Fprintf(w, "\n%s:\n", g.title)
		for _, f := range g.flags {
			fmt.Fprintf(w, "  %s\n", h.flagSynopsis(fs.Lookup(f), false))
			fmt.Fprintf(w, "        %s\n", h.describe(fs.Lookup(f)))
		}
	}
}

// synopsis is the usage line: every flag, required ones bare, the others in
// brackets, repeatable ones with "...", wrapped at usageWidth.
func (h commandHelp) synopsis(name string, fs *flag.FlagSet) string {
	head := "usage: mediastack " + name
	var b strings.Builder
	b.WriteString(head)
	col := len(head)
	for _, g := range h.grouped(fs) {
		for _, f := range g.flags {
			item := h.flagSynopsis(fs.Lookup(f), true)
			if col+1+len(item) > usageWidth && col > len(head) {
				b.WriteString("\n" + strings.Repeat(" ", len(head)))
				col = len(head)
			}
			b.WriteString(" " + item)
			col += 1 + len(item)
		}
	}
	b.WriteString("\n")
	return b.String()
}

// flagSynopsis is "--name VALUE", bracketed when optional and inBrackets.
func (h commandHelp) flagSynopsis(f *flag.Flag, inBrackets bool) string {
	s := "--" + f.Name
	if metavar, _ := flag.UnquoteUsage(f); metavar != "" {
		s += " " + metavar
	}
	if isRepeatable(f) {
		s += " ..."
	}
	if inBrackets && !slices.Contains(h.required, f.Name) {
		s = "[" + s + "]"
	}
	return s
}

// describe is the flag's usage text with its default: the flag's own
// default value, what its usage text says the default is, or that it is
// off, none or required.
func (h commandHelp) describe(f *flag.Flag) string {
	_, usage := flag.UnquoteUsage(f)
	var notes []string
	switch {
	case slices.Contains(h.required, f.Name):
		notes = append(notes, "required")
	case strings.Contains(usage, "(default"):
	case f.DefValue != "" && f.DefValue != "0" && f.DefValue != "false" && f.DefValue != "[]":
		notes = append(notes, "default "+f.DefValue)
	case isBool(f):
		notes = append(notes, "default off")
	default:
		notes = append(notes, "default none")
	}
	if isRepeatable(f) {
		notes = append(notes, "repeatable")
	}
	if len(notes) == 0 {
		return usage
	}
	return usage + " (" + strings.Join(notes, "; ") + ")"
}

// grouped returns the groups with only the flags fs has, and a last group
// of the flags that no group names.
func (h commandHelp) grouped(fs *flag.FlagSet) []flagGroup {
	var out []flagGroup
	named := map[string]bool{}
	for _, g := range h.groups {
		var flags []string
		for _, f := range g.flags {
			named[f] = true
			if fs.Lookup(f) != nil {
				flags = append(flags, f)
			}
		}
		if len(flags) > 0 {
			out = append(out, flagGroup{g.title, flags})
		}
	}
	var rest []string
	fs.VisitAll(func(f *flag.Flag) {
		if !named[f.Name] {
			rest = append(rest, f.Name)
		}
	})
	if len(rest) > 0 {
		out = append(out, flagGroup{ungroupedTitle, rest})
	}
	return out
}

// isRepeatable reports whether the flag may be given several times.
func isRepeatable(f *flag.Flag) bool {
	_, ok := f.Value.(*repeated)
	return ok
}

func isBool(f *flag.Flag) bool {
	b, ok := f.Value.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
}
