package keyring

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/linestep/linestep/internal/store"
)

// Bind ties the keyring to a database: the first time, it records the key's fingerprint;
// afterwards it refuses a different key, so that starting with the wrong key fails at once
// with a clear message instead of later, secret by secret.
func (k *Keyring) Bind(ctx context.Context, db *store.DB) error {
	var have string
	err := db.QueryRowContext(ctx, "SELECT value FROM meta WHERE key = 'master_key_id'").Scan(&have)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		_, err := db.ExecContext(ctx, "INSERT INTO meta (key, value) VALUES ('master_key_id', ?) ON CONFLICT (key) DO NOTHING", k.id)
		if err != nil {
			return fmt.Errorf("keyring: record key id: %w", err)
		}
		return k.Bind(ctx, db) // re-read: another instance may have recorded its own first
	case err != nil:
		return fmt.Errorf("keyring: read key id: %w", err)
	case have != k.id:
		return fmt.Errorf("keyring: this database was sealed under master key %s, but the key given is %s: start with the right %s or key file", have, k.id, EnvVar)
	}
	return nil
}
