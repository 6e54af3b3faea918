// Package store owns the connection to the database: SQLite for a laptop, PostgreSQL for
// several instances. It opens the pools, applies the versioned migrations and runs
// transactions with retries; the domain packages write their own explicit SQL through it,
// with `?` placeholders that are rewritten for PostgreSQL.
package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Dialect names the database engine behind a DB.
type Dialect string

const (
	SQLite   Dialect = "sqlite"
	Postgres Dialect = "postgres"
)

// ErrNotFound is returned by lookups that find no row; callers branch on it.
var ErrNotFound = errors.New("not found")

// DB is the database linestep runs on. Reads go to a pool of readers; writes go to the
// writer (with SQLite, one connection: SQLite has one writer, and a single connection
// avoids "database is locked" between our own goroutines).
type DB struct {
	dialect Dialect
	read    *sql.DB
	write   *sql.DB
	// path is the SQLite file (empty for PostgreSQL); the master key file lives beside it.
	path string

	rebound sync.Map // query text -> query text with $n placeholders (PostgreSQL only)
}

// Open connects to the database named by dsn: a postgres:// or postgresql:// URL selects
// PostgreSQL, anything else is a SQLite file path (optionally prefixed with sqlite: or
// file:). It does not apply migrations; call Migrate.
func Open(ctx context.Context, dsn string) (*DB, error) {
	var db *DB
	var err error
	if IsPostgresURL(dsn) {
		db, err = openPostgres(ctx, dsn)
	} else {
		db, err = openSQLite(ctx, dsn)
	}
	if err != nil {
		return nil, err
	}
	return db, nil
}

// IsPostgresURL reports whether dsn names a PostgreSQL database.
func IsPostgresURL(dsn string) bool {
	return strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://")
}

// Dialect reports which engine this is.
func (db *DB) Dialect() Dialect { return db.dialect }

// Path is the SQLite database file, or "" for PostgreSQL.
func (db *DB) Path() string { return db.path }

// Close closes both pools.
func (db *DB) Close() error {
	err := db.read.Close()
	if db.write != db.read {
		err = errors.Join(err, db.write.Close())
	}
	return err
}

// Ping checks that the database answers; /readyz uses it.
func (db *DB) Ping(ctx context.Context) error {
	if err := db.read.PingContext(ctx); err != nil {
		return fmt.Errorf("store: ping: %w", err)
	}
	return nil
}

// Stats reports pool statistics for metrics.
func (db *DB) Stats() (read, write sql.DBStats) { return db.read.Stats(), db.write.Stats() }

// Rebind rewrites `?` placeholders to `$1, $2, ...` for PostgreSQL. Queries are written
// once, with `?`, and never contain a literal question mark outside a placeholder.
func (db *DB) Rebind(query string) string {
	if db.dialect != Postgres {
		return query
	}
	if q, ok := db.rebound.Load(query); ok {
		return q.(string)
	}
	var b strings.Builder
	b.Grow(len(query) + 16)
	n := 0
	for i := 0; i < len(query); i++ {
		if query[i] == '?' {
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
			continue
		}
		b.WriteByte(query[i])
	}
	q := b.String()
	db.rebound.Store(query, q)
	return q
}

// Querier is what both a DB (reads) and a Tx offer; functions that can run inside or
// outside a transaction take one.
type Querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
	Dialect() Dialect
}

// QueryContext runs a read query on the reader pool.
func (db *DB) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	return db.read.QueryContext(ctx, db.Rebind(query), args...)
}

// QueryRowContext runs a single-row read query on the reader pool.
func (db *DB) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	return db.read.QueryRowContext(ctx, db.Rebind(query), args...)
}

// ExecContext runs one write statement on the writer, outside any transaction, retrying
// when the database is briefly busy.
func (db *DB) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	var res sql.Result
	err := retryBusy(ctx, func() error {
		var err error
		res, err = db.write.ExecContext(ctx, db.Rebind(query), args...)
		return err
	})
	return res, err
}

// Tx is a write transaction. Its methods rebind placeholders like DB's.
type Tx struct {
	tx *sql.Tx
	db *DB
	// afterCommit runs once the transaction has committed: wake-ups of workers that
	// should see what it wrote.
	afterCommit []func()
}

func (tx *Tx) Dialect() Dialect { return tx.db.dialect }

func (tx *Tx) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	return tx.tx.ExecContext(ctx, tx.db.Rebind(query), args...)
}

func (tx *Tx) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	return tx.tx.QueryContext(ctx, tx.db.Rebind(query), args...)
}

// Hold runs a locking query (SELECT ... FOR UPDATE) for its locks alone: they are held
// until the transaction ends. On SQLite, whose one writer holds everything, it does
// nothing.
func (tx *Tx) Hold(ctx context.Context, query string, args ...any) error {
	if tx.db.dialect != Postgres {
		return nil
	}
	rows, err := tx.QueryContext(ctx, query, args...)
	if err != nil {
		return err
	}
	rows.Close()
	return rows.Err()
}

func (tx *Tx) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	return tx.tx.QueryRowContext(ctx, tx.db.Rebind(query), args...)
}

// PrepareWrite prepares query on the writer, for a hot path that runs it in many
// transactions: the statement is compiled once per connection instead of at each use. Use
// it in a transaction with Tx.Stmt, and never call PrepareWrite inside a WriteTx (with
// SQLite the writer is one connection, held by the transaction). Close it when done.
func (db *DB) PrepareWrite(ctx context.Context, query string) (*sql.Stmt, error) {
	return db.write.PrepareContext(ctx, db.Rebind(query))
}

