package api

import (
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/linestep/linestep/internal/access"
	"github.com/linestep/linestep/internal/friend"
	"github.com/linestep/linestep/internal/store"
)

// fieldJSON is a custom field's definition; also the body that defines one.
type fieldJSON struct {
	Key           string             `json:"key"`
	Label         string             `json:"label"`
	Type          friend.FieldType   `json:"type"`
	Choices       []string           `json:"choices,omitempty"`
	Purpose       string             `json:"purpose"`
	Sensitivity   friend.Sensitivity `json:"sensitivity,omitempty"`
	RetentionDays int                `json:"retention_days,omitempty"`
	CreatedAt     *time.Time         `json:"created_at,omitempty"`
}

func toFieldJSON(f friend.Field) fieldJSON {
	return fieldJSON{Key: f.Key, Label: f.Label, Type: f.Type, Choices: f.Choices, Purpose: f.Purpose,
		Sensitivity: f.Sensitivity, RetentionDays: f.RetentionDays, CreatedAt: at(f.CreatedAt)}
}

func (a *API) fieldRoutes() []route {
	return []route{
		{"GET", "/api/v1/channels/{ch}/fields", access.FriendsRead, a.listFields},
		{"POST", "/api/v1/channels/{ch}/fields", access.FieldsManage, a.defineField},
		{"PUT", "/api/v1/channels/{ch}/friends/{id}/fields/{key}", access.FriendsWrite, a.setField},
		{"DELETE", "/api/v1/channels/{ch}/friends/{id}/fields/{key}", access.FriendsWrite, a.clearField},
	}
}

func (a *API) listFields(w http.ResponseWriter, r *http.Request, c *call) error {
	fs, err := a.cfg.Friends.Fields(r.Context(), c.channel)
	if err != nil {
		return err
	}
	out := make([]fieldJSON, 0, len(fs))
	for _, f := range fs {
		out = append(out, toFieldJSON(f))
	}
	writeJSON(w, http.StatusOK, map[string]any{"fields": out})
	return nil
}

// defineField creates a field (201) or updates the definition of an existing key (200).
func (a *API) defineField(w http.ResponseWriter, r *http.Request, c *call) error {
	var req fieldJSON
	if err := decode(r, &req); err != nil {
		return err
	}
	if req.CreatedAt != nil {
		return invalidInput(Problem{Path: "created_at", EN: "is set by the server", JA: "サーバーが設定します"})
	}
	status := http.StatusOK
	var f friend.Field
	err := a.cfg.DB.WriteTx(r.Context(), func(tx *store.Tx) error {
		status = http.StatusOK
		_, err := a.cfg.Friends.FieldByKey(r.Context(), tx, c.channel, req.Key)
		if errors.Is(err, store.ErrNotFound) {
			status = http.StatusCreated
		} else if err != nil {
			return err
		}
		f, err = a.cfg.Friends.DefineField(r.Context(), tx, friend.Field{ChannelID: c.channel, Key: req.Key, Label: req.Label,
			Type: req.Type, Choices: req.Choices, Purpose: req.Purpose, Sensitivity: req.Sensitivity, RetentionDays: req.RetentionDays})
		return err
	})
	if errors.Is(err, friend.ErrInvalid) {
		// The friend package says what is wrong in English only.
		return invalidInput(Problem{EN: strings.TrimPrefix(err.Error(), friend.ErrInvalid.Error()+": "),
			JA: "項目の定義が正しくありません(キー・表示名・型・選択肢・利用目的・機微度・保存期間を確認してください)"})
	}
	if err != nil {
		return err
	}
	writeJSON(w, status, toFieldJSON(f))
	return nil
}

// fieldValueProblem says why a value does not fit a field, without repeating the value:
// it may be personal data.
func fieldValueProblem(f friend.Field, err error) Problem {
	ja := map[friend.FieldType]string{
		friend.TextField:   "1000文字以内の文字列にしてください",
		friend.NumberField: "数値にしてください",
		friend.DateField:   "「2026-01-31」の形の日付にしてください",
		friend.ChoiceField: "項目の選択肢のいずれかにしてください",
	}[f.Type]
	return Problem{Path: "value", EN: strings.TrimPrefix(err.Error(), friend.ErrInvalid.Error()+": "), JA: "「" + f.Key + "」: " + ja}
}

// setField stores a friend's value for a field; scenarios the field triggers start, and
// reminders timed by it move, in the same transaction.
func (a *API) setField(w http.ResponseWriter, r *http.Request, c *call) error {
	fr, err := a.friend(r, c)
	if err != nil {
		return err
	}
	var req struct {
		Value *string `json:"value"`
	}
	if err := decode(r, &req); err != nil {
		return err
	}
	if req.Value == nil {
		return invalidInput(Problem{Path: "value", EN: "give the value, as a string", JA: "値を文字列で指定してください"})
	}
	var changed bool
	var value string
	err = a.cfg.DB.WriteTx(r.Context(), func(tx *store.Tx) error {
		f, err := a.cfg.Friends.FieldByKey(r.Context(), tx, c.channel, r.PathValue("key"))
		if errors.Is(err, store.ErrNotFound) {
			return notFound("field", "項目")
		}
		if err != nil {
			return err
		}
		if value, err = f.CheckValue(*req.Value); err != nil {
			return invalidInput(fieldValueProblem(f, err))
		}
		changed, err = a.cfg.Friends.SetField(r.Context(), tx, fr.ID, f, value)
		return err
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"friend_id": fr.ID, "key": r.PathValue("key"), "value": value, "changed": changed})
	return nil
}

func (a *API) clearField(w http.ResponseWriter, r *http.Request, c *call) error {
	fr, err := a.friend(r, c)
	if err != nil {
		return err
	}
	err = a.cfg.DB.WriteTx(r.Context(), func(tx *store.Tx) error {
		f, err := a.cfg.Friends.FieldByKey(r.Context(), tx, c.channel, r.PathValue("key"))
		if errors.Is(err, store.ErrNotFound) {
			return notFound("field", "項目")
		}
		if err != nil {
			return err
		}
		return a.cfg.Friends.ClearField(r.Context(), tx, fr.ID, f.ID)
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"friend_id": fr.ID, "key": r.PathValue("key"), "cleared": true})
	return nil
}
