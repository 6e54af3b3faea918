package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/linestep/linestep/internal/audit"
	"github.com/linestep/linestep/internal/clock"
	"github.com/linestep/linestep/internal/server"
	"github.com/linestep/linestep/internal/staff"
	"github.com/linestep/linestep/internal/store"
)

// recoveryLinkTTL is how long a recovery link works: long enough to reach the person,
// short enough that a forgotten one does not stay a way in.
const recoveryLinkTTL = 24 * time.Hour

const staffUsage = `Usage: linestep staff list|recover [flags]

Helps when nobody can sign in to the console any more. Anyone who can run this on the
server can already read its database; the console is where staff are managed.
  list     list the staff accounts: logins, roles, two-step sign-in
  recover  give a member who lost their password, their phone and their recovery codes
           a one-time sign-in link (their two-step sign-in is turned off and set up again,
           their sessions end, and they choose a new password)

コンソールに誰もログインできなくなったときの復旧用です(パスワードも認証アプリも
リカバリーコードも失った場合など)。`

func runStaff(ctx context.Context, env *environment, args []string) error {
	return runVerbs(ctx, env, "staff", staffUsage, []verb{
		{"list", staffList},
		{"recover", staffRecover},
	}, args)
}

func openStaff(ctx context.Context, env *environment, dsn string) (*staff.Service, *audit.Log, func(), error) {
	d, keys, err := server.Open(ctx, dsn, env.getenv, newLogger(env, slog.LevelWarn))
	if err != nil {
		return nil, nil, nil, err
	}
	svc := staff.NewService(d, clock.Real)
	svc.Keys = keys
	return svc, audit.NewLog(d, clock.Real), func() { d.Close() }, nil
}

func staffList(ctx context.Context, env *environment, args []string) error {
	fs := newFlagSet(env, "staff list", `
Lists the staff accounts with their login, role, whether two-step sign-in is on and
whether the account is disabled.

スタッフのアカウント(ログイン名・役割・2段階認証)を一覧表示します。`)
	db := dbFlag(fs, env)
	if err := parse(fs, args); err != nil {
		return err
	}
	svc, _, done, err := openStaff(ctx, env, *db)
	if err != nil {
		return err
	}
	defer done()
	list, err := svc.List(ctx)
	if err != nil {
		return err
	}
	if len(list) == 0 {
		fmt.Fprintln(env.stdout, "no staff accounts yet: linestep serve prints the owner's first sign-in link")
		return nil
	}
	tw := tabwriter.NewWriter(env.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "LOGIN\tROLE\tTWO-STEP\tSTATE")
	for _, m := range list {
		twoStep, state := "off", "active"
		if m.TOTPEnabled {
			twoStep = "on"
		}
		if m.Disabled() {
			state = "disabled"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", m.Login, m.Role, twoStep, state)
	}
	return tw.Flush()
}

func staffRecover(ctx context.Context, env *environment, args []string) error {
	fs := newFlagSet(env, "staff recover", `
Gives a staff member a one-time sign-in link, valid for 24 hours, for when they lost
their password or their authenticator app and recovery codes. Their two-step sign-in is
turned off (it must be set up again when their role requires it, as the owner's does),
their sessions end, and after signing in with the link they choose a new password. The
link is printed once; give it to the member only. The audit log records the recovery.

パスワードや認証アプリ・リカバリーコードを失ったスタッフに、24時間有効な一回限りの
ログインリンクを発行します。2段階認証は解除され(必要な役割では再設定が求められます)、
ログイン後に新しいパスワードを決めます。`)
	login := fs.String("login", "", "the member's login (required; see linestep staff list)")
	base := fs.String("url", "http://127.0.0.1:8080", "the console's address, to print the link with")
	db := dbFlag(fs, env)
	if err := parse(fs, args); err != nil {
		return err
	}
	if *login == "" {
		fmt.Fprintln(env.stderr, "--login is required")
		fs.Usage()
		return errUsage
	}
	svc, log, done, err := openStaff(ctx, env, *db)
	if err != nil {
		return err
	}
	defer done()
	m, err := svc.GetByLogin(ctx, *login)
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("no staff member with the login %q (see linestep staff list)", *login)
	}
	if err != nil {
		return err
	}
	if m.Disabled() {
		return fmt.Errorf("%s is disabled: an owner enables the account in the console first", m.Login)
	}
	record := func(action audit.Action) staff.Also {
		return func(tx *store.Tx, m staff.Member) error {
			_, err := log.Append(ctx, tx, audit.Record{Actor: audit.System("cli"), Action: action, Subject: audit.Subject("staff", m.ID),
				Detail: map[string]string{"reason": "staff recover"}})
			return err
		}
	}
	if m.TOTPEnabled {
		if err := svc.DisableTOTP(ctx, m.ID, record(audit.TwoFactorDisable)); err != nil {
			return err
		}
	}
	if err := svc.ForcePasswordChange(ctx, m.ID, record(staff.AuditSignInLink)); err != nil {
		return err
	}
	token, err := svc.IssueLoginLink(ctx, m.ID, recoveryLinkTTL)
	if err != nil {
		return err
	}
	fmt.Fprintf(env.stdout, "One-time sign-in link for %s, valid for 24 hours (24時間有効な一回限りのログインリンク):\n\n  %s/login/link/%s\n\n",
		m.Login, strings.TrimRight(*base, "/"), token)
	fmt.Fprintln(env.stdout, "Their sessions have ended; they choose a new password after signing in"+
		map[bool]string{true: ", and set up two-step sign-in again.", false: "."}[m.TOTPEnabled])
	return nil
}
