package friend_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"testing"
	"time"

	"github.com/linestep/linestep/internal/clock"
	"github.com/linestep/linestep/internal/friend"
	"github.com/linestep/linestep/internal/message"
	"github.com/linestep/linestep/internal/store"
	"github.com/linestep/linestep/internal/testutil"
)

// VarsOf reads many friends' variables at once (more than one statement's 500), Vars one's.
func TestVarsOfIsVars(t *testing.T) {
	testutil.EachDB(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		friends := friend.NewService(db, clock.NewFake(time.Unix(0, 0)), nil, slog.New(slog.DiscardHandler), testutil.SearchKey)
		var members []int64
		want := map[int64]message.MapVars{}
		err := db.WriteTx(ctx, func(tx *store.Tx) error {
			if _, err := tx.ExecContext(ctx, `INSERT INTO channels (id, name, secret_enc, token_enc, created_at) VALUES ('c', 'C', ?, ?, 0)`,
				[]byte{1}, []byte{1}); err != nil {
				return err
			}
			plan, err := friends.DefineField(ctx, tx, friend.Field{ChannelID: "c", Key: "plan", Label: "Plan", Type: friend.TextField, Purpose: "offers"})
			if err != nil {
				return err
			}
			city, err := friends.DefineField(ctx, tx, friend.Field{ChannelID: "c", Key: "city", Label: "City", Type: friend.TextField, Purpose: "events"})
			if err != nil {
				return err
			}
			// 1,100 friends: more than one statement's 500; some without a name, some
			// with one field, some with two.
			for i := range 1100 {
				name := fmt.Sprintf("友だち%d", i)
				if i%7 == 0 {
					name = ""
				}
				var id int64
				if err := tx.QueryRowContext(ctx, `INSERT INTO friends (channel_id, line_user_id, status, status_at, display_name, created_at, updated_at)
					VALUES ('c', ?, 'following', 0, ?, 0, 0) RETURNING id`, fmt.Sprintf("U%032x", i), name).Scan(&id); err != nil {
					return err
				}
				want[id] = message.MapVars{}
				if name != "" {
					want[id]["display_name"] = name
				}
				if i%3 == 0 {
					if _, err := friends.SetField(ctx, tx, id, plan, fmt.Sprintf("gold-%d", i)); err != nil {
						return err
					}
					want[id]["field.plan"] = fmt.Sprintf("gold-%d", i)
				}
				if i%5 == 0 {
					if _, err := friends.SetField(ctx, tx, id, city, "大阪"); err != nil {
						return err
					}
					want[id]["field.city"] = "大阪"
				}
				members = append(members, id)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		got, err := friends.VarsOf(ctx, db, append(members, 1<<40)) // and one that does not exist
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(members) {
			t.Fatalf("%d friends' variables, want %d", len(got), len(members))
		}
		for _, m := range members {
			if !maps.Equal(got[m], want[m]) {
				t.Fatalf("friend %d: VarsOf %v, want %v", m, got[m], want[m])
			}
			one, err := friends.Vars(ctx, db, m)
			if err != nil || !maps.Equal(one, want[m]) {
				t.Fatalf("friend %d: Vars %v, %v; want %v", m, one, err, want[m])
			}
		}
		if _, err := friends.Vars(ctx, db, 1<<40); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("Vars of no friend: %v", err)
		}
	})
}
