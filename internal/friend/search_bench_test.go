package friend_test

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/linestep/linestep/internal/friend"
	"github.com/linestep/linestep/internal/store"
	"github.com/linestep/linestep/internal/testutil"
)

// BenchmarkSearch: a member without friends:read_pii finds one friend among n by the
// phone number the customer reads out (exact), and one who may read personal data by a
// part of it (partial) (LINESTEP_BENCH_SEARCH_FRIENDS, default 100,000; each friend has a
// phone and an email value).
func BenchmarkSearch(b *testing.B) {
	n := 100_000
	if v, err := strconv.Atoi(os.Getenv("LINESTEP_BENCH_SEARCH_FRIENDS")); err == nil && v > 0 {
		n = v
	}
	for _, engine := range []struct {
		name string
		open func(testing.TB) *store.DB
	}{{"sqlite", testutil.NewSQLite}, {"postgres", testutil.NewPostgres}} {
		b.Run(engine.name, func(b *testing.B) {
			db := engine.open(b)
			ctx := context.Background()
			fx := newFixture(b, db)
			phone, err := fx.friends.DefineField(ctx, db, friend.Field{ChannelID: fx.channel, Key: "phone", Label: "電話", Type: friend.TextField, Purpose: "連絡"})
			if err != nil {
				b.Fatal(err)
			}
			email, err := fx.friends.DefineField(ctx, db, friend.Field{ChannelID: fx.channel, Key: "email", Label: "メール", Type: friend.TextField, Purpose: "連絡"})
			if err != nil {
				b.Fatal(err)
			}
			seedSearch(b, db, fx.channel, n, phone.ID, email.ID)
			// Values written in bulk have no exact-search keys yet, like those of a
			// database from before the index: the server fills them in when it starts.
			filling := time.Now()
			keyed, err := fx.friends.FillExactKeys(ctx)
			if err != nil || keyed != 2*n {
				b.Fatalf("FillExactKeys: %d, %v; want %d", keyed, err, 2*n)
			}
			filled := time.Since(filling)
			want := n / 3
			q := fmt.Sprintf("090-%04d-%04d", want/10000, want%10000)
			b.Run("exact", func(b *testing.B) {
				for b.Loop() {
					list, err := fx.friends.Search(ctx, fx.channel, friend.SearchFilter{Exact: q})
					if err != nil || len(list) != 1 {
						b.Fatalf("search %s: %d found, %v", q, len(list), err)
					}
				}
				b.ReportMetric(float64(2*n)/filled.Seconds(), "filled-values/s")
			})
			// A part of a value, as staff who may read personal data search: a scan.
			b.Run("partial", func(b *testing.B) {
				for b.Loop() {
					if _, err := fx.friends.Search(ctx, fx.channel, friend.SearchFilter{Partial: q[4:]}); err != nil {
						b.Fatal(err)
					}
				}
			})
		})
	}
}

// seedSearch writes n friends with a phone and an email value each, in bulk: the
// friend service writes one at a time.
func seedSearch(b *testing.B, db *store.DB, channelID string, n int, phoneID, emailID int64) {
	ctx := context.Background()
	const chunk = 500
	for start := 0; start < n; start += chunk {
		end := min(start+chunk, n)
		err := db.WriteTx(ctx, func(tx *store.Tx) error {
			args := make([]any, 0, (end-start)*3)
			for i := start; i < end; i++ {
				args = append(args, channelID, fmt.Sprintf("U%032x", i), fmt.Sprintf("友だち%d", i))
			}
			rows, err := tx.QueryContext(ctx, `INSERT INTO friends (channel_id, line_user_id, status, status_at, display_name, created_at, updated_at)
				VALUES `+repeat(end-start, "(?, ?, 'following', 0, ?, 0, 0)")+` RETURNING id`, args...)
			if err != nil {
				return err
			}
			var ids []int64
			for rows.Next() {
				var id int64
				if err := rows.Scan(&id); err != nil {
					rows.Close()
					return err
				}
				ids = append(ids, id)
			}
			rows.Close()
			args = args[:0]
			for k, id := range ids {
				i := start + k
				args = append(args, id, phoneID, fmt.Sprintf("090-%04d-%04d", i/10000, i%10000),
					id, emailID, fmt.Sprintf("friend%d@example.com", i))
			}
			_, err = tx.ExecContext(ctx, `INSERT INTO friend_fields (friend_id, field_id, value, updated_at) VALUES `+
				repeat(2*len(ids), "(?, ?, ?, 0)"), args...)
			return err
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	if db.Dialect() == store.Postgres {
		if _, err := db.ExecContext(ctx, "ANALYZE"); err != nil {
			b.Fatal(err)
		}
	}
}

func repeat(n int, row string) string {
	s := row
	for range n - 1 {
		s += ", " + row
	}
	return s
}
