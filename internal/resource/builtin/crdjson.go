package builtin

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	sigsjson "sigs.k8s.io/json"
)

// A CustomResourceDefinition's JSON is mostly its version schemas, and
// large CRDs repeat one schema in every version. encoding/json handles a
// schema slowly: each nested schema behind items or additionalProperties
// has its own (Un)MarshalJSON, which scans and copies everything below it
// again. crdJSON decodes and encodes each distinct schema once and shares
// it between the versions that have it; the bytes and the decoded object
// are the same as encoding/json's.

// crdWire is a CRD whose version schemas are JSON. Its fields are
// apiextensionsv1's, in the same order, so it encodes the same.
type crdWire struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              crdSpecWire                                    `json:"spec"`
	Status            apiextensionsv1.CustomResourceDefinitionStatus `json:"status,omitempty"`
}

type crdSpecWire struct {
	Group                 string                                        `json:"group"`
	Names                 apiextensionsv1.CustomResourceDefinitionNames `json:"names"`
	Scope                 apiextensionsv1.ResourceScope                 `json:"scope"`
	Versions              []crdVersionWire                              `json:"versions"`
	Conversion            *apiextensionsv1.CustomResourceConversion     `json:"conversion,omitempty"`
	PreserveUnknownFields bool                                          `json:"preserveUnknownFields,omitempty"`
}

type crdVersionWire struct {
	Name                     string                                           `json:"name"`
	Served                   bool                                             `json:"served"`
	Storage                  bool                                             `json:"storage"`
	Deprecated               bool                                             `json:"deprecated,omitempty"`
	DeprecationWarning       *string                                          `json:"deprecationWarning,omitempty"`
	Schema                   json.RawMessage                                  `json:"schema,omitempty"`
	Subresources             *apiextensionsv1.CustomResourceSubresources      `json:"subresources,omitempty"`
	AdditionalPrinterColumns []apiextensionsv1.CustomResourceColumnDefinition `json:"additionalPrinterColumns,omitempty"`
	SelectableFields         []apiextensionsv1.SelectableField                `json:"selectableFields,omitempty"`
}

// encodeCRD is json.Marshal(crd). Each distinct schema is marshaled
// once and spliced in where a placeholder marks it, so encoding/json does
// not scan the schemas again (as it scans what a MarshalJSON returns).
func encodeCRD(crd *apiextensionsv1.CustomResourceDefinition) ([]byte, error) {
	w := crdWire{TypeMeta: crd.TypeMeta, ObjectMeta: crd.ObjectMeta, Status: crd.Status, Spec: crdSpecWire{
		Group: crd.Spec.Group, Names: crd.Spec.Names, Scope: crd.Spec.Scope,
		Conversion: crd.Spec.Conversion, PreserveUnknownFields: crd.Spec.PreserveUnknownFields,
	}}
	if crd.Spec.Versions != nil {
		w.Spec.Versions = make([]crdVersionWire, len(crd.Spec.Versions))
	}
	var schemas [][]byte // distinct schemas' JSON
	var uses []int       // how many versions each placeholder stands for
	for i, v := range crd.Spec.Versions {
		w.Spec.Versions[i] = crdVersionWire{Name: v.Name, Served: v.Served, Storage: v.Storage,
			Deprecated: v.Deprecated, DeprecationWarning: v.DeprecationWarning,
			Subresources: v.Subresources, AdditionalPrinterColumns: v.AdditionalPrinterColumns,
			SelectableFields: v.SelectableFields}
		if v.Schema == nil {
			continue
		}
		for j := range i {
			if crd.Spec.Versions[j].Schema == v.Schema {
				w.Spec.Versions[i].Schema = w.Spec.Versions[j].Schema
				break
			}
		}
		if w.Spec.Versions[i].Schema != nil {
			uses[schemaPlaceholderIndex(w.Spec.Versions[i].Schema)]++
			continue
		}
		raw, err := appendValidationJSON(nil, v.Schema)
		if err != nil {
			// encoding/json words the error.
			if raw, err = json.Marshal(v.Schema); err != nil {
				return nil, err
			}
		}
		w.Spec.Versions[i].Schema = schemaPlaceholder(len(schemas))
		schemas, uses = append(schemas, raw), append(uses, 1)
	}
	out, err := json.Marshal(&w)
	if err != nil || len(schemas) == 0 {
		return out, err
	}
	// A placeholder is a JSON string no encoded CRD field could hold but
	// for a string value of exactly that text; if one does, encode the
	// plain way.
	for k := range schemas {
		if bytes.Count(out, schemaPlaceholder(k)) != uses[k] {
			return json.Marshal(crd)
		}
	}
	spliced := make([]byte, 0, len(out)+len(schemas[0])*len(crd.Spec.Versions))
	rest := out
	for {
		i := bytes.Index(rest, schemaPlaceholderPrefix)
		if i < 0 {
			break
		}
		end := i + bytes.IndexByte(rest[i+1:], '"') + 2
		spliced = append(spliced, rest[:i]...)
		spliced = append(spliced, schemas[schemaPlaceholderIndex(rest[i:end])]...)
		rest = rest[end:]
	}
	return append(spliced, rest...), nil
}

