package openapi

import (
	"bytes"
	"compress/gzip"
	"crypto/sha512"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	openapi_v2 "github.com/google/gnostic-models/openapiv2"
	"github.com/munnerz/goautoneg"
	"google.golang.org/protobuf/proto"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/kube-openapi/pkg/handler3"
)

// encoding is one representation of a document.
type encoding int

const (
	encJSON encoding = iota
	encProto
	numEncodings
)

// format is a media type a client may ask for and what it is answered
// with.
type format struct {
	subtype     string // under "application/"
	contentType string
	enc         encoding
}

// The media types kube-apiserver accepts: JSON, and protobuf under its old
// and new names (client-go's OpenAPISchema asks for the old one).
var (
	v2Formats = []format{
		{"json", "application/json", encJSON},
		{"com.github.proto-openapi.spec.v2@v1.0+protobuf", "application/com.github.proto-openapi.spec.v2.v1.0+protobuf", encProto},
		{"com.github.proto-openapi.spec.v2.v1.0+protobuf", "application/com.github.proto-openapi.spec.v2.v1.0+protobuf", encProto},
	}
	v3Formats = []format{
		{"json", "application/json", encJSON},
		{"com.github.proto-openapi.spec.v3@v1.0+protobuf", "application/com.github.proto-openapi.spec.v3.v1.0+protobuf", encProto},
		{"com.github.proto-openapi.spec.v3.v1.0+protobuf", "application/com.github.proto-openapi.spec.v3.v1.0+protobuf", encProto},
	}
	discoveryFormats = []format{{"json", "application/json", encJSON}}
)

// document is a lazily built, cached document. Each representation
// (JSON, protobuf, each possibly gzipped) is made once, on first use.
type document struct {
	path  string
	build func() ([]byte, error)
	flav  flavor
	// onBuild reports the JSON build.
	onBuild func(path string, took time.Duration, err error)

	reps [numEncodings][2]rep // [encoding][gzipped]
}

type rep struct {
	once     sync.Once
	data     []byte
	etag     string
	modified time.Time
	err      error
}

func (s *Service) newDocument(path string, f flavor, build func() ([]byte, error)) *document {
	return &document{path: path, build: build, flav: f, onBuild: s.cfg.OnBuild}
}

// get returns the representation, making it (and what it derives from)
// if needed. All representations share the ETag of the JSON: responses
// vary by Accept and Accept-Encoding.
func (d *document) get(enc encoding) *rep {
	return d.rep(enc, false)
}

func (d *document) rep(enc encoding, gz bool) *rep {
	r := &d.reps[enc][boolIndex(gz)]
	r.once.Do(func() {
		switch {
		case gz:
			src := d.rep(enc, false)
			if r.err = src.err; r.err != nil {
				return
			}
			r.data, r.err = gzipBytes(src.data)
			r.etag, r.modified = src.etag, src.modified
		case enc == encProto:
			src := d.rep(encJSON, false)
			if r.err = src.err; r.err != nil {
				return
			}
			r.data, r.err = toProto(src.data, d.flav)
			r.etag, r.modified = src.etag, src.modified
		default:
			start := time.Now()
			r.data, r.err = d.build()
			if d.onBuild != nil {
				d.onBuild(d.path, time.Since(start), r.err)
			}
			r.etag = fmt.Sprintf("%X", sha512.Sum512(r.data))
			r.modified = time.Now()
		}
	})
	return r
}

func boolIndex(b bool) int {
	if b {
		return 1
	}
	return 0
}

func toProto(data []byte, f flavor) ([]byte, error) {
	if f == v3 {
		return handler3.ToV3ProtoBinary(data)
	}
	doc, err := openapi_v2.ParseDocument(data)
	if err != nil {
		return nil, err
	}
	return proto.Marshal(doc)
}

