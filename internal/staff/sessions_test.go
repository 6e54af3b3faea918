package staff_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/linestep/linestep/internal/staff"
	"github.com/linestep/linestep/internal/store"
	"github.com/linestep/linestep/internal/testutil"
)

func TestListAndEndSessions(t *testing.T) {
	t.Parallel()
	testutil.EachDB(t, func(t *testing.T, db *store.DB) {
		f := newFixture(t, db)
		alice := f.member("alice", staff.Operator)
		bob := f.member("bob", staff.Operator)
		laptop := f.signIn("alice", staff.SignedIn)
		f.clk.Advance(2 * time.Minute)
		phone := f.signInFrom("alice", staff.Client{Addr: "198.51.100.7", UserAgent: "phone"}, staff.SignedIn)
		tablet := f.signInFrom("alice", staff.Client{Addr: "198.51.100.8", UserAgent: "tablet"}, staff.SignedIn)
		bobs := f.signIn("bob", staff.SignedIn)
		if laptop.SessionToken == phone.SessionToken {
			t.Fatal("two sign-ins share a token")
		}

		list, err := f.svc.ListSessions(f.ctx, alice.ID, phone.SessionToken)
		if err != nil || len(list) != 3 {
			t.Fatalf("ListSessions = %+v, %v", list, err)
		}
		var current, laptopID string
		for _, s := range list {
			if s.Current {
				current = s.UserAgent
			}
			if s.UserAgent == browser.UserAgent {
				laptopID = s.ID
			}
			if s.ID == "" || strings.Contains(s.ID, phone.SessionToken) {
				t.Fatalf("session id %q", s.ID)
			}
		}
		if current != "phone" || laptopID == "" {
			t.Fatalf("current = %q, laptop id = %q", current, laptopID)
		}

		// Ending one's own session by id; nobody else's.
		if err := f.svc.EndSessionByID(f.ctx, bob.ID, laptopID); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("ending another member's session by id: %v", err)
		}
		if err := f.svc.EndSessionByID(f.ctx, alice.ID, laptopID); err != nil {
			t.Fatal(err)
		}
		if _, err := f.svc.Session(f.ctx, laptop.SessionToken); !isInvalid(err) {
			t.Fatalf("ended session accepted: %v", err)
		}
		if n, err := f.svc.EndOtherSessions(f.ctx, phone.SessionToken); err != nil || n != 1 {
			t.Fatalf("EndOtherSessions = %d, %v", n, err)
		}
		if _, err := f.svc.Session(f.ctx, tablet.SessionToken); !isInvalid(err) {
			t.Fatalf("other session survived: %v", err)
		}

		// Sign out everywhere: the current session too; an old cookie is refused.
		if n, err := f.svc.EndAllSessions(f.ctx, alice.ID); err != nil || n != 1 {
			t.Fatalf("EndAllSessions = %d, %v", n, err)
		}
		if _, err := f.svc.Session(f.ctx, phone.SessionToken); !isInvalid(err) {
			t.Fatalf("session after signing out everywhere: %v", err)
		}
		if list, _ := f.svc.ListSessions(f.ctx, alice.ID, ""); len(list) != 0 {
			t.Fatalf("sessions left: %+v", list)
		}
		if _, err := f.svc.Session(f.ctx, bobs.SessionToken); err != nil {
			t.Fatalf("another member's session ended too: %v", err)
		}
	})
}

func TestSessionTimeouts(t *testing.T) {
	t.Parallel()
	testutil.EachDB(t, func(t *testing.T, db *store.DB) {
		f := newFixture(t, db)
		f.member("alice", staff.Operator)
		idle := f.signIn("alice", staff.SignedIn)
		active := f.signIn("alice", staff.SignedIn)
		for elapsed := time.Duration(0); elapsed < staff.AbsoluteTimeout-20*time.Minute; elapsed += 20 * time.Minute {
			f.clk.Advance(20 * time.Minute)
			if _, err := f.svc.Session(f.ctx, active.SessionToken); err != nil {
				t.Fatalf("active session refused after %v: %v", elapsed, err)
			}
			if elapsed == 20*time.Minute {
				if _, err := f.svc.Session(f.ctx, idle.SessionToken); !isInvalid(err) {
					t.Fatalf("idle session accepted: %v", err)
				}
			}
		}
		f.clk.Advance(25 * time.Minute)
		if _, err := f.svc.Session(f.ctx, active.SessionToken); !isInvalid(err) {
			t.Fatalf("session past the absolute timeout accepted: %v", err)
		}
	})
}

