package handler

import (
	"mime"
	"net/http"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// outputKind is what the client asked the response body to be.
type outputKind int

const (
	asObject outputKind = iota
	asTable
	asPartialMetadata
)

// output is the negotiated response format.
type output struct {
	kind outputKind
	yaml bool
	// metaVersion is the meta.k8s.io version of a Table or partial
	// metadata response ("v1" or "v1beta1").
	metaVersion string
	// proto: the client accepts protobuf and no JSON; scheme encodes it.
	proto  bool
	scheme *runtime.Scheme
}

// negotiate picks the first media type in Accept that Trellis can write,
// preferring JSON and YAML (objects are stored as JSON) over protobuf,
// which only clients that accept nothing else get. CBOR is not served.
func negotiate(r *http.Request, isList bool) (output, error) {
	accept := r.Header.Get("Accept")
	if strings.TrimSpace(accept) == "" {
		return output{}, nil
	}
	if out, ok := negotiatePass(accept, isList, false); ok {
		return out, nil
	}
	if out, ok := negotiatePass(accept, isList, true); ok {
		return out, nil
	}
	return output{}, notAcceptable()
}

// negotiate also refuses protobuf for custom resources, as upstream, and
// gives a protobuf output the scheme to encode with.
func (rc *reqCtx) negotiate(isList bool) (output, error) {
	out, err := negotiate(rc.r, isList)
	if err != nil || !out.proto {
		return out, err
	}
	if rc.isUnstructured() || rc.h.Scheme == nil {
		return output{}, notAcceptable()
	}
	out.scheme = rc.h.Scheme
	return out, nil
}

func negotiatePass(accept string, isList, proto bool) (output, bool) {
	for _, part := range strings.Split(accept, ",") {
		mt, params, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err != nil {
			continue
		}
		var out output
		switch {
		case proto && mt == ProtobufMediaType:
			out.proto = true
		case proto:
			continue
		case mt == "application/json", mt == "application/*", mt == "*/*":
		case mt == "application/yaml":
			out.yaml = true
		default:
			continue
		}
		switch params["as"] {
		case "":
			if params["g"] != "" || params["v"] != "" {
				continue
			}
			return out, true
		case "Table":
			if params["g"] != metav1.GroupName || (params["v"] != "v1" && params["v"] != "v1beta1") {
				continue
			}
			out.kind, out.metaVersion = asTable, params["v"]
			return out, true
		case "PartialObjectMetadata", "PartialObjectMetadataList":
			if params["g"] != metav1.GroupName || (params["v"] != "v1" && params["v"] != "v1beta1") {
				continue
			}
			if (params["as"] == "PartialObjectMetadataList") != isList {
				continue
			}
			out.kind, out.metaVersion = asPartialMetadata, params["v"]
			return out, true
		}
	}
	return output{}, false
}

func notAcceptable() error {
	return apierrors.NewGenericServerResponse(http.StatusNotAcceptable, "", schemaGR(), "", "only the following media types are accepted: application/json, application/yaml, application/json;as=Table;v=v1;g=meta.k8s.io, application/json;as=PartialObjectMetadata;v=v1;g=meta.k8s.io", 0, false)
}

// bodyFormat classifies a request body's Content-Type.
type bodyFormat int

const (
	bodyJSON bodyFormat = iota
	bodyYAML
	bodyJSONPatch
	bodyMergePatch
	bodyStrategicMergePatch
	bodyApplyPatch
	bodyProtobuf
)

// ProtobufMediaType is Kubernetes' protobuf envelope. client-go's typed
// clients send built-in kinds in it by default.
const ProtobufMediaType = "application/vnd.kubernetes.protobuf"

func requestBodyFormat(r *http.Request, patch bool) (bodyFormat, error) {
	ct := r.Header.Get("Content-Type")
	mt := "application/json"
	if ct != "" {
		var err error
		if mt, _, err = mime.ParseMediaType(ct); err != nil {
			return 0, unsupportedMediaType(ct, patch)
		}
	}
	if patch {
		switch mt {
		case "application/json-patch+json":
			return bodyJSONPatch, nil
		case "application/merge-patch+json":
			return bodyMergePatch, nil
		case "application/strategic-merge-patch+json":
			return bodyStrategicMergePatch, nil
		case "application/apply-patch+yaml":
			return bodyApplyPatch, nil
		}
		return 0, unsupportedMediaType(ct, patch)
	}
	switch mt {
	case "application/json":
		return bodyJSON, nil
	case "application/yaml":
		return bodyYAML, nil
	case ProtobufMediaType:
		return bodyProtobuf, nil
	}
	return 0, unsupportedMediaType(ct, patch)
}

func unsupportedMediaType(ct string, patch bool) error {
	accepted := "application/json, application/yaml, application/vnd.kubernetes.protobuf"
	if patch {
		accepted = "application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json, application/apply-patch+yaml"
	}
	return apierrors.NewGenericServerResponse(http.StatusUnsupportedMediaType, "", schemaGR(), "",
		"the body of the request was in an unknown format - accepted media types include: "+accepted, 0, false)
}
