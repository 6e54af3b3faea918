// Package idempotency remembers, for a day, the requests that created or sent something
// (a broadcast) under a key their sender chose, so that the same request sent again
// answers what the first did instead of doing it twice. It owns the idempotency_keys
// table; the API (an Idempotency-Key header) and the console (a key in the confirmation
// form) read and write their keys through it.
package idempotency

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/linestep/linestep/internal/store"
)

// TTL is how long a key is remembered: a day, as LINE keeps its retry keys, longer than
// any sender waits to try again.
const TTL = 24 * time.Hour

// ErrReused: the key was used for another request (another body or endpoint) within TTL.
var ErrReused = errors.New("idempotency: key used for another request")

// Key names one request. Scope is whose key it is (api-token:<id>, staff:<id>): one
// sender's keys never meet another's.
type Key struct {
	Scope, Name string
	Route       string // the endpoint, e.g. "POST /api/v1/channels/{ch}/broadcasts"
	Channel     string
	Hash        string // of the request as read; see Hash
}

// Hash sums the parts of a request that a repeat must match.
func Hash(parts ...[]byte) string {
	h := sha256.New()
	for _, p := range parts {
		fmt.Fprintf(h, "%d:", len(p))
		h.Write(p)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// Answer is what the first request with a key returned.
type Answer struct {
	Status int
	Body   []byte
}

// Claim records k in tx ahead of the work it guards, so that the key and the work commit
// together or not at all; a request refused (its transaction rolled back) leaves the key
// unused. For a key seen before it returns the stored answer instead, or ErrReused when
// the request differs. A repeat racing the first waits for its commit (PostgreSQL's
// unique index; SQLite's one writer orders them anyway).
func Claim(ctx context.Context, tx *store.Tx, k Key, now time.Time) (*Answer, error) {
	// Keys past their day are forgotten first: this may be one of them.
	if _, err := tx.ExecContext(ctx, "DELETE FROM idempotency_keys WHERE created_at < ?", store.Millis(now.Add(-TTL))); err != nil {
		return nil, fmt.Errorf("idempotency: expire: %w", err)
	}
	res, err := tx.ExecContext(ctx, `INSERT INTO idempotency_keys (scope, idem_key, route, channel_id, request_hash, status, body, created_at)
		VALUES (?, ?, ?, ?, ?, 0, ?, ?) ON CONFLICT (scope, idem_key) DO NOTHING`,
		k.Scope, k.Name, k.Route, k.Channel, k.Hash, []byte{}, store.Millis(now))
	if err != nil {
		return nil, fmt.Errorf("idempotency: claim: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return nil, fmt.Errorf("idempotency: claim: %w", err)
	} else if n == 1 {
		return nil, nil // the first request with this key: do the work
	}
	var route, channel, hash string
	var a Answer
	if err := tx.QueryRowContext(ctx, "SELECT route, channel_id, request_hash, status, body FROM idempotency_keys WHERE scope = ? AND idem_key = ?",
		k.Scope, k.Name).Scan(&route, &channel, &hash, &a.Status, &a.Body); err != nil {
		return nil, fmt.Errorf("idempotency: read answer: %w", err)
	}
	if route != k.Route || channel != k.Channel || hash != k.Hash {
		return nil, ErrReused
	}
	return &a, nil
}

// Save stores the answer to the first request with k, in the transaction that claimed it.
func Save(ctx context.Context, tx *store.Tx, k Key, a Answer) error {
	if _, err := tx.ExecContext(ctx, "UPDATE idempotency_keys SET status = ?, body = ? WHERE scope = ? AND idem_key = ?",
		a.Status, a.Body, k.Scope, k.Name); err != nil {
		return fmt.Errorf("idempotency: save answer: %w", err)
	}
	return nil
}
