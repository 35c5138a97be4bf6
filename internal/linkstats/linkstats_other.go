//go:build !linux

package linkstats

import "errors"

// Reader has nothing to read outside Linux.
type Reader struct{}

// Open says interface counters need Linux.
func Open(name string) (*Reader, error) {
	return nil, errors.New("linkstats: interface counters need Linux")
}

// Read says interface counters need Linux.
func (*Reader) Read() (Counters, error) { return Counters{}, ErrNoCounters }

// Close does nothing.
func (*Reader) Close() {}

// InterfaceIndex says interfaces need Linux.
func InterfaceIndex(string) (int, error) {
	return 0, errors.New("linkstats: interface counters need Linux")
}
