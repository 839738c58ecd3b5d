package handler

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"net/http"
	"strconv"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metainternalversion "k8s.io/apimachinery/pkg/apis/meta/internalversion"
	metainternalversionscheme "k8s.io/apimachinery/pkg/apis/meta/internalversion/scheme"
	metainternalversionvalidation "k8s.io/apimachinery/pkg/apis/meta/internalversion/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/trellis-project/trellis/internal/admission/initializer"
	"github.com/trellis-project/trellis/internal/store"
)

func (rc *reqCtx) get() {
	out, err := rc.negotiate(false)
	if err != nil {
		rc.fail(err)
		return
	}
	kv, err := rc.store.Get(rc.ctx(), rc.d.Key(rc.namespace, rc.info.Name))
	if err == nil && !rc.includeUninitialized() && initializer.Pending(kv.Value) {
		err = store.ErrNotFound
	}
	if err != nil {
		rc.fail(rc.storeError(err, rc.info.Name))
		return
	}
	if out.kind == asObject && rc.servesStoredBytes() && rc.storedAsServed(kv.Value) {
		writeRaw(rc.w, http.StatusOK, out, kv.Value)
		return
	}
	obj, err := rc.decodeStored(kv.Value, kv.ModRevision)
	if err != nil {
		rc.fail(err)
		return
	}
	rc.writeOne(http.StatusOK, out, obj)
}

// writeOne writes a single object in the negotiated form.
func (rc *reqCtx) writeOne(code int, out output, obj runtime.Object) {
	if rc.respondAs != nil {
		as, err := rc.respondAs(obj)
		if err != nil {
			rc.fail(apierrors.NewInternalError(err))
			return
		}
		writeObject(rc.w, rc.r, code, output{yaml: out.yaml, proto: out.proto, scheme: out.scheme}, as)
		return
	}
	switch out.kind {
	case asTable:
		opts := rc.tableOptions()
		table, err := rc.d.Strategy.Table(rc.ctx(), obj, opts)
		if err != nil {
			rc.fail(err)
			return
		}
		if err := rc.fillTableObjects(table, []runtime.Object{obj}, opts, out.metaVersion); err != nil {
			rc.fail(err)
			return
		}
		writeObject(rc.w, rc.r, code, out, table)
	case asPartialMetadata:
		p, err := partialMetadata(obj, out.metaVersion)
		if err != nil {
			rc.fail(err)
			return
		}
		writeObject(rc.w, rc.r, code, out, p)
	default:
		writeObject(rc.w, rc.r, code, out, obj)
	}
}

// listOptions parses and validates the list and watch query parameters as
// kube-apiserver does.
func (rc *reqCtx) listOptions() (*metainternalversion.ListOptions, error) {
	opts := &metainternalversion.ListOptions{}
	if err := metainternalversionscheme.ParameterCodec.DecodeParameters(rc.r.URL.Query(), metav1.SchemeGroupVersion, opts); err != nil {
		return nil, apierrors.NewBadRequest(err.Error())
	}
	if errs := metainternalversionvalidation.ValidateListOptions(opts, true); len(errs) > 0 {
		return nil, apierrors.NewInvalid(schema.GroupKind{Group: metav1.GroupName, Kind: "ListOptions"}, "", errs)
	}
	if opts.FieldSelector != nil && !opts.FieldSelector.Empty() {
		known := rc.d.Strategy.Fields(rc.d.Strategy.New())
		for _, req := range opts.FieldSelector.Requirements() {
			if _, ok := known[req.Field]; !ok {
				return nil, apierrors.NewBadRequest(fmt.Sprintf("field label not supported: %s", req.Field))
			}
		}
	}
	if rc.namespace != "" && opts.FieldSelector != nil {
		// A namespace in the path already narrows the list.
		if ns, ok := opts.FieldSelector.RequiresExactMatch("metadata.namespace"); ok && ns != rc.namespace {
			return opts, nil
		}
	}
	return opts, nil
}

