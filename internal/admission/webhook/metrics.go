package webhook

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/trellis-project/trellis/internal/admission"
)

// Metrics are per-webhook counts, under kube-apiserver's names, plus the
// back-off skips that are Trellis's own.
type Metrics struct {
	latency    *prometheus.HistogramVec
	rejections *prometheus.CounterVec
	failOpen   *prometheus.CounterVec
	skips      *prometheus.CounterVec
}

const (
	rejectionCallingWebhook = "calling_webhook_error"
	rejectionNoError        = "no_error"
)

// NewMetrics registers the webhook metrics with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "apiserver_admission_webhook_admission_duration_seconds",
			Help:    "Admission webhook latency histogram in seconds, identified by name and broken out for each operation and API resource and type (validate or admit).",
			Buckets: []float64{0.005, 0.025, 0.1, 0.5, 1.0, 2.5, 10, 25},
		}, []string{"name", "type", "operation", "rejected", "code"}),
		rejections: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "apiserver_admission_webhook_rejection_count",
			Help: "Admission webhook rejection count, identified by name and broken out for each admission type (validating or admit) and operation.",
		}, []string{"name", "type", "operation", "error_type", "rejection_code"}),
		failOpen: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "apiserver_admission_webhook_fail_open_count",
			Help: "Admission webhook fail open count, identified by name and broken out for each admission type (validating or mutating).",
		}, []string{"name", "type"}),
		skips: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "trellis_admission_webhook_backoff_skips_total",
			Help: "Calls not made because the webhook was backing off after consecutive failures, by webhook and type.",
		}, []string{"name", "type"}),
	}
	reg.MustRegister(m.latency, m.rejections, m.failOpen, m.skips)
	return m
}

func (m *Metrics) observe(h *hook, a *admission.Attributes, start, end time.Time, rejected bool, code int) {
	if m == nil {
		return
	}
	m.latency.WithLabelValues(h.name, h.kind(), string(a.Operation), strconv.FormatBool(rejected), strconv.Itoa(code)).
		Observe(end.Sub(start).Seconds())
}

func (m *Metrics) rejected(h *hook, a *admission.Attributes, errorType string, code int) {
	if m == nil {
		return
	}
	m.rejections.WithLabelValues(h.name, h.kind(), string(a.Operation), errorType, strconv.Itoa(code)).Inc()
}

func (m *Metrics) failedOpen(h *hook) {
	if m == nil {
		return
	}
	m.failOpen.WithLabelValues(h.name, h.kind()).Inc()
}

func (m *Metrics) skipped(h *hook) {
	if m == nil {
		return
	}
	m.skips.WithLabelValues(h.name, h.kind()).Inc()
}