func TestReauthentication(t *testing.T) {
	t.Parallel()
	testutil.EachDB(t, func(t *testing.T, db *store.DB) {
		f := newFixture(t, db)
		f.member("alice", staff.Operator)
		s := f.signIn("alice", staff.SignedIn).SessionToken
		fresh := func() bool {
			t.Helper()
			c, err := f.svc.Current(f.ctx, s)
			if err != nil {
				t.Fatal(err)
			}
			return f.svc.RecentlyAuthenticated(c, staff.ReauthWindow)
		}
		if !fresh() {
			t.Fatal("a session just signed in into is not freshly authenticated")
		}
		f.clk.Advance(staff.ReauthWindow + time.Second)
		if fresh() {
			t.Fatal("authentication still fresh after the window")
		}
		if err := f.svc.Reauthenticate(f.ctx, s, "wrong password!!", "", browser); err != staff.ErrBadCredentials {
			t.Fatalf("reauth with a wrong password: %v", err)
		}
		if fresh() {
			t.Fatal("a failed reauth stamped the session")
		}
		if err := f.svc.Reauthenticate(f.ctx, s, goodPassword, "", browser); err != nil {
			t.Fatal(err)
		}
		if !fresh() {
			t.Fatal("reauth did not stamp the session")
		}

		// With two-factor, the code is part of it, once.
		f.member("olivia", staff.Owner)
		o := f.signIn("olivia", staff.MustEnrolTOTP).SessionToken
		secret, _ := f.enrol(o)
		f.clk.Advance(staff.ReauthWindow + time.Second)
		if err := f.svc.Reauthenticate(f.ctx, o, goodPassword, "", browser); !errors.Is(err, staff.ErrSecondFactorRequired) {
			t.Fatalf("reauth without a code: %v", err)
		}
		code := f.code(secret)
		if err := f.svc.Reauthenticate(f.ctx, o, goodPassword, code, browser); err != nil {
			t.Fatal(err)
		}
		if err := f.svc.Reauthenticate(f.ctx, o, goodPassword, code, browser); !errors.Is(err, staff.ErrBadCode) {
			t.Fatalf("reauth with a used code: %v", err)
		}
		// Moving the second factor to another phone needs a fresh reauthentication.
		f.clk.Advance(staff.ReauthWindow + time.Second)
		if _, err := f.svc.BeginTOTP(f.ctx, o); !errors.Is(err, staff.ErrReauthRequired) {
			t.Fatalf("BeginTOTP over an existing second factor without reauth: %v", err)
		}
		if err := f.svc.Reauthenticate(f.ctx, o, goodPassword, f.code(secret), browser); err != nil {
			t.Fatal(err)
		}
		if _, err := f.svc.BeginTOTP(f.ctx, o); err != nil {
			t.Fatalf("BeginTOTP after reauth: %v", err)
		}
	})
}

func TestWebhookNotifier(t *testing.T) {
	t.Parallel()
	got := make(chan map[string]any, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/hook/secret-part" {
			var body map[string]any
			b, _ := io.ReadAll(r.Body)
			json.Unmarshal(b, &body)
			got <- body
			return
		}
		http.Error(w, "no", http.StatusInternalServerError)
	}))
	defer srv.Close()
	flag := staff.Flag{ID: 7, Kind: staff.FlagNewDevice, At: time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC),
		StaffID: 3, Login: "alice", ClientAddr: "192.0.2.1", UserAgent: "ua"}
	n := &staff.WebhookNotifier{URL: srv.URL + "/hook/secret-part"}
	if err := n.Notify(context.Background(), flag); err != nil {
		t.Fatal(err)
	}
	body := <-got
	if body["kind"] != "new_device" || body["login"] != "alice" || body["staff_id"] != float64(3) || !strings.Contains(body["text"].(string), "alice") {
		t.Fatalf("webhook body = %v", body)
	}
	bad := &staff.WebhookNotifier{URL: srv.URL + "/other-secret-part"}
	if err := bad.Notify(context.Background(), flag); err == nil || strings.Contains(err.Error(), "secret") {
		t.Fatalf("failing webhook: %v (must fail, without the URL)", err)
	}
	srv.Close()
	if err := n.Notify(context.Background(), flag); err == nil || strings.Contains(err.Error(), "secret") {
		t.Fatalf("unreachable webhook: %v (must fail, without the URL)", err)
	}
}
