package apiextensions

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"reflect"
	"sync"
	"sync/atomic"

	apiextensionsinternal "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	structuralschema "k8s.io/apiextensions-apiserver/pkg/apiserver/schema"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/cel"
	apiservervalidation "k8s.io/apiextensions-apiserver/pkg/apiserver/validation"
	celconfig "k8s.io/apiserver/pkg/apis/cel"
	"k8s.io/kube-openapi/pkg/validation/spec"

	"github.com/trellis-project/trellis/internal/budget"
	"github.com/trellis-project/trellis/internal/resource/builtin"
)

// schemaParts is what one version's schema compiles to: the structural
// schema (pruning, defaulting, list and metadata rules), the OpenAPI
// validators and the CEL programs. For a large schema this is megabytes,
// most of a CRD's memory.
type schemaParts struct {
	structural      *structuralschema.Structural
	validator       apiservervalidation.SchemaValidator
	statusValidator apiservervalidation.SchemaValidator
	cel             *cel.Validator
}

// The memory of a compiled schema is estimated from its shape: about 2 KB
// per node of the structural schema (a property, items or
// additionalProperties schema) for it and its OpenAPI validator, and
// about 160 KB per CEL rule, whose program declares the type of the
// subtree it checks. Measured on the large Fleet CRD of the server's
// benchmarks (443 nodes, 6 rules: 0.86 MB of schema and validator, 0.97
// MB of CEL).
const (
	bytesPerSchemaNode = 2 << 10
	bytesPerCELRule    = 160 << 10
)

// compiledSchema is one distinct schema of a CRD, shared by the versions
// that have it. It is compiled when the CRD is registered and kept in the
// server's schema pool while there is room; a schema evicted from the pool
// is compiled again on its next use, from its source.
type compiledSchema struct {
	src   *schemaSource
	parts *budget.Value[*schemaParts]
	// defaults is whether the schema defaults any field (decided at its
	// first compilation, so reads need not compile it).
	defaults atomic.Bool
}

func newCompiledSchema(pool *budget.Pool, v *apiextensionsv1.CustomResourceValidation) *compiledSchema {
	c := &compiledSchema{src: &schemaSource{typed: v}}
	c.parts = budget.NewValue(pool, func() (*schemaParts, int64, error) {
		v, err := c.src.get()
		if err != nil {
			return nil, 0, err
		}
		p, err := compileSchema(v)
		if err != nil {
			return nil, 0, err
		}
		c.defaults.Store(hasDefaults(p.structural))
		nodes, rules := countNodes(p.structural)
		return p, int64(nodes)*bytesPerSchemaNode + int64(rules)*bytesPerCELRule, nil
	}, c.src.pack)
	return c
}

// compile compiles the schema for the first time. Concurrent calls
// compile it once.
func (c *compiledSchema) compile() error {
	_, err := c.parts.Get()
	return err
}

// hasDefaults reports whether the schema defaults any field; it is known
// once the schema compiled.
func (c *compiledSchema) hasDefaults() bool { return c.defaults.Load() }

// openAPI returns the schema in OpenAPI form: from its structural form if
// it is compiled now, else converted from its source without compiling it.
func (c *compiledSchema) openAPI() (*spec.Schema, error) {
	if p, ok := c.parts.Held(); ok {
		return p.structural.ToKubeOpenAPI(), nil
	}
	v, err := c.src.get()
	if err != nil {
		return nil, err
	}
	_, structural, err := convertSchema(v)
	if err != nil {
		return nil, err
	}
	return structural.ToKubeOpenAPI(), nil
}

// get returns the compiled schema, compiling it again if it was evicted.
// That cannot fail for a schema that compiled once (compilation is
// deterministic), so a failure is a bug: it panics, and the request
// answers 500.
func (c *compiledSchema) get() *schemaParts {
	p, err := c.parts.Get()
	if err != nil {
		panic(fmt.Sprintf("recompiling a CRD schema that compiled before: %v", err))
	}
	return p
}

func (c *compiledSchema) structural() *structuralschema.Structural { return c.get().structural }

// release takes the schema out of the pool when its CRD changes or goes.
func (c *compiledSchema) release() { c.parts.Release() }

// schemaSource keeps what a compiled schema is rebuilt from: the version's
// schema as the CRD gave it until the first eviction, then its JSON,
// gzipped, so that an idle CRD costs kilobytes rather than megabytes.
type schemaSource struct {
	mu     sync.Mutex
	typed  *apiextensionsv1.CustomResourceValidation
	packed []byte
}

func (s *schemaSource) get() (*apiextensionsv1.CustomResourceValidation, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.typed != nil {
		return s.typed, nil
	}
	r, err := gzip.NewReader(bytes.NewReader(s.packed))
	if err != nil {
		return nil, err
	}
	raw, err := io.ReadAll(r)
	if err != nil {
		return nil, err
	}
	return builtin.DecodeCRDSchema(raw)
}

