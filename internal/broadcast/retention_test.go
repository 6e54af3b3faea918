package broadcast_test

import (
	"encoding/json"
	"strconv"
	"testing"
	"time"

	"github.com/linestep/linestep/internal/audit"
	"github.com/linestep/linestep/internal/broadcast"
	"github.com/linestep/linestep/internal/channel"
	"github.com/linestep/linestep/internal/delivery"
	"github.com/linestep/linestep/internal/servertest"
	"github.com/linestep/linestep/internal/store"
	"github.com/linestep/linestep/internal/testutil"
)

// What a channel sent is deleted once its delivery retention has passed: the calls that
// ended and their deliveries, and the deliveries dropped before a call. What has not
// ended stays, as does what is younger, and a broadcast's progress still adds up. Each
// round's counts are in the audit log.
func TestSentDeliveriesExpireAfterTheChannelsRetention(t *testing.T) {
	testutil.EachDSN(t, func(t *testing.T, dsn string) {
		h := servertest.Start(t, dsn)
		st, err := h.Srv.Channels.Settings(ctx, h.Ch)
		if err != nil {
			t.Fatal(err)
		}
		st.DeliveryRetentionDays = channel.MinRetentionDays
		if err := h.Srv.Channels.SaveSettings(ctx, h.Srv.DB, h.Ch, st); err != nil {
			t.Fatal(err)
		}
		fs := addFriends(t, h, 600, func(int) string { return "" })
		b := create(t, h, broadcast.Broadcast{Template: text("秋のセール")})
		stop := tickClock(h)
		drain(t, h)
		stop()
		// One friend gets a push of their own, another's is dropped before it goes (they
		// blocked), a third's waits for a date two months away.
		enqueue := func(f member, due time.Time) int64 {
			t.Helper()
			var id int64
			err := h.Srv.DB.WriteTx(ctx, func(tx *store.Tx) error {
				var err error
				id, err = h.Srv.Delivery.Enqueue(ctx, tx, delivery.Item{ChannelID: h.Ch, FriendID: f.id, LineUserID: f.user, Source: "api",
					Messages: []json.RawMessage{json.RawMessage(`{"type":"text","text":"ご予約の確認"}`)}, DueAt: due})
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
			return id
		}
		pushed := enqueue(fs[0], time.Time{})
		dropped := enqueue(fs[1], h.Clk.Now().Add(time.Hour))
		if err := h.Srv.DB.WriteTx(ctx, func(tx *store.Tx) error {
			_, err := h.Srv.Delivery.DropPending(ctx, tx, fs[1].id, "blocked")
			return err
		}); err != nil {
			t.Fatal(err)
		}
		waiting := enqueue(fs[2], h.Clk.Now().Add(60*24*time.Hour))
		sent := func(id int64) {
			t.Helper()
			h.Eventually("the push to go", func() bool {
				h.Srv.Delivery.Notify()
				r, err := h.Srv.Delivery.Get(ctx, id)
				return err == nil && r.State == delivery.Sent
			})
		}
		sent(pushed)

		h.Clk.Advance(time.Duration(channel.MinRetentionDays)*24*time.Hour + time.Minute)
		recent := enqueue(fs[3], time.Time{})
		sent(recent)
		// The server's own job wakes as the clock moves too: whoever deletes, the outcome
		// is the same, and each deletion is counted once.
		if _, err := h.Srv.Delivery.ExpireDeliveries(ctx); err != nil {
			t.Fatal(err)
		}
		for _, id := range []int64{pushed, dropped} {
			if _, err := h.Srv.Delivery.Get(ctx, id); err == nil {
				t.Errorf("delivery %d is still there", id)
			}
		}
		for _, id := range []int64{waiting, recent} {
			if r, err := h.Srv.Delivery.Get(ctx, id); err != nil {
				t.Errorf("delivery %d, which has not expired, is gone: %v", id, err)
			} else if id == waiting && r.State != delivery.Pending {
				t.Errorf("the delivery waiting for its date: %+v", r)
			}
		}
		var left, batches int
		if err := h.Srv.DB.QueryRowContext(ctx, "SELECT COUNT(*) FROM deliveries WHERE source = 'broadcast'").Scan(&left); err != nil {
			t.Fatal(err)
		}
		if err := h.Srv.DB.QueryRowContext(ctx, "SELECT COUNT(*) FROM batches").Scan(&batches); err != nil {
			t.Fatal(err)
		}
		if left != 0 || batches != 1 { // the recent push's call
			t.Fatalf("%d broadcast deliveries and %d calls left", left, batches)
		}
		if p, err := h.Srv.Broadcasts.Progress(ctx, b.ID); err != nil || p[delivery.Sent] != 600 {
			t.Fatalf("broadcast progress after its deliveries went: %v %v", p, err)
		}
		if b, _ = h.Srv.Broadcasts.Get(ctx, h.Ch, b.ID); b.Recipients != 600 || b.State != broadcast.Done {
			t.Fatalf("broadcast: %+v", b)
		}

		if _, err := h.Srv.Delivery.ExpireDeliveries(ctx); err != nil {
			t.Fatal(err)
		}
		recs, err := h.Srv.Audit.Query(ctx, audit.Filter{Action: audit.RetentionDelete})
		if err != nil {
			t.Fatal(err)
		}
		deleted, calls := 0, 0
		for _, r := range recs {
			if r.ChannelID != h.Ch || r.Actor.Kind != audit.ActorSystem || r.Detail["retention_days"] != "30" {
				t.Errorf("audit record %+v", r)
			}
			n, _ := strconv.Atoi(r.Detail["deliveries"])
			c, _ := strconv.Atoi(r.Detail["batches"])
			deleted, calls = deleted+n, calls+c
		}
		// 600 by two multicasts, the push by a call of its own, the dropped one by none.
		if deleted != 602 || calls != 3 {
			t.Errorf("the audit log counts %d deliveries and %d calls deleted, want 602 and 3 (records %+v)", deleted, calls, recs)
		}
	})
}

// A channel that keeps what it sent (0) loses nothing, however old.
func TestDeliveriesKeptWithoutRetention(t *testing.T) {
	testutil.EachDSN(t, func(t *testing.T, dsn string) {
		h := servertest.Start(t, dsn)
		st, err := h.Srv.Channels.Settings(ctx, h.Ch)
		if err != nil {
			t.Fatal(err)
		}
		st.DeliveryRetentionDays = 0
		if err := h.Srv.Channels.SaveSettings(ctx, h.Srv.DB, h.Ch, st); err != nil {
			t.Fatal(err)
		}
		addFriends(t, h, 3, func(int) string { return "" })
		create(t, h, broadcast.Broadcast{Template: text("ずっと残る")})
		drain(t, h)
		h.Clk.Advance(10 * 365 * 24 * time.Hour)
		if e, err := h.Srv.Delivery.ExpireDeliveries(ctx); err != nil || e.Deliveries != 0 {
			t.Fatalf("expired %+v, %v", e, err)
		}
		var n int
		if err := h.Srv.DB.QueryRowContext(ctx, "SELECT COUNT(*) FROM deliveries").Scan(&n); err != nil || n != 3 {
			t.Fatalf("%d deliveries left, %v", n, err)
		}
	})
}
