package handler

import (
	"bytes"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"net/http"
	"strconv"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/trellis-project/trellis/internal/store"
)

// InitialEventsEndAnnotation marks the bookmark that ends the initial
// events of a streaming list (sendInitialEvents=true).
const InitialEventsEndAnnotation = "k8s.io/initial-events-end"

func (rc *reqCtx) watch() {
	out, err := rc.negotiate(false)
	if err != nil {
		rc.fail(err)
		return
	}
	opts, err := rc.listOptions()
	if err != nil {
		rc.fail(err)
		return
	}
	if rc.info.Name != "" {
		// GET .../name?watch=true watches one object.
		sel, _ := fieldsForName(rc.info.Name, opts.FieldSelector)
		opts.FieldSelector = sel
	}
	f := rc.newFilter(opts)

	timeout := time.Duration(0)
	if opts.TimeoutSeconds != nil {
		timeout = time.Duration(*opts.TimeoutSeconds) * time.Second
	} else {
		minT := rc.h.MinWatchTimeout
		if minT == 0 {
			minT = 30 * time.Minute
		}
		timeout = minT + time.Duration(rand.Int64N(int64(minT)))
	}

	sendInitial := opts.SendInitialEvents != nil && *opts.SendInitialEvents
	fromNow := sendInitial || opts.ResourceVersion == "" || opts.ResourceVersion == "0"
	var initial []store.KV
	var after int64
	var wch store.Watch
	ctx := rc.ctx()
	for attempt := 0; ; attempt++ {
		if fromNow {
			// Initial state as synthetic ADDED events, then changes after it.
			lo := *opts
			lo.Limit, lo.Continue = 0, ""
			if sendInitial && opts.ResourceVersion != "" {
				lo.ResourceVersionMatch = metav1.ResourceVersionMatchNotOlderThan
			} else {
				lo.ResourceVersionMatch = ""
			}
			page, err := rc.collect(&lo, f)
			if err != nil {
				rc.fail(err)
				return
			}
			initial, after = page.items, page.revision
		} else {
			rev, err := strconv.ParseInt(opts.ResourceVersion, 10, 64)
			if err != nil || rev < 0 {
				rc.fail(badRequest("invalid resource version %q", opts.ResourceVersion))
				return
			}
			after = rev
		}
		var err error
		wch, err = rc.store.Watch(ctx, rc.d.ListPrefix(rc.namespace), store.WatchOptions{AfterRevision: after, ProgressNotify: opts.AllowWatchBookmarks})
		if errors.Is(err, store.ErrCompacted) && fromNow && attempt < 3 {
			// The list was read through to the store while the watch
			// cache was still filling, at a revision older than the events
			// the cache keeps: list again, now from the cache.
			continue
		}
		if errors.Is(err, store.ErrCompacted) {
			// kube-apiserver answers an expired watch with 200 and an
			// ERROR event carrying the 410, which client-go relists on.
			ww := rc.startStream(out)
			ww.writeStatus(apierrors.NewResourceExpired("too old resource version: " + opts.ResourceVersion).Status())
			return
		}
		if err != nil {
			rc.fail(rc.storeError(err, ""))
			return
		}
		break
	}
	defer wch.Stop()

	ww := rc.startStream(out)
	ww.lastRev = after
	for _, kv := range initial {
		if !ww.writeEvent(watch.Added, kv.Value, nil) {
			return
		}
	}
	if sendInitial && opts.AllowWatchBookmarks {
		if !ww.writeBookmark(after, true) {
			return
		}
	}
	ww.flush()
	// From here on the watch only follows: what it cost to start is paid.
	watchInitialized(ctx)

	timer := time.NewTimer(timeout)
	defer timer.Stop()
	bookmarkEvery := time.NewTicker(time.Minute)
	defer bookmarkEvery.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
			return
		case <-bookmarkEvery.C:
			if opts.AllowWatchBookmarks && !ww.writeBookmark(ww.lastRev, false) {
				return
			}
			ww.flush()
		case ev, ok := <-wch.Events():
			if !ok {
				if err := wch.Err(); err != nil {
					ww.writeStatus(apierrors.NewResourceExpired("too old resource version: " + strconv.FormatInt(ww.lastRev, 10)).Status())
				}
				return
			}
			if !ww.handle(ev, f, opts.AllowWatchBookmarks) {
				return
			}
			// Drain what is already queued before flushing: one flush per
			// burst, not per event.
			for more := true; more; {
				select {
				case ev, ok := <-wch.Events():
					if !ok {
						more = false
						break
					}
					if !ww.handle(ev, f, opts.AllowWatchBookmarks) {
						return
					}
				default:
					more = false
				}
			}
			ww.flush()
		}
	}
}

// watchWriter encodes watch events onto the response stream.
type watchWriter struct {
	rc      *reqCtx
	out     output
	w       http.ResponseWriter
	flusher http.Flusher
	buf     bytes.Buffer
	lastRev int64
	// headerSent: Table watch events carry column definitions only once.
	headerSent bool
	failed     bool
}

func (rc *reqCtx) startStream(out output) *watchWriter {
	if out.proto {
		rc.w.Header().Set("Content-Type", ProtobufMediaType+";stream=watch")
	} else {
		rc.w.Header().Set("Content-Type", "application/json")
	}
	rc.w.Header().Set("Transfer-Encoding", "chunked")
	rc.w.WriteHeader(http.StatusOK)
	f, _ := rc.w.(http.Flusher)
	ww := &watchWriter{rc: rc, out: out, w: rc.w, flusher: f}
	ww.flush()
	return ww
}

