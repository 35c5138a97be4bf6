//go:build linux

package raw_test

import (
	"errors"
	"testing"
	"time"

	"github.com/mediastack/mediastack/internal/netnstest"
	"github.com/mediastack/mediastack/link/raw"
)

// TestDeletedWhileDownReportsOnce: a reader waiting for its interface to
// come back up learns that it was deleted instead, and reports it once.
func TestDeletedWhileDownReportsOnce(t *testing.T) {
	netnstest.Require(t)
	_, veth := newVeth(t)
	errs := make(chan error, 4)
	ep := newEndpoint(t, raw.Options{Interface: veth.Outside, OnReadError: func(err error) { errs <- err }})
	attach(t, ep)
	netnstest.MustRun(t, "ip", "link", "set", "dev", veth.Outside, "down")
	netnstest.WaitFor(t, hangGuard, "the reader waiting for the interface", func() error {
		if ep.DeviceStats().InterfaceDown.Load() != 1 {
			return errors.New("DeviceStats.InterfaceDown != 1")
		}
		return nil
	})
	select {
	case err := <-errs:
		t.Fatalf("OnReadError(%v) for an interface taken down, want none", err)
	default:
	}
	netnstest.DeleteLink(t, veth.Outside)
	select {
	case <-errs:
	case <-time.After(hangGuard):
		t.Fatalf("no OnReadError %v after deleting %s while down", hangGuard, veth.Outside)
	}
	netnstest.WaitReturn(t, "reader after the interface was deleted", ep.Wait)
	if len(errs) != 0 {
		t.Errorf("OnReadError called %d more times, want once", len(errs))
	}
}
