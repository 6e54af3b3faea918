package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/linestep/linestep/internal/idempotency"
	"github.com/linestep/linestep/internal/store"
)

// IdempotencyHeader names a request: a client that sends it again with the same key
// (after a timeout, a dropped connection, a crash of its own) gets the first answer
// again, and nothing is created or sent twice.
const IdempotencyHeader = "Idempotency-Key"

var (
	errIdempotencyKey = apiError(http.StatusBadRequest, "invalid_idempotency_key",
		IdempotencyHeader+" must be 1 to 255 printable ASCII characters without spaces",
		IdempotencyHeader+" は空白を含まない1〜255文字の表示可能な ASCII 文字にしてください")
	errIdempotencyReuse = apiError(http.StatusUnprocessableEntity, "idempotency_key_reused",
		"this "+IdempotencyHeader+" was used for a different request in the last 24 hours; use a new key for a new request",
		"この "+IdempotencyHeader+" は24時間以内に別のリクエストで使われています。新しいリクエストには新しいキーを使ってください")
)

// idempotent is the Idempotency-Key a request sent; nil when it sent none, and then its
// methods let the work go ahead as asked.
type idempotent struct{ key idempotency.Key }

// idempotentOf reads the request's key. route names the endpoint; request is the body as
// decoded, whose encoding (with the path) a repeat must match.
func idempotentOf(r *http.Request, c *call, route string, request any) (*idempotent, error) {
	name := r.Header.Get(IdempotencyHeader)
	if name == "" {
		return nil, nil
	}
	if len(name) > 255 || bytes.ContainsFunc([]byte(name), func(b rune) bool { return b <= ' ' || b >= 0x7f }) {
		return nil, errIdempotencyKey
	}
	j, err := json.Marshal(request)
	if err != nil {
		return nil, fmt.Errorf("api: idempotency: %w", err)
	}
	return &idempotent{idempotency.Key{Scope: "api-token:" + strconv.FormatInt(c.token.ID, 10), Name: name,
		Route: route, Channel: c.channel, Hash: idempotency.Hash([]byte(r.URL.Path), j)}}, nil
}

// claim records the key in tx ahead of the work. For a repeat it returns the first
// answer, which the caller writes instead of doing the work.
func (k *idempotent) claim(ctx context.Context, tx *store.Tx, now time.Time) (*idempotency.Answer, error) {
	if k == nil {
		return nil, nil
	}
	a, err := idempotency.Claim(ctx, tx, k.key, now)
	if errors.Is(err, idempotency.ErrReused) {
		return nil, errIdempotencyReuse
	}
	return a, err
}

// answer encodes the work's answer and stores it under the key, in the work's
// transaction.
func (k *idempotent) answer(ctx context.Context, tx *store.Tx, status int, v any) (*idempotency.Answer, error) {
	body, err := encodeJSON(v)
	if err != nil {
		return nil, fmt.Errorf("api: encode answer: %w", err)
	}
	a := &idempotency.Answer{Status: status, Body: body}
	if k == nil {
		return a, nil
	}
	return a, idempotency.Save(ctx, tx, k.key, *a)
}

// writeAnswer sends an answer, fresh or stored; a stored one says so.
func writeAnswer(w http.ResponseWriter, a *idempotency.Answer, replayed bool) {
	if replayed {
		w.Header().Set("Idempotent-Replayed", "true")
	}
	writeBody(w, a.Status, a.Body)
}
