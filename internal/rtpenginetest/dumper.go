package rtpenginetest

import (
	"fmt"
	"strings"
)

// parseDumper reads what Perl's Data::Dumper printed of a decoded ng
// reply (hashes, arrays, quoted strings; bencode integers come out as
// strings too), in its default form ($VAR1 = {...};) or its terse one.
func parseDumper(s string) (any, error) {
	s = strings.TrimSpace(s)
	s = strings.TrimPrefix(s, "$VAR1 =")
	s = strings.TrimSuffix(s, ";")
	p := &dumperParser{s: s}
	v, err := p.value()
	if err != nil {
		return nil, err
	}
	if p.skipSpace(); p.i != len(p.s) {
		return nil, fmt.Errorf("dumper: trailing %q", p.s[p.i:])
	}
	return v, nil
}

type dumperParser struct {
	s string
	i int
}

func (p *dumperParser) skipSpace() {
	for p.i < len(p.s) && strings.IndexByte(" \t\r\n", p.s[p.i]) >= 0 {
		p.i++
	}
}

// next skips space and consumes tok if it comes next.
func (p *dumperParser) next(tok string) bool {
	p.skipSpace()
	if strings.HasPrefix(p.s[p.i:], tok) {
		p.i += len(tok)
		return true
	}
	return false
}

func (p *dumperParser) errorf(format string, args ...any) error {
	return fmt.Errorf("dumper at %q: %s", p.s[p.i:min(len(p.s), p.i+40)], fmt.Sprintf(format, args...))
}

func (p *dumperParser) value() (any, error) {
	switch {
	case p.next("{"):
		m := map[string]any{}
		for !p.next("}") {
			k, err := p.scalar()
			if err != nil {
				return nil, err
			}
			if !p.next("=>") {
				return nil, p.errorf("want =>")
			}
			v, err := p.value()
			if err != nil {
				return nil, err
			}
			m[k] = v
			p.next(",")
		}
		return m, nil
	case p.next("["):
		l := []any{}
		for !p.next("]") {
			v, err := p.value()
			if err != nil {
				return nil, err
			}
			l = append(l, v)
			p.next(",")
		}
		return l, nil
	}
	return p.scalar()
}

// scalar reads a quoted string ('...' with \' and \\) or a bare word (a
// key, a number, undef).
func (p *dumperParser) scalar() (string, error) {
	p.skipSpace()
	if p.i >= len(p.s) {
		return "", p.errorf("want a value")
	}
	if p.s[p.i] == '\'' {
		var b strings.Builder
		for p.i++; p.i < len(p.s); p.i++ {
			switch c := p.s[p.i]; {
			case c == '\\' && p.i+1 < len(p.s):
				p.i++
				b.WriteByte(p.s[p.i])
			case c == '\'':
				p.i++
				return b.String(), nil
			default:
				b.WriteByte(c)
			}
		}
		return "", p.errorf("unterminated string")
	}
	start := p.i
	for p.i < len(p.s) && strings.IndexByte(" \t\r\n,=}]", p.s[p.i]) < 0 {
		p.i++
	}
	if p.i == start {
		return "", p.errorf("want a value")
	}
	return p.s[start:p.i], nil
}
