package staff_test

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/linestep/linestep/internal/message"
	"github.com/linestep/linestep/internal/staff"
	"github.com/linestep/linestep/internal/store"
	"github.com/linestep/linestep/internal/testutil"
)

func TestLockoutAfterRepeatedFailures(t *testing.T) {
	t.Parallel()
	testutil.EachDB(t, func(t *testing.T, db *store.DB) {
		f := newFixture(t, db)
		alice := f.member("alice", staff.Operator)
		f.signIn("alice", staff.SignedIn)

		// A real login and an unknown one are refused alike, and lock alike.
		for i := range staff.LockThreshold {
			f.wrong("alice", fmt.Sprintf("wrong password %d", i), browser)
			f.wrong("mallory", fmt.Sprintf("wrong password %d", i), browser)
		}
		f.wrong("alice", goodPassword, browser) // the right password, but locked
		f.wrong("mallory", goodPassword, browser)
		want := []staff.Outcome{"bad_credentials", "bad_credentials", "bad_credentials", "bad_credentials", "bad_credentials", "locked"}
		if got := f.outcomes(staff.HistoryFilter{StaffID: alice.ID}, 6); !slices.Equal(got, want) {
			t.Fatalf("alice's history = %v, want %v", got, want)
		}
		hist, _ := f.svc.AllHistory(f.ctx, staff.HistoryFilter{Page: staff.Page{Limit: 1}})
		if hist[0].StaffID != 0 || hist[0].Login != "" || hist[0].Outcome != staff.OutcomeLocked {
			t.Fatalf("attempt on an unknown login recorded as %+v; what was typed must not be kept", hist[0])
		}

		// The lock expires; the success right after the burst looks like a guess that
		// worked, so it forces a password change and is flagged.
		f.clk.Advance(staff.LockDuration + time.Second)
		res := f.signIn("alice", staff.MustChangePassword)
		if !res.Member.MustChangePassword {
			t.Fatal("member not marked must-change-password")
		}
		if _, err := f.svc.Session(f.ctx, res.SessionToken); !errors.Is(err, staff.ErrRestricted) {
			t.Fatalf("restricted session gave %v, want ErrRestricted", err)
		}
		if got, want := f.flagKinds(alice.ID), []staff.FlagKind{"account_failures", "success_after_failures"}; !slices.Equal(got, want) {
			t.Fatalf("alice's flags = %v, want %v", got, want)
		}
		f.svc.WaitNotifications()
		if got := f.flags.kinds(); !slices.Contains(got, staff.FlagSuccessAfterFailures) || len(got) != 3 {
			t.Fatalf("notified %v, want both bursts and the success after failures", got)
		}

		// Locks grow on repeats: the unknown login's second lock outlasts the first's length.
		f.wrong("mallory", "x1 wrong password", browser)
		for i := range staff.LockThreshold - 1 {
			f.wrong("mallory", fmt.Sprintf("y%d wrong password", i), browser)
		}
		f.clk.Advance(staff.LockDuration + time.Second)
		f.wrong("mallory", "after the first lock's length", browser)
		hist, _ = f.svc.AllHistory(f.ctx, staff.HistoryFilter{Page: staff.Page{Limit: 1}})
		if hist[0].Outcome != staff.OutcomeLocked {
			t.Fatalf("second lock ended after %v: %s", staff.LockDuration, hist[0].Outcome)
		}
	})
}

