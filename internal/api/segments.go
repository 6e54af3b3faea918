package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/linestep/linestep/internal/access"
	"github.com/linestep/linestep/internal/segment"
	"github.com/linestep/linestep/internal/store"
)

// segmentJSON is a saved segment: a filter kept under a key, for broadcasts to name.
type segmentJSON struct {
	Key       string         `json:"key"`
	Name      string         `json:"name"`
	Filter    segment.Filter `json:"filter"`
	CreatedAt *time.Time     `json:"created_at"`
	UpdatedAt *time.Time     `json:"updated_at"`
}

func toSegmentJSON(s segment.Saved) segmentJSON {
	return segmentJSON{Key: s.Key, Name: s.Name, Filter: s.Filter, CreatedAt: at(s.CreatedAt), UpdatedAt: at(s.UpdatedAt)}
}

func (a *API) segmentRoutes() []route {
	return []route{
		{"GET", "/api/v1/channels/{ch}/segments", access.BroadcastsRead, a.listSegments},
		{"GET", "/api/v1/channels/{ch}/segments/{key}", access.BroadcastsRead, a.getSegment},
		{"PUT", "/api/v1/channels/{ch}/segments/{key}", access.BroadcastsWrite, a.putSegment},
		{"DELETE", "/api/v1/channels/{ch}/segments/{key}", access.BroadcastsWrite, a.deleteSegment},
	}
}

var errNoSegment = notFound("segment", "セグメント")

func (a *API) listSegments(w http.ResponseWriter, r *http.Request, c *call) error {
	ss, err := segment.ListSegments(r.Context(), a.cfg.DB, c.channel)
	if err != nil {
		return err
	}
	out := make([]segmentJSON, 0, len(ss))
	for _, s := range ss {
		out = append(out, toSegmentJSON(s))
	}
	writeJSON(w, http.StatusOK, map[string]any{"segments": out})
	return nil
}

func (a *API) getSegment(w http.ResponseWriter, r *http.Request, c *call) error {
	s, err := segment.GetSegment(r.Context(), a.cfg.DB, c.channel, r.PathValue("key"))
	if errors.Is(err, store.ErrNotFound) {
		return errNoSegment
	}
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, toSegmentJSON(s))
	return nil
}

// putSegment creates (201) or replaces (200) a saved segment. Its filter must resolve
// now: a tag, field or scenario it names must exist.
func (a *API) putSegment(w http.ResponseWriter, r *http.Request, c *call) error {
	key := r.PathValue("key")
	if !segment.ValidKey(key) {
		return invalidInput(Problem{Path: "key", EN: "a segment key is 1 to 64 of a-z, 0-9, _ and -, starting with a letter or digit",
			JA: "キーは英小文字・数字・「_」「-」の1〜64文字(先頭は英小文字か数字)にしてください"})
	}
	var req struct {
		Name   string          `json:"name"`
		Filter json.RawMessage `json:"filter"`
	}
	if err := decode(r, &req); err != nil {
		return err
	}
	var f segment.Filter
	if raw := bytes.TrimSpace(req.Filter); len(raw) == 0 || raw[0] != '{' {
		return invalidInput(Problem{Path: "filter", EN: "give the filter as a JSON object ({} for every follower)",
			JA: "filter は JSON オブジェクトで指定してください(全員なら {})"})
	} else if p, ok := decodePart(raw, "filter", &f); !ok {
		return invalidInput(p)
	}
	status := http.StatusCreated
	if _, err := segment.GetSegment(r.Context(), a.cfg.DB, c.channel, key); err == nil {
		status = http.StatusOK
	} else if !errors.Is(err, store.ErrNotFound) {
		return err
	}
	s, err := segment.SaveSegment(r.Context(), a.cfg.DB, segment.Saved{ChannelID: c.channel, Key: key, Name: req.Name, Filter: f})
	var se *segment.Error
	if errors.As(err, &se) {
		switch se.Path {
		case "name":
			return invalidInput(Problem{Path: "name", EN: "a name is at most 100 characters on one line", JA: "名前は改行を含まない100文字以内にしてください"})
		case "key":
			return invalidInput(Problem{Path: "key", EN: se.Msg, JA: "キーが正しくありません"})
		}
		return invalidInput(segmentProblem(err, ""))
	}
	if err != nil {
		return err
	}
	writeJSON(w, status, toSegmentJSON(s))
	return nil
}

// deleteSegment removes a saved segment. Broadcasts made from it keep their copy of its
// filter.
func (a *API) deleteSegment(w http.ResponseWriter, r *http.Request, c *call) error {
	key := r.PathValue("key")
	if err := segment.DeleteSegment(r.Context(), a.cfg.DB, c.channel, key); errors.Is(err, store.ErrNotFound) {
		return errNoSegment
	} else if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"key": key, "deleted": true})
	return nil
}
