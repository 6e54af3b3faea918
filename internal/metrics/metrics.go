// Package metrics defines what linestep exposes at /metrics for Prometheus. Labels carry
// channel IDs, event types, endpoints and outcomes; never a user ID, a name or a message.
package metrics

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics holds every collector. Each server has its own registry, so that tests running
// several servers in one process do not collide.
type Metrics struct {
	Registry *prometheus.Registry

	WebhooksReceived  *prometheus.CounterVec // by channel
	WebhooksRejected  *prometheus.CounterVec // by reason
	WebhookDuration   prometheus.Histogram
	EventsStored      *prometheus.CounterVec // by type
	EventsDuplicate   prometheus.Counter
	EventsProcessed   *prometheus.CounterVec // by type and result
	CommitBatchEvents prometheus.Histogram
	APIRequests       *prometheus.CounterVec // by endpoint and status
	APIDuration       *prometheus.HistogramVec
	QueueDepth        *prometheus.GaugeVec // by queue
}

// New returns a fresh set of collectors on a fresh registry, with Go runtime and process
// collectors included.
func New() *Metrics {
	m := &Metrics{
		Registry: prometheus.NewRegistry(),
		WebhooksReceived: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "linestep_webhooks_received_total", Help: "Webhook requests received, by channel.",
		}, []string{"channel"}),
		WebhooksRejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "linestep_webhooks_rejected_total", Help: "Webhook requests refused, by reason (signature, malformed, too_large, unknown_channel, store_error).",
		}, []string{"reason"}),
		WebhookDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "linestep_webhook_duration_seconds", Help: "Time to verify, store durably and answer a webhook request.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2},
		}),
		EventsStored: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "linestep_events_stored_total", Help: "Webhook events stored, by event type.",
		}, []string{"type"}),
		EventsDuplicate: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "linestep_events_duplicate_total", Help: "Webhook events already stored (redeliveries), ignored.",
		}),
		EventsProcessed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "linestep_events_processed_total", Help: "Webhook events processed, by type and result (done, retry, failed).",
		}, []string{"type", "result"}),
		CommitBatchEvents: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "linestep_ingest_commit_batch_events", Help: "Events written per group commit.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 12),
		}),
		APIRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "linestep_line_api_requests_total", Help: "Calls to the LINE API, by endpoint and HTTP status (0: no answer).",
		}, []string{"endpoint", "status"}),
		APIDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "linestep_line_api_duration_seconds", Help: "Duration of calls to the LINE API, by endpoint.",
			Buckets: prometheus.DefBuckets,
		}, []string{"endpoint"}),
		QueueDepth: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "linestep_queue_depth", Help: "Work waiting, by queue (events, profiles).",
		}, []string{"queue"}),
	}
	m.Registry.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.WebhooksReceived, m.WebhooksRejected, m.WebhookDuration, m.EventsStored, m.EventsDuplicate,
		m.EventsProcessed, m.CommitBatchEvents, m.APIRequests, m.APIDuration, m.QueueDepth,
	)
	return m
}

// Handler serves the registry in Prometheus' text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{Registry: m.Registry})
}

// ObserveAPI records one call to the LINE API; it has the shape the LINE client's
// Observe hook expects.
func (m *Metrics) ObserveAPI(endpoint string, status int, d time.Duration) {
	m.APIRequests.WithLabelValues(endpoint, strconv.Itoa(status)).Inc()
	m.APIDuration.WithLabelValues(endpoint).Observe(d.Seconds())
}
