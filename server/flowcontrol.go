package server

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	flowcontrolv1 "k8s.io/api/flowcontrol/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	apirequest "k8s.io/apiserver/pkg/endpoints/request"
	"k8s.io/apiserver/pkg/server/mux"
	"k8s.io/apiserver/pkg/storage"
	utilflowcontrol "k8s.io/apiserver/pkg/util/flowcontrol"
	fcrequest "k8s.io/apiserver/pkg/util/flowcontrol/request"
	"k8s.io/client-go/informers"
	flowcontrolclient "k8s.io/client-go/kubernetes/typed/flowcontrol/v1"

	"github.com/trellis-project/trellis/internal/auth"
	"github.com/trellis-project/trellis/internal/handler"
	"github.com/trellis-project/trellis/internal/request"
)

// API Priority and Fairness, as kube-apiserver v1.37 runs it. The
// algorithms are upstream's library (k8s.io/apiserver/pkg/util/flowcontrol):
// its config controller reads FlowSchemas and PriorityLevelConfigurations
// through informers on the loopback client, writes the FlowSchemas'
// Dangling condition, classifies requests and runs the fair-queuing
// queue sets; its work estimator prices a request in seats. The HTTP
// filter around it is ours.

// maxQueueWait caps how long any request waits in a queue, as upstream.
const maxQueueWait = time.Minute

type priorityAndFairness struct {
	ctl      utilflowcontrol.Interface
	estimate fcrequest.WorkEstimatorFunc
	// dropped suggests each priority level's Retry-After from its recent
	// rejections.
	dropped utilflowcontrol.DroppedRequestsTracker
	metrics *apfMetrics
	// defaultWait bounds the queue wait of requests without a deadline
	// (watches): a quarter of the request timeout, as upstream.
	defaultWait time.Duration
	debug       *mux.PathRecorderMux
}

// newPriorityAndFairness builds the config controller over factory's
// FlowSchema and PriorityLevelConfiguration informers (start the factory
// afterwards) with the server's concurrency limit: both in-flight limits
// together, as kube-apiserver.
func (s *Server) newPriorityAndFairness(factory informers.SharedInformerFactory, client flowcontrolclient.FlowcontrolV1Interface) *priorityAndFairness {
	ctl := utilflowcontrol.New(factory, client, s.cfg.MaxRequestsInFlight+s.cfg.MaxMutatingRequestsInFlight)
	debug := mux.NewPathRecorderMux("priority-and-fairness")
	ctl.Install(debug)
	return &priorityAndFairness{
		ctl:         ctl,
		estimate:    fcrequest.NewWorkEstimator(s.objectStats, ctl.GetInterestedWatchCount, fcrequest.DefaultWorkEstimatorConfig(), ctl.GetMaxSeats),
		dropped:     utilflowcontrol.NewDroppedRequestsTracker(),
		metrics:     s.metrics.registerAPF(),
		defaultWait: s.cfg.RequestTimeout / 4,
		debug:       debug,
	}
}

// run digests configuration changes until stop closes. Until the informers
// have synced, requests are classified by the mandatory objects the
// controller holds from the start (exempt and catch-all), as upstream.
func (p *priorityAndFairness) run(stop <-chan struct{}) {
	p.ctl.Run(stop)
}

// classification is what the controller chose for one request.
type classification struct {
	flowSchema, priorityLevel       string
	flowSchemaUID, priorityLevelUID string
	queuing                         bool // the level queues rather than rejects at once
}

// The response headers in their canonical form, computed once.
var (
	priorityLevelHeader = http.CanonicalHeaderKey(flowcontrolv1.ResponseHeaderMatchedPriorityLevelConfigurationUID)
	flowSchemaHeader    = http.CanonicalHeaderKey(flowcontrolv1.ResponseHeaderMatchedFlowSchemaUID)
)

// setHeaders names the UIDs, not the names, of what the request matched,
// as upstream: names chosen by cluster admins stay private.
func (c *classification) setHeaders(w http.ResponseWriter) {
	if c == nil {
		return
	}
	h := w.Header()
	h[priorityLevelHeader] = []string{c.priorityLevelUID}
	h[flowSchemaHeader] = []string{c.flowSchemaUID}
}