func TestAddressThrottling(t *testing.T) {
	t.Parallel()
	testutil.EachDB(t, func(t *testing.T, db *store.DB) {
		f := newFixture(t, db)
		f.member("alice", staff.Operator)
		bot := staff.Client{Addr: "2001:db8:1:2::10", UserAgent: "bot"}
		// Spread over logins so no login locks; the /64 counts as one address.
		for i := range staff.AddressThreshold {
			c := bot
			c.Addr = fmt.Sprintf("2001:db8:1:2::%x", i+1)
			f.wrong(fmt.Sprintf("user%d", i), "guess guess guess", c)
		}
		_, err := f.svc.SignIn(f.ctx, "alice", goodPassword, bot)
		if err != staff.ErrBadCredentials {
			t.Fatalf("right password from a throttled address: %v, want ErrBadCredentials", err)
		}
		if got := f.outcomes(staff.HistoryFilter{Outcome: staff.OutcomeThrottled}, 5); len(got) != 1 {
			t.Fatalf("throttled attempts recorded: %v", got)
		}
		f.signInFrom("alice", staff.Client{Addr: "198.51.100.7", UserAgent: "phone"}, staff.SignedIn)
		if got := f.flagKinds(0); !slices.Equal(got, []staff.FlagKind{staff.FlagAddressFailures}) {
			t.Fatalf("flags = %v, want one address burst", got)
		}
		f.clk.Advance(staff.AddressWindow + time.Second)
		f.signInFrom("alice", bot, staff.SignedIn)
	})
}

func TestNewDeviceFlag(t *testing.T) {
	t.Parallel()
	testutil.EachDB(t, func(t *testing.T, db *store.DB) {
		f := newFixture(t, db)
		alice := f.member("alice", staff.Operator)
		f.signIn("alice", staff.SignedIn) // the very first sign-in: nothing to compare with
		f.signIn("alice", staff.SignedIn)
		if got := f.flagKinds(alice.ID); len(got) != 0 {
			t.Fatalf("flags after sign-ins from one device: %v", got)
		}
		f.signInFrom("alice", staff.Client{Addr: browser.Addr, UserAgent: "another browser"}, staff.SignedIn)
		f.signInFrom("alice", staff.Client{Addr: "203.0.113.50", UserAgent: browser.UserAgent}, staff.SignedIn)
		f.signInFrom("alice", staff.Client{Addr: "203.0.113.50", UserAgent: browser.UserAgent}, staff.SignedIn)
		if got := f.flagKinds(alice.ID); !slices.Equal(got, []staff.FlagKind{"new_device", "new_device"}) {
			t.Fatalf("flags = %v, want two new devices", got)
		}
		fs, _ := f.svc.Flags(f.ctx, staff.FlagFilter{Unacknowledged: true})
		if err := f.svc.AcknowledgeFlag(f.ctx, fs[0].ID, alice.ID); err != nil {
			t.Fatal(err)
		}
		if err := f.svc.AcknowledgeFlag(f.ctx, fs[0].ID, alice.ID); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("second acknowledgement: %v", err)
		}
		left, _ := f.svc.Flags(f.ctx, staff.FlagFilter{Unacknowledged: true})
		if len(left) != 1 || left[0].ID != fs[1].ID {
			t.Fatalf("unacknowledged after one acknowledgement: %+v", left)
		}
		f.svc.WaitNotifications()
		if got := f.flags.kinds(); len(got) != 2 {
			t.Fatalf("notified %v", got)
		}
		own, err := f.svc.History(f.ctx, alice.ID, staff.Page{Limit: 2})
		if err != nil || len(own) != 2 || own[0].UserAgent != browser.UserAgent || own[0].Outcome != staff.OutcomeSuccess || own[0].Factor != staff.FactorPassword {
			t.Fatalf("History = %+v, %v", own, err)
		}
	})
}

