package staff_test

import (
	"context"
	"crypto/rand"
	"errors"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"

	"github.com/linestep/linestep/internal/clock"
	"github.com/linestep/linestep/internal/keyring"
	"github.com/linestep/linestep/internal/staff"
	"github.com/linestep/linestep/internal/store"
)

// cheap are Argon2id parameters that keep tests fast; the defaults are tested apart.
var cheap = staff.Params{Memory: 64, Time: 1, Threads: 1, KeyLen: 32}

// fixture is a service on a fresh database with a fake clock and a recording notifier.
type fixture struct {
	t     *testing.T
	ctx   context.Context
	db    *store.DB
	clk   *clock.Fake
	svc   *staff.Service
	flags *flagRecorder
}

func newFixture(t *testing.T, db *store.DB) *fixture {
	t.Helper()
	key := make([]byte, 32)
	rand.Read(key)
	keys, err := keyring.New(key)
	if err != nil {
		t.Fatal(err)
	}
	clk := clock.NewFake(time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC))
	svc := staff.NewService(db, clk)
	svc.Keys, svc.Hashing, svc.Logger = keys, cheap, slog.New(slog.DiscardHandler)
	rec := &flagRecorder{}
	svc.Notifier = rec
	return &fixture{t: t, ctx: context.Background(), db: db, clk: clk, svc: svc, flags: rec}
}

const goodPassword = "correct horse battery staple"

// member creates a member with goodPassword.
func (f *fixture) member(login string, role staff.Role) staff.Member {
	f.t.Helper()
	m, err := f.svc.CreateMember(f.ctx, login, "Test "+login, role, goodPassword)
	if err != nil {
		f.t.Fatalf("CreateMember(%s): %v", login, err)
	}
	return m
}

var browser = staff.Client{Addr: "192.0.2.10", UserAgent: "Mozilla/5.0 (test)"}

// signIn signs in with goodPassword and expects status want.
func (f *fixture) signIn(login string, want staff.Status) staff.Result {
	f.t.Helper()
	return f.signInFrom(login, browser, want)
}

func (f *fixture) signInFrom(login string, c staff.Client, want staff.Status) staff.Result {
	f.t.Helper()
	res, err := f.svc.SignIn(f.ctx, login, goodPassword, c)
	if err != nil {
		f.t.Fatalf("SignIn(%s): %v", login, err)
	}
	if res.Status != want {
		f.t.Fatalf("SignIn(%s) status = %s, want %s", login, res.Status, want)
	}
	return res
}

// wrong makes a failed sign-in and checks that it is refused with ErrBadCredentials.
func (f *fixture) wrong(login, password string, c staff.Client) {
	f.t.Helper()
	_, err := f.svc.SignIn(f.ctx, login, password, c)
	if err != staff.ErrBadCredentials {
		f.t.Fatalf("SignIn(%s) with a wrong password: %v, want exactly ErrBadCredentials", login, err)
	}
}

// enrol sets up TOTP for the member of session and returns the secret.
func (f *fixture) enrol(session string) (secret string, recovery []string) {
	f.t.Helper()
	e, err := f.svc.BeginTOTP(f.ctx, session)
	if err != nil {
		f.t.Fatalf("BeginTOTP: %v", err)
	}
	codes, err := f.svc.ConfirmTOTP(f.ctx, session, f.code(e.Secret))
	if err != nil {
		f.t.Fatalf("ConfirmTOTP: %v", err)
	}
	return e.Secret, codes
}

// code returns the TOTP code of secret now.
func (f *fixture) code(secret string) string {
	f.t.Helper()
	c, err := totp.GenerateCode(secret, f.clk.Now())
	if err != nil {
		f.t.Fatal(err)
	}
	return c
}

// nextStep moves the clock to the start of the next 30-second step.
func (f *fixture) nextStep() {
	now := f.clk.Now()
	f.clk.Set(now.Truncate(30 * time.Second).Add(30 * time.Second))
}

// outcomes returns the outcomes of the latest n attempts matching filter, oldest first.
func (f *fixture) outcomes(filter staff.HistoryFilter, n int) []staff.Outcome {
	f.t.Helper()
	filter.Limit = n
	as, err := f.svc.AllHistory(f.ctx, filter)
	if err != nil {
		f.t.Fatal(err)
	}
	out := make([]staff.Outcome, len(as))
	for i, a := range as {
		out[len(as)-1-i] = a.Outcome
	}
	return out
}

// flagKinds returns the kinds of all flags for staffID (0: all), oldest first.
func (f *fixture) flagKinds(staffID int64) []staff.FlagKind {
	f.t.Helper()
	fs, err := f.svc.Flags(f.ctx, staff.FlagFilter{StaffID: staffID})
	if err != nil {
		f.t.Fatal(err)
	}
	out := make([]staff.FlagKind, len(fs))
	for i, fl := range fs {
		out[len(fs)-1-i] = fl.Kind
	}
	return out
}

type flagRecorder struct {
	mu    sync.Mutex
	flags []staff.Flag
}

func (r *flagRecorder) Notify(_ context.Context, f staff.Flag) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.flags = append(r.flags, f)
	return nil
}

func (r *flagRecorder) kinds() []staff.FlagKind {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []staff.FlagKind
	for _, f := range r.flags {
		out = append(out, f.Kind)
	}
	return out
}

func isInvalid(err error) bool { return errors.Is(err, staff.ErrInvalidToken) }
