package audit

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/linestep/linestep/internal/clock"
	"github.com/linestep/linestep/internal/store"
	"github.com/linestep/linestep/internal/testutil"
)

var start = time.Date(2026, 4, 1, 9, 30, 0, 0, time.UTC)

func newLog(t *testing.T, db *store.DB) (*Log, *clock.Fake) {
	t.Helper()
	clk := clock.NewFake(start)
	return NewLog(db, clk), clk
}

// view is a typical record: a staff member looking at a friend's fields.
func view(friend int64) Record {
	return Record{
		Actor:      Staff(7, "hanako"),
		Action:     FriendView,
		ChannelID:  "ch1",
		Subject:    Subject("friend", friend),
		Fields:     []string{"name", "phone"},
		ClientAddr: "192.0.2.10",
		UserAgent:  "Mozilla/5.0",
	}
}

// appendN appends n records, one second apart.
func appendN(t *testing.T, l *Log, clk *clock.Fake, n int) []Record {
	t.Helper()
	var out []Record
	for i := range n {
		clk.Advance(time.Second)
		r, err := l.Add(context.Background(), view(int64(i+1)))
		if err != nil {
			t.Fatalf("append %d: %v", i+1, err)
		}
		out = append(out, r)
	}
	return out
}

func mustVerify(t *testing.T, l *Log, anchors ...Anchor) Report {
	t.Helper()
	rep, err := l.Verify(context.Background(), anchors...)
	if err != nil {
		t.Fatalf("verify: %v", err)
	}
	return rep
}

func TestAppendChains(t *testing.T) {
	t.Parallel()
	testutil.EachDB(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		l, clk := newLog(t, db)
		l.page = 2 // several pages, so that the chain is followed across them
		if rep := mustVerify(t, l); !rep.OK() || rep.Count != 0 || rep.Head != (Anchor{0, Genesis}) {
			t.Fatalf("empty log: %+v", rep)
		}
		recs := appendN(t, l, clk, 4)
		clk.Advance(time.Second)
		odd, err := l.Add(ctx, Record{
			Actor:      Token(3, "予約システム"),
			Action:     "coupon.redeem", // not a constant: new actions need no change here
			Fields:     []string{"memo", "", "memo", "birthday"},
			ClientAddr: "2001:db8::1",
			// From outside: invalid UTF-8 and NUL, which PostgreSQL refuses, and too long.
			UserAgent: "bad\xff\x00agent" + strings.Repeat("あ", 400),
			Detail:    map[string]string{"reason": "問い合わせ対応 <確認>", "count": "3"},
		})
		if err != nil {
			t.Fatalf("append with odd values: %v", err)
		}
		recs = append(recs, odd)
		for i, r := range recs {
			if r.Seq != int64(i+1) || !r.At.Equal(start.Add(time.Duration(i+1)*time.Second)) || len(r.Hash) != 64 {
				t.Errorf("record %d: seq %d at %v hash %q", i+1, r.Seq, r.At, r.Hash)
			}
			want := Genesis
			if i > 0 {
				want = recs[i-1].Hash
			}
			if r.PrevHash != want {
				t.Errorf("record %d does not chain: prev %s, want %s", r.Seq, r.PrevHash, want)
			}
		}
		if strings.Join(odd.Fields, ",") != "memo,birthday" || odd.Detail["reason"] != "問い合わせ対応 <確認>" {
			t.Errorf("fields/detail: %q %v", odd.Fields, odd.Detail)
		}
		if len(odd.UserAgent) > maxAgent || strings.ContainsRune(odd.UserAgent, 0) || !strings.HasPrefix(odd.UserAgent, "bad\uFFFDagent") {
			t.Errorf("user agent not cleaned: %q", odd.UserAgent)
		}
		rep := mustVerify(t, l)
		if !rep.OK() || rep.Count != 5 || rep.Head != (Anchor{5, odd.Hash}) {
			t.Fatalf("verify: %+v", rep)
		}
		if rep := mustVerify(t, l, Anchor{2, recs[1].Hash}, rep.Head); !rep.OK() {
			t.Fatalf("verify with anchors: %+v", rep.Broken)
		}
		got, err := l.Query(ctx, Filter{Subject: "", Limit: 1})
		if err != nil || len(got) != 1 || got[0].Hash != odd.Hash || got[0].Detail["count"] != "3" || got[0].Fields[1] != "birthday" {
			t.Fatalf("read back: %+v %v", got, err)
		}
	})
}

