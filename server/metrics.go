package server

import (
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"k8s.io/apimachinery/pkg/types"

	"github.com/trellis-project/trellis/internal/audit"
	"github.com/trellis-project/trellis/internal/budget"
	"github.com/trellis-project/trellis/internal/request"
)

// metrics are per server (not the global registry) so that many servers
// can run in one process. Names follow kube-apiserver's.
type metrics struct {
	registry *prometheus.Registry
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	inflight *prometheus.GaugeVec
	watchers *prometheus.GaugeVec
}

func newMetrics() *metrics {
	m := &metrics{
		registry: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "apiserver_request_total",
			Help: "Counter of apiserver requests broken out for each verb, group, version, resource, subresource and HTTP response code.",
		}, []string{"verb", "group", "version", "resource", "subresource", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "apiserver_request_duration_seconds",
			Help:    "Response latency distribution in seconds for each verb, group, version, resource and subresource.",
			Buckets: []float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60},
		}, []string{"verb", "group", "version", "resource", "subresource"}),
		inflight: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "apiserver_current_inflight_requests",
			Help: "Number of requests currently being served, by kind (readOnly or mutating).",
		}, []string{"request_kind"}),
		watchers: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "apiserver_registered_watchers",
			Help: "Number of currently open watches for a given resource.",
		}, []string{"group", "version", "kind"}),
	}
	m.registry.MustRegister(m.requests, m.latency, m.inflight, m.watchers,
		prometheus.NewGoCollector(), prometheus.NewProcessCollector(prometheus.ProcessCollectorOpts{}))
	return m
}

// registerAudit exports the audit log's counters under kube-apiserver's
// names.
func (m *metrics) registerAudit(l *audit.LogBackend) {
	m.registry.MustRegister(
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "apiserver_audit_event_total",
			Help: "Counter of audit events generated and sent to the audit backend.",
		}, func() float64 { return float64(l.Processed()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name:        "apiserver_audit_error_total",
			Help:        "Counter of audit events that failed to be audited properly. Plugin identifies the plugin affected by the error.",
			ConstLabels: prometheus.Labels{"plugin": "log"},
		}, func() float64 { return float64(l.Errors()) }),
	)
}

// registerSchemaPool exports what the compiled-schema pool holds and does.
func (m *metrics) registerSchemaPool(p *budget.Pool) {
	m.registry.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "trellis_crd_schema_cache_bytes",
			Help: "Estimated memory of the compiled CustomResourceDefinition schemas held (--crd-schema-cache-size bounds it).",
		}, func() float64 { return float64(p.Stats().Used) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "trellis_crd_schema_compilations_total",
			Help: "Compilations of CustomResourceDefinition schemas and type information, first or after an eviction.",
		}, func() float64 { return float64(p.Stats().Builds) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "trellis_crd_schema_evictions_total",
			Help: "Compiled CustomResourceDefinition schemas evicted to stay within --crd-schema-cache-size.",
		}, func() float64 { return float64(p.Stats().Evictions) }),
	)
}

// apfMetrics are API Priority and Fairness's request metrics, under
// kube-apiserver's names and labels, counted by the filter (upstream's
// library counts into the process-wide legacy registry instead).
type apfMetrics struct {
	rejected   *prometheus.CounterVec // flow_schema, priority_level, reason
	dispatched *prometheus.CounterVec // flow_schema, priority_level
	executing  *prometheus.GaugeVec   // flow_schema, priority_level
	seats      *prometheus.GaugeVec   // flow_schema, priority_level
	inQueue    *prometheus.GaugeVec   // flow_schema, priority_level

	mu    sync.RWMutex
	flows map[flowKey]*flowMetrics
}

type flowKey struct{ flowSchema, priorityLevel string }

// flowMetrics are the series of one flow schema and priority level,
// looked up once rather than per request.
type flowMetrics struct {
	dispatched                prometheus.Counter
	executing, seats, inQueue prometheus.Gauge
}

