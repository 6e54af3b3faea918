package coupon_test

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/linestep/linestep/internal/coupon"
	"github.com/linestep/linestep/internal/message"
	"github.com/linestep/linestep/internal/store"
	"github.com/linestep/linestep/internal/testutil"
)

func TestIssueShared(t *testing.T) {
	testutil.EachDB(t, func(t *testing.T, db *store.DB) {
		r := newRig(t, db)
		c := r.save(r.coupon("osaka10", coupon.PolicyShared))
		fs := r.friends(2)
		a := r.mustIssue(fs[0], "osaka10")
		if a.Code != "OSAKA10" || a.CouponID != c.ID || a.Key != "osaka10" || a.Title != c.Title || a.FriendID != fs[0] ||
			!a.IssuedAt.Equal(start) || !a.ValidUntil.Equal(c.ValidUntil) || a.Redeemed != 0 {
			t.Fatalf("issued %+v", a)
		}
		r.clk.Advance(time.Hour)
		if again := r.mustIssue(fs[0], "osaka10"); again != a {
			t.Fatalf("second issue %+v, want the first %+v", again, a)
		}
		if b := r.mustIssue(fs[1], "osaka10"); b.Code != "OSAKA10" {
			t.Fatalf("shared code %q", b.Code)
		}
		if st := r.stats("osaka10"); st != (coupon.Stats{Issued: 2}) {
			t.Fatalf("stats %+v", st)
		}
		// A friend of another channel is not issued anything.
		if _, err := r.issue(fs[0]+1000, "osaka10"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("unknown friend: %v", err)
		}
	})
}

func TestIssueOnlyWhileAvailable(t *testing.T) {
	testutil.EachDB(t, func(t *testing.T, db *store.DB) {
		r := newRig(t, db)
		f := r.friends(1)[0]
		c := r.coupon("later", coupon.PolicyShared)
		c.ValidFrom, c.ValidUntil = start.Add(time.Hour), start.Add(2*time.Hour)
		r.save(c)
		if _, err := r.issue(f, "later"); !errors.Is(err, coupon.ErrNotAvailable) || !coupon.IsRefusal(err) {
			t.Fatalf("before the start: %v", err)
		}
		r.clk.Set(start.Add(time.Hour)) // the start is included
		r.mustIssue(f, "later")
		r.clk.Set(start.Add(2 * time.Hour)) // the end is not
		if _, err := r.issue(f, "later"); !errors.Is(err, coupon.ErrNotAvailable) {
			t.Fatalf("at the end, even though issued before: %v", err)
		}
		off := r.coupon("off", coupon.PolicyShared)
		off.Enabled = false
		r.save(off)
		if _, err := r.issue(f, "off"); !errors.Is(err, coupon.ErrNotAvailable) {
			t.Fatalf("disabled: %v", err)
		}
		if _, err := r.issue(f, "nope"); !errors.Is(err, coupon.ErrUnknownCoupon) {
			t.Fatalf("unknown key: %v", err)
		}
		if st := r.stats("off"); st.Issued != 0 {
			t.Fatalf("refused issue recorded: %+v", st)
		}
	})
}

var generatedCode = regexp.MustCompile(`^[23456789ABCDEFGHJKLMNPQRSTUVWXYZ]{8}$`)

