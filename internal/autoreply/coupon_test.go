package autoreply_test

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/linestep/linestep/internal/autoreply"
	"github.com/linestep/linestep/internal/coupon"
	"github.com/linestep/linestep/internal/message"
	"github.com/linestep/linestep/internal/servertest"
	"github.com/linestep/linestep/internal/store"
	"github.com/linestep/linestep/internal/testutil"
)

// replies lists the texts a user received from the account, as "via: text".
func replies(t *testing.T, h *servertest.Harness, u string) []string {
	t.Helper()
	rs, err := h.Emu.ReceivedBy(h.Ch, u)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, r := range rs {
		for _, m := range r.Messages {
			var msg struct{ Text string }
			if err := json.Unmarshal(m, &msg); err != nil {
				t.Fatal(err)
			}
			out = append(out, r.Via+": "+msg.Text)
		}
	}
	return out
}

// ask sends text as the user and returns the answer it brings, the n-th the user got.
func ask(t *testing.T, h *servertest.Harness, u, text string, n int) string {
	t.Helper()
	h.OK(h.Emu.SendText(context.Background(), h.Ch, u, text))
	var got []string
	h.Eventually("the answer", func() bool {
		h.Srv.Delivery.Notify()
		got = replies(t, h, u)
		return len(got) >= n
	})
	if len(got) != n {
		t.Fatalf("received %q, want %d answers", got, n)
	}
	return got[n-1]
}

func followUser(t *testing.T, h *servertest.Harness, name string) string {
	t.Helper()
	u := h.User(name)
	h.OK(h.Emu.Follow(context.Background(), h.Ch, u))
	h.Eventually("the friend", func() bool { return h.Friend(u).ID != 0 })
	return u
}

func saveCoupon(t *testing.T, h *servertest.Harness, c coupon.Coupon) {
	t.Helper()
	c.ChannelID = h.Ch
	if _, err := h.Srv.Coupons.Save(context.Background(), h.Srv.DB, c); err != nil {
		t.Fatalf("coupon %s: %v", c.Key, err)
	}
}

func saveRule(t *testing.T, h *servertest.Harness, key, keyword, text string) {
	t.Helper()
	_, err := h.Srv.Replies.Save(context.Background(), h.Srv.DB, autoreply.Rule{ChannelID: h.Ch, Key: key, Match: autoreply.MatchExact,
		Keywords: []string{keyword}, Enabled: true, Template: textTemplate(text)})
	if err != nil {
		t.Fatalf("rule %s: %v", key, err)
	}
}

func couponStats(t *testing.T, h *servertest.Harness, key string) coupon.Stats {
	t.Helper()
	st, err := h.Srv.Coupons.Stats(context.Background(), h.Ch, key)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

var giftAnswer = regexp.MustCompile(`^reply: (.+)さんのクーポン: ([A-Z0-9]{8})$`)

// The keyword "クーポン" answers each friend with a code of their own, issued once: the
// friend who asks again is shown the same code, and once they have used it as often as
// the coupon allows, the fallback.
func TestKeywordAnswersWithTheFriendsOwnCoupon(t *testing.T) {
	testutil.EachDSN(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		h := servertest.Start(t, dsn)
		saveCoupon(t, h, coupon.Coupon{Key: "gift", Title: "来店ギフト", CodePolicy: coupon.PolicyGenerated,
			ValidFrom: h.Clk.Now().Add(-time.Hour), ValidUntil: h.Clk.Now().Add(7 * 24 * time.Hour), PerFriendLimit: 1, Enabled: true})
		saveRule(t, h, "coupon", "クーポン", "{{display_name|お客様}}さんのクーポン: {{coupon.gift.code|ご利用済みです}}")
		ua, ub := followUser(t, h, "青木"), followUser(t, h, "馬場")

		a := giftAnswer.FindStringSubmatch(ask(t, h, ua, "クーポン", 1))
		b := giftAnswer.FindStringSubmatch(ask(t, h, ub, "ｸｰﾎﾟﾝ", 1))
		if a == nil || b == nil || a[1] != "青木" || b[1] != "馬場" {
			t.Fatalf("answers %q and %q, want each friend's name and a code of 8", a, b)
		}
		if a[2] == b[2] {
			t.Fatalf("two friends got the same code %s", a[2])
		}
		if st := couponStats(t, h, "gift"); st.Issued != 2 {
			t.Fatalf("stats %+v, want two issues", st)
		}

		// Asked again: the same code, and no second issue.
		if again := ask(t, h, ua, "クーポン", 2); again != a[0] {
			t.Fatalf("asked again: %q, first %q", again, a[0])
		}
		if st := couponStats(t, h, "gift"); st.Issued != 2 {
			t.Fatalf("stats %+v after asking again, want still two issues", st)
		}

		// Used as often as allowed (once): the fallback, never the spent code.
		fa := h.Friend(ua)
		if _, err := h.Srv.Coupons.Redeem(ctx, h.Srv.DB, h.Ch, fa.ID, "gift", "till-1", "staff:1", h.Clk.Now()); err != nil {
			t.Fatal(err)
		}
		if used := ask(t, h, ua, "クーポン", 3); used != "reply: 青木さんのクーポン: ご利用済みです" {
			t.Fatalf("after use: %q", used)
		}
		if again := ask(t, h, ub, "クーポン", 2); again != b[0] {
			t.Fatalf("the other friend asked again: %q, first %q", again, b[0])
		}
		if st := couponStats(t, h, "gift"); st.Issued != 2 || st.Redemptions != 1 {
			t.Fatalf("stats %+v, want two issues and one redemption", st)
		}
		if logs := h.Logs.String(); strings.Contains(logs, "青木") || strings.Contains(logs, a[2]) || strings.Contains(logs, b[2]) {
			t.Errorf("a name or a code in the server's log")
		}
	})
}