func (a *apfMetrics) flow(flowSchema, priorityLevel string) *flowMetrics {
	k := flowKey{flowSchema, priorityLevel}
	a.mu.RLock()
	f := a.flows[k]
	a.mu.RUnlock()
	if f != nil {
		return f
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if f := a.flows[k]; f != nil {
		return f
	}
	f = &flowMetrics{
		dispatched: a.dispatched.WithLabelValues(flowSchema, priorityLevel),
		executing:  a.executing.WithLabelValues(flowSchema, priorityLevel),
		seats:      a.seats.WithLabelValues(flowSchema, priorityLevel),
		inQueue:    a.inQueue.WithLabelValues(flowSchema, priorityLevel),
	}
	a.flows[k] = f
	return f
}

func (m *metrics) registerAPF() *apfMetrics {
	labels := []string{"flow_schema", "priority_level"}
	a := &apfMetrics{
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "apiserver_flowcontrol_rejected_requests_total",
			Help: "Requests API Priority and Fairness turned away, by flow schema, priority level and reason.",
		}, append(labels, "reason")),
		dispatched: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "apiserver_flowcontrol_dispatched_requests_total",
			Help: "Requests API Priority and Fairness let execute, by flow schema and priority level.",
		}, labels),
		executing: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "apiserver_flowcontrol_current_executing_requests",
			Help: "Requests executing now (watches: while they start), by flow schema and priority level.",
		}, labels),
		seats: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "apiserver_flowcontrol_current_executing_seats",
			Help: "Seats held by executing requests, by flow schema and priority level.",
		}, labels),
		inQueue: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "apiserver_flowcontrol_current_inqueue_requests",
			Help: "Requests waiting in a queue now, by flow schema and priority level.",
		}, labels),
		flows: map[flowKey]*flowMetrics{},
	}
	m.registry.MustRegister(a.rejected, a.dispatched, a.executing, a.seats, a.inQueue)
	return a
}

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{})
}

// statusRecorder captures the response code for the request counter.
type statusRecorder struct {
	http.ResponseWriter
	code int
}

func (s *statusRecorder) WriteHeader(code int) {
	if s.code == 0 {
		s.code = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	if s.code == 0 {
		s.code = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

func (s *statusRecorder) Flush() {
	if f, ok := s.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

func (m *metrics) instrument(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		info := request.InfoFrom(r.Context())
		verb, group, version, res, sub := "", "", "", "", ""
		if info != nil {
			verb = info.Verb
			if info.IsResourceRequest {
				group, version, res, sub = info.APIGroup, info.APIVersion, info.Resource, info.Subresource
			}
		}
		kind := "readOnly"
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			kind = "mutating"
		}
		if verb == "watch" {
			g := m.watchers.WithLabelValues(group, version, res)
			g.Inc()
			defer g.Dec()
		} else {
			g := m.inflight.WithLabelValues(kind)
			g.Inc()
			defer g.Dec()
		}
		rec := &statusRecorder{ResponseWriter: w}
		start := time.Now()
		next.ServeHTTP(rec, r)
		if rec.code == 0 {
			rec.code = http.StatusOK
		}
		reported := reportedVerb(r, info)
		m.requests.WithLabelValues(reported, group, version, res, sub, strconv.Itoa(rec.code)).Inc()
		if verb != "watch" {
			m.latency.WithLabelValues(reported, group, version, res, sub).Observe(time.Since(start).Seconds())
		}
	})
}

// connectSubresources are reported with the CONNECT verb, as upstream.
var connectSubresources = map[string]bool{"log": true, "exec": true, "portforward": true, "attach": true, "proxy": true}

// reportedVerb is the verb label kube-apiserver's metrics give a request:
// the HTTP method, except LIST and WATCH for collection reads,
// DELETECOLLECTION, APPLY for server-side apply and CONNECT for the
// connect subresources; dashboards written for kube-apiserver select on
// these.
func reportedVerb(r *http.Request, info *request.Info) string {
	if info == nil || !info.IsResourceRequest {
		return strings.ToUpper(r.Method)
	}
	if connectSubresources[info.Subresource] {
		return "CONNECT"
	}
	switch info.Verb {
	case "list":
		return "LIST"
	case "watch":
		return "WATCH"
	case "deletecollection":
		return "DELETECOLLECTION"
	case "patch":
		if r.Header.Get("Content-Type") == string(types.ApplyPatchType) {
			return "APPLY"
		}
	}
	return strings.ToUpper(r.Method)
}
