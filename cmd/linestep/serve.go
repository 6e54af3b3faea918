package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"time"

	"github.com/linestep/linestep/internal/server"
)

// dbFlag adds the --db flag every data command shares.
func dbFlag(fs *flag.FlagSet, env *environment) *string {
	return fs.String("db", envDefault(env, "LINESTEP_DB", "linestep.db"),
		"database: a SQLite file path, or a postgres:// URL for PostgreSQL (env LINESTEP_DB)")
}

func runServe(ctx context.Context, env *environment, args []string) error {
	fs := newFlagSet(env, "serve", `
Runs linestep: receives LINE webhooks at /webhook/<channel-id>, keeps your friends'
profiles, tags and conversations, and runs the background workers. Stops cleanly on
Ctrl-C or SIGTERM, finishing the webhooks in flight.

The database is migrated on start. Secrets are sealed with the master key from
LINESTEP_MASTER_KEY or, with SQLite only, a key file created beside the database
(<db>.key, mode 0600): back that file up apart from the database.

linestep を起動します。LINE の Webhook を受け取り、友だちの情報と会話を保存します。`)
	addr := fs.String("addr", envDefault(env, "LINESTEP_ADDR", "127.0.0.1:8080"), "address to listen on (env LINESTEP_ADDR)")
	db := dbFlag(fs, env)
	apiURL := fs.String("line-api-url", envDefault(env, "LINESTEP_LINE_API_URL", "https://api.line.me"),
		"LINE Messaging API base URL; point it at an emulator to test (env LINESTEP_LINE_API_URL)")
	dataURL := fs.String("line-data-api-url", envDefault(env, "LINESTEP_LINE_DATA_API_URL", "https://api-data.line.me"),
		"LINE data API base URL, for message content (env LINESTEP_LINE_DATA_API_URL)")
	verbose := fs.Bool("v", false, "log debug detail")
	if err := parse(fs, args); err != nil {
		return err
	}
	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	logger := newLogger(env, level)
	srv, err := server.New(ctx, server.Config{
		Addr: *addr, DB: *db, LineAPIURL: *apiURL, LineDataAPIURL: *dataURL,
		Getenv: env.getenv, Logger: logger,
	})
	if err != nil {
		return err
	}
	defer srv.Close()
	if err := firstOwnerLink(ctx, env, srv, "http://"+*addr); err != nil {
		return err
	}
	return srv.Run(ctx)
}

// firstOwnerLink prints a one-time sign-in link when nobody can sign in yet: on a new
// installation it is the only way in. It goes to stderr, not to the log.
func firstOwnerLink(ctx context.Context, env *environment, srv *server.Server, base string) error {
	n, err := srv.Staff.Count(ctx)
	if err != nil || n > 0 {
		return err
	}
	link, err := srv.OwnerLoginLink(ctx, 24*time.Hour)
	if err != nil {
		return err
	}
	fmt.Fprintf(env.stderr, "\nNo staff account yet. Sign in as the owner, once, within 24 hours:\n"+
		"スタッフのアカウントがまだありません。24時間以内に一度だけ使えるオーナー用ログイン:\n\n  %s%s\n\n", base, link)
	return nil
}

func runMigrate(ctx context.Context, env *environment, args []string) error {
	fs := newFlagSet(env, "migrate", `
Applies the database migrations that are not applied yet, then exits. "serve" does this
on start too; run it alone before starting several instances on one PostgreSQL, or to
check a database. Several instances migrating at once is safe (an advisory lock).

データベースの移行(マイグレーション)を適用して終了します。`)
	db := dbFlag(fs, env)
	if err := parse(fs, args); err != nil {
		return err
	}
	logger := newLogger(env, slog.LevelWarn)
	d, _, err := server.Open(ctx, *db, env.getenv, logger)
	if err != nil {
		return err
	}
	defer d.Close()
	have, known, err := d.Version(ctx)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(env.stdout, "database at schema version %d of %d (%s)\n", have, known, d.Dialect())
	return err
}
