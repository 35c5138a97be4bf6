package bencode

import (
	"bytes"
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestDecode(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want any
	}{
		{"0:", ""},
		{"4:ping", "ping"},
		{"i0e", int64(0)},
		{"i-42e", int64(-42)},
		{"i9223372036854775807e", int64(math.MaxInt64)},
		{"i-9223372036854775808e", int64(math.MinInt64)},
		{"le", List{}},
		{"de", Dict{}},
		{"l4:spami42ee", List{"spam", int64(42)}},
		{"d7:command4:pinge", Dict{"command": "ping"}},
		// Keys in any order, as Kamailio sends them.
		{"d8:supportsl10:load limite7:command5:offer3:sdp3:v=0e",
			Dict{"supports": List{"load limit"}, "command": "offer", "sdp": "v=0"}},
		{"d1:ad1:bld1:cleeeee", Dict{"a": Dict{"b": List{Dict{"c": List{}}}}}},
		{"5:a\x00b\r\n", "a\x00b\r\n"},
	} {
		got, err := Unmarshal([]byte(tc.in))
		if err != nil {
			t.Errorf("Unmarshal(%q): %v", tc.in, err)
			continue
		}
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("Unmarshal(%q) (-want +got):\n%s", tc.in, diff)
		}
	}
}

func TestDecodeErrors(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want error
	}{
		{"", ErrTruncated},
		{"d", ErrTruncated},
		{"d7:command", ErrTruncated},
		{"d7:command4:pin", ErrTruncated},
		{"d7:command4:ping", ErrTruncated},
		{"l", ErrTruncated},
		{"i12", ErrTruncated},
		{"12", ErrTruncated},
		{"99999999999:x", ErrTruncated}, // nothing allocated for the claimed length
		{"x", ErrMalformed},
		{"i-0e", ErrMalformed},
		{"i03e", ErrMalformed},
		{"ie", ErrMalformed},
		{"i-e", ErrMalformed},
		{"i1.5e", ErrMalformed},
		{"i99999999999999999999e", ErrMalformed},
		{"i9223372036854775808e", ErrMalformed},
		{"03:abc", ErrMalformed},
		{"-1:a", ErrMalformed},
		{"di1e1:ae", ErrMalformed}, // integer key
		{"d1:a1:b1:a1:ce", ErrMalformed},
		{"4:pingX", ErrMalformed}, // trailing bytes
		{"d7:command4:pingee", ErrMalformed},
		{strings.Repeat("l", 33) + strings.Repeat("e", 33), ErrLimit},
		{"l" + strings.Repeat("i1e", DefaultMaxValues) + "e", ErrLimit},
	} {
		_, err := Unmarshal([]byte(tc.in))
		if !errors.Is(err, tc.want) {
			in := tc.in
			if len(in) > 40 {
				in = in[:40] + "..."
			}
			t.Errorf("Unmarshal(%q) = %v, want %v", in, err, tc.want)
		}
	}
}

func TestLimits(t *testing.T) {
	deep := strings.Repeat("l", 4) + strings.Repeat("e", 4)
	if _, err := (Limits{MaxDepth: 4}).Unmarshal([]byte(deep)); err != nil {
		t.Errorf("depth 4 with MaxDepth 4: %v", err)
	}
	if _, err := (Limits{MaxDepth: 3}).Unmarshal([]byte(deep)); !errors.Is(err, ErrLimit) {
		t.Errorf("depth 4 with MaxDepth 3: %v, want ErrLimit", err)
	}
	if _, err := (Limits{MaxValues: 3}).Unmarshal([]byte("li1ei2ee")); err != nil {
		t.Errorf("3 values with MaxValues 3: %v", err)
	}
	if _, err := (Limits{MaxValues: 3}).Unmarshal([]byte("li1ei2ei3ee")); !errors.Is(err, ErrLimit) {
		t.Errorf("4 values with MaxValues 3: %v, want ErrLimit", err)
	}
	// A value within MaxSize decodes even if more bytes follow it.
	v, n, err := (Limits{MaxSize: 6}).Decode([]byte("4:pingmore bytes"))
	if err != nil || v != "ping" || n != 6 {
		t.Errorf("Decode with trailing bytes = %v, %d, %v", v, n, err)
	}
	// One that does not fit is a limit, not truncation a stream could wait out.
	if _, _, err := (Limits{MaxSize: 5}).Decode([]byte("10:0123456789")); !errors.Is(err, ErrLimit) {
		t.Errorf("Decode of a value longer than MaxSize: %v, want ErrLimit", err)
	}
	if _, _, err := (Limits{MaxSize: 100}).Decode([]byte("10:01234")); !errors.Is(err, ErrTruncated) {
		t.Errorf("Decode of an incomplete value: %v, want ErrTruncated", err)
	}
}

// TestHostileInputIsCheap: a maximal datagram of nested empty
// dictionaries and lists costs memory in proportion to its size.
func TestHostileInputIsCheap(t *testing.T) {
	in := []byte("l" + strings.Repeat("de", 32000) + "e")
	allocs := testing.AllocsPerRun(5, func() {
		if _, err := Unmarshal(in); err != nil {
			t.Fatal(err)
		}
	})
	if allocs > 40000 {
		t.Errorf("%v allocations for %d bytes", allocs, len(in))
	}
}

func TestEncode(t *testing.T) {
	for _, tc := range []struct {
		in   any
		want string
	}{
		{"pong", "4:pong"},
		{[]byte{0, 1}, "2:\x00\x01"},
		{42, "i42e"},
		{int64(-7), "i-7e"},
		{uint16(30000), "i30000e"},
		{uint64(1 << 40), "i1099511627776e"},
		{List{"a", 1}, "l1:ai1ee"},
		{[]string{"x", "yy"}, "l1:x2:yye"},
		// Keys sorted bytewise, whatever the map order.
		{Dict{"result": "ok", "sdp": "v=0", "SSRC": Dict{}, "created": 1}, "d4:SSRCde7:createdi1e6:result2:ok3:sdp3:v=0e"},
		{map[string]any{"b": []any{}, "a": true}, ""}, // no booleans in bencode
	} {
		got, err := Marshal(tc.in)
		if tc.want == "" {
			if err == nil {
				t.Errorf("Marshal(%#v) = %q, want an error", tc.in, got)
			}
			continue
		}
		if err != nil || string(got) != tc.want {
			t.Errorf("Marshal(%#v) = %q, %v, want %q", tc.in, got, err, tc.want)
		}
	}
	if _, err := Marshal(uint64(math.MaxUint64)); err == nil {
		t.Error("Marshal(MaxUint64) did not fail")
	}
}

// TestRoundTrip: what Unmarshal takes in sorted order, Marshal writes back
// byte for byte.
func TestRoundTrip(t *testing.T) {
	for _, in := range []string{
		"d6:result2:oke",
		"d5:callsl14:a84b4c76e66710e6:result2:oke",
		"d7:createdi1724660000e4:tagsd10:1928301774d6:mediasld5:indexi1e7:streamsld10:local porti30000eeeeeeee",
	} {
		v, err := Unmarshal([]byte(in))
		if err != nil {
			t.Fatalf("Unmarshal(%q): %v", in, err)
		}
		out, err := Marshal(v)
		if err != nil || !bytes.Equal(out, []byte(in)) {
			t.Errorf("Marshal(Unmarshal(%q)) = %q, %v", in, out, err)
		}
	}
}
