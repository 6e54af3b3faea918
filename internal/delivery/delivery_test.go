package delivery_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/linestep/linestep/internal/clock"
	"github.com/linestep/linestep/internal/delivery"
	"github.com/linestep/linestep/internal/emulator"
	"github.com/linestep/linestep/internal/line"
	"github.com/linestep/linestep/internal/store"
	"github.com/linestep/linestep/internal/testutil"
)

// clientSender sends through one real LINE client (against the emulator).
type clientSender struct{ c *line.Client }

func (s clientSender) Reply(ctx context.Context, _ string, token string, msgs []json.RawMessage) (line.SendResult, error) {
	return s.c.Reply(ctx, token, line.RawMessages(msgs))
}
func (s clientSender) Push(ctx context.Context, _ string, to string, msgs []json.RawMessage, key string) (line.SendResult, error) {
	return s.c.Push(ctx, to, line.RawMessages(msgs), key)
}
func (s clientSender) Multicast(ctx context.Context, _ string, to []string, msgs []json.RawMessage, key string) (line.SendResult, error) {
	return s.c.Multicast(ctx, to, line.RawMessages(msgs), key)
}

type rig struct {
	t       *testing.T
	db      *store.DB
	emu     *emulator.Emulator
	clk     *clock.Fake
	svc     *delivery.Service
	sender  clientSender
	friends map[string]int64 // LINE user ID -> friend ID
	users   []string
}

const ch = "chtest"

