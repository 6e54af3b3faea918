package richmenu_test

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/linestep/linestep/internal/clock"
	"github.com/linestep/linestep/internal/line"
	"github.com/linestep/linestep/internal/richmenu"
	"github.com/linestep/linestep/internal/store"
	"github.com/linestep/linestep/internal/testutil"
)

var ctx = context.Background()

const (
	menuA = "richmenu-0123456789abcdef0123456789abcdef"
	menuB = "richmenu-fedcba9876543210fedcba9876543210"
	userA = "U0123456789abcdef0123456789abcdef"
)

// linker stands in for LINE: it records the calls and answers with what fail says.
type linker struct {
	mu    sync.Mutex
	calls []string
	fail  func(n int) error // the answer to the n-th call (from 1); nil: success
	hook  func(n int)       // runs during the n-th call, before it answers
}

func (l *linker) answer(call string) error {
	l.mu.Lock()
	l.calls = append(l.calls, call)
	n, fail, hook := len(l.calls), l.fail, l.hook
	l.mu.Unlock()
	if hook != nil {
		hook(n)
	}
	if fail != nil {
		return fail(n)
	}
	return nil
}

func (l *linker) LinkRichMenu(_ context.Context, channelID, userID, menu string) error {
	return l.answer(channelID + " " + userID + " link " + menu)
}

func (l *linker) UnlinkRichMenu(_ context.Context, channelID, userID string) error {
	return l.answer(channelID + " " + userID + " unlink")
}

func (l *linker) made() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.calls)
}

type rig struct {
	db     *store.DB
	clk    *clock.Fake
	linker *linker
	svc    *richmenu.Service
	friend int64
}

func newRig(t *testing.T, db *store.DB, cfg richmenu.Config) *rig {
	t.Helper()
	r := &rig{db: db, clk: clock.NewFake(time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)), linker: &linker{}}
	r.svc = richmenu.New(db, r.clk, r.linker, slog.New(slog.DiscardHandler), cfg)
	if _, err := db.ExecContext(ctx, `INSERT INTO channels (id, name, secret_enc, token_enc, created_at) VALUES ('ch1', 'Test', ?, ?, 0)`,
		[]byte{1}, []byte{1}); err != nil {
		t.Fatal(err)
	}
	err := db.WriteTx(ctx, func(tx *store.Tx) error {
		return tx.QueryRowContext(ctx, `INSERT INTO friends (channel_id, line_user_id, status, status_at, created_at, updated_at)
			VALUES ('ch1', ?, 'following', 0, 0, 0) RETURNING id`, userA).Scan(&r.friend)
	})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func (r *rig) enqueue(t *testing.T, menu string) {
	t.Helper()
	err := r.db.WriteTx(ctx, func(tx *store.Tx) error {
		return r.svc.Enqueue(ctx, tx, richmenu.Request{ChannelID: "ch1", FriendID: r.friend, RichMenuID: menu, Source: "test"})
	})
	if err != nil {
		t.Fatal(err)
	}
}

func (r *rig) runOnce(t *testing.T, want int) {
	t.Helper()
	n, err := r.svc.RunOnce(ctx)
	if err != nil || n != want {
		t.Fatalf("RunOnce: %d rows, %v; want %d", n, err, want)
	}
}

// links returns the friend's links, newest first.
func (r *rig) links(t *testing.T) []richmenu.Link {
	t.Helper()
	ls, err := richmenu.ForFriend(ctx, r.db, r.friend, 10)
	if err != nil {
		t.Fatal(err)
	}
	return ls
}

func expectCalls(t *testing.T, l *linker, want ...string) {
	t.Helper()
	if got := l.made(); !slices.Equal(got, want) {
		t.Fatalf("calls to LINE:\n got  %q\n want %q", got, want)
	}
}

