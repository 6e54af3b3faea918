package delivery

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/linestep/linestep/internal/clock"
	"github.com/linestep/linestep/internal/store"
	"github.com/linestep/linestep/internal/testutil"
)

// A claim takes calls up to its budget in weight, a multicast weighing ten pushes: what
// does not fit stays pending for the next claim.
func TestClaimKeepsToItsWeight(t *testing.T) {
	testutil.EachDB(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		clk := clock.NewFake(time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC))
		s := New(db, clk, nil, slog.New(slog.DiscardHandler), Config{})
		if _, err := db.ExecContext(ctx, `INSERT INTO channels (id, name, secret_enc, token_enc, created_at) VALUES ('c', 'C', ?, ?, 0)`,
			[]byte{1}, []byte{1}); err != nil {
			t.Fatal(err)
		}
		// Ten pairs of friends share a message (ten multicasts of two), and thirty friends
		// have one of their own (thirty pushes).
		err := db.WriteTx(ctx, func(tx *store.Tx) error {
			for i := range 50 {
				u := fmt.Sprintf("U%032x", i)
				var id int64
				if err := tx.QueryRowContext(ctx, `INSERT INTO friends (channel_id, line_user_id, status, status_at, created_at, updated_at)
					VALUES ('c', ?, 'following', 0, 0, 0) RETURNING id`, u).Scan(&id); err != nil {
					return err
				}
				text := fmt.Sprintf("for %d", i)
				if i < 20 {
					text = fmt.Sprintf("pair %d", i/2)
				}
				msg, _ := json.Marshal(map[string]string{"type": "text", "text": text})
				if _, err := s.Enqueue(ctx, tx, Item{ChannelID: "c", FriendID: id, LineUserID: u, Source: "api",
					Messages: []json.RawMessage{msg}}); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		bs, err := s.claim(ctx, 45, nil)
		if err != nil {
			t.Fatal(err)
		}
		if w := weightOf(bs); w > 45 || len(bs) != 4 || bs[0].method != MethodMulticast {
			t.Fatalf("claimed %d calls weighing %d, want the first 4 multicasts (40)", len(bs), w)
		}
		var pending int
		if err := db.QueryRowContext(ctx, "SELECT COUNT(*) FROM deliveries WHERE state = 'pending'").Scan(&pending); err != nil {
			t.Fatal(err)
		}
		if pending != 42 {
			t.Fatalf("%d pending after the claim, want 42", pending)
		}
		// Pushes weigh one each: a budget of 500 takes all the rest.
		bs, err = s.claim(ctx, 500, nil)
		if err != nil {
			t.Fatal(err)
		}
		if w := weightOf(bs); len(bs) != 36 || w != 6*multicastWeight+30 {
			t.Fatalf("claimed %d calls weighing %d, want 6 multicasts and 30 pushes", len(bs), w)
		}
	})
}
