package staff_test

import (
	"bytes"
	"errors"
	"image/png"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/linestep/linestep/internal/staff"
	"github.com/linestep/linestep/internal/store"
	"github.com/linestep/linestep/internal/testutil"
)

func TestTOTPEnrolAndSignIn(t *testing.T) {
	t.Parallel()
	testutil.EachDB(t, func(t *testing.T, db *store.DB) {
		f := newFixture(t, db)
		owner := f.member("olivia", staff.Owner)

		// The role requires two-factor: the first sign-in may only set it up.
		res := f.signIn("olivia", staff.MustEnrolTOTP)
		if _, err := f.svc.Session(f.ctx, res.SessionToken); !errors.Is(err, staff.ErrRestricted) || !isInvalid(err) {
			t.Fatalf("restricted session through Session: %v", err)
		}
		e, err := f.svc.BeginTOTP(f.ctx, res.SessionToken)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(e.URL, "otpauth://totp/") || !strings.Contains(e.URL, "olivia") {
			t.Fatalf("otpauth URL = %q", e.URL)
		}
		if _, err := png.Decode(bytes.NewReader(e.QRCodePNG)); err != nil {
			t.Fatalf("QR code is not a PNG: %v", err)
		}
		var sealed []byte
		if err := f.db.QueryRowContext(f.ctx, "SELECT totp_pending_secret FROM staff WHERE id = ?", owner.ID).Scan(&sealed); err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(sealed, []byte(e.Secret)) {
			t.Fatal("TOTP secret stored in the clear")
		}
		if _, err := f.svc.ConfirmTOTP(f.ctx, res.SessionToken, "000000"); !errors.Is(err, staff.ErrBadCode) {
			t.Fatalf("confirm with a wrong code: %v", err)
		}
		codes, err := f.svc.ConfirmTOTP(f.ctx, res.SessionToken, f.code(e.Secret))
		if err != nil || len(codes) != staff.RecoveryCodeCount {
			t.Fatalf("ConfirmTOTP = %v, %v", codes, err)
		}
		cur, err := f.svc.Current(f.ctx, res.SessionToken)
		if err != nil || cur.Restriction != staff.Unrestricted || !cur.MFA || cur.Factor != staff.FactorTOTP {
			t.Fatalf("session after confirmation = %+v, %v", cur, err)
		}

		// Signing in now takes a code. The code confirmed a moment ago is spent.
		res = f.signIn("olivia", staff.NeedSecondFactor)
		if res.SessionToken != "" || res.PendingToken == "" {
			t.Fatalf("second-factor result = %+v", res)
		}
		if _, err := f.svc.CompleteSecondFactor(f.ctx, res.PendingToken, f.code(e.Secret), browser); !errors.Is(err, staff.ErrBadCode) {
			t.Fatalf("the confirmation's code again: %v, want ErrBadCode", err)
		}
		f.nextStep()
		done, err := f.svc.CompleteSecondFactor(f.ctx, res.PendingToken, f.code(e.Secret), browser)
		if err != nil || done.Status != staff.SignedIn {
			t.Fatalf("CompleteSecondFactor = %+v, %v", done, err)
		}
		cur, err = f.svc.Current(f.ctx, done.SessionToken)
		if err != nil || !cur.MFA || cur.Factor != staff.FactorTOTP {
			t.Fatalf("session = %+v, %v", cur, err)
		}
		if _, err := f.svc.CompleteSecondFactor(f.ctx, res.PendingToken, f.code(e.Secret), browser); !isInvalid(err) {
			t.Fatalf("pending token used twice: %v", err)
		}

		// The same valid code, replayed in a new sign-in, is refused.
		res = f.signIn("olivia", staff.NeedSecondFactor)
		if _, err := f.svc.CompleteSecondFactor(f.ctx, res.PendingToken, f.code(e.Secret), browser); !errors.Is(err, staff.ErrBadCode) {
			t.Fatalf("replayed code: %v, want ErrBadCode", err)
		}
		// A pending token expires.
		f.clk.Advance(staff.PendingTTL + time.Second)
		f.nextStep()
		if _, err := f.svc.CompleteSecondFactor(f.ctx, res.PendingToken, f.code(e.Secret), browser); !isInvalid(err) {
			t.Fatalf("expired pending token: %v", err)
		}
		// The link sign-in of old refuses (and keeps the link); the new one asks for a code.
		link, _ := f.svc.IssueLoginLink(f.ctx, owner.ID, time.Hour)
		if _, _, err := f.svc.RedeemLoginLink(f.ctx, link, "", ""); !errors.Is(err, staff.ErrSecondFactorRequired) {
			t.Fatalf("RedeemLoginLink with 2FA: %v", err)
		}
		lres, err := f.svc.SignInWithLink(f.ctx, link, browser)
		if err != nil || lres.Status != staff.NeedSecondFactor {
			t.Fatalf("SignInWithLink with 2FA = %+v, %v", lres, err)
		}
		if _, err := f.svc.CompleteSecondFactor(f.ctx, lres.PendingToken, f.code(e.Secret), browser); err != nil {
			t.Fatal(err)
		}

		if err := f.svc.DisableTOTP(f.ctx, owner.ID); err != nil {
			t.Fatal(err)
		}
		f.signIn("olivia", staff.MustEnrolTOTP)
	})
}

