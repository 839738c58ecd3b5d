// Package jsonscan finds where JSON values end without decoding them, for
// the codecs that handle large CRDs: their schemas are most of their
// bytes, and encoding/json reads every byte of them through its state
// machine once to check the JSON, once to decode it, and again for every
// nested schema. What the scanner frames is then decoded by a checking
// decoder (encoding/json, sigs.k8s.io/json or a parser that checks what it
// reads), so the scanner need not check the JSON itself.
package jsonscan

import (
	"bytes"
	"fmt"
)

// IsSpace reports whether c is JSON whitespace.
func IsSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

// SkipSpace returns the index of the first non-whitespace byte at or
// after d[i].
func SkipSpace(d []byte, i int) int {
	for i < len(d) && IsSpace(d[i]) {
		i++
	}
	return i
}

// StringEnd returns the index just past the string that starts at d[i]
// (a '"'), and whether it contains escapes.
func StringEnd(d []byte, i int) (end int, escaped, ok bool) {
	i++
	for {
		q := bytes.IndexByte(d[i:], '"')
		if q < 0 {
			return 0, false, false
		}
		j := i + q
		// The quote is escaped when an odd number of backslashes
		// precede it.
		n := 0
		for k := j - 1; k >= i && d[k] == '\\'; k-- {
			n++
		}
		if !escaped && bytes.IndexByte(d[i:j], '\\') >= 0 {
			escaped = true
		}
		if n%2 == 0 {
			return j + 1, escaped, true
		}
		i = j + 1
	}
}

// ValueEnd returns the index just past the value that starts at d[i].
func ValueEnd(d []byte, i int) (int, bool) {
	if i >= len(d) {
		return 0, false
	}
	switch d[i] {
	case '"':
		end, _, ok := StringEnd(d, i)
		return end, ok
	case '{', '[':
		// Brackets are matched with a stack of the open ones.
		var stack [64]byte
		open := stack[:0]
		for i < len(d) {
			switch c := d[i]; c {
			case '"':
				end, _, ok := StringEnd(d, i)
				if !ok {
					return 0, false
				}
				i = end
				continue
			case '{', '[':
				open = append(open, c)
			case '}', ']':
				if len(open) == 0 || open[len(open)-1] != c-2 { // '{'+2 == '}', '['+2 == ']'
					return 0, false
				}
				open = open[:len(open)-1]
				if len(open) == 0 {
					return i + 1, true
				}
			}
			i++
		}
		return 0, false
	default:
		j := i
		for j < len(d) && !IsSpace(d[j]) && d[j] != ',' && d[j] != '}' && d[j] != ']' {
			j++
		}
		return j, j > i
	}
}

// EachField calls f with the raw (unescaped) key of every member of the
// object at d[i] and where its value starts; f returns where the value
// ends. eachField returns the index past the object. It fails on an
// escaped key, which could spell any name.
func EachField(d []byte, i int, f func(key []byte, start int) (int, bool)) (int, bool) {
	return EachMember(d, i, func(keyStart, keyEnd, start int) (int, bool) {
		key := d[keyStart+1 : keyEnd-1]
		if bytes.IndexByte(key, '\\') >= 0 {
			return 0, false
		}
		return f(key, start)
	})
}

// EachMember is EachField with the bounds of the key (a JSON string,
// quotes included), whatever it holds.
func EachMember(d []byte, i int, f func(keyStart, keyEnd, start int) (int, bool)) (int, bool) {
	if i >= len(d) || d[i] != '{' {
		return 0, false
	}
	i = SkipSpace(d, i+1)
	if i < len(d) && d[i] == '}' {
		return i + 1, true
	}
	for {
		if i >= len(d) || d[i] != '"' {
			return 0, false
		}
		keyStart := i
		keyEnd, _, ok := StringEnd(d, i)
		if !ok {
			return 0, false
		}
		i = SkipSpace(d, keyEnd)
		if i >= len(d) || d[i] != ':' {
			return 0, false
		}
		start := SkipSpace(d, i+1)
		if start >= len(d) {
			return 0, false
		}
		end, ok := f(keyStart, keyEnd, start)
		if !ok {
			return 0, false
		}
		next, closed, ok := afterValue(d, end, '}')
		if !ok || closed {
			return next, ok
		}
		i = next
	}
}

// afterValue reads what follows a member or element that ends at d[end]:
// a comma (next is where the following one starts) or the closing
// bracket (closed; next is past it).
func afterValue(d []byte, end int, closing byte) (next int, closed, ok bool) {
	i := SkipSpace(d, end)
	switch {
	case i >= len(d):
		return 0, false, false
	case d[i] == ',':
		return SkipSpace(d, i+1), false, true
	case d[i] == closing:
		return i + 1, true, true
	}
	return 0, false, false
}

// EachElement calls f with where every element of the array at d[i]
// starts; f returns where it ends.
func EachElement(d []byte, i int, f func(start int) (int, bool)) (int, bool) {
	if i >= len(d) || d[i] != '[' {
		return 0, false
	}
	i = SkipSpace(d, i+1)
	if i < len(d) && d[i] == ']' {
		return i + 1, true
	}
	for {
		if i >= len(d) {
			return 0, false
		}
		end, ok := f(i)
		if !ok {
			return 0, false
		}
		next, closed, ok := afterValue(d, end, ']')
		if !ok || closed {
			return next, ok
		}
		i = next
	}
}

// Framer finds where the object at the start of a growing buffer ends,
// for a stream of objects that arrives in pieces: each Frame call goes on
// from where the previous one ran out of bytes, so an object is scanned
// once however it is split.
type Framer struct {
	pos  int    // where to go on scanning
	open []byte // the brackets open at pos
}

// Idle reports whether no object is partly framed.
func (f *Framer) Idle() bool { return f.pos == 0 }

// Frame reports the length of the object that starts at buf[0], or
// done=false when buf does not hold all of it yet. buf must start with
// the bytes given to the previous calls since the last object was framed.
// An error means the stream does not hold a JSON object there.
func (f *Framer) Frame(buf []byte) (n int, done bool, err error) {
	i := f.pos
	if i == 0 {
		if len(buf) == 0 {
			return 0, false, nil
		}
		if buf[0] != '{' {
			return 0, false, fmt.Errorf("JSON object expected, found %q", buf[0])
		}
	}
	for i < len(buf) {
		switch c := buf[i]; c {
		case '"':
			end, _, ok := StringEnd(buf, i)
			if !ok {
				f.pos = i // scan the string again once it is whole
				return 0, false, nil
			}
			i = end
			continue
		case '{', '[':
			f.open = append(f.open, c)
		case '}', ']':
			if len(f.open) == 0 || f.open[len(f.open)-1] != c-2 {
				return 0, false, fmt.Errorf("unbalanced %q at byte %d", c, i)
			}
			f.open = f.open[:len(f.open)-1]
			if len(f.open) == 0 {
				f.pos = 0
				return i + 1, true, nil
			}
		}
		i++
	}
	f.pos = i
	return 0, false, nil
}
