package emulator

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Stats counts what the emulator has seen.
type Stats struct {
	// Requests by endpoint name, then HTTP status ("0": the connection was dropped).
	Requests map[string]map[string]int `json:"requests"`
	// Webhooks by the server's answer status ("0": no answer).
	Webhooks map[string]int `json:"webhooks"`
	// Faults injected, by kind (error, slow, drop).
	Faults map[string]int `json:"faults"`
	// Deliveries is how many (user, request) deliveries happened; Messages counts the
	// message objects in them.
	Deliveries int `json:"deliveries"`
	Messages   int `json:"messages"`
}

// Stats returns a snapshot of the counters.
func (e *Emulator) Stats() Stats {
	e.mu.Lock()
	defer e.mu.Unlock()
	s := Stats{Requests: map[string]map[string]int{}, Webhooks: map[string]int{}, Faults: map[string]int{}}
	for ep, m := range e.stats.requests {
		s.Requests[ep] = map[string]int{}
		for st, n := range m {
			s.Requests[ep][strconv.Itoa(st)] = n
		}
	}
	for st, n := range e.stats.webhooks {
		s.Webhooks[strconv.Itoa(st)] = n
	}
	for k, n := range e.stats.faults {
		s.Faults[k] = n
	}
	for _, ch := range e.channels {
		// Counted as they happen: walking every user's record here, under the lock that
		// every API call takes, stalled the API while a benchmark polled the counters.
		s.Deliveries += ch.delivered
		s.Messages += ch.messagesDelivered
	}
	return s
}

// Duplicate is content that one user received more than once through sends other than
// replies: what exactly-once delivery must never produce (unless the same content was
// really meant to be sent twice).
type Duplicate struct {
	UserID     string            `json:"userId"`
	Count      int               `json:"count"`
	RequestIDs []string          `json:"requestIds"`
	Messages   []json.RawMessage `json:"messages"`
}

// Duplicates lists, per user, identical message content received more than once.
func (e *Emulator) Duplicates(channelID string) ([]Duplicate, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	ch, ok := e.channels[channelID]
	if !ok {
		return nil, ErrUnknownChannel
	}
	var out []Duplicate
	for _, u := range ch.users {
		seen := map[string]*Duplicate{}
		var order []string
		for _, r := range u.received {
			if r.Via == "reply" {
				continue
			}
			key := canonical(r.Messages)
			d, ok := seen[key]
			if !ok {
				d = &Duplicate{UserID: u.ID, Messages: r.Messages}
				seen[key] = d
				order = append(order, key)
			}
			d.Count++
			d.RequestIDs = append(d.RequestIDs, r.RequestID)
		}
		for _, k := range order {
			if seen[k].Count > 1 {
				out = append(out, *seen[k])
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].UserID < out[j].UserID })
	return out, nil
}

func canonical(msgs []json.RawMessage) string {
	var b bytes.Buffer
	for _, m := range msgs {
		json.Compact(&b, m)
		b.WriteByte(0)
	}
	return b.String()
}