func gzipBytes(data []byte) ([]byte, error) {
	var buf bytes.Buffer
	zw, err := gzip.NewWriterLevel(&buf, gzip.DefaultCompression)
	if err != nil {
		return nil, err
	}
	if _, err := zw.Write(data); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// gzipMinSize is the smallest body worth compressing.
const gzipMinSize = 1400

// serve negotiates the representation and writes it with its ETag, so
// that a client's If-None-Match gets 304. For a v3 document, key is set:
// a request whose hash parameter is stale is redirected to the current
// one, and a current hash makes the response cacheable for good, as
// kube-apiserver does.
func (s *Service) serve(w http.ResponseWriter, r *http.Request, d *document, formats []format, key string) {
	f, ok := negotiate(r.Header.Get("Accept"), formats)
	if !ok {
		s.cfg.WriteError(w, r, notAcceptable(formats))
		return
	}
	rp := d.get(f.enc)
	if rp.err != nil {
		s.cfg.WriteError(w, r, apierrors.NewInternalError(fmt.Errorf("building %s: %w", d.path, rp.err)))
		return
	}
	h := w.Header()
	h.Add("Vary", "Accept")
	h.Add("Vary", "Accept-Encoding")
	h.Set("Content-Type", f.contentType)
	h.Set("Etag", strconv.Quote(rp.etag))
	if key != "" {
		if hash := r.URL.Query().Get("hash"); hash != "" {
			if hash != rp.etag {
				http.Redirect(w, r, relativeURL(key, rp.etag), http.StatusMovedPermanently)
				return
			}
			h.Set("Cache-Control", "public, immutable")
			h.Set("Expires", time.Now().AddDate(1, 0, 0).UTC().Format(http.TimeFormat))
		}
	}
	if len(rp.data) >= gzipMinSize && acceptsGzip(r.Header.Get("Accept-Encoding")) {
		if gz := d.rep(f.enc, true); gz.err == nil {
			h.Set("Content-Encoding", "gzip")
			rp = gz
		}
	}
	http.ServeContent(w, r, "", rp.modified, bytes.NewReader(rp.data))
}

// negotiate picks the first format the Accept header allows, in the
// header's order of preference; no header means anything.
func negotiate(accept string, formats []format) (format, bool) {
	if strings.TrimSpace(accept) == "" {
		accept = "*/*"
	}
	for _, c := range goautoneg.ParseAccept(accept) {
		for _, f := range formats {
			if (c.Type == "application" || c.Type == "*") && (c.SubType == f.subtype || c.SubType == "*") {
				return f, true
			}
		}
	}
	return format{}, false
}

func acceptsGzip(header string) bool {
	for _, part := range strings.Split(header, ",") {
		coding, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		if !strings.EqualFold(strings.TrimSpace(coding), "gzip") {
			continue
		}
		if q, ok := strings.CutPrefix(strings.TrimSpace(params), "q="); ok {
			if v, err := strconv.ParseFloat(q, 64); err == nil && v == 0 {
				return false
			}
		}
		return true
	}
	return false
}

func notFound() error {
	return &apierrors.StatusError{ErrStatus: metav1.Status{
		Status:  metav1.StatusFailure,
		Message: "the server could not find the requested resource",
		Reason:  metav1.StatusReasonNotFound,
		Details: &metav1.StatusDetails{},
		Code:    http.StatusNotFound,
	}}
}

func methodNotAllowed(method string) error {
	return &apierrors.StatusError{ErrStatus: metav1.Status{
		Status:  metav1.StatusFailure,
		Message: fmt.Sprintf("%s is not supported on the OpenAPI documents", method),
		Reason:  metav1.StatusReasonMethodNotAllowed,
		Details: &metav1.StatusDetails{},
		Code:    http.StatusMethodNotAllowed,
	}}
}

func notAcceptable(formats []format) error {
	types := make([]string, 0, len(formats))
	for _, f := range formats {
		types = append(types, "application/"+f.subtype)
	}
	return apierrors.NewGenericServerResponse(http.StatusNotAcceptable, "", schema.GroupResource{}, "",
		"only the following media types are accepted: "+strings.Join(types, ", "), 0, false)
}

// writeStatus is the fallback Config.WriteError.
func writeStatus(w http.ResponseWriter, r *http.Request, err error) {
	st, ok := err.(apierrors.APIStatus)
	if !ok {
		st = apierrors.NewInternalError(err)
	}
	status := st.Status()
	status.Kind, status.APIVersion = "Status", "v1"
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(int(status.Code))
	json.NewEncoder(w).Encode(status)
}
