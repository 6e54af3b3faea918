package web

import (
	"net/http"

	"github.com/linestep/linestep/internal/access"
	"github.com/linestep/linestep/internal/channel"
	"github.com/linestep/linestep/internal/friend"
)

func (c *Console) dashboardRoutes(mux *http.ServeMux) {
	c.handle(mux, "GET", "/console/{$}", access.DashboardRead, c.dashboard)
}

type channelSummary struct {
	channel.Channel
	Counts     map[friend.Status]int
	WebhookURL string
}

func (c *Console) dashboard(w http.ResponseWriter, r *http.Request, q *request) {
	chans, err := c.Channels.List(r.Context())
	if err != nil {
		c.fail(w, r, q, err)
		return
	}
	var out []channelSummary
	for _, ch := range chans {
		if !q.P.OnChannel(ch.ID) {
			continue
		}
		counts, err := c.Friends.Counts(r.Context(), ch.ID)
		if err != nil {
			c.fail(w, r, q, err)
			return
		}
		scheme := "http"
		if r.TLS != nil {
			scheme = "https"
		}
		out = append(out, channelSummary{Channel: ch, Counts: counts, WebhookURL: scheme + "://" + r.Host + ch.WebhookPath()})
	}
	pending, err := c.Events.Pending(r.Context())
	if err != nil {
		c.fail(w, r, q, err)
		return
	}
	c.render(w, r, http.StatusOK, "dashboard", "dash.title", q, map[string]any{"Channels": out, "Pending": pending})
}
