// Package testutil holds the setup that tests across packages share: a fresh database of
// each engine, so that every store test is one conformance suite run on both.
package testutil

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/linestep/linestep/internal/store"
)

// PostgresURLEnv names the variable that points the tests at a PostgreSQL database.
const PostgresURLEnv = "LINESTEP_TEST_POSTGRES_URL"

// EachDB runs fn once on a fresh, migrated SQLite database and once on a fresh, migrated
// PostgreSQL schema (skipped, and saying so, when LINESTEP_TEST_POSTGRES_URL is unset).
func EachDB(t *testing.T, fn func(t *testing.T, db *store.DB)) {
	t.Helper()
	t.Run("sqlite", func(t *testing.T) {
		fn(t, NewSQLite(t))
	})
	t.Run("postgres", func(t *testing.T) {
		fn(t, NewPostgres(t))
	})
}

// NewSQLite returns a migrated SQLite database in a temporary directory.
func NewSQLite(t testing.TB) *store.DB {
	t.Helper()
	db, err := store.Open(context.Background(), filepath.Join(t.TempDir(), "linestep.db"))
	if err != nil {
		t.Fatalf("open SQLite: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	if _, err := db.Migrate(context.Background()); err != nil {
		t.Fatalf("migrate SQLite: %v", err)
	}
	return db
}

// PostgresURL returns a URL for a fresh schema of its own in the test PostgreSQL
// database, dropped when the test ends, or skips the test when none is configured.
func PostgresURL(t testing.TB) string {
	t.Helper()
	base := os.Getenv(PostgresURLEnv)
	if base == "" {
		t.Skipf("PostgreSQL tests skipped: set %s (e.g. postgres://postgres@127.0.0.1:5432/test?sslmode=disable) to run them", PostgresURLEnv)
	}
	admin, err := sql.Open("pgx", base)
	if err != nil {
		t.Fatalf("open PostgreSQL: %v", err)
	}
	t.Cleanup(func() { admin.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	schema := "t_" + randomHex(8)
	if _, err := admin.ExecContext(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatalf("create test schema (is PostgreSQL at %s up?): %v", PostgresURLEnv, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := admin.ExecContext(ctx, "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			t.Logf("drop test schema %s: %v", schema, err)
		}
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("parse %s: %v", PostgresURLEnv, err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

// NewPostgres returns a migrated PostgreSQL database on a schema of its own.
func NewPostgres(t testing.TB) *store.DB {
	t.Helper()
	dsn := PostgresURL(t)
	db, err := store.Open(context.Background(), dsn)
	if err != nil {
		t.Fatalf("open PostgreSQL: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	if _, err := db.Migrate(context.Background()); err != nil {
		t.Fatalf("migrate PostgreSQL: %v", err)
	}
	return db
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// SQLitePath returns the path of a new SQLite file in a temporary directory.
func SQLitePath(t testing.TB) string { return filepath.Join(t.TempDir(), "linestep.db") }

// EachDSN runs fn with a data source name for a fresh SQLite file and for a fresh
// PostgreSQL schema (skipped, and saying so, when LINESTEP_TEST_POSTGRES_URL is unset):
// for tests that start a whole server, which opens and migrates the database itself.
func EachDSN(t *testing.T, fn func(t *testing.T, dsn string)) {
	t.Helper()
	t.Run("sqlite", func(t *testing.T) {
		fn(t, filepath.Join(t.TempDir(), "linestep.db"))
	})
	t.Run("postgres", func(t *testing.T) {
		fn(t, PostgresURL(t))
	})
}

// SearchKey is the exact-search key (friend.NewService) of services that tests build by
// hand; a server derives its own from its master key.
var SearchKey = []byte("linestep test exact-search key..")
