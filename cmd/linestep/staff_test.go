package main

import (
	"context"
	"log/slog"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"

	"github.com/linestep/linestep/internal/audit"
	"github.com/linestep/linestep/internal/clock"
	"github.com/linestep/linestep/internal/server"
	"github.com/linestep/linestep/internal/staff"
)

// An owner who lost password, phone and recovery codes gets back in with a link from the
// command line: two-step sign-in off, sessions ended, a new password owed, all audited.
func TestStaffRecover(t *testing.T) {
	ctx := context.Background()
	db := filepath.Join(t.TempDir(), "staff.db")
	env := map[string]string{"LINESTEP_DB": db, "LINESTEP_MASTER_KEY": testKey}
	getenv := func(k string) string { return env[k] }
	quiet := slog.New(slog.DiscardHandler)
	d, keys, err := server.Open(ctx, db, getenv, quiet)
	if err != nil {
		t.Fatal(err)
	}
	svc := staff.NewService(d, clock.Real)
	svc.Keys = keys
	const password = "kumo7fuji3ta-sora-umi"
	if _, err := svc.CreateMember(ctx, "hanako", "山田 花子", staff.Owner, password); err != nil {
		t.Fatal(err)
	}
	res, err := svc.SignIn(ctx, "hanako", password, staff.Client{Addr: "192.0.2.1", UserAgent: "test"})
	if err != nil {
		t.Fatal(err)
	}
	e, err := svc.BeginTOTP(ctx, res.SessionToken)
	if err != nil {
		t.Fatal(err)
	}
	code, _ := totp.GenerateCode(e.Secret, time.Now())
	if _, err := svc.ConfirmTOTP(ctx, res.SessionToken, code); err != nil {
		t.Fatal(err)
	}
	d.Close()

	r := runCLI(ctx, env, "", "staff", "list")
	if r.code != 0 || !regexp.MustCompile(`hanako\s+owner\s+on\s+active`).MatchString(r.stdout) {
		t.Fatalf("list: %+v", r)
	}
	if r := runCLI(ctx, env, "", "staff", "recover", "--login", "nobody"); r.code != 1 || !strings.Contains(r.stderr, "no staff member") {
		t.Errorf("recover an unknown login: %+v", r)
	}
	r = runCLI(ctx, env, "", "staff", "recover", "--login", "hanako", "--url", "https://crm.example.jp/")
	m := regexp.MustCompile(`https://crm\.example\.jp/login/link/(\S+)`).FindStringSubmatch(r.stdout)
	if r.code != 0 || m == nil {
		t.Fatalf("recover: %+v", r)
	}

	d, keys, err = server.Open(ctx, db, getenv, quiet)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	svc = staff.NewService(d, clock.Real)
	svc.Keys = keys
	if _, err := svc.Current(ctx, res.SessionToken); err == nil {
		t.Error("the old session still works after the recovery")
	}
	got, err := svc.SignInWithLink(ctx, m[1], staff.Client{Addr: "192.0.2.2", UserAgent: "test"})
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != staff.MustChangePassword || got.Member.TOTPEnabled {
		t.Errorf("signed in with the link: status %v, two-step %v; want a password change, no second factor", got.Status, got.Member.TOTPEnabled)
	}
	if _, err := svc.SignInWithLink(ctx, m[1], staff.Client{Addr: "192.0.2.2", UserAgent: "test"}); err == nil {
		t.Error("the link worked twice")
	}
	recs, err := audit.NewLog(d, clock.Real).Query(ctx, audit.Filter{ActorKind: audit.ActorSystem})
	if err != nil {
		t.Fatal(err)
	}
	var actions []string
	for _, rec := range recs {
		actions = append(actions, string(rec.Action))
	}
	if want := []string{string(audit.TwoFactorDisable), string(staff.AuditSignInLink)}; !sameSet(actions, want) {
		t.Errorf("audit records by the command line: %v, want %v", actions, want)
	}
}

func sameSet(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	seen := map[string]int{}
	for _, s := range a {
		seen[s]++
	}
	for _, s := range b {
		if seen[s]--; seen[s] < 0 {
			return false
		}
	}
	return true
}