func newRig(t *testing.T, db *store.DB, followers int, faults emulator.Faults) *rig {
	t.Helper()
	emu := emulator.New(emulator.Config{Faults: faults, Seed: 42})
	api := httptest.NewServer(emu.Handler())
	t.Cleanup(api.Close)
	if err := emu.AddChannel(emulator.Channel{ID: ch, Secret: "s", AccessToken: "tok"}); err != nil {
		t.Fatal(err)
	}
	c, err := line.New(line.Config{APIURL: api.URL, DataAPIURL: api.URL, AccessToken: "tok", MaxAttempts: 1,
		AttemptTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	clk := clock.NewFake(time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC))
	r := &rig{t: t, db: db, emu: emu, clk: clk, sender: clientSender{c}, friends: map[string]int64{}}
	r.svc = r.service()
	ctx := context.Background()
	if _, err := db.ExecContext(ctx, `INSERT INTO channels (id, name, secret_enc, token_enc, created_at) VALUES (?, 'Test', ?, ?, 0)`,
		ch, []byte{1}, []byte{1}); err != nil {
		t.Fatal(err)
	}
	ids, err := emu.AddFollowers(ch, followers)
	if err != nil {
		t.Fatal(err)
	}
	err = db.WriteTx(ctx, func(tx *store.Tx) error {
		for _, u := range ids {
			var id int64
			if err := tx.QueryRowContext(ctx, `INSERT INTO friends (channel_id, line_user_id, status, status_at, created_at, updated_at)
				VALUES (?, ?, 'following', 0, 0, 0) RETURNING id`, ch, u).Scan(&id); err != nil {
				return err
			}
			r.friends[u] = id
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	r.users = ids
	return r
}

// service is one dispatcher on the rig's database; several may run, as several
// instances would.
func (r *rig) service() *delivery.Service {
	return delivery.New(r.db, r.clk, r.sender, slog.New(slog.DiscardHandler),
		delivery.Config{Lease: 10 * time.Second, MaxAttempts: 50})
}

func text(s string) []json.RawMessage {
	b, _ := json.Marshal(map[string]string{"type": "text", "text": s})
	return []json.RawMessage{b}
}

func (r *rig) enqueue(it delivery.Item) int64 {
	r.t.Helper()
	if it.ChannelID == "" {
		it.ChannelID = ch
	}
	if it.FriendID == 0 {
		it.FriendID = r.friends[it.LineUserID]
	}
	if it.Source == "" {
		it.Source = "api"
	}
	var id int64
	err := r.db.WriteTx(context.Background(), func(tx *store.Tx) error {
		var err error
		id, err = r.svc.Enqueue(context.Background(), tx, it)
		return err
	})
	if err != nil {
		r.t.Fatal(err)
	}
	return id
}

// drain runs dispatch rounds, moving the fake clock past leases and backoffs, until
// nothing is pending or sending.
func (r *rig) drain(svcs ...*delivery.Service) {
	r.t.Helper()
	if len(svcs) == 0 {
		svcs = []*delivery.Service{r.svc}
	}
	for round := 0; round < 500; round++ {
		for _, s := range svcs {
			if _, err := s.DispatchOnce(context.Background()); err != nil {
				r.t.Logf("round %d: %v", round, err)
			}
		}
		var open int
		r.db.QueryRowContext(context.Background(), `SELECT COUNT(*) FROM deliveries d LEFT JOIN batches b ON b.id = d.batch_id
			WHERE `+delivery.StateSQL("d", "b")+` IN ('pending', 'sending')`).Scan(&open)
		if open == 0 {
			return
		}
		r.clk.Advance(15 * time.Second)
	}
	r.t.Fatal("deliveries still open after 500 rounds")
}

func (r *rig) received(u string) []emulator.Received {
	got, err := r.emu.ReceivedBy(ch, u)
	if err != nil {
		r.t.Fatal(err)
	}
	return got
}

func (r *rig) record(id int64) delivery.Record {
	r.t.Helper()
	rec, err := r.svc.Get(context.Background(), id)
	if err != nil {
		r.t.Fatal(err)
	}
	return rec
}

func TestReplyWhileFreshElsePush(t *testing.T) {
	testutil.EachDB(t, func(t *testing.T, db *store.DB) {
		r := newRig(t, db, 3, emulator.Faults{})
		ctx := context.Background()
		a, b, c := r.users[0], r.users[1], r.users[2]
		// a wrote just now: the reply token is fresh. (The rig's channel has no webhook
		// URL, so the emulator reports that; the token is issued all the same.)
		ev, _ := r.emu.SendText(ctx, ch, a, "hi")
		if ev.ReplyToken == "" {
			t.Fatal("no reply token")
		}
		fresh := r.enqueue(delivery.Item{LineUserID: a, Messages: text("welcome"), ReplyToken: ev.ReplyToken, ReplyExpiresAt: r.clk.Now().Add(50 * time.Second)})
		// b's token is about to expire: push.
		stale := r.enqueue(delivery.Item{LineUserID: b, Messages: text("late"), ReplyToken: "whatever", ReplyExpiresAt: r.clk.Now().Add(time.Second)})
		// c's token is refused by LINE: push after the failed reply.
		refused := r.enqueue(delivery.Item{LineUserID: c, Messages: text("refused"), ReplyToken: "0123456789abcdef", ReplyExpiresAt: r.clk.Now().Add(50 * time.Second)})
		r.drain()
		for _, x := range []struct {
			id     int64
			user   string
			method string
		}{{fresh, a, "reply"}, {stale, b, "push"}, {refused, c, "push"}} {
			rec := r.record(x.id)
			got := r.received(x.user)
			if rec.State != delivery.Sent || rec.Method != x.method || len(got) != 1 || got[0].Via != x.method {
				t.Errorf("user %s: record %+v, received %+v; want sent once by %s", x.user, rec, got, x.method)
			}
		}
		if rec := r.record(refused); rec.LastError == "" {
			t.Errorf("the reply fallback is not visible in the record")
		}
	})
}

func TestIdenticalContentGoesByMulticast(t *testing.T) {
	testutil.EachDB(t, func(t *testing.T, db *store.DB) {
		r := newRig(t, db, 1200, emulator.Faults{})
		for _, u := range r.users {
			r.enqueue(delivery.Item{LineUserID: u, Messages: text("spring coupon")})
		}
		// Two friends also get something personal.
		r.enqueue(delivery.Item{LineUserID: r.users[0], Messages: text("for you, 1")})
		r.enqueue(delivery.Item{LineUserID: r.users[1], Messages: text("for you, 2")})
		r.drain()
		for _, u := range r.users {
			if n := len(r.received(u)); n < 1 {
				t.Fatalf("%s received nothing", u)
			}
		}
		s := r.emu.Stats()
		if s.Requests["multicast"]["200"] != 3 || s.Requests["push"]["200"] != 2 {
			t.Errorf("calls: %v; want 3 multicasts (500+500+200) and 2 pushes", s.Requests)
		}
		if d, _ := r.emu.Duplicates(ch); len(d) != 0 {
			t.Errorf("duplicates: %d", len(d))
		}
	})
}

func TestExactlyOnceThroughFaults(t *testing.T) {
	testutil.EachDB(t, func(t *testing.T, db *store.DB) {
		// A third of the calls fail with 500 (not sent) and a third are sent and then
		// the connection dropped: the sender does not know, retries, and LINE says 409.
		r := newRig(t, db, 1500, emulator.Faults{ErrorRate: 0.3, DropRate: 0.3})
		for i, u := range r.users {
			msg := "broadcast"
			if i%3 == 0 {
				msg = "personal " + u
			}
			r.enqueue(delivery.Item{LineUserID: u, Messages: text(msg)})
		}
		// Two dispatchers share the work, as two instances would.
		r.drain(r.svc, r.service())
		for _, u := range r.users {
			if n := len(r.received(u)); n != 1 {
				t.Errorf("%s received %d times", u, n)
			}
		}
		counts, _ := r.svc.Counts(context.Background(), ch)
		if counts[delivery.Sent] != 1500 {
			t.Errorf("states: %v", counts)
		}
		s := r.emu.Stats()
		if s.Faults["drop"] == 0 || s.Faults["error"] == 0 || s.Requests["multicast"]["409"]+s.Requests["push"]["409"] == 0 {
			t.Errorf("the faults did not happen: %+v", s)
		}
	})
}

func TestPermanentFailureIsVisible(t *testing.T) {
	testutil.EachDB(t, func(t *testing.T, db *store.DB) {
		r := newRig(t, db, 1, emulator.Faults{})
		bad, _ := json.Marshal(map[string]string{"type": "text", "text": ""})
		id := r.enqueue(delivery.Item{LineUserID: r.users[0], Messages: []json.RawMessage{bad}})
		r.drain()
		rec := r.record(id)
		if rec.State != delivery.Failed || rec.LastError == "" {
			t.Errorf("record %+v: want failed with LINE's reason", rec)
		}
	})
}

func TestBlockedFriendsPendingDeliveriesAreDropped(t *testing.T) {
	testutil.EachDB(t, func(t *testing.T, db *store.DB) {
		r := newRig(t, db, 2, emulator.Faults{})
		u := r.users[0]
		later := r.enqueue(delivery.Item{LineUserID: u, Messages: text("tomorrow"), DueAt: r.clk.Now().Add(24 * time.Hour)})
		err := db.WriteTx(context.Background(), func(tx *store.Tx) error {
			_, err := r.svc.DropPending(context.Background(), tx, r.friends[u], "blocked")
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		r.clk.Advance(25 * time.Hour)
		r.drain()
		if rec := r.record(later); rec.State != delivery.Dropped {
			t.Errorf("state %s, want dropped", rec.State)
		}
		if n := len(r.received(u)); n != 0 {
			t.Errorf("a dropped delivery was sent")
		}
	})
}
