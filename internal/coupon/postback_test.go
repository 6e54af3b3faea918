package coupon_test

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/linestep/linestep/internal/coupon"
	"github.com/linestep/linestep/internal/ingest"
	"github.com/linestep/linestep/internal/line"
	"github.com/linestep/linestep/internal/metrics"
	"github.com/linestep/linestep/internal/store"
	"github.com/linestep/linestep/internal/testutil"
)

// deliver stores raw events as the webhook handler would and processes them.
func (r *rig) deliver(proc *ingest.Processor, events ...string) {
	r.t.Helper()
	ctx := context.Background()
	var raws []line.RawEvent
	for _, e := range events {
		hook, err := line.ParseWebhook([]byte(`{"destination":"U1","events":[` + e + `]}`))
		if err != nil {
			r.t.Fatalf("parse %s: %v", e, err)
		}
		raws = append(raws, hook.Events...)
	}
	com := ingest.NewCommitter(r.db, metrics.New(), slog.New(slog.DiscardHandler), nil)
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { com.Run(runCtx); close(done) }()
	_, err := com.Store(ctx, ch, raws, r.clk.Now())
	cancel()
	<-done
	if err != nil {
		r.t.Fatal(err)
	}
	for {
		n, err := proc.ProcessBatch(ctx)
		if err != nil {
			r.t.Fatal(err)
		}
		if n == 0 {
			return
		}
	}
}

func postback(eventID, mode, user, data string, at time.Time) string {
	return fmt.Sprintf(`{"type":"postback","mode":%q,"timestamp":%d,"source":{"type":"user","userId":%q},"webhookEventId":%q,`+
		`"deliveryContext":{"isRedelivery":false},"replyToken":"rt","postback":{"data":%q}}`, mode, at.UnixMilli(), user, eventID, data)
}

func TestPostbackRedeems(t *testing.T) {
	testutil.EachDB(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		r := newRig(t, db)
		r.save(r.coupon("osaka10", coupon.PolicyShared))
		proc := ingest.NewProcessor(db, r.clk, metrics.New(), slog.New(slog.DiscardHandler))
		r.svc.Register(proc)
		fs := r.friends(2) // lineUser(1), lineUser(2)
		issued, notIssued := lineUser(1), lineUser(2)
		r.mustIssue(fs[0], "osaka10")
		data := coupon.PostbackData("osaka10")
		now := r.clk.Now()

		r.deliver(proc,
			postback("EV1", "standby", issued, data, now),                     // another channel has the chat
			postback("EV2", "active", issued, "linestep:coupon:redeem:", now), // no key
			postback("EV3", "active", issued, "action=coupon", now),           // someone else's postback
			postback("EV4", "active", notIssued, data, now),                   // refused: never issued
			postback("EV5", "active", lineUser(99), data, now),                // not a friend we know
		)
		if st := r.stats("osaka10"); st.Redemptions != 0 {
			t.Fatalf("redeemed by events that should not: %+v", st)
		}

		r.deliver(proc, postback("EV6", "active", issued, data, now))
		list, err := r.svc.Redemptions(ctx, ch, "osaka10")
		if err != nil || len(list) != 1 {
			t.Fatalf("Redemptions = %+v, %v", list, err)
		}
		rd := list[0]
		if rd.FriendID != fs[0] || rd.By != coupon.ByPostback || rd.RedemptionKey != "postback:EV6" || rd.Number != 1 || !rd.RedeemedAt.Equal(now) {
			t.Fatalf("redemption %+v", rd)
		}
		// The same event applied again (LINE redelivers, another path) is the same redemption.
		again, err := r.svc.Redeem(ctx, db, ch, fs[0], "osaka10", "postback:EV6", coupon.ByPostback, r.clk.Now())
		if err != nil || again != rd {
			t.Fatalf("repeat %+v, %v", again, err)
		}

		// A second tap past the limit is refused, and the event still succeeds.
		r.clk.Advance(time.Minute)
		r.deliver(proc, postback("EV7", "active", issued, data, r.clk.Now()))
		if st := r.stats("osaka10"); st.Redemptions != 1 {
			t.Fatalf("second tap counted: %+v", st)
		}

		// A tap made in time counts even when it is processed after the end.
		late := r.coupon("late", coupon.PolicyShared)
		late.ValidUntil = r.clk.Now().Add(time.Second)
		r.save(late)
		r.mustIssue(fs[0], "late")
		tapped := r.clk.Now()
		r.clk.Advance(time.Hour)
		r.deliver(proc, postback("EV8", "active", issued, coupon.PostbackData("late"), tapped))
		if st := r.stats("late"); st.Redemptions != 1 {
			t.Fatalf("a tap in time was refused: %+v", st)
		}

		var pending, failed int
		if err := db.QueryRowContext(ctx, `SELECT COUNT(CASE WHEN state = 'pending' THEN 1 END), COUNT(CASE WHEN state = 'failed' THEN 1 END)
			FROM webhook_events`).Scan(&pending, &failed); err != nil {
			t.Fatal(err)
		}
		if pending != 0 || failed != 0 {
			t.Fatalf("%d events pending and %d failed; refusals must not fail events", pending, failed)
		}
	})
}
