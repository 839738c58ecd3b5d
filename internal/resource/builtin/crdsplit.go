package builtin

import "github.com/trellis-project/trellis/internal/jsonscan"

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
			return jsonscan.ValueEnd(d, start) // not an object: for the decoder to refuse
		}
		return jsonscan.EachField(d, start, func(key []byte, vs int) (int, bool) {
			ve, ok := jsonscan.ValueEnd(d, vs)
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
			return jsonscan.ValueEnd(d, start)
		}
		seenVersions := false
		return jsonscan.EachField(d, start, func(key []byte, vs int) (int, bool) {
			if string(key) != "versions" || d[vs] != '[' {
				return jsonscan.ValueEnd(d, vs)
			}
			if seenVersions {
				return 0, false
			}
			seenVersions = true
			return jsonscan.EachElement(d, vs, walkVersion)
		})
	}
	i := jsonscan.SkipSpace(d, 0)
	end, ok := jsonscan.EachField(d, i, func(key []byte, vs int) (int, bool) {
		if string(key) != "spec" {
			return jsonscan.ValueEnd(d, vs)
		}
		if seenSpec {
			return 0, false
		}
		seenSpec = true
		return walkSpec(vs)
	})
	if !ok || jsonscan.SkipSpace(d, end) != len(d) {
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