func TestIssueGeneratedCodesAreUnique(t *testing.T) {
	testutil.EachDB(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		r := newRig(t, db)
		r.save(r.coupon("gen", coupon.PolicyGenerated))
		fs := r.friends(1000)
		codes := map[string]int64{}
		// In the caller's transaction, as the scenario runner and broadcasts issue.
		err := db.WriteTx(ctx, func(tx *store.Tx) error {
			clear(codes)
			for _, f := range fs {
				is, err := r.svc.Issue(ctx, tx, ch, f, "gen", r.clk.Now())
				if err != nil {
					return err
				}
				if !generatedCode.MatchString(is.Code) {
					return fmt.Errorf("code %q is not 8 of the unambiguous alphabet", is.Code)
				}
				if other, dup := codes[is.Code]; dup {
					return fmt.Errorf("friends %d and %d share a code", other, f)
				}
				codes[is.Code] = f
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range fs[:10] {
			if is := r.mustIssue(f, "gen"); codes[is.Code] != f {
				t.Fatalf("friend %d got a new code on the second issue", f)
			}
		}
		if st := r.stats("gen"); st.Issued != 1000 || st.CodesLeft != 0 {
			t.Fatalf("stats %+v", st)
		}
	})
}

func TestIssueImported(t *testing.T) {
	testutil.EachDB(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		r := newRig(t, db)
		r.save(r.coupon("imp", coupon.PolicyImported))
		added, dups, err := r.svc.ImportCodes(ctx, ch, "imp", []string{"CODE-1", " CODE-2\r", "", "CODE-3"})
		if err != nil || added != 3 || dups != 0 {
			t.Fatalf("ImportCodes = %d, %d, %v", added, dups, err)
		}
		fs := r.friends(5)
		got := map[string]bool{}
		for _, f := range fs[:3] {
			is := r.mustIssue(f, "imp")
			if got[is.Code] {
				t.Fatalf("code %s issued twice", is.Code)
			}
			got[is.Code] = true
			if again := r.mustIssue(f, "imp"); again.Code != is.Code {
				t.Fatalf("second issue gave %s, want %s", again.Code, is.Code)
			}
		}
		if !got["CODE-1"] || !got["CODE-2"] || !got["CODE-3"] {
			t.Fatalf("issued %v", got)
		}
		for _, f := range fs[3:] {
			if _, err := r.issue(f, "imp"); !errors.Is(err, coupon.ErrExhausted) || !coupon.IsRefusal(err) {
				t.Fatalf("exhausted pool: %v", err)
			}
		}
		if st := r.stats("imp"); st != (coupon.Stats{Issued: 3}) {
			t.Fatalf("stats %+v", st)
		}
		// More codes: the friends left out are served.
		if added, dups, err := r.svc.ImportCodes(ctx, ch, "imp", []string{"CODE-3", "CODE-4", "CODE-4", "CODE-5", "CODE-6"}); err != nil || added != 3 || dups != 2 {
			t.Fatalf("second import = %d, %d, %v", added, dups, err)
		}
		for _, f := range fs[3:] {
			r.mustIssue(f, "imp")
		}
		if st := r.stats("imp"); st.Issued != 5 || st.CodesLeft != 1 {
			t.Fatalf("stats %+v", st)
		}
	})
}

func TestImportCodesRefusesBadFiles(t *testing.T) {
	testutil.EachDB(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		r := newRig(t, db)
		r.save(r.coupon("imp", coupon.PolicyImported))
		r.save(r.coupon("shared", coupon.PolicyShared))

		_, _, err := r.svc.ImportCodes(ctx, ch, "imp", []string{"GOOD-1", "bad code", "GOOD-2", "ÜBER", strings.Repeat("A", 65)})
		var ps message.Problems
		if !errors.As(err, &ps) || len(ps) != 3 {
			t.Fatalf("ImportCodes = %v, want three problems", err)
		}
		for i, line := range []string{"line 2", "line 4", "line 5"} {
			p := ps[i]
			if p.Path != line || !strings.HasPrefix(p.EN, line+":") || p.JA == "" {
				t.Errorf("problem %d = %+v, want %s", i, p, line)
			}
			if strings.Contains(p.Error(), "bad code") || strings.Contains(p.JA, "ÜBER") {
				t.Errorf("problem names the code: %+v", p)
			}
		}
		if st := r.stats("imp"); st.CodesLeft != 0 {
			t.Fatalf("a refused import added %d codes", st.CodesLeft)
		}

		many := make([]string, 30)
		for i := range many {
			many[i] = "no good"
		}
		if _, _, err := r.svc.ImportCodes(ctx, ch, "imp", many); !errors.As(err, &ps) || len(ps) != 21 || !strings.Contains(ps[20].EN, "10 more") {
			t.Fatalf("30 bad lines: %v", err)
		}
		if _, _, err := r.svc.ImportCodes(ctx, ch, "imp", []string{"", "  "}); !errors.As(err, &ps) {
			t.Fatalf("empty file: %v", err)
		}
		if _, _, err := r.svc.ImportCodes(ctx, ch, "shared", []string{"A"}); !errors.As(err, &ps) || ps[0].Path != "code_policy" {
			t.Fatalf("import into a shared coupon: %v", err)
		}
		if _, _, err := r.svc.ImportCodes(ctx, ch, "nope", []string{"A"}); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("import into an unknown coupon: %v", err)
		}
	})
}

// Several instances issue imported codes at once on one PostgreSQL: no code goes to two
// friends, no friend gets two codes, and the pool is used up exactly.
func TestConcurrentImportedIssuePostgres(t *testing.T) {
	db := testutil.NewPostgres(t)
	ctx := context.Background()
	r := newRig(t, db)
	r.save(r.coupon("imp", coupon.PolicyImported))
	const pool, workers = 60, 8
	codes := make([]string, pool)
	for i := range codes {
		codes[i] = fmt.Sprintf("C%03d", i)
	}
	if _, _, err := r.svc.ImportCodes(ctx, ch, "imp", codes); err != nil {
		t.Fatal(err)
	}
	fs := r.friends(100)
	type result struct {
		friend int64
		code   string
		err    error
	}
	results := make(chan result, 2*len(fs))
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			// Each friend is issued by two workers, so the per-friend claim races too.
			for i, f := range fs {
				if i%workers == w || (i+1)%workers == w {
					is, err := r.svc.Issue(ctx, db, ch, f, "imp", r.clk.Now())
					results <- result{f, is.Code, err}
				}
			}
		})
	}
	wg.Wait()
	close(results)
	byFriend := map[int64]string{}
	byCode := map[string]int64{}
	exhausted := map[int64]bool{}
	for res := range results {
		switch {
		case errors.Is(res.err, coupon.ErrExhausted):
			exhausted[res.friend] = true
			continue
		case res.err != nil:
			t.Fatalf("friend %d: %v", res.friend, res.err)
		}
		if prev, ok := byFriend[res.friend]; ok && prev != res.code {
			t.Fatalf("friend %d got %s and %s", res.friend, prev, res.code)
		}
		byFriend[res.friend] = res.code
		if other, ok := byCode[res.code]; ok && other != res.friend {
			t.Fatalf("code %s went to friends %d and %d", res.code, other, res.friend)
		}
		byCode[res.code] = res.friend
	}
	if len(byCode) != pool {
		t.Fatalf("%d codes issued, want the whole pool of %d", len(byCode), pool)
	}
	for f := range exhausted {
		if code, ok := byFriend[f]; ok {
			t.Fatalf("friend %d was both issued %s and refused as exhausted", f, code)
		}
	}
	if len(exhausted) != len(fs)-pool {
		t.Fatalf("%d friends refused, want %d", len(exhausted), len(fs)-pool)
	}
	if st := r.stats("imp"); st.Issued != pool || st.CodesLeft != 0 {
		t.Fatalf("stats %+v", st)
	}
	var assigned int
	if err := db.QueryRowContext(ctx, "SELECT COUNT(DISTINCT friend_id) FROM coupon_codes WHERE assigned_at IS NOT NULL").Scan(&assigned); err != nil || assigned != pool {
		t.Fatalf("codes assigned to %d distinct friends (%v), want %d", assigned, err, pool)
	}
}