func TestTOTPReplayUnderConcurrency(t *testing.T) {
	t.Parallel()
	testutil.EachDB(t, func(t *testing.T, db *store.DB) {
		f := newFixture(t, db)
		f.member("olivia", staff.Owner)
		secret, _ := f.enrol(f.signIn("olivia", staff.MustEnrolTOTP).SessionToken)
		f.nextStep()
		const racers = 4
		pending := make([]string, racers)
		for i := range pending {
			pending[i] = f.signIn("olivia", staff.NeedSecondFactor).PendingToken
		}
		code := f.code(secret)
		errs := make([]error, racers)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range pending {
			wg.Go(func() {
				<-start
				_, errs[i] = f.svc.CompleteSecondFactor(f.ctx, pending[i], code, browser)
			})
		}
		close(start)
		wg.Wait()
		passed := 0
		for _, err := range errs {
			switch {
			case err == nil:
				passed++
			case !errors.Is(err, staff.ErrBadCode):
				t.Fatalf("racing attempt failed with %v, want ErrBadCode", err)
			}
		}
		if passed != 1 {
			t.Fatalf("%d of %d racing requests with one code passed, want exactly 1", passed, racers)
		}
	})
}

func TestRecoveryCodesAndBadCodes(t *testing.T) {
	t.Parallel()
	testutil.EachDB(t, func(t *testing.T, db *store.DB) {
		f := newFixture(t, db)
		owner := f.member("olivia", staff.Owner)
		_, codes := f.enrol(f.signIn("olivia", staff.MustEnrolTOTP).SessionToken)
		res := f.signIn("olivia", staff.NeedSecondFactor)
		// However it is typed: upper case, without dashes.
		typed := strings.ToUpper(strings.ReplaceAll(codes[3], "-", " "))
		done, err := f.svc.CompleteSecondFactor(f.ctx, res.PendingToken, typed, browser)
		if err != nil || done.Status != staff.SignedIn {
			t.Fatalf("recovery code: %+v, %v", done, err)
		}
		if cur, _ := f.svc.Current(f.ctx, done.SessionToken); cur.Factor != staff.FactorRecovery || !cur.MFA {
			t.Fatalf("session after a recovery code = %+v", cur)
		}
		if got := f.outcomes(staff.HistoryFilter{StaffID: owner.ID}, 1); got[0] != staff.OutcomeRecoveryUsed {
			t.Fatalf("recorded as %v", got)
		}
		res = f.signIn("olivia", staff.NeedSecondFactor)
		if _, err := f.svc.CompleteSecondFactor(f.ctx, res.PendingToken, codes[3], browser); !errors.Is(err, staff.ErrBadCode) {
			t.Fatalf("recovery code used twice: %v", err)
		}
		if n, _ := f.svc.RecoveryCodesLeft(f.ctx, owner.ID); n != staff.RecoveryCodeCount-1 {
			t.Fatalf("recovery codes left = %d", n)
		}

		// Wrong codes count towards the lock: one pending token allows a few, then the
		// login locks and even the right password is refused.
		for range staff.PendingAttempts - 1 { // one wrong code was tried above
			if _, err := f.svc.CompleteSecondFactor(f.ctx, res.PendingToken, "123456", browser); !errors.Is(err, staff.ErrBadCode) {
				t.Fatalf("wrong code: %v", err)
			}
		}
		if _, err := f.svc.CompleteSecondFactor(f.ctx, res.PendingToken, codes[0], browser); !isInvalid(err) {
			t.Fatalf("pending token after %d codes: %v", staff.PendingAttempts, err)
		}
		f.wrong("olivia", goodPassword, browser)
	})
}