func TestInvalidRecords(t *testing.T) {
	t.Parallel()
	testutil.EachDB(t, func(t *testing.T, db *store.DB) {
		l, _ := newLog(t, db)
		for _, r := range []Record{
			{Actor: Staff(1, "a")},
			{Actor: Staff(1, "a"), Action: "Friend.View"},
			{Actor: Staff(1, "a"), Action: "friend..view"},
			{Actor: Staff(1, "a"), Action: "friend.view; DROP TABLE audit_log"},
			{Action: FriendView},
		} {
			if _, err := l.Add(context.Background(), r); !errors.Is(err, ErrInvalidRecord) {
				t.Errorf("%+v: %v", r, err)
			}
		}
		if rep := mustVerify(t, l); rep.Count != 0 {
			t.Errorf("invalid records were written: %+v", rep)
		}
	})
}

// A record appended in a transaction that rolls back goes with it: no trace, no gap.
func TestRollbackLeavesNoTrace(t *testing.T) {
	t.Parallel()
	testutil.EachDB(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		l, clk := newLog(t, db)
		appendN(t, l, clk, 2)
		failed := errors.New("the act failed")
		err := db.WriteTx(ctx, func(tx *store.Tx) error {
			if _, err := tx.ExecContext(ctx, "INSERT INTO meta (key, value) VALUES (?, ?)", "audit-test", "x"); err != nil {
				return err
			}
			if _, err := l.Append(ctx, tx, Record{Actor: System("test"), Action: SettingsChange}); err != nil {
				return err
			}
			return failed
		})
		if !errors.Is(err, failed) {
			t.Fatalf("WriteTx: %v", err)
		}
		var n int
		if err := db.QueryRowContext(ctx, "SELECT COUNT(*) FROM meta WHERE key = ?", "audit-test").Scan(&n); err != nil || n != 0 {
			t.Fatalf("the act was kept: %d %v", n, err)
		}
		if got, _ := l.Query(ctx, Filter{Action: SettingsChange}); len(got) != 0 {
			t.Fatalf("the rolled-back record is visible: %+v", got)
		}
		// The record and the act commit together.
		err = db.WriteTx(ctx, func(tx *store.Tx) error {
			if _, err := tx.ExecContext(ctx, "INSERT INTO meta (key, value) VALUES (?, ?)", "audit-test", "y"); err != nil {
				return err
			}
			_, err := l.Append(ctx, tx, Record{Actor: System("test"), Action: SettingsChange})
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		got, err := l.Query(ctx, Filter{})
		if err != nil || len(got) != 3 || got[0].Seq != 3 || got[0].Action != SettingsChange {
			t.Fatalf("after the rollback: %+v %v", got, err)
		}
		if rep := mustVerify(t, l); !rep.OK() || rep.Count != 3 {
			t.Fatalf("verify: %+v", rep)
		}
	})
}

func TestTriggersRefuseChanges(t *testing.T) {
	t.Parallel()
	testutil.EachDB(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		l, clk := newLog(t, db)
		appendN(t, l, clk, 3)
		stmts := []string{
			"UPDATE audit_log SET actor_name = 'someone else' WHERE seq = 2",
			"UPDATE audit_log SET created_at = created_at + 1",
			"DELETE FROM audit_log WHERE seq = 3",
			"DELETE FROM audit_log",
		}
		if db.Dialect() == store.Postgres {
			stmts = append(stmts, "TRUNCATE audit_log")
		}
		for _, s := range stmts {
			_, err := db.ExecContext(ctx, s)
			if err == nil || !strings.Contains(err.Error(), "append-only") {
				t.Errorf("%s: %v", s, err)
			}
		}
		if rep := mustVerify(t, l); !rep.OK() || rep.Count != 3 {
			t.Fatalf("verify: %+v", rep)
		}
	})
}