func (ww *watchWriter) flush() {
	if ww.flusher != nil {
		ww.flusher.Flush()
	}
}

// handle turns one store event into zero or one watch events, applying
// the selectors the way kube-apiserver does: an object that stops
// matching is reported DELETED, one that starts matching ADDED.
func (ww *watchWriter) handle(ev store.Event, f *filter, bookmarks bool) bool {
	rc := ww.rc
	switch ev.Type {
	case store.Progress:
		if ev.Revision > ww.lastRev {
			ww.lastRev = ev.Revision
			if bookmarks {
				return ww.writeBookmark(ev.Revision, false)
			}
		}
		return true
	case store.Delete:
		ww.lastRev = ev.Revision
		if ev.Prev == nil {
			return true
		}
		ok, err := rc.matches(f, ev.Prev.Value)
		if err != nil || !ok {
			return err == nil
		}
		return ww.writeEvent(watch.Deleted, SetResourceVersion(ev.Prev.Value, ev.Revision), nil)
	}
	ww.lastRev = ev.Revision
	cur, err := rc.matches(f, ev.KV.Value)
	if err != nil {
		return false
	}
	was := false
	if ev.Prev != nil {
		// Cheap without selectors: only the initializers check runs.
		if was, err = rc.matches(f, ev.Prev.Value); err != nil {
			return false
		}
	}
	switch {
	case cur && was:
		return ww.writeEvent(watch.Modified, ev.KV.Value, nil)
	case cur:
		return ww.writeEvent(watch.Added, ev.KV.Value, nil)
	case was:
		return ww.writeEvent(watch.Deleted, ev.KV.Value, nil)
	}
	return true
}

// writeEvent writes {"type":T,"object":obj}. raw is the stored object with
// its resourceVersion stamped.
func (ww *watchWriter) writeEvent(t watch.EventType, raw []byte, _ runtime.Object) bool {
	rc := ww.rc
	var objJSON []byte
	if ww.out.kind == asObject && rc.servesStoredBytes() && rc.storedAsServed(raw) {
		objJSON = raw
	} else {
		obj, err := rc.decodeStored(raw, 0)
		if err != nil {
			ww.writeStatus(apierrors.NewInternalError(err).Status())
			return false
		}
		var v any = obj
		switch ww.out.kind {
		case asTable:
			opts := rc.tableOptions()
			opts.NoHeaders = ww.headerSent
			table, err := rc.d.Strategy.Table(rc.ctx(), obj, opts)
			if err == nil {
				err = rc.fillTableObjects(table, []runtime.Object{obj}, opts, ww.out.metaVersion)
			}
			if err != nil {
				ww.writeStatus(apierrors.NewInternalError(err).Status())
				return false
			}
			ww.headerSent = true
			v = table
		case asPartialMetadata:
			p, err := partialMetadata(obj, ww.out.metaVersion)
			if err != nil {
				return false
			}
			v = p
		}
		if objJSON, err = json.Marshal(v); err != nil {
			return false
		}
	}
	return ww.writeFrame(t, objJSON)
}

func (ww *watchWriter) writeFrame(t watch.EventType, objJSON []byte) bool {
	if ww.out.proto {
		frame, err := protobufWatchFrame(ww.out.scheme, t, objJSON)
		if err != nil {
			ww.failed = true
			return false
		}
		if _, err := ww.w.Write(frame); err != nil {
			ww.failed = true
			return false
		}
		return true
	}
	ww.buf.Reset()
	ww.buf.WriteString(`{"type":"`)
	ww.buf.WriteString(string(t))
	ww.buf.WriteString(`","object":`)
	ww.buf.Write(bytes.TrimRight(objJSON, "\n"))
	ww.buf.WriteString("}\n")
	if _, err := ww.w.Write(ww.buf.Bytes()); err != nil {
		ww.failed = true
		return false
	}
	return true
}

// writeBookmark sends an object of the watched kind carrying only a
// resourceVersion (and the initial-events-end annotation when asked).
func (ww *watchWriter) writeBookmark(rev int64, initialEnd bool) bool {
	rc := ww.rc
	obj := rc.d.Strategy.New()
	obj.GetObjectKind().SetGroupVersionKind(rc.d.GroupVersionKind())
	m, err := meta.Accessor(obj)
	if err != nil {
		return false
	}
	m.SetResourceVersion(strconv.FormatInt(rev, 10))
	if initialEnd {
		m.SetAnnotations(map[string]string{InitialEventsEndAnnotation: "true"})
	}
	var v any = obj
	if ww.out.kind == asPartialMetadata {
		p, _ := partialMetadata(obj, ww.out.metaVersion)
		v = p
	}
	raw, err := json.Marshal(v)
	if err != nil {
		return false
	}
	return ww.writeFrame(watch.Bookmark, raw)
}

func (ww *watchWriter) writeStatus(st metav1.Status) {
	st.Kind, st.APIVersion = "Status", "v1"
	if st.Status == "" {
		st.Status = metav1.StatusFailure
	}
	raw, _ := json.Marshal(st)
	ww.writeFrame(watch.Error, raw)
	ww.flush()
}
