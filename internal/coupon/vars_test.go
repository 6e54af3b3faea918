package coupon_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/linestep/linestep/internal/coupon"
	"github.com/linestep/linestep/internal/message"
	"github.com/linestep/linestep/internal/store"
	"github.com/linestep/linestep/internal/testutil"
)

// render renders a one-text template for the friend with the coupon variables it uses.
func (r *rig) render(friendID int64, text string) string {
	r.t.Helper()
	ctx := context.Background()
	tpl := message.Template{Messages: []message.Message{{Type: "text", Text: text}}}
	vars, err := r.svc.Vars(ctx, r.db, ch, friendID, tpl.Variables(), r.clk.Now())
	if err != nil {
		r.t.Fatal(err)
	}
	out, err := tpl.Render(vars)
	if err != nil {
		r.t.Fatal(err)
	}
	var m struct{ Text string }
	if err := json.Unmarshal(out[0], &m); err != nil {
		r.t.Fatal(err)
	}
	return m.Text
}

func TestVarsRenderCoupons(t *testing.T) {
	testutil.EachDB(t, func(t *testing.T, db *store.DB) {
		r := newRig(t, db)
		c := r.coupon("osaka10", coupon.PolicyShared)
		c.ValidUntil = time.Date(2026, 11, 30, 20, 0, 0, 0, time.UTC) // 2026-12-01 05:00 in Tokyo
		r.save(c)
		gen := r.coupon("gen_5", coupon.PolicyGenerated)
		gen.ValidUntil = time.Time{}
		r.save(gen)
		r.save(r.coupon("empty", coupon.PolicyImported))
		off := r.coupon("off", coupon.PolicyShared)
		off.Enabled = false
		r.save(off)
		f := r.friends(1)[0]

		got := r.render(f, "{{display_name|お客様}}へ: {{coupon.osaka10.title}} コード {{coupon.osaka10.code|}} 期限 {{coupon.osaka10.valid_until}}")
		if want := "お客様へ: 10% off in Osaka コード OSAKA10 期限 2026-12-01"; got != want {
			t.Fatalf("rendered %q, want %q", got, want)
		}

		// A generated code is the friend's own, the same in every message.
		first := r.render(f, "{{coupon.gen_5.code|-}} / {{coupon.gen_5.valid_until|no end}}")
		if len(first) != 8+len(" / no end") || first[8:] != " / no end" || !generatedCode.MatchString(first[:8]) {
			t.Fatalf("generated: %q", first)
		}
		if again := r.render(f, "{{coupon.gen_5.code|-}} / {{coupon.gen_5.valid_until|no end}}"); again != first {
			t.Fatalf("second message %q, first %q", again, first)
		}

		// What cannot be issued leaves its variables absent: the fallback shows.
		got = r.render(f, "[{{coupon.empty.code|none left}}] [{{coupon.off.code|}}] [{{coupon.nope.code|?}}]")
		if want := "[none left] [] [?]"; got != want {
			t.Fatalf("rendered %q, want %q", got, want)
		}
		if st := r.stats("empty"); st.Issued != 0 {
			t.Fatalf("exhausted coupon recorded an issue: %+v", st)
		}

		// valid_until is the last day of use in the channel's time zone.
		if _, err := db.ExecContext(context.Background(), "UPDATE channels SET time_zone = 'UTC' WHERE id = ?", ch); err != nil {
			t.Fatal(err)
		}
		if got := r.render(f, "期限 {{coupon.osaka10.valid_until}}"); got != "期限 2026-11-30" {
			t.Fatalf("in UTC: %q", got)
		}
	})
}

// The code shows while the friend has uses left; once they have redeemed it as often as
// allowed, the fallback shows, and nothing is issued again.
func TestVarsOfAUsedUpCoupon(t *testing.T) {
	testutil.EachDB(t, func(t *testing.T, db *store.DB) {
		r := newRig(t, db)
		c := r.coupon("twice", coupon.PolicyGenerated)
		c.PerFriendLimit = 2
		r.save(c)
		f := r.friends(1)[0]
		const text = "[{{coupon.twice.code|used up}}] [{{coupon.twice.title|-}}]"
		first := r.render(f, text)
		if !strings.HasPrefix(first, "[") || strings.HasPrefix(first, "[used up]") || !strings.HasSuffix(first, "] [10% off in Osaka]") {
			t.Fatalf("before any use: %q", first)
		}
		if _, err := r.redeem(f, "twice", "k1"); err != nil {
			t.Fatal(err)
		}
		if again := r.render(f, text); again != first {
			t.Fatalf("with one use left: %q, first %q", again, first)
		}
		if _, err := r.redeem(f, "twice", "k2"); err != nil {
			t.Fatal(err)
		}
		if got := r.render(f, text); got != "[used up] [-]" {
			t.Fatalf("used up: %q", got)
		}
		if st := r.stats("twice"); st.Issued != 1 || st.Redemptions != 2 {
			t.Fatalf("stats %+v, want one issue and two redemptions", st)
		}
	})
}

func TestLastDay(t *testing.T) {
	t.Parallel()
	tokyo, err := time.LoadLocation("Asia/Tokyo")
	if err != nil {
		t.Skip(err)
	}
	cases := []struct {
		until time.Time
		want  string
	}{
		{time.Date(2026, 12, 1, 0, 0, 0, 0, tokyo), "2026-11-30"}, // an end at midnight: the day before is the last
		{time.Date(2026, 11, 30, 23, 59, 59, 0, tokyo), "2026-11-30"},
		{time.Date(2026, 12, 1, 0, 0, 1, 0, tokyo), "2026-12-01"},
	}
	for _, tc := range cases {
		if got := coupon.LastDay(tc.until, tokyo); got != tc.want {
			t.Errorf("LastDay(%v) = %s, want %s", tc.until, got, tc.want)
		}
	}
}

func TestValidateReferences(t *testing.T) {
	testutil.EachDB(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		r := newRig(t, db)
		r.save(r.coupon("osaka10", coupon.PolicyShared))
		ok := []string{"display_name", "coupon.osaka10.code", "coupon.osaka10.title", "coupon.osaka10.valid_until", "field.coupon"}
		if err := r.svc.ValidateReferences(ctx, db, ch, ok); err != nil {
			t.Fatalf("valid references: %v", err)
		}
		err := r.svc.ValidateReferences(ctx, db, ch, []string{"coupon.osaka11.code", "coupon.osaka10.price", "coupon.code", "coupon.osaka11.title"})
		var ps message.Problems
		if !errors.As(err, &ps) || len(ps) != 4 {
			t.Fatalf("ValidateReferences = %v, want four problems", err)
		}
		for i, path := range []string{"coupon.osaka11.code", "coupon.osaka10.price", "coupon.code", "coupon.osaka11.title"} {
			if ps[i].Path != path || ps[i].JA == "" || ps[i].EN == "" {
				t.Errorf("problem %d = %+v, want one at %s", i, ps[i], path)
			}
		}
	})
}