// filter decides which stored objects a list or watch returns.
type filter struct {
	label        labels.Selector
	field        fields.Selector
	needsDecode  bool // a field selector on a kind-specific field
	matchesEmpty bool
	// hideUninitialized hides objects with initializers pending.
	hideUninitialized bool
}

func (rc *reqCtx) newFilter(opts *metainternalversion.ListOptions) *filter {
	f := &filter{label: opts.LabelSelector, field: opts.FieldSelector}
	if f.label == nil {
		f.label = labels.Everything()
	}
	if f.field == nil {
		f.field = fields.Everything()
	}
	for _, req := range f.field.Requirements() {
		if req.Field != "metadata.name" && req.Field != "metadata.namespace" {
			f.needsDecode = true
		}
	}
	f.matchesEmpty = f.label.Empty() && f.field.Empty()
	f.hideUninitialized = !rc.includeUninitialized()
	return f
}

// matches reports whether the stored object raw passes the selectors.
func (rc *reqCtx) matches(f *filter, raw []byte) (bool, error) {
	if f.hideUninitialized && initializer.Pending(raw) {
		return false, nil
	}
	if f.matchesEmpty {
		return true, nil
	}
	if f.needsDecode {
		obj, err := rc.decodeStored(raw, 0)
		if err != nil {
			return false, err
		}
		m, err := meta.Accessor(obj)
		if err != nil {
			return false, err
		}
		return f.label.Matches(labels.Set(m.GetLabels())) && f.field.Matches(rc.d.Strategy.Fields(obj)), nil
	}
	m, err := peekMeta(raw)
	if err != nil {
		return false, err
	}
	fs := fields.Set{"metadata.name": m.Metadata.Name}
	if m.Metadata.Namespace != "" {
		fs["metadata.namespace"] = m.Metadata.Namespace
	}
	return f.label.Matches(labels.Set(m.Metadata.Labels)) && f.field.Matches(fs), nil
}

// continueToken is kube-apiserver's continue format, so tokens look
// familiar: base64 of {"v":"meta.k8s.io/v1","rv":N,"start":"<key>\x00"}.
type continueToken struct {
	APIVersion      string `json:"v"`
	ResourceVersion int64  `json:"rv"`
	StartKey        string `json:"start"`
}

func encodeContinue(startKey string, rev int64) string {
	b, _ := json.Marshal(continueToken{APIVersion: "meta.k8s.io/v1", ResourceVersion: rev, StartKey: startKey})
	return base64.RawURLEncoding.EncodeToString(b)
}

func decodeContinue(token, prefix string) (startKey string, rev int64, err error) {
	data, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil {
		return "", 0, fmt.Errorf("continue key is not valid: %v", err)
	}
	var c continueToken
	if err := json.Unmarshal(data, &c); err != nil {
		return "", 0, fmt.Errorf("continue key is not valid: %v", err)
	}
	if c.APIVersion != "meta.k8s.io/v1" {
		return "", 0, fmt.Errorf("continue key is not valid: server does not recognize this encoded version %q", c.APIVersion)
	}
	if c.ResourceVersion == 0 || c.StartKey == "" || strings.Contains(c.StartKey, "..") || strings.HasPrefix(c.StartKey, "/") {
		return "", 0, errors.New("continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1)")
	}
	return prefix + c.StartKey, c.ResourceVersion, nil
}

