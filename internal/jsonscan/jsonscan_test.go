package jsonscan

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math/rand"
	"strings"
	"testing"
)

// randomValue builds nested JSON with the characters that trip a
// framer: quotes, backslashes and brackets inside strings and keys.
func randomValue(r *rand.Rand, depth int) any {
	pieces := []string{`"`, `\`, `{`, `}`, `[`, `]`, `,`, `:`, " ", "\n", "é", "\x01", "a", `\"`, `\\`}
	str := func() string {
		var b strings.Builder
		for range r.Intn(8) {
			b.WriteString(pieces[r.Intn(len(pieces))])
		}
		return b.String()
	}
	switch k := r.Intn(7); {
	case depth > 4 || k == 0:
		return str()
	case k == 1:
		return r.NormFloat64() * 1e6
	case k == 2:
		return r.Intn(2) == 0
	case k == 3:
		return nil
	case k == 4:
		var l []any
		for range r.Intn(4) {
			l = append(l, randomValue(r, depth+1))
		}
		return l
	default:
		m := map[string]any{}
		for range r.Intn(4) {
			m[str()] = randomValue(r, depth+1)
		}
		return m
	}
}

// ValueEnd, EachField and EachElement agree with encoding/json on where
// values and members are, in compact and indented JSON.
func TestScannerAgreesWithEncodingJSON(t *testing.T) {
	r := rand.New(rand.NewSource(1))
	for i := range 2000 {
		v := map[string]any{"k": randomValue(r, 0), "l": []any{randomValue(r, 0), randomValue(r, 0)}}
		raw, _ := json.Marshal(v)
		if i%2 == 1 {
			raw, _ = json.MarshalIndent(v, "", "  ")
		}
		end, ok := ValueEnd(raw, 0)
		if !ok || end != len(raw) {
			t.Fatalf("ValueEnd(%s) = %d, %v", raw, end, ok)
		}
		var want map[string]json.RawMessage
		if err := json.Unmarshal(raw, &want); err != nil {
			t.Fatal(err)
		}
		got := map[string]json.RawMessage{}
		if _, ok := EachMember(raw, 0, func(ks, ke, start int) (int, bool) {
			var key string
			if err := json.Unmarshal(raw[ks:ke], &key); err != nil {
				t.Fatalf("key %s: %v", raw[ks:ke], err)
			}
			end, ok := ValueEnd(raw, start)
			got[key] = raw[start:end]
			return end, ok
		}); !ok {
			t.Fatalf("EachMember refused %s", raw)
		}
		if len(got) != len(want) {
			t.Fatalf("members %v, want %v", got, want)
		}
		for k, w := range want {
			if !bytes.Equal(got[k], w) {
				t.Fatalf("member %q is %s, want %s", k, got[k], w)
			}
		}
		var elems []json.RawMessage
		if err := json.Unmarshal(want["l"], &elems); err != nil {
			t.Fatal(err)
		}
		n := 0
		if _, ok := EachElement(want["l"], 0, func(start int) (int, bool) {
			end, ok := ValueEnd(want["l"], start)
			if ok && !bytes.Equal(want["l"][start:end], elems[n]) {
				t.Fatalf("element %d is %s, want %s", n, want["l"][start:end], elems[n])
			}
			n++
			return end, ok
		}); !ok || n != len(elems) {
			t.Fatalf("EachElement over %s: %d elements, %v", want["l"], n, ok)
		}
	}
}

// The framer cuts a stream of objects where encoding/json's Decoder does,
// whatever pieces the stream arrives in.
func TestFramerAgreesWithDecoder(t *testing.T) {
	r := rand.New(rand.NewSource(2))
	var stream bytes.Buffer
	var want []json.RawMessage
	for range 300 {
		raw, _ := json.Marshal(map[string]any{"type": "ADDED", "object": randomValue(r, 0)})
		want = append(want, raw)
		stream.Write(raw)
		stream.WriteString([]string{"\n", "", " \r\n\t"}[r.Intn(3)])
	}
	data := stream.Bytes()
	for _, piece := range []int{1, 7, 4096, len(data)} {
		var f Framer
		var buf []byte
		var got []json.RawMessage
		for off := 0; off < len(data) || len(buf) > 0; {
			if f.Idle() {
				buf = buf[SkipSpace(buf, 0):]
			}
			n, done, err := f.Frame(buf)
			if err != nil {
				t.Fatalf("piece %d: %v", piece, err)
			}
			if done {
				got = append(got, bytes.Clone(buf[:n]))
				buf = buf[n:]
				continue
			}
			if off == len(data) {
				break
			}
			end := min(off+piece, len(data))
			buf = append(buf, data[off:end]...)
			off = end
		}
		if len(got) != len(want) {
			t.Fatalf("piece %d: %d objects framed, want %d", piece, len(got), len(want))
		}
		for i := range want {
			if !bytes.Equal(got[i], want[i]) {
				t.Fatalf("piece %d: object %d is\n%s\nwant\n%s", piece, i, got[i], want[i])
			}
		}
	}
}

func TestFramerRefusesWhatIsNotAnObject(t *testing.T) {
	for _, s := range []string{`[1]`, `"x"`, `{"a":[}`, `{"a":{]}`, `{]`} {
		var f Framer
		_, done, err := f.Frame([]byte(s))
		if err == nil && done {
			t.Errorf("%s framed", s)
		}
		if s[0] != '{' && err == nil {
			t.Errorf("%s: no error", s)
		}
	}
	var f Framer
	if _, done, err := f.Frame([]byte(`{"a":"}`)); done || err != nil {
		t.Errorf("an open string framed: %v %v", done, err)
	}
}

func ExampleFramer() {
	stream := io.MultiReader(strings.NewReader(`{"a":"}"} {"b"`), strings.NewReader(`:[1]}`))
	data, _ := io.ReadAll(stream)
	var f Framer
	for len(data) > 0 {
		data = data[SkipSpace(data, 0):]
		n, _, _ := f.Frame(data)
		fmt.Println(string(data[:n]))
		data = data[n:]
	}
	// Output:
	// {"a":"}"}
	// {"b":[1]}
}
