package store

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"runtime"
	"strings"

	_ "modernc.org/sqlite" // registers the "sqlite" driver (pure Go, no cgo)
)

// openSQLite opens two pools on one file: a single writer connection and a pool of
// read-only readers. WAL lets readers run while the writer writes; synchronous=FULL makes
// each commit durable on disk before it returns (the webhook's 200 depends on it); the
// busy timeout rides out another process (a `linestep channel add`) holding the lock.
func openSQLite(ctx context.Context, dsn string) (*DB, error) {
	path := strings.TrimPrefix(strings.TrimPrefix(dsn, "sqlite:"), "file:")
	if path == "" {
		return nil, fmt.Errorf("store: empty SQLite path")
	}
	if strings.ContainsAny(path, "?#") {
		return nil, fmt.Errorf("store: SQLite path %q must not contain '?' or '#'", path)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("store: SQLite path: %w", err)
	}
	common := "_busy_timeout=5000&_foreign_keys=1&_pragma=temp_store(memory)&_pragma=cache_size(-16000)"
	write, err := sql.Open("sqlite", "file:"+abs+"?"+common+"&_journal_mode=WAL&_synchronous=FULL&_txlock=immediate")
	if err != nil {
		return nil, fmt.Errorf("store: open SQLite writer: %w", err)
	}
	write.SetMaxOpenConns(1)
	write.SetMaxIdleConns(1)
	write.SetConnMaxLifetime(0)
	// The writer connects first: it switches the file to WAL, which readers then find.
	if err := write.PingContext(ctx); err != nil {
		write.Close()
		return nil, fmt.Errorf("store: open SQLite %s: %w", abs, err)
	}
	read, err := sql.Open("sqlite", "file:"+abs+"?"+common+"&_query_only=1")
	if err != nil {
		write.Close()
		return nil, fmt.Errorf("store: open SQLite readers: %w", err)
	}
	readers := max(4, runtime.GOMAXPROCS(0))
	read.SetMaxOpenConns(readers)
	read.SetMaxIdleConns(readers)
	if err := read.PingContext(ctx); err != nil {
		write.Close()
		read.Close()
		return nil, fmt.Errorf("store: open SQLite readers: %w", err)
	}
	return &DB{dialect: SQLite, read: read, write: write, path: abs}, nil
}
