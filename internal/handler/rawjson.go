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
	return topLevelValue(raw, "metadata", '{')
}

// stringField finds key at the top level of object obj and returns the span
// of its string value including quotes.
func stringField(obj []byte, key string) (vs, ve int, ok bool) {
	return topLevelValue(obj, key, '"')
}

// topLevelValue scans a JSON object for key at depth 1 whose value starts
// with open ('{' or '"') and returns the value's span.
func topLevelValue(raw []byte, key string, open byte) (start, end int, ok bool) {
	depth := 0
	for i := 0; i < len(raw); i++ {
		switch raw[i] {
		case '"':
			j := skipString(raw, i)
			if j < 0 {
				return 0, 0, false
			}
			if depth == 1 && string(raw[i+1:j-1]) == key {
				k := skipSpace(raw, j)
				if k < len(raw) && raw[k] == ':' {
					k = skipSpace(raw, k+1)
					if k < len(raw) && raw[k] == open {
						var e int
						if open == '"' {
							e = skipString(raw, k)
						} else {
							e = skipValue(raw, k)
						}
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

// withoutTypeMeta returns a copy of a compact JSON object without its
// top-level "kind" and "apiVersion" members. kube-apiserver's lists of
// built-in kinds carry the type only on the list, not on each item; typed
// clients compare items with objects whose TypeMeta is empty.
func withoutTypeMeta(raw []byte) []byte {
	out := raw
	copied := false // raw may be the cache's shared bytes: cut a copy
	for _, key := range []string{"apiVersion", "kind"} {
		vs, ve, ok := topLevelValue(out, key, '"')
		prefix := `"` + key + `":`
		ks := vs - len(prefix)
		if !ok || ks < 1 || string(out[ks:vs]) != prefix {
			continue
		}
		switch {
		case ve < len(out) && out[ve] == ',':
			ve++
		case out[ks-1] == ',':
			ks--
		}
		if !copied {
			out, copied = bytes.Clone(out), true
		}
		out = append(out[:ks], out[ve:]...)
	}
	return out
}
