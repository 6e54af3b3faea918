package coupon_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/linestep/linestep/internal/coupon"
	"github.com/linestep/linestep/internal/message"
	"github.com/linestep/linestep/internal/store"
	"github.com/linestep/linestep/internal/testutil"
)

func TestValidate(t *testing.T) {
	t.Parallel()
	base := coupon.Coupon{ChannelID: ch, Key: "osaka10", Title: "10% off in Osaka", CodePolicy: coupon.PolicyShared,
		SharedCode: "OSAKA-10", ValidFrom: start}
	cases := []struct {
		name   string
		change func(c *coupon.Coupon)
		paths  []string // problem paths, in order; none: valid
	}{
		{"shared", func(c *coupon.Coupon) {}, nil},
		{"generated", func(c *coupon.Coupon) { c.CodePolicy, c.SharedCode = coupon.PolicyGenerated, "" }, nil},
		{"imported with an end and a limit", func(c *coupon.Coupon) {
			c.CodePolicy, c.SharedCode, c.ValidUntil, c.PerFriendLimit = coupon.PolicyImported, "", start.Add(time.Hour), 3
		}, nil},
		{"no channel", func(c *coupon.Coupon) { c.ChannelID = "" }, []string{"channel_id"}},
		{"upper-case key", func(c *coupon.Coupon) { c.Key = "Osaka" }, []string{"key"}},
		{"long key", func(c *coupon.Coupon) { c.Key = strings.Repeat("k", 65) }, []string{"key"}},
		{"no title", func(c *coupon.Coupon) { c.Title = "  " }, []string{"title"}},
		{"long title", func(c *coupon.Coupon) { c.Title = strings.Repeat("割", 101) }, []string{"title"}},
		{"two-line title", func(c *coupon.Coupon) { c.Title = "a\nb" }, []string{"title"}},
		{"long description", func(c *coupon.Coupon) { c.Description = strings.Repeat("x", 1001) }, []string{"description"}},
		{"shared without code", func(c *coupon.Coupon) { c.SharedCode = "" }, []string{"shared_code"}},
		{"shared code with a space", func(c *coupon.Coupon) { c.SharedCode = "OSAKA 10" }, []string{"shared_code"}},
		{"shared code too long", func(c *coupon.Coupon) { c.SharedCode = strings.Repeat("A", 65) }, []string{"shared_code"}},
		{"generated with a shared code", func(c *coupon.Coupon) { c.CodePolicy = coupon.PolicyGenerated }, []string{"shared_code"}},
		{"unknown policy", func(c *coupon.Coupon) { c.CodePolicy = "random" }, []string{"code_policy"}},
		{"no start", func(c *coupon.Coupon) { c.ValidFrom = time.Time{} }, []string{"valid_from"}},
		{"end before start", func(c *coupon.Coupon) { c.ValidUntil = start.Add(-time.Second) }, []string{"valid_until"}},
		{"end at start", func(c *coupon.Coupon) { c.ValidUntil = start }, []string{"valid_until"}},
		{"negative limit", func(c *coupon.Coupon) { c.PerFriendLimit = -1 }, []string{"per_friend_limit"}},
		{"several at once", func(c *coupon.Coupon) { c.Key, c.Title = "", "" }, []string{"key", "title"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := base
			tc.change(&c)
			err := coupon.Validate(c)
			if len(tc.paths) == 0 {
				if err != nil {
					t.Fatalf("Validate = %v, want nil", err)
				}
				return
			}
			var ps message.Problems
			if !errors.As(err, &ps) {
				t.Fatalf("Validate = %v, want message.Problems", err)
			}
			var got []string
			for _, p := range ps {
				got = append(got, p.Path)
				if p.JA == "" || p.EN == "" {
					t.Errorf("%s: problem without both languages: %+v", p.Path, p)
				}
			}
			if strings.Join(got, ",") != strings.Join(tc.paths, ",") {
				t.Fatalf("problems at %v, want %v (%v)", got, tc.paths, err)
			}
		})
	}
}

func TestSaveGetListDelete(t *testing.T) {
	testutil.EachDB(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		r := newRig(t, db)
		c := r.save(r.coupon("osaka10", coupon.PolicyShared))
		if c.ID == 0 || c.PerFriendLimit != 1 || !c.Enabled || !c.ValidFrom.Equal(start.Add(-time.Hour)) || c.SharedCode != "OSAKA10" {
			t.Fatalf("saved %+v", c)
		}
		got, err := r.svc.Get(ctx, ch, "osaka10")
		if err != nil || got != c {
			t.Fatalf("Get = %+v, %v; want %+v", got, err, c)
		}

		// An update keeps the ID; an end can be removed.
		r.clk.Advance(time.Minute)
		upd := r.coupon("osaka10", coupon.PolicyShared)
		upd.Title, upd.ValidUntil, upd.PerFriendLimit, upd.Enabled = "15% off", time.Time{}, 2, false
		u := r.save(upd)
		if u.ID != c.ID || u.Title != "15% off" || !u.ValidUntil.IsZero() || u.PerFriendLimit != 2 || u.Enabled ||
			!u.CreatedAt.Equal(c.CreatedAt) || !u.UpdatedAt.After(c.UpdatedAt) {
			t.Fatalf("updated %+v", u)
		}

		// Invalid coupons are refused with problems.
		bad := r.coupon("bad", coupon.PolicyShared)
		bad.Title = ""
		var ps message.Problems
		if _, err := r.svc.Save(ctx, db, bad); !errors.As(err, &ps) {
			t.Fatalf("Save invalid = %v", err)
		}

		// The policy may change until codes exist.
		gen := r.save(r.coupon("gen", coupon.PolicyGenerated))
		imp := gen
		imp.CodePolicy = coupon.PolicyImported
		r.save(imp)
		if _, _, err := r.svc.ImportCodes(ctx, ch, "gen", []string{"A1"}); err != nil {
			t.Fatal(err)
		}
		if _, err := r.svc.Save(ctx, db, gen); !errors.As(err, &ps) || ps[0].Path != "code_policy" {
			t.Fatalf("policy change after import = %v", err)
		}

		list, err := r.svc.List(ctx, ch)
		if err != nil || len(list) != 2 || list[0].Key != "gen" || list[1].Key != "osaka10" {
			t.Fatalf("List = %+v, %v", list, err)
		}
		if err := r.svc.Delete(ctx, db, ch, "gen"); err != nil {
			t.Fatal(err)
		}
		_, err = r.svc.Get(ctx, ch, "gen")
		if !errors.Is(err, coupon.ErrUnknownCoupon) || !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("Get deleted = %v", err)
		}
		if err := r.svc.Delete(ctx, db, ch, "gen"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("Delete twice = %v", err)
		}
		if _, err := r.svc.Issue(ctx, db, ch, r.friends(1)[0], "gen", r.clk.Now()); !errors.Is(err, coupon.ErrUnknownCoupon) {
			t.Fatalf("Issue deleted = %v", err)
		}
	})
}

func TestKeysIn(t *testing.T) {
	t.Parallel()
	names := []string{"coupon.b.code", "display_name", "coupon.a.title", "coupon.b.valid_until", "coupon.code",
		"coupon.c.unknown", "field.coupon", "coupon.a.b.code"}
	if got := coupon.KeysIn(names); strings.Join(got, ",") != "b,a" {
		t.Fatalf("KeysIn = %v, want [b a]", got)
	}
	if got := coupon.PostbackData("osaka10"); got != "linestep:coupon:redeem:osaka10" {
		t.Fatalf("PostbackData = %q", got)
	}
}