// storeListOptions maps resourceVersion, resourceVersionMatch and continue
// to a store read.
func storeListOptions(opts *metainternalversion.ListOptions, prefix string) (store.ListOptions, error) {
	var lo store.ListOptions
	if opts.Continue != "" {
		start, rev, err := decodeContinue(opts.Continue, prefix)
		if err != nil {
			return lo, apierrors.NewBadRequest(err.Error())
		}
		lo.StartKey, lo.Revision, lo.Match = start, rev, store.Exact
		return lo, nil
	}
	switch opts.ResourceVersion {
	case "":
		lo.Match = store.Latest
	case "0":
		lo.Match = store.NotOlderThan
	default:
		rev, err := strconv.ParseInt(opts.ResourceVersion, 10, 64)
		if err != nil || rev < 0 {
			return lo, apierrors.NewBadRequest(fmt.Sprintf("invalid resource version %q", opts.ResourceVersion))
		}
		lo.Revision = rev
		lo.Match = store.NotOlderThan
		if opts.ResourceVersionMatch == metav1.ResourceVersionMatchExact {
			lo.Match = store.Exact
		}
	}
	return lo, nil
}

// listPage is the result of collecting one page of matching objects.
type listPage struct {
	items    []store.KV
	revision int64
	cont     string
}

// collect reads matching objects page by page until limit are found.
func (rc *reqCtx) collect(opts *metainternalversion.ListOptions, f *filter) (listPage, error) {
	prefix := rc.d.ListPrefix(rc.namespace)
	lo, err := storeListOptions(opts, rc.d.StoragePrefix)
	if err != nil {
		return listPage{}, err
	}
	if lo.StartKey != "" && !strings.HasPrefix(lo.StartKey, prefix) {
		return listPage{}, apierrors.NewBadRequest("continue key is not valid: it does not belong to this list")
	}
	limit := opts.Limit
	var page listPage
	for {
		if limit > 0 {
			lo.Limit = max(limit-int64(len(page.items)), 100)
			if !f.matchesEmpty {
				lo.Limit = max(lo.Limit, 500)
			}
		}
		res, err := rc.store.List(rc.ctx(), prefix, lo)
		if err != nil {
			if errors.Is(err, store.ErrCompacted) && opts.Continue != "" {
				return listPage{}, apierrors.NewResourceExpired("The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list.")
			}
			return listPage{}, rc.storeError(err, "")
		}
		page.revision = res.Revision
		for i, kv := range res.KVs {
			ok, err := rc.matches(f, kv.Value)
			if err != nil {
				return listPage{}, apierrors.NewInternalError(err)
			}
			if ok {
				page.items = append(page.items, kv)
			}
			if limit > 0 && int64(len(page.items)) == limit {
				if i < len(res.KVs)-1 || res.More {
					page.cont = encodeContinue(strings.TrimPrefix(kv.Key, rc.d.StoragePrefix)+"\x00", res.Revision)
				}
				return page, nil
			}
		}
		if !res.More || len(res.KVs) == 0 {
			return page, nil
		}
		lo.StartKey = res.KVs[len(res.KVs)-1].Key + "\x00"
		lo.Revision, lo.Match = res.Revision, store.Exact
	}
}

func (rc *reqCtx) list() {
	out, err := rc.negotiate(true)
	if err != nil {
		rc.fail(err)
		return
	}
	opts, err := rc.listOptions()
	if err != nil {
		rc.fail(err)
		return
	}
	page, err := rc.collect(opts, rc.newFilter(opts))
	if err != nil {
		rc.fail(err)
		return
	}
	lm := metav1.ListMeta{ResourceVersion: strconv.FormatInt(page.revision, 10), Continue: page.cont}
	if out.kind == asObject && rc.servesStoredBytes() {
		items := make([][]byte, len(page.items))
		for i, kv := range page.items {
			if !rc.storedAsServed(kv.Value) {
				items = nil
				break
			}
			items[i] = rc.listItem(kv.Value)
		}
		if items != nil {
			writeList(rc.w, out, rc.d.ListKind, rc.d.GroupVersion().String(), lm, items)
			return
		}
	}
	objs, err := rc.decodeStoredList(page.items)
	if err != nil {
		rc.fail(err)
		return
	}
	rc.writeList(out, lm, objs)
}