// dropTriggers does what an attacker with full rights on the database would do first.
func dropTriggers(t *testing.T, db *store.DB) {
	t.Helper()
	stmts := []string{"DROP TRIGGER audit_log_no_update", "DROP TRIGGER audit_log_no_delete"}
	if db.Dialect() == store.Postgres {
		stmts = []string{"ALTER TABLE audit_log DISABLE TRIGGER USER"}
	}
	for _, s := range stmts {
		if _, err := db.ExecContext(context.Background(), s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
}

// rehash recomputes the hashes of the records from seq on, chaining each to the one
// before, as an attacker who knows the scheme would after an edit.
func rehash(t *testing.T, db *store.DB, from int64) {
	t.Helper()
	ctx := context.Background()
	prev := Genesis
	if from > 1 {
		if err := db.QueryRowContext(ctx, "SELECT hash FROM audit_log WHERE seq = ?", from-1).Scan(&prev); err != nil {
			t.Fatal(err)
		}
	}
	rows, err := db.QueryContext(ctx, "SELECT "+columns+" FROM audit_log WHERE seq >= ? ORDER BY seq", from)
	if err != nil {
		t.Fatal(err)
	}
	var all []row
	for rows.Next() {
		var r row
		if err := r.scan(rows); err != nil {
			t.Fatal(err)
		}
		all = append(all, r)
	}
	rows.Close()
	for _, r := range all {
		r.prevHash = prev
		r.hash = r.chainHash()
		prev = r.hash
		if _, err := db.ExecContext(ctx, "UPDATE audit_log SET prev_hash = ?, hash = ? WHERE seq = ?", r.prevHash, r.hash, r.seq); err != nil {
			t.Fatal(err)
		}
	}
}

func TestTamperIsDetected(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name   string
		tamper func(t *testing.T, db *store.DB)
		anchor bool // verify against an anchor at the last record, kept before the tampering
		want   Break
	}{
		{"edit", func(t *testing.T, db *store.DB) {
			exec(t, db, "UPDATE audit_log SET fields = '[\"name\"]' WHERE seq = 4")
		}, false, Break{4, ProblemHash}},
		{"edit the time", func(t *testing.T, db *store.DB) {
			exec(t, db, "UPDATE audit_log SET created_at = created_at - 3600000 WHERE seq = 2")
		}, false, Break{2, ProblemHash}},
		{"edit and re-hash the record", func(t *testing.T, db *store.DB) {
			exec(t, db, "UPDATE audit_log SET actor_id = '1', actor_name = 'owner' WHERE seq = 4")
			exec(t, db, "UPDATE audit_log SET hash = 'x' WHERE seq = 4")
			var r row
			if err := r.scan(db.QueryRowContext(context.Background(), "SELECT "+columns+" FROM audit_log WHERE seq = 4")); err != nil {
				t.Fatal(err)
			}
			exec(t, db, "UPDATE audit_log SET hash = '"+r.chainHash()+"' WHERE seq = 4")
		}, false, Break{5, ProblemPrev}},
		{"delete", func(t *testing.T, db *store.DB) {
			exec(t, db, "DELETE FROM audit_log WHERE seq = 4")
		}, false, Break{4, ProblemMissing}},
		{"delete the first", func(t *testing.T, db *store.DB) {
			exec(t, db, "DELETE FROM audit_log WHERE seq = 1")
		}, false, Break{1, ProblemMissing}},
		{"delete and renumber", func(t *testing.T, db *store.DB) {
			exec(t, db, "DELETE FROM audit_log WHERE seq = 4")
			for seq := 5; seq <= 7; seq++ {
				exec(t, db, fmt.Sprintf("UPDATE audit_log SET seq = %d WHERE seq = %d", seq-1, seq))
			}
		}, false, Break{4, ProblemHash}},
		{"cut the tail", func(t *testing.T, db *store.DB) {
			exec(t, db, "DELETE FROM audit_log WHERE seq >= 6")
		}, true, Break{6, ProblemTruncated}},
		{"rewrite the chain from a record on", func(t *testing.T, db *store.DB) {
			exec(t, db, "UPDATE audit_log SET subject = 'friend:99' WHERE seq = 3")
			rehash(t, db, 3)
		}, true, Break{7, ProblemAnchor}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			testutil.EachDB(t, func(t *testing.T, db *store.DB) {
				l, clk := newLog(t, db)
				l.page = 3
				appendN(t, l, clk, 7)
				before := mustVerify(t, l)
				if !before.OK() || before.Count != 7 {
					t.Fatalf("before: %+v", before)
				}
				dropTriggers(t, db)
				c.tamper(t, db)
				var anchors []Anchor
				if c.anchor {
					// Without the anchor the chain that is left is sound...
					if rep := mustVerify(t, l); !rep.OK() {
						t.Fatalf("without an anchor: %+v", rep.Broken)
					}
					anchors = append(anchors, before.Head)
				}
				// ...with it, or by the chain alone, the first broken record is found.
				rep := mustVerify(t, l, anchors...)
				if rep.Broken == nil || *rep.Broken != c.want {
					t.Fatalf("got %+v, want %+v", rep.Broken, c.want)
				}
				if c.want.Problem != ProblemAnchor && rep.Count != c.want.Seq-1 {
					t.Errorf("count %d, want %d", rep.Count, c.want.Seq-1)
				}
			})
		})
	}
}