// WriteQueryContext runs one statement that returns rows (an INSERT ... RETURNING) on the
// writer, outside any transaction: it commits on its own. It is not retried.
func (db *DB) WriteQueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	return db.write.QueryContext(ctx, db.Rebind(query), args...)
}

// Stmt returns s, prepared with PrepareWrite, for use in this transaction.
func (tx *Tx) Stmt(ctx context.Context, s *sql.Stmt) *sql.Stmt { return tx.tx.StmtContext(ctx, s) }

// CommitWithoutFlush lets this transaction's commit return before PostgreSQL has flushed
// it to disk (synchronous_commit off, for this transaction only): a crash may then lose
// it whole, never in part. Only for work that is done again when lost (a cursor that
// moves with what it wrote, a lease that runs out), and whose effects leave the database
// only after some later ordinary commit, which flushes the log past this one first: the
// dispatcher's claim is that commit for what is sent. SQLite commits as usual.
func (tx *Tx) CommitWithoutFlush(ctx context.Context) error {
	if tx.db.dialect != Postgres {
		return nil
	}
	if _, err := tx.tx.ExecContext(ctx, "SET LOCAL synchronous_commit = off"); err != nil {
		return fmt.Errorf("store: synchronous_commit: %w", err)
	}
	return nil
}

// AfterCommit registers f to run after the transaction commits (never if it rolls back).
func (tx *Tx) AfterCommit(f func()) { tx.afterCommit = append(tx.afterCommit, f) }

// Savepoint runs fn inside a savepoint: if fn fails, only its own writes are undone and
// the transaction goes on. A batch of events is processed in one transaction this way,
// one savepoint per event, so one bad event does not undo its neighbours.
func (tx *Tx) Savepoint(ctx context.Context, name string, fn func() error) error {
	if _, err := tx.tx.ExecContext(ctx, "SAVEPOINT "+name); err != nil {
		return fmt.Errorf("store: savepoint: %w", err)
	}
	if err := fn(); err != nil {
		if _, rbErr := tx.tx.ExecContext(ctx, "ROLLBACK TO SAVEPOINT "+name); rbErr != nil {
			return errors.Join(err, fmt.Errorf("store: rollback to savepoint: %w", rbErr))
		}
		return err
	}
	if _, err := tx.tx.ExecContext(ctx, "RELEASE SAVEPOINT "+name); err != nil {
		return fmt.Errorf("store: release savepoint: %w", err)
	}
	return nil
}

// WriteTx runs fn in a write transaction on the writer and commits it. When the database
// is briefly busy (SQLite locked by another process, a PostgreSQL serialization failure
// or deadlock) the whole transaction is retried, so fn must not have effects outside it.
func (db *DB) WriteTx(ctx context.Context, fn func(tx *Tx) error) error {
	return retryBusy(ctx, func() error {
		sqlTx, err := db.write.BeginTx(ctx, nil)
		if err != nil {
			return fmt.Errorf("store: begin: %w", err)
		}
		tx := &Tx{tx: sqlTx, db: db}
		if err := fn(tx); err != nil {
			_ = sqlTx.Rollback()
			return err
		}
		if err := sqlTx.Commit(); err != nil {
			return fmt.Errorf("store: commit: %w", err)
		}
		for _, f := range tx.afterCommit {
			f()
		}
		return nil
	})
}

// retryBusy retries f while it fails because the database is briefly busy, with a short
// backoff, for at most a few seconds: long enough to ride out another process's write,
// short enough that a webhook still gets its answer (a 5xx, and LINE redelivers).
func retryBusy(ctx context.Context, f func() error) error {
	const maxWait = 5 * time.Second
	delay := 5 * time.Millisecond
	deadline := time.Now().Add(maxWait)
	for {
		err := f()
		if err == nil || !IsBusy(err) || time.Now().After(deadline) {
			return err
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return errors.Join(err, ctx.Err())
		case <-t.C:
		}
		delay = min(delay*2, 250*time.Millisecond)
	}
}

// Millis turns a time into the integer milliseconds every timestamp column holds. Both
// engines store times the same way, so the same SQL compares them the same way.
func Millis(t time.Time) int64 { return t.UnixMilli() }

// Time turns stored milliseconds back into a time.
func Time(ms int64) time.Time { return time.UnixMilli(ms) }

// NullTime turns a nullable millisecond column into a time (zero when NULL).
func NullTime(ms sql.NullInt64) time.Time {
	if !ms.Valid {
		return time.Time{}
	}
	return time.UnixMilli(ms.Int64)
}

// NullMillis turns a time into a nullable millisecond value (NULL for the zero time).
func NullMillis(t time.Time) sql.NullInt64 {
	if t.IsZero() {
		return sql.NullInt64{}
	}
	return sql.NullInt64{Int64: t.UnixMilli(), Valid: true}
}

// EscapeLike makes s match itself in a LIKE pattern written with ESCAPE '\'.
func EscapeLike(s string) string {
	return strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(s)
}

// Placeholders returns "(?, ?, ...), (...)" for rows rows of cols columns, for multi-row
// inserts.
func Placeholders(rows, cols int) string {
	one := "(" + strings.TrimSuffix(strings.Repeat("?, ", cols), ", ") + ")"
	return strings.TrimSuffix(strings.Repeat(one+", ", rows), ", ")
}
