package web

import (
	"net/http"

	"github.com/linestep/linestep/internal/channel"
	"github.com/linestep/linestep/internal/friend"
)

// The privacy notice: a public page per LINE account that tells its friends what is
// kept about them, why and for how long, generated from the field catalogue and the
// account's retention settings, so that it cannot drift from what linestep does. It
// shows the catalogue only, never anyone's data. Link it from the rich menu or the
// greeting (プライバシーポリシー).

type privacyView struct {
	Settings channel.Settings
	Fields   []friend.Field
	// Special reports whether any field needs the friend's consent.
	Special bool
}

func (c *Console) privacyRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /privacy/{channelID}", c.privacyPage)
}

func (c *Console) privacyPage(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	id := r.PathValue("channelID")
	st, err := c.Channels.Settings(ctx, id)
	if err != nil {
		c.fail(w, r, nil, err)
		return
	}
	fields, err := c.Friends.Fields(ctx, id)
	if err != nil {
		c.fail(w, r, nil, err)
		return
	}
	v := privacyView{Settings: st, Fields: fields}
	for _, f := range fields {
		v.Special = v.Special || f.Sensitivity == friend.Special
	}
	c.render(w, r, http.StatusOK, "privacy", "privacy.title", nil, v)
}
