package netns

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/mediastack/mediastack/internal/leakcheck"
)

func TestWaitForSaysWhatItWaitedFor(t *testing.T) {
	calls := 0
	err := WaitFor(time.Minute, "the third call", func() error {
		calls++
		if calls < 3 {
			return ErrNotYet
		}
		return nil
	})
	if err != nil || calls != 3 {
		t.Errorf("WaitFor = %v after %d calls, want nil after 3", err, calls)
	}
	err = WaitFor(20*time.Millisecond, "a state never reached", func() error { return ErrNotYet })
	if !errors.Is(err, ErrNotYet) || !strings.Contains(err.Error(), "a state never reached") {
		t.Errorf("WaitFor = %v, want an error naming what it waited for and wrapping the last", err)
	}
}

func TestMain(m *testing.M) { leakcheck.Main(m) }
