package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/linestep/linestep/internal/audit"
	"github.com/linestep/linestep/internal/clock"
	"github.com/linestep/linestep/internal/store"
)

const auditUsage = `Usage: linestep audit verify|export [flags]

The audit log records who signed in, who looked at, revealed or exported friends' data,
and who changed roles, settings or deleted things, with when and from where. Records
can only be added, never changed, and each one carries a fingerprint (hash) of the one
before it, so a record changed or removed behind linestep's back shows.
  verify  check that the log is intact, and say where it is broken if not
  export  write the log as CSV, for a spreadsheet or an auditor

監査ログ(誰が・いつ・どこから・何をしたか)の改ざんを検査します(verify)。
CSV に書き出すこともできます(export)。`

func runAudit(ctx context.Context, env *environment, args []string) error {
	return runVerbs(ctx, env, "audit", auditUsage, []verb{
		{"verify", auditVerify},
		{"export", auditExport},
	}, args)
}

// openAuditDB opens the database without migrating it or loading the master key: checking
// or exporting the log needs neither, and must work on a copy of the database too. A
// SQLite file that does not exist is an error, not a new empty database.
func openAuditDB(ctx context.Context, dsn string) (*store.DB, error) {
	if !store.IsPostgresURL(dsn) {
		path := strings.TrimPrefix(strings.TrimPrefix(dsn, "sqlite:"), "file:")
		if _, err := os.Stat(path); err != nil {
			return nil, fmt.Errorf("no database at %s (データベースがありません)", path)
		}
	}
	return store.Open(ctx, dsn)
}

// withMigrateHint adds advice to err when the database is behind this linestep's schema,
// as a database that has no audit log yet is.
func withMigrateHint(ctx context.Context, d *store.DB, err error) error {
	if applied, known, verr := d.Version(ctx); verr == nil && applied < known {
		return fmt.Errorf("%w\n(the database is at schema version %d of %d: run linestep migrate first)", err, applied, known)
	}
	return err
}

// problemJA says in Japanese what a Problem says in English.
var problemJA = map[audit.Problem]string{
	audit.ProblemHash:      "内容がハッシュと一致しません(書き換えられています)",
	audit.ProblemPrev:      "直前の記録とつながっていません(前の記録が書き換えられています)",
	audit.ProblemMissing:   "記録が削除されています",
	audit.ProblemAnchor:    "控えておいた値と一致しません(書き換えられています)",
	audit.ProblemTruncated: "末尾の記録が削除されています",
}

func auditVerify(ctx context.Context, env *environment, args []string) error {
	fs := newFlagSet(env, "audit verify", `
Checks the whole audit log, record by record: each must carry the right fingerprint of
its own contents and of the record before it, with no number missing. Prints
"audit log intact: N records" and exits 0, or names the first broken record and why,
and exits 1. The log is only read.

The check ends with the last record's number and fingerprint. Keep that line somewhere
outside the database (a note, another machine): given back with --anchor, a later check
also finds records cut from the end of the log, or a log rewritten from some point on,
which the chain alone cannot show to someone who can write to the database.

監査ログを最初から最後まで検査し、改ざん(書き換え・削除)がないか確認します。
問題がなければ終了コード 0、あれば最初の壊れた記録の番号と理由を表示して 1 を返します。
最後に表示される「番号:ハッシュ」をデータベースの外に控えておき、次回 --anchor に
渡すと、末尾の削除やまるごとの書き換えも検出できます。`)
	db := dbFlag(fs, env)
	anchorFlag := fs.String("anchor", "", "a SEQ:HASH line kept from an earlier check, to check against it too")
	if err := parse(fs, args); err != nil {
		return err
	}
	var anchors []audit.Anchor
	if *anchorFlag != "" {
		a, err := audit.ParseAnchor(*anchorFlag)
		if err != nil {
			fmt.Fprintln(env.stderr, err)
			return errUsage
		}
		anchors = append(anchors, a)
	}
	d, err := openAuditDB(ctx, *db)
	if err != nil {
		return err
	}
	defer d.Close()
	rep, err := audit.NewLog(d, clock.Real).Verify(ctx, anchors...)
	if err != nil {
		return withMigrateHint(ctx, d, err)
	}
	if b := rep.Broken; b != nil {
		fmt.Fprintf(env.stdout, "audit log broken at record %d: %s\n監査ログはレコード %d で壊れています: %s\n",
			b.Seq, b.Problem, b.Seq, problemJA[b.Problem])
		if rep.Count > 0 {
			fmt.Fprintf(env.stdout, "before it, %s intact (それより前の %d 件は正常です)\n", records(rep.Count), rep.Count)
		}
		return fmt.Errorf("audit log broken at record %d: %s", b.Seq, b.Problem)
	}
	fmt.Fprintf(env.stdout, "audit log intact: %s\n監査ログは正常です: %d 件\n", records(rep.Count), rep.Count)
	if rep.Count > 0 {
		fmt.Fprintf(env.stdout, "\nlast record (keep this outside the database; 控えておいてください):\n  --anchor %s\n", rep.Head)
	}
	return nil
}

