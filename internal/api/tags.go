package api

import (
	"errors"
	"net/http"
	"time"

	"github.com/linestep/linestep/internal/access"
	"github.com/linestep/linestep/internal/friend"
	"github.com/linestep/linestep/internal/store"
)

type tagJSON struct {
	ID        int64      `json:"id"`
	Name      string     `json:"name"`
	Friends   int        `json:"friends"`
	CreatedAt *time.Time `json:"created_at"`
}

func (a *API) tagRoutes() []route {
	return []route{
		{"GET", "/api/v1/channels/{ch}/tags", access.FriendsRead, a.listTags},
		{"POST", "/api/v1/channels/{ch}/tags", access.FriendsWrite, a.createTag},
		{"PUT", "/api/v1/channels/{ch}/friends/{id}/tags/{name}", access.FriendsWrite, a.addTag},
		{"DELETE", "/api/v1/channels/{ch}/friends/{id}/tags/{name}", access.FriendsWrite, a.removeTag},
	}
}

var badTagName = Problem{Path: "name", EN: "a tag name must be 1 to 100 characters on one line", JA: "タグ名は改行を含まない1〜100文字にしてください"}

// tagError says what was wrong with a tag name in both languages.
func tagError(err error) error {
	if errors.Is(err, friend.ErrInvalid) {
		return invalidInput(badTagName)
	}
	return err
}

func (a *API) listTags(w http.ResponseWriter, r *http.Request, c *call) error {
	tags, err := a.cfg.Friends.Tags(r.Context(), c.channel)
	if err != nil {
		return err
	}
	out := make([]tagJSON, 0, len(tags))
	for _, t := range tags {
		out = append(out, tagJSON{ID: t.ID, Name: t.Name, Friends: t.Friends, CreatedAt: at(t.CreatedAt)})
	}
	writeJSON(w, http.StatusOK, map[string]any{"tags": out})
	return nil
}

// createTag makes a tag, or answers the existing one of that name (200, not 201).
func (a *API) createTag(w http.ResponseWriter, r *http.Request, c *call) error {
	var req struct {
		Name string `json:"name"`
	}
	if err := decode(r, &req); err != nil {
		return err
	}
	status := http.StatusOK
	var t friend.Tag
	err := a.cfg.DB.WriteTx(r.Context(), func(tx *store.Tx) error {
		status = http.StatusOK
		_, err := a.cfg.Friends.TagByName(r.Context(), tx, c.channel, req.Name)
		if errors.Is(err, store.ErrNotFound) {
			status = http.StatusCreated
		} else if err != nil {
			return err
		}
		t, err = a.cfg.Friends.CreateTag(r.Context(), tx, c.channel, req.Name)
		return err
	})
	if err != nil {
		return tagError(err)
	}
	writeJSON(w, status, tagJSON{ID: t.ID, Name: t.Name, CreatedAt: at(t.CreatedAt)})
	return nil
}

// addTag puts a tag on a friend, creating the tag if need be (tags are labels, as in
// scenarios). Scenarios the tag triggers start in the same transaction.
func (a *API) addTag(w http.ResponseWriter, r *http.Request, c *call) error {
	f, err := a.friend(r, c)
	if err != nil {
		return err
	}
	var added bool
	var t friend.Tag
	err = a.cfg.DB.WriteTx(r.Context(), func(tx *store.Tx) error {
		t, err = a.cfg.Friends.CreateTag(r.Context(), tx, c.channel, r.PathValue("name"))
		if err != nil {
			return err
		}
		added, err = a.cfg.Friends.AddTag(r.Context(), tx, f.ID, t.ID)
		return err
	})
	if err != nil {
		return tagError(err)
	}
	writeJSON(w, http.StatusOK, map[string]any{"friend_id": f.ID, "tag": t.Name, "added": added})
	return nil
}

func (a *API) removeTag(w http.ResponseWriter, r *http.Request, c *call) error {
	f, err := a.friend(r, c)
	if err != nil {
		return err
	}
	var removed bool
	err = a.cfg.DB.WriteTx(r.Context(), func(tx *store.Tx) error {
		t, err := a.cfg.Friends.TagByName(r.Context(), tx, c.channel, r.PathValue("name"))
		if errors.Is(err, store.ErrNotFound) {
			return notFound("tag", "タグ")
		}
		if err != nil {
			return err
		}
		removed, err = a.cfg.Friends.RemoveTag(r.Context(), tx, f.ID, t.ID)
		return err
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"friend_id": f.ID, "tag": r.PathValue("name"), "removed": removed})
	return nil
}
