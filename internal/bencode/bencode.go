// Package bencode encodes and decodes bencode (BEP 3), the body format of
// rtpengine's ng control protocol (package ng): byte strings, integers,
// lists and dictionaries.
//
// Decoding takes dictionary keys in any order (rtpengine and Kamailio both
// send them unsorted) but refuses anything else that is not strict
// bencode: leading zeros, "-0", duplicate keys, non-string keys, trailing
// bytes. It decodes hostile input safely: a string's length is checked
// against the bytes left before anything is allocated, and Limits bound the
// nesting depth, the input size and the number of values, so what a
// decoded datagram costs is bounded by its size.
//
// Decoded values are string (a byte string, copied), int64, List and Dict.
// Encoding takes those and also []byte, the other integer types, []string
// and map[string]any, and writes dictionary keys sorted, as bencode
// requires.
//
//	v, err := bencode.Unmarshal(body)        // the whole body is one value
//	d, ok := v.(bencode.Dict)
//	out, err := bencode.Marshal(bencode.Dict{"result": "pong"})
//
// A stream (ng over TCP has no length prefix) is cut with Limits.Decode,
// which says how many bytes the first value took, or ErrTruncated when it
// is not complete yet.
package bencode

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
)

// Dict is a bencode dictionary. Values are string, int64, List or Dict
// when decoded.
type Dict map[string]any

// List is a bencode list.
type List []any

// Errors of decoding, wrapped with the offset and the reason; test with
// errors.Is.
var (
	// ErrTruncated: the input ends inside a value. On a stream, more
	// bytes may complete it.
	ErrTruncated = errors.New("bencode: truncated")
	// ErrMalformed: the input is not bencode.
	ErrMalformed = errors.New("bencode: malformed")
	// ErrLimit: the input exceeds one of the Limits.
	ErrLimit = errors.New("bencode: limit exceeded")
)

// Limits bound what decoding may cost. A zero field takes the default.
type Limits struct {
	// MaxSize is the largest input accepted, in bytes (default 1 MiB).
	MaxSize int
	// MaxDepth is the deepest nesting of lists and dictionaries (default
	// 32; the top-level value is depth 1).
	MaxDepth int
	// MaxValues is the most values (strings, integers, lists, dictionaries,
	// keys not counted) in one input (default 65536).
	MaxValues int
}

// Defaults of Limits.
const (
	DefaultMaxSize   = 1 << 20
	DefaultMaxDepth  = 32
	DefaultMaxValues = 1 << 16
)

func (l Limits) withDefaults() Limits {
	if l.MaxSize <= 0 {
		l.MaxSize = DefaultMaxSize
	}
	if l.MaxDepth <= 0 {
		l.MaxDepth = DefaultMaxDepth
	}
	if l.MaxValues <= 0 {
		l.MaxValues = DefaultMaxValues
	}
	return l
}

// Unmarshal decodes data, which must hold exactly one value, with the
// default Limits.
func Unmarshal(data []byte) (any, error) { return Limits{}.Unmarshal(data) }

// Unmarshal decodes data, which must hold exactly one value.
func (l Limits) Unmarshal(data []byte) (any, error) {
	v, n, err := l.Decode(data)
	if err != nil {
		return nil, err
	}
	if n != len(data) {
		return nil, fmt.Errorf("%w at byte %d: %d bytes after the value", ErrMalformed, n, len(data)-n)
	}
	return v, nil
}

// Decode decodes the value at the start of data and returns it and the
// number of bytes it took; what follows is not looked at. An input that
// ends inside the value gives ErrTruncated, unless it is already longer
// than MaxSize (ErrLimit).
func (l Limits) Decode(data []byte) (v any, n int, err error) {
	l = l.withDefaults()
	d := decoder{data: data, lim: l}
	if len(d.data) > l.MaxSize {
		d.data = d.data[:l.MaxSize]
	}
	v, err = d.value(1)
	if errors.Is(err, ErrTruncated) && len(data) > l.MaxSize {
		return nil, 0, fmt.Errorf("%w: a value longer than %d bytes", ErrLimit, l.MaxSize)
	}
	if err != nil {
		return nil, 0, err
	}
	return v, d.off, nil
}

type decoder struct {
	data   []byte
	off    int
	values int
	lim    Limits
}

func (d *decoder) errorf(kind error, format string, args ...any) error {
	return fmt.Errorf("%w at byte %d: %s", kind, d.off, fmt.Sprintf(format, args...))
}

func (d *decoder) value(depth int) (any, error) {
	if d.off >= len(d.data) {
		return nil, d.errorf(ErrTruncated, "want a value")
	}
	if d.values++; d.values > d.lim.MaxValues {
		return nil, d.errorf(ErrLimit, "more than %d values", d.lim.MaxValues)
	}
	switch c := d.data[d.off]; {
	case c == 'i':
		d.off++
		return d.integer('e')
	case c >= '0' && c <= '9':
		return d.str()
	case c == 'l':
		if depth > d.lim.MaxDepth {
			return nil, d.errorf(ErrLimit, "nested deeper than %d", d.lim.MaxDepth)
		}
		d.off++
		return d.list(depth)
	case c == 'd':
		if depth > d.lim.MaxDepth {
			return nil, d.errorf(ErrLimit, "nested deeper than %d", d.lim.MaxDepth)
		}
		d.off++
		return d.dict(depth)
	default:
		return nil, d.errorf(ErrMalformed, "%q does not start a value", c)
	}
}

