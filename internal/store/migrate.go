package store

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"sort"
	"strconv"
	"strings"
	"time"
)

//go:embed migrations
var migrationFS embed.FS

// migration is one numbered SQL file; each dialect has its own copy of every version.
type migration struct {
	version int
	name    string
	sql     string
}

func (db *DB) migrations() ([]migration, error) {
	dir := "migrations/" + string(db.dialect)
	entries, err := fs.ReadDir(migrationFS, dir)
	if err != nil {
		return nil, fmt.Errorf("store: read migrations: %w", err)
	}
	var out []migration
	for _, e := range entries {
		name := e.Name()
		if !strings.HasSuffix(name, ".sql") {
			continue
		}
		num, _, ok := strings.Cut(name, "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil {
			return nil, fmt.Errorf("store: migration %s: name must start with a number and '_'", name)
		}
		body, err := fs.ReadFile(migrationFS, dir+"/"+name)
		if err != nil {
			return nil, fmt.Errorf("store: read migration %s: %w", name, err)
		}
		out = append(out, migration{version: v, name: name, sql: string(body)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].version < out[j].version })
	for i := range out {
		if out[i].version != i+1 {
			return nil, fmt.Errorf("store: migrations for %s are not numbered 1..n: found %s at position %d", db.dialect, out[i].name, i+1)
		}
	}
	return out, nil
}

// Migrate applies every migration not yet applied, each in its own transaction. On
// PostgreSQL it holds an advisory lock meanwhile, so that several instances starting at
// once apply each migration exactly once; on SQLite the writer's immediate transaction
// does the same between processes.
func (db *DB) Migrate(ctx context.Context) (applied []string, err error) {
	ms, err := db.migrations()
	if err != nil {
		return nil, err
	}
	if db.dialect == Postgres {
		conn, err := db.write.Conn(ctx)
		if err != nil {
			return nil, fmt.Errorf("store: migrate: %w", err)
		}
		defer conn.Close()
		// The key is arbitrary but fixed: "linestep" as a 64-bit number.
		const lockKey = 0x6c696e6573746570
		if _, err := conn.ExecContext(ctx, "SELECT pg_advisory_lock($1)", int64(lockKey)); err != nil {
			return nil, fmt.Errorf("store: migrate: take advisory lock: %w", err)
		}
		defer conn.ExecContext(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock($1)", int64(lockKey))
	}
	if _, err := db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version INTEGER PRIMARY KEY,
		name TEXT NOT NULL,
		applied_at BIGINT NOT NULL)`); err != nil {
		return nil, fmt.Errorf("store: migrate: create schema_migrations: %w", err)
	}
	for _, m := range ms {
		ran := false
		err := db.WriteTx(ctx, func(tx *Tx) error {
			ran = false
			var n int
			if err := tx.QueryRowContext(ctx, "SELECT COUNT(*) FROM schema_migrations WHERE version = ?", m.version).Scan(&n); err != nil {
				return err
			}
			if n > 0 {
				return nil
			}
			// Straight to the driver: migration text is not rebound.
			if _, err := tx.tx.ExecContext(ctx, m.sql); err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
				m.version, m.name, Millis(time.Now())); err != nil {
				return err
			}
			ran = true
			return nil
		})
		if err != nil {
			return applied, fmt.Errorf("store: migration %s: %w", m.name, err)
		}
		if ran {
			applied = append(applied, m.name)
		}
	}
	return applied, nil
}

// Version reports the highest applied migration and the highest known one.
func (db *DB) Version(ctx context.Context) (applied, known int, err error) {
	ms, err := db.migrations()
	if err != nil {
		return 0, 0, err
	}
	known = len(ms)
	err = db.QueryRowContext(ctx, "SELECT COALESCE(MAX(version), 0) FROM schema_migrations").Scan(&applied)
	if err != nil {
		return 0, known, fmt.Errorf("store: read schema version: %w", err)
	}
	return applied, known, nil
}