// filter classifies each request and serves it once its priority level
// has seats for it; a request its level cannot take (no queuing, queue
// full, or waited too long) gets 429 with Retry-After. Long-running
// requests other than watches are not limited; a watch holds its seats
// only until its initial events are written.
func (p *priorityAndFairness) filter(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		info := request.InfoFrom(r.Context())
		u := auth.UserFrom(r.Context())
		if info == nil || u == nil {
			// Authentication always sets a user; this guards a broken chain.
			http.Error(w, fmt.Sprintf("Internal Server Error: %q: no user or request info in the context", r.RequestURI), http.StatusInternalServerError)
			return
		}
		watch := info.Verb == "watch"
		if info.LongRunning() && !watch {
			next.ServeHTTP(w, r)
			return
		}
		// The library reads both from the context shape of k8s.io/apiserver.
		ri := upstreamRequestInfo(info, r)
		ctx := apirequest.WithUser(apirequest.WithRequestInfo(r.Context(), ri), u)
		r = r.WithContext(ctx)
		t := &apfRequest{p: p, r: r}
		digest := utilflowcontrol.RequestDigest{RequestInfo: ri, User: u}
		if watch {
			p.serveWatch(w, r, t, digest, next)
		} else {
			execute := func() {
				t.executing(w)
				defer t.done()
				next.ServeHTTP(w, r)
			}
			waitCtx, cancel := p.waitContext(ctx)
			defer cancel()
			p.ctl.Handle(waitCtx, digest, t.note, t.estimateWork, t.queueNote, execute)
		}
		if !t.served.Load() {
			p.reject(w, t)
		}
	})
}

// serveWatch runs the library's Handle in a goroutine of its own, whose
// execute step lasts only while the watch starts; the watch itself is
// served on the request's goroutine, after its seats are granted.
func (p *priorityAndFairness) serveWatch(w http.ResponseWriter, r *http.Request, t *apfRequest, digest utilflowcontrol.RequestDigest, next http.Handler) {
	var (
		initialized = utilflowcontrol.NewInitializationSignal()
		granted     = make(chan struct{})
		handled     = make(chan any, 1) // Handle's panic value, or nil
		forget      utilflowcontrol.ForgetWatchFunc
	)
	defer func() {
		// A watch that failed before it started never signals.
		initialized.Signal()
		// execute set forget before Handle returned, and Handle has
		// returned by now on either path below.
		if forget != nil {
			forget()
		}
	}()
	execute := func() {
		t.executing(w)
		defer t.done()
		forget = p.ctl.RegisterWatch(r)
		close(granted)
		initialized.Wait()
	}
	go func() {
		defer func() {
			handled <- recover()
		}()
		waitCtx, cancel := p.waitContext(r.Context())
		defer cancel()
		p.ctl.Handle(waitCtx, digest, t.note, t.estimateWork, t.queueNote, execute)
	}()
	select {
	case <-granted:
		func() {
			defer func() {
				initialized.Signal()
				if v := <-handled; v != nil {
					panic(v)
				}
			}()
			next.ServeHTTP(w, r.WithContext(handler.WithWatchInitialized(r.Context(), initialized.Signal)))
		}()
	case v := <-handled:
		if v != nil {
			panic(v)
		}
	}
}

// reject answers 429 as upstream: plain text, not a Status, with the
// classification headers and the level's suggested Retry-After.
func (p *priorityAndFairness) reject(w http.ResponseWriter, t *apfRequest) {
	c := t.class
	c.setHeaders(w)
	reason := "concurrency-limit"
	switch {
	case t.queued.Load():
		reason = "time-out"
	case c != nil && c.queuing:
		reason = "queue-full"
	}
	pl := ""
	if c != nil {
		pl = c.priorityLevel
		p.metrics.rejected.WithLabelValues(c.flowSchema, c.priorityLevel, reason).Inc()
	}
	p.dropped.RecordDroppedRequest(pl)
	tooManyRequests(w, strconv.FormatInt(p.dropped.GetRetryAfter(pl), 10))
}

// tooManyRequests is kube-apiserver's answer when its concurrency limits
// turn a request away.
func tooManyRequests(w http.ResponseWriter, retryAfter string) {
	w.Header().Set("Retry-After", retryAfter)
	http.Error(w, "Too many requests, please try again later.", http.StatusTooManyRequests)
}

// waitContext bounds how long a request may wait in its queue: a quarter
// of what remains of its deadline, defaultWait without one, never more
// than a minute.
func (p *priorityAndFairness) waitContext(ctx context.Context) (context.Context, context.CancelFunc) {
	if ctx.Err() != nil {
		return ctx, func() {}
	}
	now := time.Now()
	limit := p.defaultWait
	if deadline, ok := ctx.Deadline(); ok {
		limit = deadline.Sub(now) / 4
	}
	return context.WithDeadline(ctx, now.Add(min(limit, maxQueueWait)))
}