// A coupon that cannot be given (ended, switched off, every imported code handed out)
// answers with the fallback, and records no issue.
func TestKeywordAnswersTheFallbackWhenTheCouponCannotBeGiven(t *testing.T) {
	testutil.EachDSN(t, func(t *testing.T, dsn string) {
		h := servertest.Start(t, dsn)
		now := h.Clk.Now()
		saveCoupon(t, h, coupon.Coupon{Key: "summer", Title: "夏のクーポン", CodePolicy: coupon.PolicyShared, SharedCode: "SUMMER",
			ValidFrom: now.Add(-48 * time.Hour), ValidUntil: now.Add(-24 * time.Hour), Enabled: true})
		saveCoupon(t, h, coupon.Coupon{Key: "paused", Title: "休止中", CodePolicy: coupon.PolicyShared, SharedCode: "PAUSED",
			ValidFrom: now.Add(-time.Hour), Enabled: false})
		saveCoupon(t, h, coupon.Coupon{Key: "lottery", Title: "抽選", CodePolicy: coupon.PolicyImported,
			ValidFrom: now.Add(-time.Hour), Enabled: true}) // no codes imported
		saveRule(t, h, "summer", "夏", "夏のクーポン: {{coupon.summer.code|終了しました}}（{{coupon.summer.valid_until|-}}まで）")
		saveRule(t, h, "paused", "休止", "[{{coupon.paused.code|お休み中}}] [{{coupon.paused.title}}]")
		saveRule(t, h, "lottery", "抽選", "抽選コード: {{coupon.lottery.code|品切れです}}")
		u := followUser(t, h, "千田")

		for i, c := range []struct{ ask, want string }{
			{"夏", "reply: 夏のクーポン: 終了しました（-まで）"},
			{"休止", "reply: [お休み中] []"},
			{"抽選", "reply: 抽選コード: 品切れです"},
		} {
			if got := ask(t, h, u, c.ask, i+1); got != c.want {
				t.Errorf("%s: %q, want %q", c.ask, got, c.want)
			}
		}
		for _, key := range []string{"summer", "paused", "lottery"} {
			if st := couponStats(t, h, key); st.Issued != 0 {
				t.Errorf("%s: %+v, want no issue", key, st)
			}
		}
	})
}