// pack replaces the typed schema by its gzipped JSON.
func (s *schemaSource) pack() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.typed == nil {
		return
	}
	raw, err := builtin.EncodeCRDSchema(s.typed)
	if err != nil {
		return // keep the typed form
	}
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	if _, err := w.Write(raw); err != nil || w.Close() != nil {
		return
	}
	s.packed, s.typed = bytes.Clone(buf.Bytes()), nil
}

func compileSchema(v *apiextensionsv1.CustomResourceValidation) (*schemaParts, error) {
	internal, structural, err := convertSchema(v)
	if err != nil {
		return nil, err
	}
	p := &schemaParts{structural: structural}
	// The OpenAPI validators and the CEL programs are independent and
	// each costs tens of milliseconds for a large schema: a new CRD is
	// served sooner when they are built side by side.
	var wg sync.WaitGroup
	var verr error
	wg.Go(func() {
		if p.validator, _, verr = apiservervalidation.NewSchemaValidator(internal.OpenAPIV3Schema); verr != nil {
			return
		}
		if st, ok := internal.OpenAPIV3Schema.Properties["status"]; ok {
			p.statusValidator, _, verr = apiservervalidation.NewSchemaValidator(&st)
		}
	})
	p.cel = cel.NewValidator(structural, true, celconfig.PerCallLimit)
	wg.Wait()
	if verr != nil {
		return nil, verr
	}
	return p, nil
}

// convertSchema returns a schema in its internal and structural forms.
func convertSchema(v *apiextensionsv1.CustomResourceValidation) (*apiextensionsinternal.CustomResourceValidation, *structuralschema.Structural, error) {
	if v == nil || v.OpenAPIV3Schema == nil {
		return nil, nil, fmt.Errorf("no schema")
	}
	var internal apiextensionsinternal.CustomResourceValidation
	if err := apiextensionsv1.Convert_v1_CustomResourceValidation_To_apiextensions_CustomResourceValidation(v, &internal, nil); err != nil {
		return nil, nil, fmt.Errorf("convert schema: %w", err)
	}
	structural, err := structuralschema.NewStructural(internal.OpenAPIV3Schema)
	if err != nil {
		return nil, nil, fmt.Errorf("structural schema: %w", err)
	}
	return &internal, structural, nil
}

// countNodes counts the schemas in s (itself, its properties, items and
// additionalProperties, recursively) and their CEL rules.
func countNodes(s *structuralschema.Structural) (nodes, rules int) {
	if s == nil {
		return 0, 0
	}
	nodes, rules = 1, len(s.XValidations)
	add := func(c *structuralschema.Structural) {
		n, r := countNodes(c)
		nodes, rules = nodes+n, rules+r
	}
	for _, p := range s.Properties {
		add(&p)
	}
	if s.AdditionalProperties != nil {
		add(s.AdditionalProperties.Structural)
	}
	add(s.Items)
	return nodes, rules
}

// crdSchemas are the compiled schemas of one registration of a CRD, one
// per distinct schema, by version name (served or not: objects may be
// stored in a version that is no longer served).
type crdSchemas map[string]*compiledSchema

// newCRDSchemas prepares the schema of every version of crd, one for
// versions whose schemas are equal; compile compiles them.
func newCRDSchemas(pool *budget.Pool, crd *apiextensionsv1.CustomResourceDefinition) (crdSchemas, error) {
	out := crdSchemas{}
	var distinct []*compiledSchema
	var sources []*apiextensionsv1.CustomResourceValidation
	for i := range crd.Spec.Versions {
		v := &crd.Spec.Versions[i]
		if v.Schema == nil || v.Schema.OpenAPIV3Schema == nil {
			return nil, fmt.Errorf("version %s has no schema", v.Name)
		}
		// reflect.DeepEqual, not Semantic.DeepEqual: the schemas hold no
		// type with a custom equality, and it is several times faster.
		found := -1
		for j, src := range sources {
			if reflect.DeepEqual(src, v.Schema) {
				found = j
				break
			}
		}
		if found < 0 {
			distinct, sources = append(distinct, newCompiledSchema(pool, v.Schema)), append(sources, v.Schema)
			found = len(distinct) - 1
		}
		out[v.Name] = distinct[found]
	}
	return out, nil
}

// compile compiles every distinct schema; on failure none is kept.
func (s crdSchemas) compile() error {
	for name, c := range s {
		if c.parts.Built() {
			continue
		}
		if err := c.compile(); err != nil {
			s.release()
			return fmt.Errorf("schema of version %s: %w", name, err)
		}
	}
	return nil
}

// release takes every schema out of the pool.
func (s crdSchemas) release() {
	for _, c := range s {
		c.release()
	}
}
