package builtin

import "bytes"

// A small scanner that finds where JSON values end, for the CRD codec:
// a large CRD's schemas are most of its bytes, and encoding/json reads
// every byte of them through its state machine once to check the JSON,
// once to decode it and again for every nested schema. The scanner only
// frames values; whatever it frames is then decoded by a checking decoder
// (encoding/json, sigs.k8s.io/json or the schema parser), so it need not
// check the JSON itself.

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

func skipSpace(d []byte, i int) int {
	for i < len(d) && isSpace(d[i]) {
		i++
	}
	return i
}

// stringEnd returns the index just past the string that starts at d[i]
// (a '"'), and whether it contains escapes.
func stringEnd(d []byte, i int) (end int, escaped, ok bool) {
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

// valueEnd returns the index just past the value that starts at d[i].
func valueEnd(d []byte, i int) (int, bool) {
	if i >= len(d) {
		return 0, false
	}
	switch d[i] {
	case '"':
		end, _, ok := stringEnd(d, i)
		return end, ok
	case '{', '[':
		// Brackets are matched with a stack of the open ones.
		var stack [64]byte
		open := stack[:0]
		for i < len(d) {
			switch c := d[i]; c {
			case '"':
				end, _, ok := stringEnd(d, i)
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
		for j < len(d) && !isSpace(d[j]) && d[j] != ',' && d[j] != '}' && d[j] != ']' {
			j++
		}
		return j, j > i
	}
}

// eachField calls f with the raw (unescaped) key of every member of the
// object at d[i] and where its value starts; f returns where the value
// ends. eachField returns the index past the object. It fails on an
// escaped key, which could spell any name.
func eachField(d []byte, i int, f func(key []byte, start int) (int, bool)) (int, bool) {
	return eachMember(d, i, func(keyStart, keyEnd, start int) (int, bool) {
		key := d[keyStart+1 : keyEnd-1]
		if bytes.IndexByte(key, '\\') >= 0 {
			return 0, false
		}
		return f(key, start)
	})
}

// eachMember is eachField with the bounds of the key (a JSON string,
// quotes included), whatever it holds.
func eachMember(d []byte, i int, f func(keyStart, keyEnd, start int) (int, bool)) (int, bool) {
	if i >= len(d) || d[i] != '{' {
		return 0, false
	}
	i = skipSpace(d, i+1)
	if i < len(d) && d[i] == '}' {
		return i + 1, true
	}
	for {
		if i >= len(d) || d[i] != '"' {
			return 0, false
		}
		keyStart := i
		keyEnd, _, ok := stringEnd(d, i)
		if !ok {
			return 0, false
		}
		i = skipSpace(d, keyEnd)
		if i >= len(d) || d[i] != ':' {
			return 0, false
		}
		start := skipSpace(d, i+1)
		if start >= len(d) {
			return 0, false
		}
		end, ok := f(keyStart, keyEnd, start)
		if !ok {
			return 0, false
		}
		i = skipSpace(d, end)
		if i >= len(d) {
			return 0, false
		}
		switch d[i] {
		case ',':
			i = skipSpace(d, i+1)
		case '}':
			return i + 1, true
		default:
			return 0, false
		}
	}
}

// eachElement calls f with where every element of the array at d[i]
// starts; f returns where it ends.
func eachElement(d []byte, i int, f func(start int) (int, bool)) (int, bool) {
	if i >= len(d) || d[i] != '[' {
		return 0, false
	}
	i = skipSpace(d, i+1)
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
		i = skipSpace(d, end)
		if i >= len(d) {
			return 0, false
		}
		switch d[i] {
		case ',':
			i = skipSpace(d, i+1)
		case ']':
			return i + 1, true
		default:
			return 0, false
		}
	}
}

// SplitCRDSchemas cuts the version schemas out of a CRD's JSON: rest is
// the CRD with each spec.versions[k].schema replaced by null, and
// schemas[k] the JSON that was there (nil when version k has none), for
// as many versions as spec.versions has. ok is false when the JSON is not
// an object of that shape, or names spec, versions or a schema twice; rest
// is for a checking decoder, which reports whatever else is wrong.
func SplitCRDSchemas(d []byte) (rest []byte, schemas [][]byte, ok bool) {
	type span struct{ start, end int }
	var cuts []span
	versions, seenSpec := 0, false
	walkVersion := func(start int) (int, bool) {
		k := versions
		versions++
		schemas = append(schemas, nil)
		if d[start] != '{' {
			return valueEnd(d, start) // not an object: for the decoder to refuse
		}
		return eachField(d, start, func(key []byte, vs int) (int, bool) {
			ve, ok := valueEnd(d, vs)
			if !ok || string(key) != "schema" {
				return ve, ok
			}
			if schemas[k] != nil {
				return 0, false
			}
			schemas[k] = d[vs:ve]
			cuts = append(cuts, span{vs, ve})
			return ve, true
		})
	}
	walkSpec := func(start int) (int, bool) {
		if d[start] != '{' {
			return valueEnd(d, start)
		}
		seenVersions := false
		return eachField(d, start, func(key []byte, vs int) (int, bool) {
			if string(key) != "versions" || d[vs] != '[' {
				return valueEnd(d, vs)
			}
			if seenVersions {
				return 0, false
			}
			seenVersions = true
			return eachElement(d, vs, walkVersion)
		})
	}
	i := skipSpace(d, 0)
	end, ok := eachField(d, i, func(key []byte, vs int) (int, bool) {
		if string(key) != "spec" {
			return valueEnd(d, vs)
		}
		if seenSpec {
			return 0, false
		}
		seenSpec = true
		return walkSpec(vs)
	})
	if !ok || skipSpace(d, end) != len(d) {
		return nil, nil, false
	}
	if len(cuts) == 0 {
		return d, schemas, true
	}
	cutBytes := 0
	for _, c := range cuts {
		cutBytes += c.end - c.start
	}
	rest = make([]byte, 0, len(d)-cutBytes+4*len(cuts))
	prev := 0
	for _, c := range cuts {
		rest = append(rest, d[prev:c.start]...)
		rest = append(rest, "null"...)
		prev = c.end
	}
	return append(rest, d[prev:]...), schemas, true
}
