package api

import (
	"net/http"
	"time"

	"github.com/linestep/linestep/internal/access"
)

// channelJSON is a channel as the API shows it: never its credentials.
type channelJSON struct {
	ID          string     `json:"id"`
	Name        string     `json:"name"`
	TimeZone    string     `json:"time_zone"`
	WebhookPath string     `json:"webhook_path"`
	CreatedAt   *time.Time `json:"created_at"`
}

func (a *API) channelRoutes() []route {
	return []route{
		{"GET", "/api/v1/channels", access.DashboardRead, a.listChannels},
	}
}

// listChannels lists the channels the token may act on.
func (a *API) listChannels(w http.ResponseWriter, r *http.Request, c *call) error {
	chs, err := a.cfg.Channels.List(r.Context())
	if err != nil {
		return err
	}
	out := []channelJSON{}
	for _, ch := range chs {
		if c.p.OnChannel(ch.ID) {
			out = append(out, channelJSON{ID: ch.ID, Name: ch.Name, TimeZone: ch.TimeZone, WebhookPath: ch.WebhookPath(), CreatedAt: at(ch.CreatedAt)})
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"channels": out})
	return nil
}