func TestLinkAndUnlink(t *testing.T) {
	testutil.EachDB(t, func(t *testing.T, db *store.DB) {
		r := newRig(t, db, richmenu.Config{})
		r.enqueue(t, menuA)
		r.runOnce(t, 1)
		r.enqueue(t, "")
		r.runOnce(t, 1)
		r.runOnce(t, 0)
		expectCalls(t, r.linker, "ch1 "+userA+" link "+menuA, "ch1 "+userA+" unlink")
		ls := r.links(t)
		if len(ls) != 2 || ls[0].State != richmenu.Done || ls[0].RichMenuID != "" || ls[1].State != richmenu.Done ||
			ls[1].RichMenuID != menuA || ls[1].Attempts != 1 || ls[1].DoneAt.IsZero() {
			t.Errorf("links: %+v", ls)
		}
	})
}

func TestEnqueueRefusesWhatIsNotAMenuID(t *testing.T) {
	r := newRig(t, testutil.NewSQLite(t), richmenu.Config{})
	for _, id := range []string{"richmenu-xyz", "richmenu-0123456789ABCDEF0123456789ABCDEF", "../v2/bot/x", "default"} {
		err := r.db.WriteTx(ctx, func(tx *store.Tx) error {
			return r.svc.Enqueue(ctx, tx, richmenu.Request{ChannelID: "ch1", FriendID: r.friend, RichMenuID: id})
		})
		if !errors.Is(err, richmenu.ErrInvalid) {
			t.Errorf("Enqueue(%q): %v, want ErrInvalid", id, err)
		}
	}
	if ls := r.links(t); len(ls) != 0 {
		t.Errorf("invalid requests were queued: %+v", ls)
	}
}

// Several requests before the worker runs: only the latest is made.
func TestOnlyTheLatestPendingRequestIsMade(t *testing.T) {
	testutil.EachDB(t, func(t *testing.T, db *store.DB) {
		r := newRig(t, db, richmenu.Config{})
		r.enqueue(t, menuA)
		r.enqueue(t, "")
		r.enqueue(t, menuB)
		r.runOnce(t, 1)
		expectCalls(t, r.linker, "ch1 "+userA+" link "+menuB)
		if ls := r.links(t); len(ls) != 1 || ls[0].RichMenuID != menuB || ls[0].State != richmenu.Done {
			t.Errorf("links: %+v", ls)
		}
	})
}

// A request made while the previous one is with LINE waits for it, even for another
// instance's worker, and goes next: the friend ends with the newer menu.
func TestANewerRequestWaitsForTheOneInFlight(t *testing.T) {
	testutil.EachDB(t, func(t *testing.T, db *store.DB) {
		r := newRig(t, db, richmenu.Config{})
		other := richmenu.New(db, r.clk, r.linker, slog.New(slog.DiscardHandler), richmenu.Config{})
		r.linker.hook = func(n int) {
			if n != 1 {
				return
			}
			r.enqueue(t, menuB)
			if n, err := other.RunOnce(ctx); err != nil || n != 0 {
				t.Errorf("another worker took the row in flight: %d %v", n, err)
			}
		}
		r.enqueue(t, menuA)
		r.runOnce(t, 1)
		r.linker.hook = nil
		if ls := r.links(t); len(ls) != 1 || ls[0].State != richmenu.Pending || ls[0].RichMenuID != menuB {
			t.Fatalf("the newer request after the older one's outcome: %+v", ls)
		}
		r.runOnce(t, 1)
		expectCalls(t, r.linker, "ch1 "+userA+" link "+menuA, "ch1 "+userA+" link "+menuB)
		if ls := r.links(t); ls[0].State != richmenu.Done || ls[0].RichMenuID != menuB {
			t.Errorf("links: %+v", ls)
		}
	})
}

// LINE refusing the request (4xx) fails it with LINE's reason, for good; a new request
// for the friend is made as usual.
func TestRefusedRequestFailsWithItsReason(t *testing.T) {
	testutil.EachDB(t, func(t *testing.T, db *store.DB) {
		r := newRig(t, db, richmenu.Config{})
		r.linker.fail = func(n int) error {
			if n == 1 {
				return &line.APIError{Endpoint: line.EndpointRichMenuLink, Status: 404, Message: "richmenu not found"}
			}
			return nil
		}
		r.enqueue(t, menuA)
		r.runOnce(t, 1)
		r.clk.Advance(time.Hour)
		r.runOnce(t, 0)
		ls := r.links(t)
		if len(ls) != 1 || ls[0].State != richmenu.Failed || ls[0].Attempts != 1 || !strings.Contains(ls[0].LastError, "404") ||
			!strings.Contains(ls[0].LastError, "richmenu not found") {
			t.Fatalf("refused link: %+v", ls)
		}
		r.enqueue(t, menuB)
		r.runOnce(t, 1)
		if ls := r.links(t); len(ls) != 2 || ls[0].State != richmenu.Done || ls[1].State != richmenu.Failed {
			t.Errorf("links after a new request: %+v", ls)
		}
	})
}