func TestForcedPasswordChange(t *testing.T) {
	t.Parallel()
	testutil.EachDB(t, func(t *testing.T, db *store.DB) {
		f := newFixture(t, db)
		bob := f.member("bob", staff.Operator)
		old := f.signIn("bob", staff.SignedIn)
		if err := f.svc.ForcePasswordChange(f.ctx, bob.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := f.svc.Session(f.ctx, old.SessionToken); !isInvalid(err) {
			t.Fatalf("session survived a forced password change: %v", err)
		}
		res := f.signIn("bob", staff.MustChangePassword)
		other := f.signIn("bob", staff.MustChangePassword)
		cur, err := f.svc.Current(f.ctx, res.SessionToken)
		if err != nil || cur.Restriction != staff.RestrictChangePassword {
			t.Fatalf("Current = %+v, %v", cur, err)
		}
		if _, err := f.svc.ChangePassword(f.ctx, res.SessionToken, "not my password", "a brand new passphrase", browser); err != staff.ErrBadCredentials {
			t.Fatalf("wrong current password: %v", err)
		}
		var ps message.Problems
		if _, err := f.svc.ChangePassword(f.ctx, res.SessionToken, goodPassword, goodPassword, browser); !errors.As(err, &ps) {
			t.Fatalf("same password again: %v", err)
		}
		if _, err := f.svc.ChangePassword(f.ctx, res.SessionToken, goodPassword, "bob1234", browser); !errors.As(err, &ps) {
			t.Fatalf("weak new password: %v", err)
		}
		cur, err = f.svc.ChangePassword(f.ctx, res.SessionToken, goodPassword, "a brand new passphrase", browser)
		if err != nil || cur.Restriction != staff.Unrestricted || cur.MustChangePassword {
			t.Fatalf("ChangePassword = %+v, %v", cur, err)
		}
		if _, err := f.svc.Session(f.ctx, res.SessionToken); err != nil {
			t.Fatalf("the changing session is no full session: %v", err)
		}
		if _, err := f.svc.Current(f.ctx, other.SessionToken); !isInvalid(err) {
			t.Fatalf("other session survived the password change: %v", err)
		}
		f.wrong("bob", goodPassword, browser)
		if res, err := f.svc.SignIn(f.ctx, "bob", "a brand new passphrase", browser); err != nil || res.Status != staff.SignedIn {
			t.Fatalf("sign-in with the new password: %v %v", res.Status, err)
		}
	})
}

func TestInviteByLinkAndDisable(t *testing.T) {
	t.Parallel()
	testutil.EachDB(t, func(t *testing.T, db *store.DB) {
		f := newFixture(t, db)
		carol, err := f.svc.CreateMember(f.ctx, "carol", "Carol", staff.Analyst, "")
		if err != nil {
			t.Fatal(err)
		}
		f.wrong("carol", "", browser) // no password: no way in by password
		link, _ := f.svc.IssueLoginLink(f.ctx, carol.ID, time.Hour)
		res, err := f.svc.SignInWithLink(f.ctx, link, browser)
		if err != nil || res.Status != staff.MustChangePassword {
			t.Fatalf("SignInWithLink = %+v, %v", res, err)
		}
		if _, err := f.svc.SignInWithLink(f.ctx, link, browser); !isInvalid(err) {
			t.Fatalf("link used twice: %v", err)
		}
		if _, err := f.svc.ChangePassword(f.ctx, res.SessionToken, "", goodPassword, browser); err != nil {
			t.Fatalf("setting the first password: %v", err)
		}
		f.signIn("carol", staff.SignedIn)

		if err := f.svc.Disable(f.ctx, carol.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := f.svc.Current(f.ctx, res.SessionToken); !isInvalid(err) {
			t.Fatalf("a disabled member's session: %v", err)
		}
		f.wrong("carol", goodPassword, browser)
		if got := f.outcomes(staff.HistoryFilter{StaffID: carol.ID}, 1); got[0] != staff.OutcomeDisabled {
			t.Fatalf("recorded as %v", got)
		}
		if err := f.svc.Enable(f.ctx, carol.ID); err != nil {
			t.Fatal(err)
		}
		f.signIn("carol", staff.SignedIn)
	})
}

func TestAdminSetsPassword(t *testing.T) {
	t.Parallel()
	testutil.EachDB(t, func(t *testing.T, db *store.DB) {
		f := newFixture(t, db)
		dave := f.member("dave", staff.Operator)
		s := f.signIn("dave", staff.SignedIn)
		if err := f.svc.SetPasswordByAdmin(f.ctx, dave.ID, "temporary passphrase 42", true); err != nil {
			t.Fatal(err)
		}
		if _, err := f.svc.Current(f.ctx, s.SessionToken); !isInvalid(err) {
			t.Fatalf("session survived an admin password reset: %v", err)
		}
		res, err := f.svc.SignIn(f.ctx, "dave", "temporary passphrase 42", browser)
		if err != nil || res.Status != staff.MustChangePassword {
			t.Fatalf("sign-in with the admin's password: %+v %v", res.Status, err)
		}
	})
}
