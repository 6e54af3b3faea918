package api

import (
	"encoding/json"
	"net/http"
	"time"

	"github.com/linestep/linestep/internal/access"
	"github.com/linestep/linestep/internal/delivery"
)

// deliveryJSON is one outbox row: what a friend was (or is to be) sent, and how it went.
type deliveryJSON struct {
	ID        int64           `json:"id"`
	Source    string          `json:"source"`
	SourceID  int64           `json:"source_id,omitempty"`
	SourceRef string          `json:"source_ref,omitempty"`
	State     string          `json:"state"`
	Method    string          `json:"method,omitempty"`
	LastError string          `json:"last_error,omitempty"`
	Messages  json.RawMessage `json:"messages"`
	DueAt     *time.Time      `json:"due_at"`
	CreatedAt *time.Time      `json:"created_at"`
	SentAt    *time.Time      `json:"sent_at"`
	// Duplicated: LINE had accepted the call before (an earlier attempt sent it).
	Duplicated bool `json:"duplicated"`
}

func (a *API) deliveryRoutes() []route {
	return []route{
		{"GET", "/api/v1/channels/{ch}/friends/{id}/deliveries", access.DeliveriesRead, a.friendDeliveries},
		{"GET", "/api/v1/channels/{ch}/deliveries/counts", access.DeliveriesRead, a.deliveryCounts},
	}
}

func (a *API) friendDeliveries(w http.ResponseWriter, r *http.Request, c *call) error {
	f, err := a.friend(r, c)
	if err != nil {
		return err
	}
	limit, ps := queryInt(r.URL.Query(), "limit", 50, 1, 500)
	if ps != nil {
		return invalidInput(ps...)
	}
	recs, err := a.cfg.Delivery.ForFriend(r.Context(), f.ID, int(limit))
	if err != nil {
		return err
	}
	out := make([]deliveryJSON, 0, len(recs))
	for _, d := range recs {
		out = append(out, deliveryJSON{ID: d.ID, Source: d.Source, SourceID: d.SourceID, SourceRef: d.SourceRef, State: d.State,
			Method: d.Method, LastError: d.LastError, Messages: d.Messages, DueAt: at(d.DueAt), CreatedAt: at(d.CreatedAt),
			SentAt: at(d.SentAt), Duplicated: d.Duplicated})
	}
	writeJSON(w, http.StatusOK, map[string]any{"deliveries": out})
	return nil
}

// deliveryCounts counts a channel's deliveries by state, every state present.
func (a *API) deliveryCounts(w http.ResponseWriter, r *http.Request, c *call) error {
	got, err := a.cfg.Delivery.Counts(r.Context(), c.channel)
	if err != nil {
		return err
	}
	counts := map[string]int{}
	for _, st := range []string{delivery.Pending, delivery.Sending, delivery.Sent, delivery.Failed, delivery.Dropped, delivery.Cancelled} {
		counts[st] = got[st]
	}
	for st, n := range got {
		counts[st] = n
	}
	writeJSON(w, http.StatusOK, map[string]any{"counts": counts})
	return nil
}
