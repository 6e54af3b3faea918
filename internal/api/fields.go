package api

import (
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/linestep/linestep/internal/access"
	"github.com/linestep/linestep/internal/audit"
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
		{"PUT", "/api/v1/channels/{ch}/friends/{id}/consents/{key}", access.FriendsWrite, a.putConsent},
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
		f, err := a.pathField(r, c, tx)
		if err != nil {
			return err
		}
		if value, err = f.CheckValue(*req.Value); err != nil {
			return invalidInput(fieldValueProblem(f, err))
		}
		changed, err = a.cfg.Friends.SetField(r.Context(), tx, fr.ID, f, value)
		if errors.Is(err, friend.ErrNoConsent) {
			return errNoConsent
		}
		return err
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"friend_id": fr.ID, "key": r.PathValue("key"), "value": value, "changed": changed})
	return nil
}

// pathField is the channel's field that the path's {key} names.
func (a *API) pathField(r *http.Request, c *call, q store.Querier) (friend.Field, error) {
	f, err := a.cfg.Friends.FieldByKey(r.Context(), q, c.channel, r.PathValue("key"))
	if errors.Is(err, store.ErrNotFound) {
		return friend.Field{}, notFound("field", "項目")
	}
	return f, err
}

var errNoConsent = conflict("consent_required",
	"the field holds special care-required data: record the friend's consent first (PUT .../consents/{key})",
	"要配慮個人情報の項目です。先に本人の同意を記録してください(PUT .../consents/{key})")

// putConsent records that the friend gave or withdrew consent to keeping a special
// care-required field, as another system asked them; withdrawing deletes the value.
func (a *API) putConsent(w http.ResponseWriter, r *http.Request, c *call) error {
	fr, err := a.friend(r, c)
	if err != nil {
		return err
	}
	var req struct {
		Granted *bool  `json:"granted"`
		How     string `json:"how"`
	}
	if err := decode(r, &req); err != nil {
		return err
	}
	var ps []Problem
	if req.Granted == nil {
		ps = append(ps, Problem{Path: "granted", EN: "say true (given) or false (withdrawn)", JA: "true(同意)か false(撤回)を指定してください"})
	}
	if how := strings.TrimSpace(req.How); how == "" || len([]rune(how)) > 200 {
		ps = append(ps, Problem{Path: "how", EN: "say how the friend was asked, in at most 200 characters (no personal data)",
			JA: "どのように同意を得たかを200文字以内で書いてください(個人情報は書かないでください)"})
	}
	if ps != nil {
		return invalidInput(ps...)
	}
	err = a.cfg.DB.WriteTx(r.Context(), func(tx *store.Tx) error {
		f, err := a.pathField(r, c, tx)
		if err != nil {
			return err
		}
		if f.Sensitivity != friend.Special {
			return conflict("not_special", "consent is recorded for special care-required fields only",
				"同意を記録するのは要配慮個人情報の項目だけです")
		}
		evidence := "api-token:" + strconv.FormatInt(c.token.ID, 10) + " " + strings.TrimSpace(req.How)
		if err := a.cfg.Friends.RecordConsent(r.Context(), tx, fr.ID, f, *req.Granted, friend.ConsentByAPI, evidence, a.cfg.Clock.Now()); err != nil {
			return err
		}
		_, err = a.cfg.Audit.Append(r.Context(), tx, audit.Record{Actor: audit.Token(c.token.ID, c.token.Name), Action: audit.FriendUpdate,
			ChannelID: c.channel, Subject: audit.Subject("friend", fr.ID), Fields: []string{f.Key},
			Detail: map[string]string{"consent": strconv.FormatBool(*req.Granted)}, ClientAddr: c.client.Addr, UserAgent: c.client.UserAgent})
		return err
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"friend_id": fr.ID, "key": r.PathValue("key"), "granted": *req.Granted})
	return nil
}

func (a *API) clearField(w http.ResponseWriter, r *http.Request, c *call) error {
	fr, err := a.friend(r, c)
	if err != nil {
		return err
	}
	err = a.cfg.DB.WriteTx(r.Context(), func(tx *store.Tx) error {
		f, err := a.pathField(r, c, tx)
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