func auditExport(ctx context.Context, env *environment, args []string) error {
	fs := newFlagSet(env, "audit export", `
Writes the audit log as CSV (UTF-8, a header line, oldest record first), to a file with
-o or to the standard output. Every record is written with its fingerprints, so the
export can be checked apart from linestep. Cells a spreadsheet would take for a formula
start with a ' so that opening the file runs nothing. The export itself is recorded in
the log.

Dates are days in this machine's time zone; --until includes the day given.

監査ログを CSV(UTF-8)で書き出します。-o でファイルを指定しない場合は標準出力へ。
書き出したこと自体も監査ログに記録されます。`)
	db := dbFlag(fs, env)
	out := fs.String("o", "", "write to this file (created with mode 0600) instead of the standard output")
	since := fs.String("since", "", "only records from this day on (YYYY-MM-DD)")
	until := fs.String("until", "", "only records up to and including this day (YYYY-MM-DD)")
	action := fs.String("action", "", `only this action, or those under it ("friend" gives friend.view, friend.reveal, ...)`)
	channelID := fs.String("channel", "", "only records about this channel ID")
	subject := fs.String("subject", "", `only records about this subject, e.g. "friend:42"`)
	if err := parse(fs, args); err != nil {
		return err
	}
	f := audit.Filter{Action: audit.Action(*action), ChannelID: *channelID, Subject: *subject}
	for _, d := range []struct {
		flag, val string
		to        *time.Time
		next      bool
	}{{"since", *since, &f.Since, false}, {"until", *until, &f.Until, true}} {
		if d.val == "" {
			continue
		}
		day, err := time.ParseInLocation("2006-01-02", d.val, time.Local)
		if err != nil {
			fmt.Fprintf(env.stderr, "--%s must be a day as YYYY-MM-DD, e.g. 2026-04-01\n", d.flag)
			return errUsage
		}
		if d.next {
			day = day.AddDate(0, 0, 1)
		}
		*d.to = day
	}
	d, err := openAuditDB(ctx, *db)
	if err != nil {
		return err
	}
	defer d.Close()
	auditLog := audit.NewLog(d, clock.Real)
	// Record the export before writing it: if the export fails half way, some of the log
	// may have left all the same.
	detail := map[string]string{"to": "stdout", "action": *action, "channel": *channelID, "subject": *subject,
		"since": *since, "until": *until}
	if *out != "" {
		detail["to"] = "file"
	}
	for k, v := range detail {
		if v == "" {
			delete(detail, k)
		}
	}
	if _, err := auditLog.Add(ctx, audit.Record{Actor: audit.System("cli"), Action: audit.AuditExport, Detail: detail}); err != nil {
		return withMigrateHint(ctx, d, err)
	}
	var w io.Writer = env.stdout
	var file *os.File
	if *out != "" {
		file, err = os.OpenFile(*out, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
		if err != nil {
			return err
		}
		defer file.Close()
		w = file
	}
	n, err := auditLog.ExportCSV(ctx, w, f)
	if err != nil {
		return err
	}
	if file != nil {
		if err := file.Close(); err != nil {
			return errors.Join(fmt.Errorf("write %s", *out), err)
		}
		fmt.Fprintf(env.stderr, "wrote %s of the audit log to %s (%d 件を書き出しました)\n", records(n), *out, n)
	}
	return nil
}

// records says "1 record" or "n records".
func records(n int64) string {
	if n == 1 {
		return "1 record"
	}
	return fmt.Sprintf("%d records", n)
}
