package bench

import (
	"slices"
	"testing"
)

func TestRegister(t *testing.T) {
	saved := registered
	t.Cleanup(func() { registered = saved })

	Register(Suite{Name: "elsewhere", Title: "a suite from another module"})
	names := func() (n []string) {
		for _, s := range Suites() {
			n = append(n, s.Name)
		}
		return n
	}()
	if got := names[len(names)-1]; got != "elsewhere" {
		t.Errorf("last suite is %q, want the registered one after the built-in ones (all: %v)", got, names)
	}
	if !slices.Contains(names, "in-process") {
		t.Errorf("built-in suites missing: %v", names)
	}
	for _, name := range []string{"elsewhere", "in-process"} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("Register of a second %q did not panic", name)
				}
			}()
			Register(Suite{Name: name})
		}()
	}
}