// schemaPlaceholderPrefix starts the JSON string that stands for the k-th
// distinct schema while a CRD is encoded.
var schemaPlaceholderPrefix = []byte(`"\u0000trellis-schema-`)

func schemaPlaceholder(k int) json.RawMessage {
	return json.RawMessage(fmt.Sprintf(`%s%d"`, schemaPlaceholderPrefix, k))
}

func schemaPlaceholderIndex(p []byte) int {
	k, _ := strconv.Atoi(string(p[len(schemaPlaceholderPrefix) : len(p)-1]))
	return k
}

// decodeCRD decodes a CRD as sigsjson.UnmarshalStrict does, versions with
// byte-identical schemas sharing one decoded schema. The schemas are cut
// out first (SplitCRDSchemas), so the checking decoder reads only the
// rest, and each distinct schema is read by parseValidation in one pass.
// ok is false when the JSON has an unknown or duplicate field or does not
// decode: the caller then decodes it the usual way, which words the
// errors as upstream.
func decodeCRD(data []byte) (crd *apiextensionsv1.CustomResourceDefinition, ok bool) {
	rest, schemas, ok := SplitCRDSchemas(data)
	if !ok {
		return nil, false
	}
	var w crdWire
	if strict, err := sigsjson.UnmarshalStrict(rest, &w); err != nil || len(strict) > 0 || len(w.Spec.Versions) != len(schemas) {
		return nil, false
	}
	crd = &apiextensionsv1.CustomResourceDefinition{TypeMeta: w.TypeMeta, ObjectMeta: w.ObjectMeta, Status: w.Status,
		Spec: apiextensionsv1.CustomResourceDefinitionSpec{Group: w.Spec.Group, Names: w.Spec.Names, Scope: w.Spec.Scope,
			Conversion: w.Spec.Conversion, PreserveUnknownFields: w.Spec.PreserveUnknownFields}}
	if w.Spec.Versions != nil {
		crd.Spec.Versions = make([]apiextensionsv1.CustomResourceDefinitionVersion, len(w.Spec.Versions))
	}
	for i, v := range w.Spec.Versions {
		crd.Spec.Versions[i] = apiextensionsv1.CustomResourceDefinitionVersion{Name: v.Name, Served: v.Served, Storage: v.Storage,
			Deprecated: v.Deprecated, DeprecationWarning: v.DeprecationWarning,
			Subresources: v.Subresources, AdditionalPrinterColumns: v.AdditionalPrinterColumns,
			SelectableFields: v.SelectableFields}
		raw := schemas[i]
		if len(raw) == 0 || string(raw) == "null" {
			continue
		}
		for j := range i {
			if bytes.Equal(schemas[j], raw) {
				crd.Spec.Versions[i].Schema = crd.Spec.Versions[j].Schema
				break
			}
		}
		if crd.Spec.Versions[i].Schema != nil {
			continue
		}
		s, ok := parseValidation(raw)
		if !ok {
			s = &apiextensionsv1.CustomResourceValidation{}
			if strict, err := sigsjson.UnmarshalStrict(raw, s); err != nil || len(strict) > 0 {
				return nil, false
			}
		}
		crd.Spec.Versions[i].Schema = s
	}
	return crd, true
}

// crdJSON is the CRD kind's JSON codec (see typed.jsonCodec).
type crdJSON struct{}

func (crdJSON) encode(obj runtime.Object) ([]byte, bool, error) {
	crd, ok := obj.(*apiextensionsv1.CustomResourceDefinition)
	if !ok {
		return nil, false, nil
	}
	raw, err := encodeCRD(crd)
	return raw, true, err
}

func (crdJSON) decode(data []byte) (runtime.Object, bool) {
	crd, ok := decodeCRD(data)
	if !ok {
		return nil, false
	}
	return crd, true
}