// integer reads a decimal integer up to end (consumed): 'e' for i…e, ':'
// for a string's length.
func (d *decoder) integer(end byte) (int64, error) {
	start := d.off
	i := d.off
	if i < len(d.data) && d.data[i] == '-' && end == 'e' {
		i++
	}
	digits := i
	for i < len(d.data) && d.data[i] >= '0' && d.data[i] <= '9' {
		i++
		if i-digits > 19 {
			return 0, d.errorf(ErrMalformed, "integer too long")
		}
	}
	if i >= len(d.data) {
		return 0, d.errorf(ErrTruncated, "unterminated integer")
	}
	if d.data[i] != end {
		d.off = i
		return 0, d.errorf(ErrMalformed, "%q in an integer", d.data[i])
	}
	text := string(d.data[start:i])
	switch {
	case i == digits:
		return 0, d.errorf(ErrMalformed, "integer without digits")
	case d.data[digits] == '0' && i-digits > 1:
		return 0, d.errorf(ErrMalformed, "integer %s with a leading zero", text)
	case text == "-0":
		return 0, d.errorf(ErrMalformed, "integer -0")
	}
	n, err := strconv.ParseInt(text, 10, 64)
	if err != nil {
		return 0, d.errorf(ErrMalformed, "integer %s out of range", text)
	}
	d.off = i + 1
	return n, nil
}

func (d *decoder) str() (string, error) {
	n, err := d.integer(':')
	if err != nil {
		return "", err
	}
	if n > int64(len(d.data)-d.off) {
		return "", d.errorf(ErrTruncated, "a %d-byte string with %d bytes left", n, len(d.data)-d.off)
	}
	s := string(d.data[d.off : d.off+int(n)])
	d.off += int(n)
	return s, nil
}

func (d *decoder) list(depth int) (List, error) {
	l := List{}
	for {
		if d.off >= len(d.data) {
			return nil, d.errorf(ErrTruncated, "unterminated list")
		}
		if d.data[d.off] == 'e' {
			d.off++
			return l, nil
		}
		v, err := d.value(depth + 1)
		if err != nil {
			return nil, err
		}
		l = append(l, v)
	}
}

func (d *decoder) dict(depth int) (Dict, error) {
	m := Dict{}
	for {
		if d.off >= len(d.data) {
			return nil, d.errorf(ErrTruncated, "unterminated dictionary")
		}
		c := d.data[d.off]
		if c == 'e' {
			d.off++
			return m, nil
		}
		if c < '0' || c > '9' {
			return nil, d.errorf(ErrMalformed, "dictionary key is not a string")
		}
		keyAt := d.off
		k, err := d.str()
		if err != nil {
			return nil, err
		}
		if _, dup := m[k]; dup {
			d.off = keyAt
			return nil, d.errorf(ErrMalformed, "duplicate key %q", k)
		}
		v, err := d.value(depth + 1)
		if err != nil {
			return nil, err
		}
		m[k] = v
	}
}

// Marshal encodes v.
func Marshal(v any) ([]byte, error) { return Append(nil, v) }

// Append appends the encoding of v to dst. Values may be string, []byte,
// any integer type, List, []any, []string, Dict or map[string]any.
func Append(dst []byte, v any) ([]byte, error) {
	return appendValue(dst, v, 1)
}

func appendValue(b []byte, v any, depth int) ([]byte, error) {
	if depth > DefaultMaxDepth {
		return b, fmt.Errorf("bencode: nested deeper than %d", DefaultMaxDepth)
	}
	switch v := v.(type) {
	case string:
		return appendString(b, v), nil
	case []byte:
		b = strconv.AppendInt(b, int64(len(v)), 10)
		return append(append(b, ':'), v...), nil
	case int:
		return appendInt(b, int64(v)), nil
	case int64:
		return appendInt(b, v), nil
	case int32:
		return appendInt(b, int64(v)), nil
	case uint16:
		return appendInt(b, int64(v)), nil
	case uint32:
		return appendInt(b, int64(v)), nil
	case uint64:
		if v > math.MaxInt64 {
			return b, fmt.Errorf("bencode: %d does not fit an int64", v)
		}
		return appendInt(b, int64(v)), nil
	case List:
		return appendList(b, v, depth)
	case []any:
		return appendList(b, v, depth)
	case []string:
		b = append(b, 'l')
		for _, s := range v {
			b = appendString(b, s)
		}
		return append(b, 'e'), nil
	case Dict:
		return appendDict(b, v, depth)
	case map[string]any:
		return appendDict(b, v, depth)
	default:
		return b, fmt.Errorf("bencode: cannot encode %T", v)
	}
}

func appendString(b []byte, s string) []byte {
	b = strconv.AppendInt(b, int64(len(s)), 10)
	return append(append(b, ':'), s...)
}

func appendInt(b []byte, n int64) []byte {
	return append(strconv.AppendInt(append(b, 'i'), n, 10), 'e')
}

func appendList(b []byte, l []any, depth int) ([]byte, error) {
	b = append(b, 'l')
	for _, v := range l {
		var err error
		if b, err = appendValue(b, v, depth+1); err != nil {
			return b, err
		}
	}
	return append(b, 'e'), nil
}

func appendDict(b []byte, d map[string]any, depth int) ([]byte, error) {
	keys := make([]string, 0, len(d))
	for k := range d {
		keys = append(keys, k)
	}
	slices.Sort(keys) // bytewise, as bencode wants
	b = append(b, 'd')
	for _, k := range keys {
		b = appendString(b, k)
		var err error
		if b, err = appendValue(b, d[k], depth+1); err != nil {
			return b, err
		}
	}
	return append(b, 'e'), nil
}
