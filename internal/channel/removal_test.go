package channel_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/linestep/linestep/internal/channel"
	"github.com/linestep/linestep/internal/clock"
	"github.com/linestep/linestep/internal/delivery"
	"github.com/linestep/linestep/internal/keyring"
	"github.com/linestep/linestep/internal/store"
	"github.com/linestep/linestep/internal/testutil"
)

// Deliveries hold no reference to their friend on PostgreSQL (migration 0018): removing
// a channel must still leave none behind, including deliveries being written by a
// transaction that commits while the removal runs.
func TestRemoveLeavesNoDeliveries(t *testing.T) {
	testutil.EachDB(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		key, _ := keyring.ParseKey(keyring.GenerateKey())
		keys, _ := keyring.New(key)
		clk := clock.NewFake(time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC))
		channels := channel.NewService(db, keys, clk)
		deliveries := delivery.New(db, clk, nil, slog.New(slog.DiscardHandler), delivery.Config{})
		msgs := []json.RawMessage{json.RawMessage(`{"type":"text","text":"hi"}`)}

		setup := func() (string, []delivery.Item) {
			ch, err := channels.Add(ctx, "Cafe", "secret0123456789abcdef0123456789", "token")
			if err != nil {
				t.Fatal(err)
			}
			var items []delivery.Item
			for i := range 3 {
				u := fmt.Sprintf("U%032x", i+1)
				var id int64
				err := db.WriteTx(ctx, func(tx *store.Tx) error {
					return tx.QueryRowContext(ctx, `INSERT INTO friends (channel_id, line_user_id, status, status_at, created_at, updated_at)
						VALUES (?, ?, 'following', 0, 0, 0) RETURNING id`, ch.ID, u).Scan(&id)
				})
				if err != nil {
					t.Fatal(err)
				}
				items = append(items, delivery.Item{ChannelID: ch.ID, FriendID: id, LineUserID: u, Source: "api", Messages: msgs})
			}
			return ch.ID, items
		}
		count := func(items []delivery.Item) int {
			var n int
			if err := db.QueryRowContext(ctx, "SELECT COUNT(*) FROM deliveries WHERE friend_id IN (?, ?, ?)",
				items[0].FriendID, items[1].FriendID, items[2].FriendID).Scan(&n); err != nil {
				t.Fatal(err)
			}
			return n
		}

		// Pending deliveries and a queued multicast batch's members go with the channel.
		id, items := setup()
		err := db.WriteTx(ctx, func(tx *store.Tx) error {
			if _, err := deliveries.Enqueue(ctx, tx, items[0]); err != nil {
				return err
			}
			return deliveries.EnqueueMany(ctx, tx, items)
		})
		if err != nil {
			t.Fatal(err)
		}
		if n := count(items); n != 4 {
			t.Fatalf("%d deliveries written, want 4", n)
		}
		if err := channels.Remove(ctx, id); err != nil {
			t.Fatal(err)
		}
		if n := count(items); n != 0 {
			t.Fatalf("%d deliveries left after the channel was removed", n)
		}

		if db.Dialect() != store.Postgres {
			return // one writer: a removal cannot run beside a transaction
		}
		// A transaction writing deliveries holds the removal back until it commits; then
		// the removal takes them too.
		for name, write := range map[string]func(tx *store.Tx, items []delivery.Item) error{
			"pending": func(tx *store.Tx, items []delivery.Item) error {
				_, err := deliveries.Enqueue(ctx, tx, items[0])
				return err
			},
			"batch": func(tx *store.Tx, items []delivery.Item) error { return deliveries.EnqueueMany(ctx, tx, items) },
		} {
			id, items := setup()
			wrote, release := make(chan struct{}), make(chan struct{})
			txDone := make(chan error, 1)
			go func() {
				txDone <- db.WriteTx(ctx, func(tx *store.Tx) error {
					if err := write(tx, items); err != nil {
						return err
					}
					close(wrote)
					<-release
					return nil
				})
			}()
			select {
			case <-wrote:
			case err := <-txDone:
				t.Fatalf("%s: %v", name, err)
			}
			removed := make(chan error, 1)
			go func() { removed <- channels.Remove(ctx, id) }()
			select {
			case err := <-removed:
				close(release)
				<-txDone
				t.Fatalf("%s: the removal did not wait for the transaction writing deliveries: %v", name, err)
			case <-time.After(300 * time.Millisecond):
			}
			close(release)
			if err := <-txDone; err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			if err := <-removed; err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			if n := count(items); n != 0 {
				t.Fatalf("%s: %d deliveries left after the channel was removed", name, n)
			}
		}

		// And a transaction that comes after the removal began cannot write any.
		id, items = setup()
		removing, releaseRemoval := make(chan struct{}), make(chan struct{})
		removalDone := make(chan error, 1)
		go func() {
			removalDone <- db.WriteTx(ctx, func(tx *store.Tx) error {
				var got string
				if err := tx.QueryRowContext(ctx, "SELECT id FROM channels WHERE id = ? FOR UPDATE", id).Scan(&got); err != nil {
					return err
				}
				close(removing)
				<-releaseRemoval
				_, err := tx.ExecContext(ctx, "DELETE FROM channels WHERE id = ?", id)
				return err
			})
		}()
		<-removing
		late := make(chan error, 1)
		go func() {
			late <- db.WriteTx(ctx, func(tx *store.Tx) error {
				_, err := deliveries.Enqueue(ctx, tx, items[0])
				return err
			})
		}()
		time.Sleep(100 * time.Millisecond)
		close(releaseRemoval)
		if err := <-removalDone; err != nil {
			t.Fatal(err)
		}
		if err := <-late; err == nil {
			t.Fatal("a delivery was written for a channel being removed")
		}
		if n := count(items); n != 0 {
			t.Fatalf("%d deliveries left for a removed channel", n)
		}
	})
}
