package bencode

import (
	"bytes"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// FuzzDecode: whatever the input, Unmarshal returns a value or an error
// without panicking; a value it returns encodes, and decodes back to the
// same value; and an input in canonical form (sorted keys) encodes back
// byte for byte. Seeds: testdata/fuzz/FuzzDecode (ng requests as Kamailio
// and rtpengine-ng-client send them, replies as rtpengine sends them, and
// broken ones).
func FuzzDecode(f *testing.F) {
	f.Add([]byte("d7:command4:pinge"))
	f.Add([]byte("d6:result2:ok7:warning38:Call-ID not found or tags didn't matche"))
	f.Fuzz(func(t *testing.T, in []byte) {
		v, err := (Limits{MaxDepth: 8, MaxValues: 1024}).Unmarshal(in)
		if err != nil {
			return
		}
		out, err := Marshal(v)
		if err != nil {
			t.Fatalf("Marshal(Unmarshal(%q)): %v", in, err)
		}
		again, err := Unmarshal(out)
		if err != nil {
			t.Fatalf("Unmarshal(%q), the encoding of Unmarshal(%q): %v", out, in, err)
		}
		if diff := cmp.Diff(v, again); diff != "" {
			t.Fatalf("decode, encode, decode of %q changed the value (-first +second):\n%s", in, diff)
		}
		if sorted(in) && !bytes.Equal(in, out) {
			t.Fatalf("canonical %q encoded back as %q", in, out)
		}
	})
}

// sorted reports whether every dictionary in the (valid) input has its
// keys in order, by re-encoding it the slow way: Marshal sorts, so a
// canonical input is one Marshal reproduces. Checking it independently
// means walking the input: keys of one dictionary are compared as they
// come.
func sorted(in []byte) bool {
	w := walker{in: in}
	return w.value()
}

type walker struct {
	in  []byte
	off int
}

func (w *walker) str() string {
	n := 0
	for w.in[w.off] != ':' {
		n = n*10 + int(w.in[w.off]-'0')
		w.off++
	}
	w.off++
	s := string(w.in[w.off : w.off+n])
	w.off += n
	return s
}

func (w *walker) value() bool {
	switch w.in[w.off] {
	case 'i':
		for w.in[w.off] != 'e' {
			w.off++
		}
		w.off++
	case 'l':
		w.off++
		for w.in[w.off] != 'e' {
			if !w.value() {
				return false
			}
		}
		w.off++
	case 'd':
		w.off++
		prev, first := "", true
		for w.in[w.off] != 'e' {
			k := w.str()
			if !first && k <= prev {
				return false
			}
			prev, first = k, false
			if !w.value() {
				return false
			}
		}
		w.off++
	default:
		w.str()
	}
	return true
}
