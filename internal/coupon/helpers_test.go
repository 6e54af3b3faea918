package coupon_test

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/linestep/linestep/internal/clock"
	"github.com/linestep/linestep/internal/coupon"
	"github.com/linestep/linestep/internal/store"
)

const ch = "chtest"

// rig is a channel on a fresh database with a coupon service on a fake clock.
type rig struct {
	t   *testing.T
	db  *store.DB
	clk *clock.Fake
	svc *coupon.Service
	seq int
}

// 2026-11-23 09:00 in Tokyo.
var start = time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC)

func newRig(t *testing.T, db *store.DB) *rig {
	t.Helper()
	ctx := context.Background()
	if _, err := db.ExecContext(ctx, `INSERT INTO channels (id, name, secret_enc, token_enc, created_at) VALUES (?, 'Test', ?, ?, 0)`,
		ch, []byte{1}, []byte{1}); err != nil {
		t.Fatal(err)
	}
	clk := clock.NewFake(start)
	return &rig{t: t, db: db, clk: clk, svc: coupon.New(db, clk, slog.New(slog.DiscardHandler))}
}

// friends adds n friends of the channel and returns their IDs.
func (r *rig) friends(n int) []int64 {
	r.t.Helper()
	ctx := context.Background()
	ids := make([]int64, 0, n)
	err := r.db.WriteTx(ctx, func(tx *store.Tx) error {
		ids = ids[:0]
		for i := 0; i < n; i++ {
			r.seq++
			var id int64
			if err := tx.QueryRowContext(ctx, `INSERT INTO friends (channel_id, line_user_id, status, status_at, created_at, updated_at)
				VALUES (?, ?, 'following', 0, 0, 0) RETURNING id`, ch, lineUser(r.seq)).Scan(&id); err != nil {
				return err
			}
			ids = append(ids, id)
		}
		return nil
	})
	if err != nil {
		r.t.Fatal(err)
	}
	return ids
}

func lineUser(n int) string { return fmt.Sprintf("U%032x", n) }

// coupon returns a valid, enabled coupon of the channel, valid from an hour ago for a
// week; callers change what they test.
func (r *rig) coupon(key, policy string) coupon.Coupon {
	c := coupon.Coupon{ChannelID: ch, Key: key, Title: "10% off in Osaka", CodePolicy: policy,
		ValidFrom: start.Add(-time.Hour), ValidUntil: start.Add(7 * 24 * time.Hour), Enabled: true}
	if policy == coupon.PolicyShared {
		c.SharedCode = "OSAKA10"
	}
	return c
}

func (r *rig) save(c coupon.Coupon) coupon.Coupon {
	r.t.Helper()
	saved, err := r.svc.Save(context.Background(), r.db, c)
	if err != nil {
		r.t.Fatalf("save %s: %v", c.Key, err)
	}
	return saved
}

func (r *rig) issue(friendID int64, key string) (coupon.Issued, error) {
	return r.svc.Issue(context.Background(), r.db, ch, friendID, key, r.clk.Now())
}

func (r *rig) mustIssue(friendID int64, key string) coupon.Issued {
	r.t.Helper()
	is, err := r.issue(friendID, key)
	if err != nil {
		r.t.Fatalf("issue %s to %d: %v", key, friendID, err)
	}
	return is
}

func (r *rig) stats(key string) coupon.Stats {
	r.t.Helper()
	st, err := r.svc.Stats(context.Background(), ch, key)
	if err != nil {
		r.t.Fatal(err)
	}
	return st
}