func (rc *reqCtx) writeList(out output, lm metav1.ListMeta, objs []runtime.Object) {
	switch out.kind {
	case asTable:
		list := rc.d.Strategy.NewList()
		if err := meta.SetList(list, objs); err != nil {
			rc.fail(err)
			return
		}
		if la, err := meta.ListAccessor(list); err == nil {
			la.SetResourceVersion(lm.ResourceVersion)
			la.SetContinue(lm.Continue)
		}
		opts := rc.tableOptions()
		table, err := rc.d.Strategy.Table(rc.ctx(), list, opts)
		if err != nil {
			rc.fail(err)
			return
		}
		if err := rc.fillTableObjects(table, objs, opts, out.metaVersion); err != nil {
			rc.fail(err)
			return
		}
		writeObject(rc.w, rc.r, http.StatusOK, out, table)
	case asPartialMetadata:
		list := &metav1.PartialObjectMetadataList{ListMeta: lm}
		list.APIVersion, list.Kind = metav1.GroupName+"/"+out.metaVersion, "PartialObjectMetadataList"
		list.Items = make([]metav1.PartialObjectMetadata, 0, len(objs))
		for _, o := range objs {
			p, err := partialMetadata(o, out.metaVersion)
			if err != nil {
				rc.fail(err)
				return
			}
			list.Items = append(list.Items, *p)
		}
		writeObject(rc.w, rc.r, http.StatusOK, out, list)
	default:
		items := make([][]byte, len(objs))
		for i, o := range objs {
			raw, err := encodeJSON(o)
			if err != nil {
				rc.fail(err)
				return
			}
			items[i] = rc.listItem(raw)
		}
		writeList(rc.w, out, rc.d.ListKind, rc.d.GroupVersion().String(), lm, items)
	}
}

// tableOptions reads includeObject and noHeaders from the query.
func (rc *reqCtx) tableOptions() *metav1.TableOptions {
	opts := &metav1.TableOptions{IncludeObject: metav1.IncludeMetadata}
	q := rc.r.URL.Query()
	switch metav1.IncludeObjectPolicy(q.Get("includeObject")) {
	case metav1.IncludeNone:
		opts.IncludeObject = metav1.IncludeNone
	case metav1.IncludeObject:
		opts.IncludeObject = metav1.IncludeObject
	}
	opts.NoHeaders = q.Get("noHeaders") == "true"
	return opts
}

// fillTableObjects sets each row's object as includeObject asks: the
// partial metadata by default, the whole object, or nothing.
func (rc *reqCtx) fillTableObjects(table *metav1.Table, objs []runtime.Object, opts *metav1.TableOptions, metaVersion string) error {
	table.APIVersion, table.Kind = metav1.GroupName+"/"+metaVersion, "Table"
	if len(table.Rows) != len(objs) {
		return fmt.Errorf("table has %d rows for %d objects", len(table.Rows), len(objs))
	}
	for i := range table.Rows {
		switch opts.IncludeObject {
		case metav1.IncludeNone:
			table.Rows[i].Object = runtime.RawExtension{}
		case metav1.IncludeObject:
			table.Rows[i].Object = runtime.RawExtension{Object: objs[i]}
		default:
			p, err := partialMetadata(objs[i], metaVersion)
			if err != nil {
				return err
			}
			table.Rows[i].Object = runtime.RawExtension{Object: p}
		}
	}
	return nil
}

// fieldsForName narrows a field selector to one object name.
func fieldsForName(name string, sel fields.Selector) (fields.Selector, error) {
	byName := fields.OneTermEqualSelector("metadata.name", name)
	if sel == nil || sel.Empty() {
		return byName, nil
	}
	return fields.AndSelectors(sel, byName), nil
}

// listItem is how one object appears in a JSON list: without kind and
// apiVersion for built-in kinds (typed objects), as kube-apiserver writes
// them; custom resources keep theirs.
func (rc *reqCtx) listItem(raw []byte) []byte {
	if _, custom := rc.d.Strategy.New().(*unstructured.Unstructured); custom {
		return raw
	}
	return withoutTypeMeta(raw)
}
