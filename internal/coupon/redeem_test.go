package coupon_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/linestep/linestep/internal/coupon"
	"github.com/linestep/linestep/internal/store"
	"github.com/linestep/linestep/internal/testutil"
)

func (r *rig) redeem(friendID int64, key, rkey string) (coupon.Redemption, error) {
	return r.svc.Redeem(context.Background(), r.db, ch, friendID, key, rkey, "staff:7", r.clk.Now())
}

func TestRedeemOncePerKeyWithinTheLimit(t *testing.T) {
	testutil.EachDB(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		r := newRig(t, db)
		c := r.coupon("osaka10", coupon.PolicyShared)
		c.PerFriendLimit = 2
		r.save(c)
		fs := r.friends(2)
		a, b := fs[0], fs[1]

		if _, err := r.redeem(a, "osaka10", "k1"); !errors.Is(err, coupon.ErrNotIssued) || !coupon.IsRefusal(err) {
			t.Fatalf("never issued: %v", err)
		}
		r.mustIssue(a, "osaka10")
		first, err := r.redeem(a, "osaka10", "k1")
		if err != nil || first.ID == 0 || first.Number != 1 || first.By != "staff:7" || first.RedemptionKey != "k1" ||
			first.FriendID != a || first.Key != "osaka10" || !first.RedeemedAt.Equal(start) {
			t.Fatalf("first redemption %+v, %v", first, err)
		}
		// The same key again (a retried click) returns the first and counts nothing.
		r.clk.Advance(time.Minute)
		if again, err := r.redeem(a, "osaka10", "k1"); err != nil || again != first {
			t.Fatalf("repeat %+v, %v; want %+v", again, err, first)
		}
		second, err := r.redeem(a, "osaka10", "k2")
		if err != nil || second.Number != 2 {
			t.Fatalf("second use %+v, %v", second, err)
		}
		if _, err := r.redeem(a, "osaka10", "k3"); !errors.Is(err, coupon.ErrLimitReached) {
			t.Fatalf("past the limit: %v", err)
		}
		if is := r.mustIssue(a, "osaka10"); is.Redeemed != 2 {
			t.Fatalf("issue says redeemed %d times", is.Redeemed)
		}
		// A key belongs to one friend.
		r.mustIssue(b, "osaka10")
		if _, err := r.redeem(b, "osaka10", "k1"); !errors.Is(err, coupon.ErrKeyConflict) {
			t.Fatalf("another friend's key: %v", err)
		}
		if st := r.stats("osaka10"); st != (coupon.Stats{Issued: 2, Redemptions: 2, RedeemedFriends: 1}) {
			t.Fatalf("stats %+v", st)
		}
		list, err := r.svc.Redemptions(ctx, ch, "osaka10")
		if err != nil || len(list) != 2 || list[0] != first || list[1] != second {
			t.Fatalf("Redemptions = %+v, %v", list, err)
		}

		// Arguments that make no sense are refused before anything is read.
		if _, err := r.redeem(b, "osaka10", ""); !errors.Is(err, coupon.ErrInvalid) {
			t.Fatalf("no key: %v", err)
		}
		for _, by := range []string{"", "staff:", "admin", "staff:a\nb"} {
			if _, err := r.svc.Redeem(ctx, db, ch, b, "osaka10", "k9", by, r.clk.Now()); !errors.Is(err, coupon.ErrInvalid) {
				t.Fatalf("by %q: %v", by, err)
			}
		}
		if _, err := r.redeem(b, "nope", "k9"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("unknown coupon: %v", err)
		}
	})
}

func TestRedeemOnlyWhileAvailable(t *testing.T) {
	testutil.EachDB(t, func(t *testing.T, db *store.DB) {
		r := newRig(t, db)
		c := r.coupon("osaka10", coupon.PolicyShared)
		c.PerFriendLimit = 5
		r.save(c)
		f := r.friends(1)[0]
		r.mustIssue(f, "osaka10")
		first, err := r.redeem(f, "osaka10", "k1")
		if err != nil {
			t.Fatal(err)
		}

		r.clk.Set(c.ValidUntil)
		if _, err := r.redeem(f, "osaka10", "k2"); !errors.Is(err, coupon.ErrNotAvailable) {
			t.Fatalf("after the end: %v", err)
		}
		// A repeat of a redemption made in time is still answered.
		if again, err := r.redeem(f, "osaka10", "k1"); err != nil || again.ID != first.ID {
			t.Fatalf("repeat after the end: %+v, %v", again, err)
		}

		c.ValidUntil = time.Time{}
		c.Enabled = false
		r.save(c)
		if _, err := r.redeem(f, "osaka10", "k3"); !errors.Is(err, coupon.ErrNotAvailable) {
			t.Fatalf("disabled: %v", err)
		}
		c.Enabled = true
		r.save(c)
		if rd, err := r.redeem(f, "osaka10", "k4"); err != nil || rd.Number != 2 {
			t.Fatalf("enabled again: %+v, %v", rd, err)
		}
		if st := r.stats("osaka10"); st.Redemptions != 2 {
			t.Fatalf("refusals were counted: %+v", st)
		}
	})
}

// Redemptions of one friend at once on PostgreSQL: distinct keys stop at the limit, and
// one key is recorded once whoever sends it.
func TestConcurrentRedeemPostgres(t *testing.T) {
	db := testutil.NewPostgres(t)
	r := newRig(t, db)
	c := r.coupon("osaka10", coupon.PolicyShared)
	c.PerFriendLimit = 3
	r.save(c)
	f := r.friends(1)[0]
	r.mustIssue(f, "osaka10")

	var mu sync.Mutex
	ok, limited := 0, 0
	ids := map[int64]bool{}
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := range 2 {
				for _, key := range []string{fmt.Sprintf("own-%d-%d", w, i), "shared-key"} {
					rd, err := r.redeem(f, "osaka10", key)
					mu.Lock()
					switch {
					case err == nil:
						ok++
						ids[rd.ID] = true
					case errors.Is(err, coupon.ErrLimitReached):
						limited++
					default:
						t.Errorf("redeem %s: %v", key, err)
					}
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	if len(ids) != 3 {
		t.Fatalf("%d distinct redemptions, want the limit of 3 (%d answers, %d refused)", len(ids), ok, limited)
	}
	if st := r.stats("osaka10"); st.Redemptions != 3 {
		t.Fatalf("stats %+v", st)
	}
}