// 5xx, 429 and no answer are tried again after a growing wait, up to MaxAttempts.
func TestTransientFailuresAreRetriedWithBackoff(t *testing.T) {
	testutil.EachDB(t, func(t *testing.T, db *store.DB) {
		r := newRig(t, db, richmenu.Config{MaxAttempts: 4})
		answers := []error{
			&line.APIError{Endpoint: line.EndpointRichMenuLink, Status: 500},
			&line.APIError{Endpoint: line.EndpointRichMenuLink, Status: 429},
			&line.TransportError{Endpoint: line.EndpointRichMenuLink, Err: context.DeadlineExceeded},
		}
		r.linker.fail = func(n int) error {
			if n <= len(answers) {
				return answers[n-1]
			}
			return nil
		}
		r.enqueue(t, menuA)
		r.runOnce(t, 1)
		if ls := r.links(t); ls[0].State != richmenu.Pending || ls[0].Attempts != 1 || !strings.Contains(ls[0].LastError, "500") ||
			!ls[0].DueAt.Equal(r.clk.Now().Add(time.Second)) {
			t.Fatalf("after a 500: %+v", ls)
		}
		r.runOnce(t, 0) // not due yet
		r.clk.Advance(time.Second)
		r.runOnce(t, 1)
		if ls := r.links(t); !ls[0].DueAt.Equal(r.clk.Now().Add(2 * time.Second)) {
			t.Fatalf("after a 429 the wait doubles: %+v", ls)
		}
		r.clk.Advance(2 * time.Second)
		r.runOnce(t, 1)
		r.clk.Advance(4 * time.Second)
		r.runOnce(t, 1)
		if ls := r.links(t); ls[0].State != richmenu.Done || ls[0].Attempts != 4 {
			t.Errorf("after three failures and a success: %+v", ls)
		}

		// One that never succeeds fails after MaxAttempts, saying why.
		r.linker.fail = func(int) error { return &line.APIError{Endpoint: line.EndpointRichMenuLink, Status: 503} }
		r.enqueue(t, menuB)
		for range 4 {
			r.runOnce(t, 1)
			r.clk.Advance(10 * time.Minute)
		}
		r.runOnce(t, 0)
		if ls := r.links(t); ls[0].State != richmenu.Failed || ls[0].Attempts != 4 || !strings.Contains(ls[0].LastError, "gave up after 4 attempts") {
			t.Errorf("a link that keeps failing: %+v", ls)
		}
	})
}

// A worker that stops mid-call (a crash, a shutdown) leaves its row leased; once the
// lease runs out, any worker makes the call again.
func TestACrashedWorkersRowIsTakenOver(t *testing.T) {
	testutil.EachDB(t, func(t *testing.T, db *store.DB) {
		r := newRig(t, db, richmenu.Config{Lease: 30 * time.Second})
		crashed, stop := context.WithCancel(ctx)
		r.linker.hook = func(int) { stop() }
		r.enqueue(t, menuA)
		if n, err := r.svc.RunOnce(crashed); n != 1 || err != nil {
			t.Fatalf("the call that was cut off: %d %v", n, err)
		}
		r.linker.hook = nil
		r.runOnce(t, 0) // still leased
		r.clk.Advance(29 * time.Second)
		r.runOnce(t, 0)
		r.clk.Advance(time.Second)
		r.runOnce(t, 1)
		expectCalls(t, r.linker, "ch1 "+userA+" link "+menuA, "ch1 "+userA+" link "+menuA)
		if ls := r.links(t); ls[0].State != richmenu.Done {
			t.Errorf("links: %+v", ls)
		}
	})
}
