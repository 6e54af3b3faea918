package main

import (
	"context"
	"encoding/csv"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/linestep/linestep/internal/audit"
	"github.com/linestep/linestep/internal/clock"
	"github.com/linestep/linestep/internal/store"
	"github.com/linestep/linestep/internal/testutil"
)

func TestAuditVerifyAndExport(t *testing.T) {
	testutil.EachDSN(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		d, err := store.Open(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer d.Close()
		if _, err := d.Migrate(ctx); err != nil {
			t.Fatal(err)
		}
		log := audit.NewLog(d, clock.Real)
		for i := range 5 {
			if _, err := log.Add(ctx, audit.Record{Actor: audit.Staff(1, "owner"), Action: audit.FriendView,
				Subject: audit.Subject("friend", int64(i)), UserAgent: "=cmd|' /C calc'!A0"}); err != nil {
				t.Fatal(err)
			}
		}
		env := map[string]string{"LINESTEP_DB": dsn}

		r := runCLI(ctx, env, "", "audit", "verify")
		if r.code != 0 || !strings.Contains(r.stdout, "audit log intact: 5 records") || !strings.Contains(r.stdout, "監査ログは正常です: 5 件") {
			t.Fatalf("verify: %+v", r)
		}

		out := filepath.Join(t.TempDir(), "audit.csv")
		r = runCLI(ctx, env, "", "audit", "export", "--db", dsn, "-o", out)
		if r.code != 0 || !strings.Contains(r.stderr, "wrote 6 records of the audit log") {
			t.Fatalf("export: %+v", r)
		}
		if st, err := os.Stat(out); err != nil || st.Mode().Perm() != 0o600 {
			t.Fatalf("export file: %v %v", st, err)
		}
		raw, _ := os.ReadFile(out)
		lines, err := csv.NewReader(strings.NewReader(string(raw))).ReadAll()
		if err != nil || len(lines) != 7 || lines[0][0] != "seq" {
			t.Fatalf("export: %d lines, %v\n%s", len(lines), err, raw)
		}
		if lines[1][10] != "'=cmd|' /C calc'!A0" || lines[6][5] != string(audit.AuditExport) {
			t.Errorf("export: %v / %v", lines[1], lines[6])
		}
		r = runCLI(ctx, env, "", "audit", "export", "--action", "friend", "--since", "2000-01-01", "--until", "2999-12-31")
		if r.code != 0 || strings.Count(r.stdout, "\n") != 6 || strings.Contains(r.stdout, "audit.export") {
			t.Errorf("export to stdout, filtered: %+v", r)
		}

		// The whole log now: 7 records (two exports). Keep the anchor it prints.
		r = runCLI(ctx, env, "", "audit", "verify")
		anchor := regexp.MustCompile(`--anchor (7:[0-9a-f]{64})`).FindStringSubmatch(r.stdout)
		if r.code != 0 || !strings.Contains(r.stdout, "intact: 7 records") || anchor == nil {
			t.Fatalf("verify after export: %+v", r)
		}

		// Someone with rights on the database drops the guard and cuts the last record:
		// the chain that is left is sound, the anchor shows the cut.
		if d.Dialect() == store.Postgres {
			mustExec(t, d, "ALTER TABLE audit_log DISABLE TRIGGER USER")
		} else {
			mustExec(t, d, "DROP TRIGGER audit_log_no_update")
			mustExec(t, d, "DROP TRIGGER audit_log_no_delete")
		}
		mustExec(t, d, "DELETE FROM audit_log WHERE seq = 7")
		if r := runCLI(ctx, env, "", "audit", "verify"); r.code != 0 || !strings.Contains(r.stdout, "intact: 6 records") {
			t.Errorf("verify without the anchor: %+v", r)
		}
		r = runCLI(ctx, env, "", "audit", "verify", "--anchor", anchor[1])
		if r.code != 1 || !strings.Contains(r.stdout, "audit log broken at record 7: record is missing") ||
			!strings.Contains(r.stdout, "末尾の記録が削除されています") {
			t.Errorf("verify with the anchor: %+v", r)
		}

		// ...and edits a record.
		mustExec(t, d, "UPDATE audit_log SET actor_name = 'someone' WHERE seq = 3")
		r = runCLI(ctx, env, "", "audit", "verify")
		if r.code != 1 || !strings.Contains(r.stdout, "audit log broken at record 3: hash does not match its contents") ||
			!strings.Contains(r.stdout, "レコード 3 で壊れています") || !strings.Contains(r.stdout, "before it, 2 records intact") ||
			!strings.Contains(r.stderr, "linestep audit: audit log broken at record 3") {
			t.Errorf("verify a tampered log: %+v", r)
		}
	})
}

func TestAuditCommandErrors(t *testing.T) {
	ctx := context.Background()
	missing := filepath.Join(t.TempDir(), "nope.db")
	if r := runCLI(ctx, nil, "", "audit", "verify", "--db", missing); r.code != 1 || !strings.Contains(r.stderr, "no database at") {
		t.Errorf("missing database: %+v", r)
	}
	if _, err := os.Stat(missing); err == nil {
		t.Errorf("verify created a database")
	}
	for _, args := range [][]string{
		{"audit"},
		{"audit", "frobnicate"},
		{"audit", "verify", "--anchor", "7"},
		{"audit", "verify", "extra"},
		{"audit", "export", "--since", "April"},
	} {
		if r := runCLI(ctx, nil, "", args...); r.code != 2 {
			t.Errorf("%v: %+v", args, r)
		}
	}
	for _, args := range [][]string{{"audit", "--help"}, {"audit", "verify", "--help"}, {"audit", "export", "--help"}} {
		if r := runCLI(ctx, nil, "", args...); r.code != 0 || !strings.Contains(r.stderr, "Usage: linestep audit") || !strings.Contains(r.stderr, "監査ログ") {
			t.Errorf("%v: %+v", args, r)
		}
	}
}

func mustExec(t *testing.T, d *store.DB, q string) {
	t.Helper()
	if _, err := d.ExecContext(context.Background(), q); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}