// A rule naming a coupon the channel does not have is refused when saved, in both
// languages; one whose coupon was deleted since can still be switched off, but not on.
func TestRuleNamingAnUnknownCouponIsRefused(t *testing.T) {
	testutil.EachDSN(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		h := servertest.Start(t, dsn)
		saveCoupon(t, h, coupon.Coupon{Key: "gift", Title: "来店ギフト", CodePolicy: coupon.PolicyShared, SharedCode: "GIFT",
			ValidFrom: h.Clk.Now(), Enabled: true})
		for _, c := range []struct {
			text    string
			enabled bool
			want    string // in the English problem
		}{
			{"{{coupon.gfit.code|-}}", true, `"gfit"`},
			{"{{coupon.gfit.code|-}}", false, `"gfit"`}, // off or on, a typo is a typo
			{"{{coupon.gift.price}} です", true, "not a coupon variable"},
		} {
			_, err := h.Srv.Replies.Save(ctx, h.Srv.DB, autoreply.Rule{ChannelID: h.Ch, Key: "typo", Match: autoreply.MatchExact,
				Keywords: []string{"クーポン"}, Enabled: c.enabled, Template: textTemplate(c.text)})
			var ps message.Problems
			if !errors.As(err, &ps) || len(ps) != 1 || ps[0].Path != "template" || ps[0].JA == "" || !strings.Contains(ps[0].EN, c.want) {
				t.Errorf("%s (enabled %v): %v, want one problem at template naming %s", c.text, c.enabled, err, c.want)
			}
		}
		if _, err := h.Srv.Replies.Get(ctx, h.Ch, "typo"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("a refused rule was saved: %v", err)
		}

		saveRule(t, h, "gift", "クーポン", "{{coupon.gift.code|-}}")
		if err := h.Srv.Coupons.Delete(ctx, h.Srv.DB, h.Ch, "gift"); err != nil {
			t.Fatal(err)
		}
		if ru, err := h.Srv.Replies.SetEnabled(ctx, h.Srv.DB, h.Ch, "gift", false); err != nil || ru.Enabled {
			t.Fatalf("switch off: %+v %v", ru, err)
		}
		var ps message.Problems
		if _, err := h.Srv.Replies.SetEnabled(ctx, h.Srv.DB, h.Ch, "gift", true); !errors.As(err, &ps) {
			t.Fatalf("switched on naming a deleted coupon: %v", err)
		}
		if ru, err := h.Srv.Replies.Get(ctx, h.Ch, "gift"); err != nil || ru.Enabled {
			t.Fatalf("after the refusal: %+v %v", ru, err)
		}
		if _, err := h.Srv.Replies.SetEnabled(ctx, h.Srv.DB, h.Ch, "nosuch", false); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("switch off an unknown rule: %v", err)
		}
	})
}

// The coupon is issued in the transaction that writes the reply: a reply that cannot be
// written leaves no issue behind.
func TestNoIssueWithoutTheReply(t *testing.T) {
	testutil.EachDB(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		f := newFixture(t, db)
		coupons := coupon.New(db, f.clk, slog.New(slog.DiscardHandler))
		f.svc.ExtraVars, f.svc.CheckVars = coupons.Vars, coupons.ValidateReferences
		if _, err := coupons.Save(ctx, db, coupon.Coupon{ChannelID: ch, Key: "gift", Title: "来店ギフト", CodePolicy: coupon.PolicyGenerated,
			ValidFrom: f.clk.Now().Add(-time.Hour), Enabled: true}); err != nil {
			t.Fatal(err)
		}
		r := rule("gift", autoreply.MatchExact, "クーポン")
		r.Template = textTemplate("{{coupon.gift.code|-}}")
		f.save(t, r)

		// A friend whose LINE user ID LINE would refuse (imported by hand): the outbox
		// refuses the reply, so the event fails and nothing it did stays.
		const odd = "Unot-a-line-user-id"
		if _, err := db.ExecContext(ctx, `INSERT INTO friends (channel_id, line_user_id, status, status_at, created_at, updated_at)
			VALUES (?, ?, 'following', 0, 0, 0)`, ch, odd); err != nil {
			t.Fatal(err)
		}
		f.deliverAny(t, f.text("active", odd, "r1", "クーポン"))
		var issued int
		if err := db.QueryRowContext(ctx, "SELECT COUNT(*) FROM coupon_issues").Scan(&issued); err != nil {
			t.Fatal(err)
		}
		// The outbox's refusal, which comes after the coupon is issued, failed the event.
		var cause string
		if err := db.QueryRowContext(ctx, "SELECT last_error FROM webhook_events WHERE state <> 'done'").Scan(&cause); err != nil {
			t.Fatalf("the event was not refused: %v", err)
		}
		if !strings.Contains(cause, "not a LINE user ID") || issued != 0 {
			t.Fatalf("event refused for %q, %d issues: want the outbox's refusal and no issue", cause, issued)
		}

		// A friend LINE knows: the reply and the issue, once.
		f.deliverAny(t, f.follow(userA), f.text("active", userA, "r2", "クーポン")) // the failed event waits for its retry
		out := f.outbox(t)
		if len(out) != 1 {
			t.Fatalf("%d deliveries, want 1", len(out))
		}
		code, _ := out[0].messages[0]["text"].(string)
		var stored string
		if err := db.QueryRowContext(ctx, "SELECT code FROM coupon_issues").Scan(&stored); err != nil || stored != code || len(code) != 8 {
			t.Fatalf("issued %q (%v), replied %q", stored, err, code)
		}
	})
}
