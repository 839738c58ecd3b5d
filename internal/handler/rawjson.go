package handler

import (
	"bytes"
	"strconv"
)

// setResourceVersion stamps metadata.resourceVersion into an encoded JSON
// object without decoding it. Objects are stored without a
// resourceVersion (the store's modification revision is the truth); the
// watch cache stamps each object once, so lists and watches can be
// written by concatenating bytes. It returns nil if raw has no top-level
// metadata object.
func SetResourceVersion(raw []byte, rev int64) []byte {
	start, end, ok := topLevelMetadata(raw)
	if !ok {
		return nil
	}
	meta := raw[start:end] // "{...}"
	rv := strconv.AppendInt(nil, rev, 10)
	out := make([]byte, 0, len(raw)+len(rv)+24)
	out = append(out, raw[:start]...)
	if vs, ve, found := stringField(meta, "resourceVersion"); found {
		out = append(out, meta[:vs]...)
		out = append(out, '"')
		out = append(out, rv...)
		out = append(out, '"')
		out = append(out, meta[ve:]...)
	} else {
		out = append(out, '{')
		out = append(out, `"resourceVersion":"`...)
		out = append(out, rv...)
		out = append(out, '"')
		if len(bytes.TrimSpace(meta[1:len(meta)-1])) > 0 {
			out = append(out, ',')
		}
		out = append(out, meta[1:]...)
	}
	return append(out, raw[end:]...)
}

// topLevelMetadata finds the value of the "metadata" key of the outermost
// object: the bytes from its '{' to just past its '}'.
func topLevelMetadata(raw []byte) (start, end int, ok bool) {
	depth := 0
	for i := 0; i < len(raw); i++ {
		switch c := raw[i]; c {
		case '"':
			j := skipString(raw, i)
			if j < 0 {
				return 0, 0, false
			}
			if depth == 1 && string(raw[i+1:j-1]) == "metadata" {
				k := skipSpace(raw, j)
				if k < len(raw) && raw[k] == ':' {
					k = skipSpace(raw, k+1)
					if k < len(raw) && raw[k] == '{' {
						e := skipValue(raw, k)
						if e < 0 {
							return 0, 0, false
						}
						return k, e, true
					}
				}
			}
			i = j - 1
		case '{', '[':
			depth++
		case '}', ']':
			depth--
		}
	}
	return 0, 0, false
}

// stringField finds key in a flat scan of object obj (depth 1 only) and
// returns the span of its string value including quotes.
func stringField(obj []byte, key string) (vs, ve int, ok bool) {
	depth := 0
	for i := 0; i < len(obj); i++ {
		switch c := obj[i]; c {
		case '"':
			j := skipString(obj, i)
			if j < 0 {
				return 0, 0, false
			}
			if depth == 1 && string(obj[i+1:j-1]) == key {
				k := skipSpace(obj, j)
				if k < len(obj) && obj[k] == ':' {
					k = skipSpace(obj, k+1)
					if k < len(obj) && obj[k] == '"' {
						e := skipString(obj, k)
						if e < 0 {
							return 0, 0, false
						}
						return k, e, true
					}
				}
			}
			i = j - 1
		case '{', '[':
			depth++
		case '}', ']':
			depth--
		}
	}
	return 0, 0, false
}

// skipString returns the index just past the string starting at raw[i].
func skipString(raw []byte, i int) int {
	for j := i + 1; j < len(raw); j++ {
		switch raw[j] {
		case '\\':
			j++
		case '"':
			return j + 1
		}
	}
	return -1
}

func skipSpace(raw []byte, i int) int {
	for i < len(raw) && (raw[i] == ' ' || raw[i] == '\n' || raw[i] == '\t' || raw[i] == '\r') {
		i++
	}
	return i
}

// skipValue returns the index just past the object or array at raw[i].
func skipValue(raw []byte, i int) int {
	depth := 0
	for j := i; j < len(raw); j++ {
		switch raw[j] {
		case '"':
			k := skipString(raw, j)
			if k < 0 {
				return -1
			}
			j = k - 1
		case '{', '[':
			depth++
		case '}', ']':
			depth--
			if depth == 0 {
				return j + 1
			}
		}
	}
	return -1
}