func exec(t *testing.T, db *store.DB, q string) {
	t.Helper()
	if _, err := db.ExecContext(context.Background(), q); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

// Appends from many goroutines at once, some rolled back, never fork the chain nor leave
// a gap. The point is PostgreSQL, where they run truly in parallel.
func TestConcurrentAppends(t *testing.T) {
	t.Parallel()
	testutil.EachDB(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		l := NewLog(db, clock.Real)
		const workers, each = 8, 50
		rollback := errors.New("roll back")
		var wg sync.WaitGroup
		errs := make(chan error, workers)
		var mu sync.Mutex
		kept := 0
		for w := range workers {
			wg.Go(func() {
				for i := range each {
					err := db.WriteTx(ctx, func(tx *store.Tx) error {
						if _, err := l.Append(ctx, tx, Record{Actor: Staff(int64(w), "w"), Action: FriendView,
							Subject: Subject("friend", int64(i))}); err != nil {
							return err
						}
						if i%10 == 9 {
							return rollback
						}
						return nil
					})
					if errors.Is(err, rollback) {
						continue
					}
					if err != nil {
						errs <- err
						return
					}
					mu.Lock()
					kept++
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		if kept != workers*each*9/10 {
			t.Fatalf("kept %d", kept)
		}
		rep := mustVerify(t, l)
		if !rep.OK() || rep.Count != int64(kept) || rep.Head.Seq != int64(kept) {
			t.Fatalf("verify after concurrent appends: %+v %+v", rep, rep.Broken)
		}
	})
}

func TestParseAnchor(t *testing.T) {
	t.Parallel()
	h := strings.Repeat("ab", 32)
	if a, err := ParseAnchor(" 57:" + strings.ToUpper(h) + "\n"); err != nil || a != (Anchor{57, h}) || a.String() != "57:"+h {
		t.Errorf("good anchor: %+v %v", a, err)
	}
	for _, bad := range []string{"", "57", "57:", "x:" + h, "0:" + h, "57:" + h[:62], "57:" + strings.Repeat("zz", 32)} {
		if _, err := ParseAnchor(bad); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}
