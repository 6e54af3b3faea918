// Package ingest owns the webhook event log: it receives LINE's webhooks, verifies them,
// stores every event durably before answering, and later hands each stored event, once,
// to the domain packages that registered for its type.
package ingest

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/linestep/linestep/internal/channel"
	"github.com/linestep/linestep/internal/clock"
	"github.com/linestep/linestep/internal/line"
	"github.com/linestep/linestep/internal/metrics"
	"github.com/linestep/linestep/internal/store"
)

// DefaultMaxBody is the largest webhook body accepted. LINE's bodies are a few kilobytes;
// a megabyte leaves room for large batches and refuses floods.
const DefaultMaxBody = 1 << 20

// Channels finds a channel's secret; *channel.Service implements it.
type Channels interface {
	Get(ctx context.Context, id string) (channel.Channel, error)
}

// Handler answers POST /webhook/{channelID}. It makes no remote call: LINE counts an
// answer slower than 2 s as a failure.
type Handler struct {
	Channels  Channels
	Committer *Committer
	Metrics   *metrics.Metrics
	Clock     clock.Clock
	Logger    *slog.Logger
	MaxBody   int64
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// The answer's latency is real time, whatever the injected clock says the events'
	// arrival time is.
	began := time.Now()
	defer func() { h.Metrics.WebhookDuration.Observe(time.Since(began).Seconds()) }()
	start := h.Clock.Now()
	id := r.PathValue("channelID")
	ch, err := h.Channels.Get(r.Context(), id)
	if errors.Is(err, store.ErrNotFound) {
		h.reject(w, "unknown_channel", http.StatusNotFound, "unknown channel")
		return
	}
	if err != nil {
		h.Logger.Error("webhook: channel lookup failed", "channel", id, "err", err)
		h.reject(w, "store_error", http.StatusServiceUnavailable, "temporarily unavailable, retry")
		return
	}
	h.Metrics.WebhooksReceived.WithLabelValues(ch.ID).Inc()

	maxBody := h.MaxBody
	if maxBody <= 0 {
		maxBody = DefaultMaxBody
	}
	body, err := readBody(http.MaxBytesReader(w, r.Body, maxBody), r.ContentLength, maxBody)
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			h.reject(w, "too_large", http.StatusRequestEntityTooLarge, "body too large")
			return
		}
		h.reject(w, "read_error", http.StatusBadRequest, "could not read body")
		return
	}
	// The signature is checked before the body is parsed: nothing from an unsigned body
	// reaches the JSON decoder.
	if !line.VerifySignature([]byte(ch.Credentials.Secret), body, r.Header.Get("x-line-signature")) {
		h.reject(w, "signature", http.StatusUnauthorized, "invalid signature")
		return
	}
	hook, err := line.ParseWebhook(body)
	if err != nil {
		h.reject(w, "malformed", http.StatusBadRequest, "malformed webhook body")
		return
	}
	if len(hook.Events) == 0 { // LINE's "verify" call
		w.WriteHeader(http.StatusOK)
		return
	}
	if _, err := h.Committer.Store(r.Context(), ch.ID, hook.Events, start); err != nil {
		// Answering 5xx makes LINE redeliver: better than acknowledging an event we lost.
		h.Logger.Error("webhook: store failed", "channel", ch.ID, "events", len(hook.Events), "err", err)
		h.reject(w, "store_error", http.StatusServiceUnavailable, "temporarily unavailable, retry")
		return
	}
	w.WriteHeader(http.StatusOK)
}

func (h *Handler) reject(w http.ResponseWriter, reason string, status int, msg string) {
	h.Metrics.WebhooksRejected.WithLabelValues(reason).Inc()
	http.Error(w, msg, status)
}

// readBody reads r to the end like io.ReadAll, but into one buffer of the announced
// length (LINE sends Content-Length) rather than one grown from 512 bytes. The length is
// only a hint: a body longer or shorter than announced is still read whole (up to the
// MaxBytesReader's limit).
func readBody(r io.Reader, contentLength, maxBody int64) ([]byte, error) {
	if contentLength <= 0 || contentLength > maxBody {
		return io.ReadAll(r)
	}
	// One byte more than announced, so that the read that reports the end needs no growth.
	b := make([]byte, 0, contentLength+1)
	for {
		n, err := r.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err == io.EOF {
			return b, nil
		}
		if err != nil {
			return b, err
		}
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
	}
}
