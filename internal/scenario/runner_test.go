package scenario_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/linestep/linestep/internal/scenario"
	"github.com/linestep/linestep/internal/server"
	"github.com/linestep/linestep/internal/servertest"
	"github.com/linestep/linestep/internal/store"
	"github.com/linestep/linestep/internal/testutil"
)

// A step starts when it falls due, not at the runner's next poll: nothing else wakes the
// runner here, and its poll is an hour away.
func TestStepStartsWhenDueNotAtThePoll(t *testing.T) {
	testutil.EachDSN(t, func(t *testing.T, dsn string) {
		h := servertest.StartWith(t, dsn, func(c *server.Config) { c.Scenarios.PollInterval = time.Hour })
		save(t, h, "course", `
trigger: {type: follow}
steps:
  - {key: one, messages: [{type: text, text: ようこそ}]}
  - {key: two, timing: {after: 10m}, messages: [{type: text, text: 10分後のご案内}]}
`)
		u, _ := follow(t, h, "田中")
		h.Eventually("the first step", func() bool { return len(received(t, h, u)) == 1 })
		h.Clk.Advance(10 * time.Minute)
		h.Eventually("the second step, ten minutes on", func() bool { return len(received(t, h, u)) == 2 })
		expectTexts(t, h, u, "ようこそ", "10分後のご案内")
	})
}

// Many friends reaching a step at once are run in several batches (a small one first, so
// sending starts early): each gets every step once, in as few multicasts as the
// batches allow, and the runs end completed.
func TestManyFriendsReachAStepAtOnce(t *testing.T) {
	testutil.EachDSN(t, func(t *testing.T, dsn string) {
		h := servertest.StartWith(t, dsn, func(c *server.Config) { c.Scenarios.PollInterval = time.Hour })
		save(t, h, "course", `
trigger: {type: manual}
steps:
  - {key: one, messages: [{type: text, text: ステップ1}]}
  - {key: two, timing: {after: 1h}, messages: [{type: text, text: 1時間後のご案内}]}
`)
		const n = 1300
		users, ids := addFriends(t, h, n)
		err := h.Srv.DB.WriteTx(ctx, func(tx *store.Tx) error {
			for _, id := range ids {
				if _, err := h.Srv.Scenarios.Start(ctx, tx, h.Ch, id, "course"); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		// The client holds multicasts at LINE's rate on the server's clock: move it on.
		sent := func(want int) func() bool {
			return func() bool {
				h.Clk.Advance(10 * time.Millisecond)
				return h.Emu.Stats().Deliveries >= want
			}
		}
		h.Eventually("step one for everyone", sent(n))
		h.Clk.Advance(time.Hour)
		h.Eventually("step two for everyone", sent(2*n))
		for _, u := range []string{users[0], users[499], users[500], users[n-1]} {
			expectTexts(t, h, u, "ステップ1", "1時間後のご案内")
		}
		if d, _ := h.Emu.Duplicates(h.Ch); len(d) != 0 {
			t.Errorf("%d duplicates", len(d))
		}
		// A first batch of one call's worth costs no call more: 500, then 500 and 300. Two
		// runners (PostgreSQL) may split a step's friends between them less evenly.
		if got := h.Emu.Stats().Requests["multicast"]["200"]; got != 6 && (h.Srv.DB.Dialect() == store.SQLite || got < 6) {
			t.Errorf("%d multicasts; want 6", got)
		}
		c, err := h.Srv.Scenarios.Censuses(ctx, h.Ch)
		if err != nil {
			t.Fatal(err)
		}
		if got := c["course"]; got != (scenario.Census{Completed: n}) {
			t.Errorf("census %+v; want %d completed", got, n)
		}
	})
}

// The census counts each scenario's runs by state, in its channel only.
func TestCensusByScenarioAndState(t *testing.T) {
	testutil.EachDSN(t, func(t *testing.T, dsn string) {
		h := servertest.StartWith(t, dsn, func(c *server.Config) { c.Scenarios.PollInterval = time.Hour })
		for _, key := range []string{"a", "b"} {
			save(t, h, key, `
trigger: {type: manual}
steps:
  - {key: one, timing: {after: 1h}, messages: [{type: text, text: こんにちは}]}
`)
		}
		_, ids := addFriends(t, h, 5)
		err := h.Srv.DB.WriteTx(ctx, func(tx *store.Tx) error {
			for i, id := range ids {
				if _, err := h.Srv.Scenarios.Start(ctx, tx, h.Ch, id, "a"); err != nil {
					return err
				}
				if i < 2 {
					if _, err := h.Srv.Scenarios.Start(ctx, tx, h.Ch, id, "b"); err != nil {
						return err
					}
				}
			}
			return h.Srv.Scenarios.Stop(ctx, tx, h.Ch, ids[0], "a", scenario.StopManual)
		})
		if err != nil {
			t.Fatal(err)
		}
		c, err := h.Srv.Scenarios.Censuses(ctx, h.Ch)
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]scenario.Census{"a": {Active: 4, Stopped: 1}, "b": {Active: 2}}
		if fmt.Sprint(c) != fmt.Sprint(want) {
			t.Errorf("census %v; want %v", c, want)
		}
		if other, err := h.Srv.Scenarios.Censuses(ctx, "another-channel"); err != nil || len(other) != 0 {
			t.Errorf("another channel's census: %v, %v; want none", other, err)
		}
	})
}

// addFriends makes n followers known to the emulator and to linestep, written directly.
func addFriends(t *testing.T, h *servertest.Harness, n int) ([]string, []int64) {
	t.Helper()
	users, err := h.Emu.AddFollowers(h.Ch, n)
	if err != nil {
		t.Fatal(err)
	}
	ids := make([]int64, 0, n)
	err = h.Srv.DB.WriteTx(ctx, func(tx *store.Tx) error {
		for start := 0; start < n; start += 500 {
			chunk := users[start:min(start+500, n)]
			args := make([]any, 0, 2*len(chunk))
			for _, u := range chunk {
				args = append(args, h.Ch, u)
			}
			rows, err := tx.QueryContext(ctx, `INSERT INTO friends (channel_id, line_user_id, status, status_at, created_at, updated_at) VALUES `+
				strings.TrimSuffix(strings.Repeat("(?, ?, 'following', 0, 0, 0), ", len(chunk)), ", ")+" RETURNING id", args...)
			if err != nil {
				return err
			}
			for rows.Next() {
				var id int64
				if err := rows.Scan(&id); err != nil {
					rows.Close()
					return err
				}
				ids = append(ids, id)
			}
			rows.Close()
			if err := rows.Err(); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return users, ids
}
