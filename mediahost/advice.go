package mediahost

import (
	"errors"
	"fmt"

	"github.com/mediastack/mediastack/link/tap"
)

// tapAdvice adds to a TAP link's error what to ask for instead, in link
// specs (ParseLink's tap:NAME, raw:IFACE): a name taken by an interface
// that is not a TAP is no reason to delete the interface.
func tapAdvice(err error) error {
	var nt *tap.NotTAPError
	if !errors.As(err, &nt) {
		return err
	}
	switch {
	case nt.Ethernet:
		return fmt.Errorf("%w; use raw:%s to run on it (AF_PACKET), or another name to create a TAP", err, nt.Name)
	case nt.Loopback:
		return fmt.Errorf("%w; use raw:IFACE to run on an existing Ethernet interface (e.g. a veth end), or another name to create a TAP", err)
	default:
		return fmt.Errorf("%w; use another name to create a TAP", err)
	}
}
