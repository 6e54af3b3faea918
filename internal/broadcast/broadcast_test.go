package broadcast_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/linestep/linestep/internal/broadcast"
	"github.com/linestep/linestep/internal/coupon"
	"github.com/linestep/linestep/internal/delivery"
	"github.com/linestep/linestep/internal/message"
	"github.com/linestep/linestep/internal/segment"
	"github.com/linestep/linestep/internal/server"
	"github.com/linestep/linestep/internal/servertest"
	"github.com/linestep/linestep/internal/store"
	"github.com/linestep/linestep/internal/testutil"
)

var ctx = context.Background()

type member struct {
	user string
	id   int64
}

// addFriends makes n followers known to both the emulator and linestep (as if their
// follows had been processed long ago), named after their index, tagged as tagOf says.
func addFriends(t *testing.T, h *servertest.Harness, n int, tagOf func(i int) string) []member {
	t.Helper()
	users, err := h.Emu.AddFollowers(h.Ch, n)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]member, n)
	err = h.Srv.DB.WriteTx(ctx, func(tx *store.Tx) error {
		for i, u := range users {
			var id int64
			if err := tx.QueryRowContext(ctx, `INSERT INTO friends (channel_id, line_user_id, status, status_at, display_name, followed_at, created_at, updated_at)
				VALUES (?, ?, 'following', 0, ?, 0, 0, 0) RETURNING id`, h.Ch, u, fmt.Sprintf("友だち%d", i)).Scan(&id); err != nil {
				return err
			}
			out[i] = member{u, id}
			if name := tagOf(i); name != "" {
				tg, err := h.Srv.Friends.CreateTag(ctx, tx, h.Ch, name)
				if err != nil {
					return err
				}
				if _, err := h.Srv.Friends.AddTag(ctx, tx, id, tg.ID); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func create(t testing.TB, h *servertest.Harness, b broadcast.Broadcast) broadcast.Broadcast {
	t.Helper()
	b.ChannelID = h.Ch
	err := h.Srv.DB.WriteTx(ctx, func(tx *store.Tx) error {
		var err error
		b, err = h.Srv.Broadcasts.Create(ctx, tx, b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func text(s string) message.Template {
	return message.Template{Messages: []message.Message{{Type: "text", Text: s}}}
}

// drain expands what is due and waits until the outbox has handed it all to LINE.
func drain(t *testing.T, h *servertest.Harness) {
	t.Helper()
	h.Eventually("the broadcast to be sent", func() bool {
		more, err := h.Srv.Broadcasts.Expand(ctx)
		if err != nil {
			t.Fatal(err)
		}
		// Another expander (the server's own) may hold a broadcast: wait for it too.
		var open int
		if err := h.Srv.DB.QueryRowContext(ctx, "SELECT COUNT(*) FROM broadcasts WHERE state IN ('scheduled', 'sending') AND scheduled_at <= ?",
			store.Millis(h.Clk.Now())).Scan(&open); err != nil {
			t.Fatal(err)
		}
		h.Srv.Delivery.Notify()
		c, err := h.Srv.Delivery.Counts(ctx, h.Ch)
		if err != nil {
			t.Fatal(err)
		}
		return !more && open == 0 && c[delivery.Pending] == 0 && c[delivery.Sending] == 0
	})
}

// tickClock moves the server's fake clock on by 10 ms every 5 ms until the returned
// function is called: the client holds multicasts at LINE's rate on that clock, so a
// test sending more than a burst of them needs it to move.
func tickClock(h *servertest.Harness) (stop func()) {
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-done:
				return
			case <-time.After(5 * time.Millisecond):
				h.Clk.Advance(10 * time.Millisecond)
			}
		}
	}()
	return func() { close(done) }
}

// receivedOnce counts the friends who received something, failing the test if one
// received more than once.
func receivedOnce(t *testing.T, h *servertest.Harness, fs []member) int {
	t.Helper()
	received := 0
	for _, f := range fs {
		switch g := got(t, h, f.user); len(g) {
		case 0:
		case 1:
			received++
		default:
			t.Fatalf("received twice: %q", g)
		}
	}
	return received
}

// got returns the texts a user received and how.
func got(t *testing.T, h *servertest.Harness, u string) []string {
	t.Helper()
	rs, err := h.Emu.ReceivedBy(h.Ch, u)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, r := range rs {
		for _, m := range r.Messages {
			var msg struct{ Text string }
			json.Unmarshal(m, &msg)
			out = append(out, r.Via+": "+msg.Text)
		}
	}
	return out
}

// Seed use case 2: a coupon to the friends of one area only, counted before sending,
// sent by multicast since the content is the same for all of them.
func TestCouponToOneAreaOnly(t *testing.T) {
	testutil.EachDSN(t, func(t *testing.T, dsn string) {
		h := servertest.Start(t, dsn)
		fs := addFriends(t, h, 1200, func(i int) string {
			if i%3 == 0 {
				return "area:osaka"
			}
			return "area:tokyo"
		})
		osaka := segment.Filter{Tag: "area:osaka"}
		if n, err := h.Srv.Broadcasts.Count(ctx, h.Ch, osaka); err != nil || n != 400 {
			t.Fatalf("recipient count before sending: %d %v", n, err)
		}
		if _, err := h.Srv.Coupons.Save(ctx, h.Srv.DB, coupon.Coupon{ChannelID: h.Ch, Key: "osaka10", Title: "大阪店 10%OFF",
			CodePolicy: coupon.PolicyShared, SharedCode: "OSAKA10", ValidFrom: h.Clk.Now(), Enabled: true}); err != nil {
			t.Fatal(err)
		}
		b := create(t, h, broadcast.Broadcast{Name: "大阪店クーポン", Segment: osaka,
			Template: text("大阪店限定 10%OFF: {{coupon.osaka10.code|}}")})
		drain(t, h)
		for i, f := range fs {
			want := 0
			if i%3 == 0 {
				want = 1
			}
			if g := got(t, h, f.user); len(g) != want || want == 1 && g[0] != "multicast: 大阪店限定 10%OFF: OSAKA10" {
				t.Fatalf("friend %d received %q", i, g)
			}
		}
		if b, _ = h.Srv.Broadcasts.Get(ctx, h.Ch, b.ID); b.State != broadcast.Done || b.Recipients != 400 {
			t.Fatalf("broadcast after sending: %+v", b)
		}
		if p, _ := h.Srv.Broadcasts.Progress(ctx, b.ID); p[delivery.Sent] != 400 {
			t.Fatalf("progress: %v", p)
		}
		if st := h.Emu.Stats(); st.Requests["multicast"]["200"] != 1 {
			t.Fatalf("400 identical messages took %v multicast calls, want 1", st.Requests["multicast"])
		}
		if st, err := h.Srv.Coupons.Stats(ctx, h.Ch, "osaka10"); err != nil || st.Issued != 400 {
			t.Fatalf("coupon stats: %+v %v", st, err)
		}
	})
}

// A coupon with a code of its own per friend makes the content personal: it goes by
// push, every friend gets a different code, and a tap on the redeem button records the
// redemption once, however often LINE delivers the tap.
func TestUniqueCouponCodesAndRedemption(t *testing.T) {
	testutil.EachDSN(t, func(t *testing.T, dsn string) {
		h := servertest.Start(t, dsn)
		fs := addFriends(t, h, 20, func(int) string { return "member" })
		if _, err := h.Srv.Coupons.Save(ctx, h.Srv.DB, coupon.Coupon{ChannelID: h.Ch, Key: "member_gift", Title: "会員限定ギフト",
			CodePolicy: coupon.PolicyGenerated, ValidFrom: h.Clk.Now(), Enabled: true}); err != nil {
			t.Fatal(err)
		}
		create(t, h, broadcast.Broadcast{Segment: segment.Filter{Tag: "member"}, Template: message.Template{Messages: []message.Message{{
			Type: "text", Text: "会員限定ギフトのコード: {{coupon.member_gift.code|}}",
			QuickReply: []message.QuickReplyItem{{Type: "postback", Label: "使う", Data: coupon.PostbackData("member_gift")}},
		}}}})
		drain(t, h)
		codes := map[string]bool{}
		for _, f := range fs {
			g := got(t, h, f.user)
			if len(g) != 1 || !strings.HasPrefix(g[0], "push: 会員限定ギフトのコード: ") {
				t.Fatalf("received %q", g)
			}
			codes[g[0]] = true
		}
		if len(codes) != len(fs) {
			t.Fatalf("%d distinct codes for %d friends", len(codes), len(fs))
		}

		tap := h.OK(h.Emu.Postback(ctx, h.Ch, fs[0].user, coupon.PostbackData("member_gift")))
		if res, err := h.Emu.Redeliver(ctx, h.Ch, tap.EventID); err != nil || res.Status != 200 {
			t.Fatalf("redeliver: %+v %v", res, err)
		}
		h.Eventually("the redemption", func() bool {
			st, err := h.Srv.Coupons.Stats(ctx, h.Ch, "member_gift")
			return err == nil && st.Redemptions == 1
		})
		h.OK(h.Emu.Postback(ctx, h.Ch, fs[0].user, coupon.PostbackData("member_gift"))) // over the limit of one
		h.Eventually("the second tap to be processed", func() bool {
			n, err := h.Srv.Processor.Pending(ctx)
			return err == nil && n == 0
		})
		if st, _ := h.Srv.Coupons.Stats(ctx, h.Ch, "member_gift"); st.Redemptions != 1 || st.RedeemedFriends != 1 || st.Issued != 20 {
			t.Fatalf("coupon stats: %+v", st)
		}
	})
}

// Content that differs per friend goes by push, each with their own name.
func TestPersonalisedBroadcastByPush(t *testing.T) {
	testutil.EachDSN(t, func(t *testing.T, dsn string) {
		h := servertest.Start(t, dsn)
		fs := addFriends(t, h, 3, func(int) string { return "" })
		create(t, h, broadcast.Broadcast{Segment: segment.Filter{}, Template: text("{{display_name|お客様}}さん、今月のお知らせです")})
		drain(t, h)
		for i, f := range fs {
			if g := got(t, h, f.user); len(g) != 1 || g[0] != fmt.Sprintf("push: 友だち%dさん、今月のお知らせです", i) {
				t.Fatalf("friend %d received %q", i, g)
			}
		}
	})
}

// Personal content is expanded small pages first, so that the first pushes need not wait
// for a whole page to be rendered: 200, then three times all before, up to the chunk.
func TestPersonalFirstPagesAreSmall(t *testing.T) {
	testutil.EachDSN(t, func(t *testing.T, dsn string) {
		h := servertest.StartWith(t, dsn, func(c *server.Config) {
			c.Broadcasts = broadcast.Config{Chunk: 2000, PollInterval: time.Hour} // expanded by the test (and its first round)
		})
		fs := addFriends(t, h, 1000, func(int) string { return "" })
		b := create(t, h, broadcast.Broadcast{Template: text("{{display_name}}さん、こんにちは"), ScheduledAt: h.Clk.Now().Add(time.Minute)})
		h.Clk.Advance(time.Minute)
		// Whoever expands a page, the server's expander (one round at its start) or the
		// test, the pages are 200, 600 and the remaining 200.
		var seen []int
		for {
			more, err := h.Srv.Broadcasts.Expand(ctx)
			if err != nil {
				t.Fatal(err)
			}
			got, _ := h.Srv.Broadcasts.Get(ctx, h.Ch, b.ID)
			seen = append(seen, got.Recipients)
			if got.Recipients != 200 && got.Recipients != 800 && got.Recipients != 1000 || seen[0] == 1000 || !more && got.State != broadcast.Done {
				t.Fatalf("recipients after each page: %v, state %s", seen, got.State)
			}
			if !more {
				break
			}
		}
		defer tickClock(h)()
		drain(t, h)
		for i, f := range fs {
			if g := got(t, h, f.user); len(g) != 1 || g[0] != fmt.Sprintf("push: 友だち%dさん、こんにちは", i) {
				t.Fatalf("friend %d received %q", i, g)
			}
		}
	})
}

// A scheduled broadcast waits for its time; a blocked friend is not among its
// recipients.
func TestScheduledBroadcastWaitsForItsTime(t *testing.T) {
	testutil.EachDSN(t, func(t *testing.T, dsn string) {
		h := servertest.Start(t, dsn)
		fs := addFriends(t, h, 2, func(int) string { return "" })
		if _, err := h.Srv.DB.ExecContext(ctx, "UPDATE friends SET status = 'blocked' WHERE id = ?", fs[1].id); err != nil {
			t.Fatal(err)
		}
		b := create(t, h, broadcast.Broadcast{Template: text("明日からセール"), ScheduledAt: h.Clk.Now().Add(time.Hour)})
		if more, err := h.Srv.Broadcasts.Expand(ctx); err != nil || more {
			t.Fatalf("expanded before its time: %v %v", more, err)
		}
		h.Clk.Advance(time.Hour)
		drain(t, h)
		if g := got(t, h, fs[0].user); len(g) != 1 {
			t.Fatalf("follower received %q", g)
		}
		if g := got(t, h, fs[1].user); len(g) != 0 {
			t.Fatalf("blocked friend received %q", g)
		}
		if b, _ = h.Srv.Broadcasts.Get(ctx, h.Ch, b.ID); b.Recipients != 1 {
			t.Fatalf("recipients: %+v", b)
		}
	})
}

// Cancelling a broadcast in flight stops it: nobody more is queued, what is queued and
// not yet handed to LINE is cancelled, and nobody receives it twice.
func TestCancelInFlight(t *testing.T) {
	testutil.EachDSN(t, func(t *testing.T, dsn string) {
		h := servertest.StartWith(t, dsn, func(c *server.Config) {
			c.Broadcasts = broadcast.Config{Chunk: 500, PollInterval: time.Hour} // expanded only by the test
		})
		fs := addFriends(t, h, 1500, func(int) string { return "" })
		b := create(t, h, broadcast.Broadcast{Template: text("キャンセルされる配信"), ScheduledAt: h.Clk.Now().Add(time.Minute)})
		h.Clk.Advance(time.Minute)
		if more, err := h.Srv.Broadcasts.Expand(ctx); err != nil || !more {
			t.Fatalf("first chunk: %v %v", more, err)
		}
		n, err := h.Srv.Broadcasts.Cancel(ctx, h.Ch, b.ID)
		if err != nil {
			t.Fatal(err)
		}
		defer tickClock(h)()
		drain(t, h)
		received := receivedOnce(t, h, fs)
		// The server's own expander may have taken chunks too (its first round can come
		// after the clock moved): what was queued is a whole number of chunks, and once
		// cancelled, nothing more is.
		if b, _ = h.Srv.Broadcasts.Get(ctx, h.Ch, b.ID); b.State != broadcast.Cancelled || b.Recipients%500 != 0 || b.Recipients < 500 {
			t.Fatalf("after cancel: %+v", b)
		}
		if more, err := h.Srv.Broadcasts.Expand(ctx); err != nil || more {
			t.Fatalf("expanding after cancel: %v %v", more, err)
		}
		if again, _ := h.Srv.Broadcasts.Get(ctx, h.Ch, b.ID); again.Recipients != b.Recipients {
			t.Fatalf("queued after cancel: %d, then %d", b.Recipients, again.Recipients)
		}
		if received+int(n) != b.Recipients {
			t.Fatalf("received %d + cancelled %d, want the %d queued", received, n, b.Recipients)
		}
		p, _ := h.Srv.Broadcasts.Progress(ctx, b.ID)
		if p[delivery.Cancelled] != int(n) || p[delivery.Sent] != received {
			t.Fatalf("progress %v, cancelled %d, received %d", p, n, received)
		}
	})
}

func TestInvalidBroadcastSaysWhatToFix(t *testing.T) {
	testutil.EachDSN(t, func(t *testing.T, dsn string) {
		h := servertest.Start(t, dsn)
		err := h.Srv.DB.WriteTx(ctx, func(tx *store.Tx) error {
			_, err := h.Srv.Broadcasts.Create(ctx, tx, broadcast.Broadcast{ChannelID: h.Ch, Segment: segment.Filter{Tag: "no-such-tag"},
				Template: message.Template{}, ScheduledAt: h.Clk.Now().Add(-time.Hour)})
			return err
		})
		var ps message.Problems
		if !errors.Is(err, broadcast.ErrInvalid) || !errors.As(err, &ps) {
			t.Fatalf("create: %v", err)
		}
		paths := map[string]bool{}
		for _, p := range ps {
			paths[p.Path] = true
			if p.JA == "" || p.EN == "" {
				t.Errorf("problem without both languages: %+v", p)
			}
		}
		for _, want := range []string{"template.messages", "segment", "scheduled_at"} {
			if !paths[want] {
				t.Errorf("no problem at %s: %v", want, ps)
			}
		}
	})
}

// Identical content is written by the database (INSERT ... SELECT), a page of up to
// 500 at a time: across pages and transactions, every friend the segment selects gets
// it exactly once by multicast, and no one else; rows that are not LINE user IDs are
// counted as skipped instead of failing a whole call.
func TestIdenticalBroadcastWrittenBySQL(t *testing.T) {
	testutil.EachDSN(t, func(t *testing.T, dsn string) {
		h := servertest.StartWith(t, dsn, func(c *server.Config) { c.Broadcasts.Chunk = 700 })
		fs := addFriends(t, h, 1203, func(i int) string {
			if i%4 == 0 {
				return "vip"
			}
			return ""
		})
		err := h.Srv.DB.WriteTx(ctx, func(tx *store.Tx) error {
			for i, u := range []string{"imported-1", "Uxyz", "U0123456789abcdef0123456789ABCDEF"} {
				if _, err := tx.ExecContext(ctx, `INSERT INTO friends (channel_id, line_user_id, status, status_at, display_name, followed_at, created_at, updated_at)
					VALUES (?, ?, 'following', 0, ?, 0, 0, 0)`, h.Ch, u, fmt.Sprintf("手入力%d", i)); err != nil {
					return err
				}
			}
			for _, f := range fs[1:11] { // ten non-VIP and VIP friends blocked: left out
				if _, err := tx.ExecContext(ctx, `UPDATE friends SET status = 'blocked' WHERE id = ?`, f.id); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		b := create(t, h, broadcast.Broadcast{Name: "一般会員へ", Segment: segment.Filter{Not: &segment.Filter{Tag: "vip"}},
			Template: text("今月のお知らせ")})
		defer tickClock(h)()
		drain(t, h)
		want := 0
		for i, f := range fs {
			n := 0
			if i%4 != 0 && (i < 1 || i > 10) {
				n = 1
			}
			want += n
			if g := got(t, h, f.user); len(g) != n || n == 1 && g[0] != "multicast: 今月のお知らせ" {
				t.Fatalf("friend %d received %q, want %d", i, g, n)
			}
		}
		b, err = h.Srv.Broadcasts.Get(ctx, h.Ch, b.ID)
		if err != nil || b.State != broadcast.Done || b.Recipients != want || b.Skipped != 3 {
			t.Fatalf("broadcast after sending: %+v %v (want %d recipients, 3 skipped)", b, err, want)
		}
		if p, _ := h.Srv.Broadcasts.Progress(ctx, b.ID); p[delivery.Sent] != want || len(p) != 1 {
			t.Fatalf("progress: %v, want %d sent", p, want)
		}
		st := h.Emu.Stats().Requests["multicast"]
		if calls := (want + 499) / 500; st["200"] < calls || st["200"] > calls+2 {
			t.Fatalf("%d recipients took %v multicast calls, want about %d", want, st, calls)
		}
		// Removing the channel removes what it sent (through its friends: the deliveries
		// hold no reference to the channel of their own on PostgreSQL).
		if err := h.Srv.Channels.Remove(ctx, h.Ch); err != nil {
			t.Fatal(err)
		}
		var left int
		if err := h.Srv.DB.QueryRowContext(ctx, "SELECT (SELECT COUNT(*) FROM deliveries) + (SELECT COUNT(*) FROM batches)").Scan(&left); err != nil || left != 0 {
			t.Fatalf("%d deliveries and batches left after the channel was removed (%v)", left, err)
		}
	})
}

// A broadcast to many is split into lanes that several expanders write at once: every
// friend gets it once, the counts add up across lanes, and it is done only when every
// lane is (whichever expander finishes last).
func TestLanesExpandAtOnce(t *testing.T) {
	testutil.EachDSN(t, func(t *testing.T, dsn string) {
		h := servertest.StartWith(t, dsn, func(c *server.Config) {
			// Chunks of 50: 1,003 friends make three lanes, each many chunks long.
			c.Broadcasts = broadcast.Config{Chunk: 50, PollInterval: time.Hour, Expanders: 3}
		})
		fs := addFriends(t, h, 1003, func(int) string { return "" })
		b := create(t, h, broadcast.Broadcast{Template: text("三つに分けて"), ScheduledAt: h.Clk.Now().Add(time.Minute)})
		h.Clk.Advance(time.Minute)
		// Three expanders at once here, besides the server's own three, which the split
		// wakes: a lane one of them holds is left to it, so wait for the broadcast after.
		errs := make(chan error, 3)
		for range 3 {
			go func() {
				for {
					more, err := h.Srv.Broadcasts.Expand(ctx)
					if err != nil || !more {
						errs <- err
						return
					}
				}
			}()
		}
		for range 3 {
			if err := <-errs; err != nil {
				t.Fatal(err)
			}
		}
		h.Eventually("every lane written", func() bool {
			b, _ = h.Srv.Broadcasts.Get(ctx, h.Ch, b.ID)
			return b.State != broadcast.Sending
		})
		var lanes, open int
		if err := h.Srv.DB.QueryRowContext(ctx, "SELECT COUNT(*), COALESCE(SUM(CASE WHEN done THEN 0 ELSE 1 END), 0) FROM broadcast_lanes WHERE broadcast_id = ?",
			b.ID).Scan(&lanes, &open); err != nil {
			t.Fatal(err)
		}
		if lanes != 3 || open != 0 {
			t.Fatalf("%d lanes, %d not done; want 3, all done", lanes, open)
		}
		if b, _ = h.Srv.Broadcasts.Get(ctx, h.Ch, b.ID); b.State != broadcast.Done || b.Recipients != len(fs) || b.FinishedAt.IsZero() {
			t.Fatalf("after expansion: %+v", b)
		}
		defer tickClock(h)()
		drain(t, h)
		for i, f := range fs {
			if g := got(t, h, f.user); len(g) != 1 {
				t.Fatalf("friend %d received %q", i, g)
			}
		}
		if p, _ := h.Srv.Broadcasts.Progress(ctx, b.ID); p[delivery.Sent] != len(fs) {
			t.Fatalf("progress %v", p)
		}
	})
}

// Cancelling a broadcast stops all its lanes: a chunk written at the same moment is
// either cancelled with the rest or undone.
func TestCancelStopsEveryLane(t *testing.T) {
	testutil.EachDSN(t, func(t *testing.T, dsn string) {
		h := servertest.StartWith(t, dsn, func(c *server.Config) {
			c.Broadcasts = broadcast.Config{Chunk: 50, PollInterval: time.Hour, Expanders: 2}
		})
		fs := addFriends(t, h, 3000, func(int) string { return "" })
		b := create(t, h, broadcast.Broadcast{Template: text("止まる配信"), ScheduledAt: h.Clk.Now().Add(time.Minute)})
		queued := func() int {
			t.Helper()
			var n int
			if err := h.Srv.DB.QueryRowContext(ctx, "SELECT COUNT(*) FROM deliveries WHERE source = 'broadcast' AND source_id = ?", b.ID).Scan(&n); err != nil {
				t.Fatal(err)
			}
			return n
		}
		h.Clk.Advance(time.Minute)
		for range 3 {
			if more, err := h.Srv.Broadcasts.Expand(ctx); err != nil || !more {
				t.Fatalf("a chunk: %v %v", more, err)
			}
		}
		// Two expanders keep going while it is cancelled.
		stop := make(chan struct{})
		done := make(chan error, 2)
		for range 2 {
			go func() {
				for {
					select {
					case <-stop:
						done <- nil
						return
					default:
					}
					if _, err := h.Srv.Broadcasts.Expand(ctx); err != nil {
						done <- err
						return
					}
				}
			}()
		}
		n, err := h.Srv.Broadcasts.Cancel(ctx, h.Ch, b.ID)
		if err != nil {
			t.Fatal(err)
		}
		atCancel := queued()
		time.Sleep(20 * time.Millisecond) // the expanders' chunks in flight end meanwhile
		close(stop)
		for range 2 {
			if err := <-done; err != nil {
				t.Fatal(err)
			}
		}
		if b, _ = h.Srv.Broadcasts.Get(ctx, h.Ch, b.ID); b.State != broadcast.Cancelled {
			t.Fatalf("after cancel: %+v", b)
		}
		if more, err := h.Srv.Broadcasts.Expand(ctx); err != nil || more {
			t.Fatalf("expanding after cancel: %v %v", more, err)
		}
		defer tickClock(h)()
		drain(t, h)
		received := receivedOnce(t, h, fs)
		if q := queued(); q != atCancel || q != b.Recipients {
			t.Fatalf("%d deliveries queued when cancelled, %d after, %d recipients counted", atCancel, q, b.Recipients)
		}
		after, _ := h.Srv.Broadcasts.Get(ctx, h.Ch, b.ID)
		p, _ := h.Srv.Broadcasts.Progress(ctx, b.ID)
		if after.Recipients != b.Recipients || received+int(n) != b.Recipients || p[delivery.Sent] != received || p[delivery.Cancelled] != int(n) {
			t.Fatalf("recipients %d then %d, received %d, cancelled %d, progress %v", b.Recipients, after.Recipients, received, n, p)
		}
	})
}
