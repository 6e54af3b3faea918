package store_test

import (
	"context"
	"errors"
	"path/filepath"
	"sync"
	"testing"

	"github.com/linestep/linestep/internal/store"
	"github.com/linestep/linestep/internal/testutil"
)

func TestMigrateIsIdempotent(t *testing.T) {
	testutil.EachDB(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		applied, err := db.Migrate(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(applied) != 0 {
			t.Fatalf("second Migrate applied %v, want nothing", applied)
		}
		have, known, err := db.Version(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if have != known || known == 0 {
			t.Fatalf("version %d of %d", have, known)
		}
	})
}

// Several instances starting at once on one PostgreSQL must apply each migration once.
func TestConcurrentMigratePostgres(t *testing.T) {
	dsn := testutil.PostgresURL(t)
	ctx := context.Background()
	var wg sync.WaitGroup
	results := make([][]string, 4)
	errs := make([]error, 4)
	for i := range results {
		wg.Go(func() {
			db, err := store.Open(ctx, dsn)
			if err != nil {
				errs[i] = err
				return
			}
			defer db.Close()
			results[i], errs[i] = db.Migrate(ctx)
		})
	}
	wg.Wait()
	total := 0
	for i := range results {
		if errs[i] != nil {
			t.Fatalf("instance %d: %v", i, errs[i])
		}
		total += len(results[i])
	}
	db, err := store.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	_, known, err := db.Version(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if total != known {
		t.Fatalf("migrations applied %d times in all, want %d (once each)", total, known)
	}
}

func TestWriteTxRollsBackOnError(t *testing.T) {
	testutil.EachDB(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		boom := errors.New("boom")
		err := db.WriteTx(ctx, func(tx *store.Tx) error {
			if _, err := tx.ExecContext(ctx, "INSERT INTO meta (key, value) VALUES (?, ?)", "k", "v"); err != nil {
				return err
			}
			return boom
		})
		if !errors.Is(err, boom) {
			t.Fatalf("WriteTx = %v, want boom", err)
		}
		var n int
		if err := db.QueryRowContext(ctx, "SELECT COUNT(*) FROM meta WHERE key = ?", "k").Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != 0 {
			t.Fatalf("rolled-back row is there")
		}
	})
}

func TestSavepointUndoesOnlyItsOwnWrites(t *testing.T) {
	testutil.EachDB(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		committed := false
		err := db.WriteTx(ctx, func(tx *store.Tx) error {
			tx.AfterCommit(func() { committed = true })
			if _, err := tx.ExecContext(ctx, "INSERT INTO meta (key, value) VALUES (?, ?)", "a", "1"); err != nil {
				return err
			}
			err := tx.Savepoint(ctx, "sp1", func() error {
				if _, err := tx.ExecContext(ctx, "INSERT INTO meta (key, value) VALUES (?, ?)", "b", "2"); err != nil {
					return err
				}
				// A duplicate key fails inside the savepoint.
				_, err := tx.ExecContext(ctx, "INSERT INTO meta (key, value) VALUES (?, ?)", "a", "3")
				return err
			})
			if err == nil || !store.IsUniqueViolation(err) {
				t.Errorf("savepoint error = %v, want a unique violation", err)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if !committed {
			t.Fatal("AfterCommit did not run")
		}
		var keys []string
		rows, err := db.QueryContext(ctx, "SELECT key FROM meta ORDER BY key")
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		for rows.Next() {
			var k string
			rows.Scan(&k)
			keys = append(keys, k)
		}
		if len(keys) != 1 || keys[0] != "a" {
			t.Fatalf("keys = %v, want [a]", keys)
		}
	})
}

func TestRebind(t *testing.T) {
	db := testutil.NewSQLite(t)
	if got := db.Rebind("SELECT ? , ?"); got != "SELECT ? , ?" {
		t.Fatalf("SQLite rebind changed the query: %q", got)
	}
	if got := store.Placeholders(2, 3); got != "(?, ?, ?), (?, ?, ?)" {
		t.Fatalf("Placeholders = %q", got)
	}
}

func TestOpenRefusesBadPaths(t *testing.T) {
	ctx := context.Background()
	for _, dsn := range []string{"", "sqlite:", filepath.Join(t.TempDir(), "a?b.db"), filepath.Join(t.TempDir(), "missing-dir", "x", "y.db")} {
		if db, err := store.Open(ctx, dsn); err == nil {
			db.Close()
			t.Errorf("Open(%q) succeeded", dsn)
		}
	}
}