// apfRequest follows one request through the library's callbacks. note
// and estimateWork run on the goroutine calling Handle; queueNote and
// executing may run on another (the one that frees a seat dispatches).
type apfRequest struct {
	p      *priorityAndFairness
	r      *http.Request
	class  *classification
	seats  int
	queued atomic.Bool
	served atomic.Bool
}

func (t *apfRequest) note(fs *flowcontrolv1.FlowSchema, pl *flowcontrolv1.PriorityLevelConfiguration, _ string) {
	t.class = &classification{
		flowSchema: fs.Name, flowSchemaUID: string(fs.UID),
		priorityLevel: pl.Name, priorityLevelUID: string(pl.UID),
		queuing: pl.Spec.Limited != nil && pl.Spec.Limited.LimitResponse.Type == flowcontrolv1.LimitResponseTypeQueue,
	}
}

func (t *apfRequest) estimateWork() fcrequest.WorkEstimate {
	fs, pl := "", ""
	if t.class != nil {
		fs, pl = t.class.flowSchema, t.class.priorityLevel
	}
	we := t.p.estimate(t.r, fs, pl)
	t.seats = int(we.InitialSeats)
	return we
}

func (t *apfRequest) queueNote(inQueue bool) {
	g := t.p.metrics.flow(t.class.flowSchema, t.class.priorityLevel).inQueue
	if inQueue {
		t.queued.Store(true)
		g.Inc()
	} else {
		g.Dec()
	}
}

// executing records that the request got its seats; done that it gave
// them back.
func (t *apfRequest) executing(w http.ResponseWriter) {
	t.served.Store(true)
	t.class.setHeaders(w)
	f := t.p.metrics.flow(t.class.flowSchema, t.class.priorityLevel)
	f.dispatched.Inc()
	f.executing.Inc()
	f.seats.Add(float64(t.seats))
}

func (t *apfRequest) done() {
	f := t.p.metrics.flow(t.class.flowSchema, t.class.priorityLevel)
	f.executing.Dec()
	f.seats.Sub(float64(t.seats))
}

// upstreamRequestInfo is info in k8s.io/apiserver's shape, which the
// flow-control library matches FlowSchema rules and prices work against.
func upstreamRequestInfo(info *request.Info, r *http.Request) *apirequest.RequestInfo {
	ri := &apirequest.RequestInfo{
		IsResourceRequest: info.IsResourceRequest,
		Path:              info.Path,
		Verb:              info.Verb,
		APIPrefix:         info.APIPrefix,
		APIGroup:          info.APIGroup,
		APIVersion:        info.APIVersion,
		Namespace:         info.Namespace,
		Resource:          info.Resource,
		Subresource:       info.Subresource,
		Name:              info.Name,
		Parts:             info.Parts,
	}
	switch info.Verb {
	case "list", "watch", "deletecollection":
		q := r.URL.Query()
		ri.LabelSelector, ri.FieldSelector = q.Get("labelSelector"), q.Get("fieldSelector")
	}
	return ri
}

// objectStats tells the work estimator how many objects a list of a
// resource ("deployments.apps") reads, and how large they are, from the
// resource's watch cache. A resource whose cache is not running yet is
// unknown, which the estimator prices at the minimum, as upstream before
// its first count.
func (s *Server) objectStats(groupResource string) (storage.Stats, error) {
	prefix := s.storagePrefixes().of[groupResource]
	if prefix == "" {
		return storage.Stats{}, fcrequest.ObjectCountNotFoundErr
	}
	ch := s.caches.existing(prefix)
	if ch == nil || !ch.Ready() {
		return storage.Stats{}, fcrequest.ObjectCountNotFoundErr
	}
	n, size := ch.Stats()
	st := storage.Stats{ObjectCount: n}
	if n > 0 {
		st.EstimatedAverageObjectSizeBytes = size / n
	}
	return st, nil
}

// prefixIndex maps "resource.group" to the resource's storage prefix for
// one registry generation.
type prefixIndex struct {
	generation int64
	of         map[string]string
}

func (s *Server) storagePrefixes() *prefixIndex {
	gen := s.registry.Generation()
	if idx := s.prefixes.Load(); idx != nil && idx.generation == gen {
		return idx
	}
	idx := &prefixIndex{generation: gen, of: map[string]string{}}
	for _, d := range s.registry.All() {
		if d.Stored() {
			idx.of[schema.GroupResource{Group: d.Group, Resource: d.Resource}.String()] = d.StoragePrefix
		}
	}
	s.prefixes.Store(idx)
	return idx
}