// control serves the emulator's own JSON API. It has no authentication: it is a test
// tool, and `linestep emulator` listens on loopback by default.
func (e *Emulator) control(mux *http.ServeMux) {
	mux.HandleFunc("GET /_emulator/stats", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, e.Stats())
	})
	mux.HandleFunc("PUT /_emulator/faults", func(w http.ResponseWriter, r *http.Request) {
		var f struct {
			ErrorRate, SlowRate, DropRate float64
			SlowDelayMs                   int64
			Endpoints                     []string
		}
		if !readJSON(w, r, &f) {
			return
		}
		e.SetFaults(Faults{ErrorRate: f.ErrorRate, SlowRate: f.SlowRate, DropRate: f.DropRate,
			SlowDelay: time.Duration(f.SlowDelayMs) * time.Millisecond, Endpoints: f.Endpoints})
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("POST /_emulator/channels", func(w http.ResponseWriter, r *http.Request) {
		var c struct {
			ID, Secret, AccessToken, BotUserID, WebhookURL string
			Quota                                          int64
		}
		if !readJSON(w, r, &c) {
			return
		}
		err := e.AddChannel(Channel{ID: c.ID, Secret: c.Secret, AccessToken: c.AccessToken,
			BotUserID: c.BotUserID, WebhookURL: c.WebhookURL, Quota: c.Quota})
		if controlError(w, err) {
			return
		}
		writeJSON(w, http.StatusCreated, map[string]string{"id": c.ID})
	})
	mux.HandleFunc("PUT /_emulator/channels/{ch}/standby", func(w http.ResponseWriter, r *http.Request) {
		var s struct{ Standby bool }
		if readJSON(w, r, &s) && !controlError(w, e.SetStandby(r.PathValue("ch"), s.Standby)) {
			w.WriteHeader(http.StatusNoContent)
		}
	})
	mux.HandleFunc("GET /_emulator/channels/{ch}/users", func(w http.ResponseWriter, r *http.Request) {
		users, err := e.Users(r.PathValue("ch"))
		if controlError(w, err) {
			return
		}
		sort.Slice(users, func(i, j int) bool { return users[i].ID < users[j].ID })
		writeJSON(w, http.StatusOK, map[string]any{"users": users})
	})
	mux.HandleFunc("POST /_emulator/channels/{ch}/users", func(w http.ResponseWriter, r *http.Request) {
		var u User
		if !readJSON(w, r, &u) {
			return
		}
		if u.ID == "" {
			u.ID = NewUserID()
		}
		if controlError(w, e.AddUser(r.PathValue("ch"), u)) {
			return
		}
		writeJSON(w, http.StatusCreated, map[string]string{"userId": u.ID})
	})
	mux.HandleFunc("POST /_emulator/channels/{ch}/followers", func(w http.ResponseWriter, r *http.Request) {
		var n struct{ Count int }
		if !readJSON(w, r, &n) {
			return
		}
		if n.Count < 1 || n.Count > 1_000_000 {
			controlError(w, errors.New("emulator: invalid count: want 1 to 1,000,000"))
			return
		}
		ids, err := e.AddFollowers(r.PathValue("ch"), n.Count)
		if !controlError(w, err) {
			writeJSON(w, http.StatusCreated, map[string]int{"added": len(ids)})
		}
	})
	mux.HandleFunc("GET /_emulator/channels/{ch}/users/{user}/received", func(w http.ResponseWriter, r *http.Request) {
		rec, err := e.ReceivedBy(r.PathValue("ch"), r.PathValue("user"))
		if !controlError(w, err) {
			writeJSON(w, http.StatusOK, map[string]any{"received": rec})
		}
	})
	mux.HandleFunc("GET /_emulator/channels/{ch}/duplicates", func(w http.ResponseWriter, r *http.Request) {
		d, err := e.Duplicates(r.PathValue("ch"))
		if !controlError(w, err) {
			writeJSON(w, http.StatusOK, map[string]any{"duplicates": d})
		}
	})
	mux.HandleFunc("POST /_emulator/channels/{ch}/events/{event}/redeliver", func(w http.ResponseWriter, r *http.Request) {
		res, err := e.Redeliver(r.Context(), r.PathValue("ch"), r.PathValue("event"))
		e.actAnswer(w, res, err)
	})
	mux.HandleFunc("POST /_emulator/channels/{ch}/users/{user}/{act}", func(w http.ResponseWriter, r *http.Request) {
		var in struct {
			Text, PackageID, StickerID, Data string
			ImageBase64, ContentType         string
		}
		if r.ContentLength != 0 && !readJSON(w, r, &in) {
			return
		}
		ch, u, ctx := r.PathValue("ch"), r.PathValue("user"), context.WithoutCancel(r.Context())
		var res WebhookResult
		var err error
		switch r.PathValue("act") {
		case "follow":
			res, err = e.Follow(ctx, ch, u)
		case "block":
			res, err = e.Block(ctx, ch, u)
		case "text":
			res, err = e.SendText(ctx, ch, u, in.Text)
		case "sticker":
			res, err = e.SendSticker(ctx, ch, u, in.PackageID, in.StickerID)
		case "image":
			data, derr := base64.StdEncoding.DecodeString(in.ImageBase64)
			if derr != nil || in.ContentType == "" {
				controlError(w, errors.New("emulator: invalid image: want imageBase64 and contentType"))
				return
			}
			res, err = e.SendImage(ctx, ch, u, data, in.ContentType)
		case "postback":
			res, err = e.Postback(ctx, ch, u, in.Data)
		default:
			writeJSON(w, http.StatusNotFound, errorBody{Message: "unknown act: want follow, block, text, sticker, image or postback"})
			return
		}
		e.actAnswer(w, res, err)
	})
}

// actAnswer reports a user's act: 200 with the result, also when the server refused
// the webhook (the result's status says so), 4xx when the act itself was impossible.
func (e *Emulator) actAnswer(w http.ResponseWriter, res WebhookResult, err error) {
	var we *WebhookError
	if err != nil && !errors.As(err, &we) {
		controlError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, res)
}

func readJSON(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 8<<20))
	if err := dec.Decode(v); err != nil {
		writeJSON(w, http.StatusBadRequest, errorBody{Message: "emulator: the body is not the expected JSON"})
		return false
	}
	return true
}

// controlError answers err (if any) and reports whether it did.
func controlError(w http.ResponseWriter, err error) bool {
	if err == nil {
		return false
	}
	status := http.StatusBadRequest
	switch {
	case errors.Is(err, ErrUnknownChannel), errors.Is(err, ErrUnknownUser):
		status = http.StatusNotFound
	case errors.Is(err, ErrFollowing), errors.Is(err, ErrNotFollowing):
		status = http.StatusConflict
	}
	writeJSON(w, status, errorBody{Message: strings.TrimPrefix(err.Error(), "emulator: ")})
	return true
}
