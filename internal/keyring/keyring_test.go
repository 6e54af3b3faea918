package keyring_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/linestep/linestep/internal/keyring"
	"github.com/linestep/linestep/internal/store"
	"github.com/linestep/linestep/internal/testutil"
)

func newKeyring(t *testing.T) *keyring.Keyring {
	t.Helper()
	key, err := keyring.ParseKey(keyring.GenerateKey())
	if err != nil {
		t.Fatal(err)
	}
	k, err := keyring.New(key)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestSealOpen(t *testing.T) {
	t.Parallel()
	k := newKeyring(t)
	sealed := k.Seal([]byte("channel-secret"), "channel/C1/secret")
	if bytes.Contains(sealed, []byte("channel-secret")) {
		t.Fatal("plaintext visible in sealed value")
	}
	got, err := k.Open(sealed, "channel/C1/secret")
	if err != nil || string(got) != "channel-secret" {
		t.Fatalf("Open = %q, %v", got, err)
	}
	// The same plaintext seals differently each time (random nonce).
	if bytes.Equal(sealed, k.Seal([]byte("channel-secret"), "channel/C1/secret")) {
		t.Fatal("two seals are equal")
	}
	tampered := bytes.Clone(sealed)
	tampered[len(tampered)-1] ^= 1
	for name, c := range map[string]struct {
		sealed   []byte
		identity string
		k        *keyring.Keyring
	}{
		"other identity": {sealed, "channel/C2/secret", k},
		"tampered":       {tampered, "channel/C1/secret", k},
		"other key":      {sealed, "channel/C1/secret", newKeyring(t)},
		"short":          {sealed[:5], "channel/C1/secret", k},
	} {
		if _, err := c.k.Open(c.sealed, c.identity); !errors.Is(err, keyring.ErrOpen) {
			t.Errorf("%s: Open error = %v, want ErrOpen", name, err)
		}
	}
}

// A derived key is the same for the same master key and purpose, different for another
// purpose or another master key, and not the master key itself.
func TestDerive(t *testing.T) {
	t.Parallel()
	raw, _ := keyring.ParseKey(keyring.GenerateKey())
	a, _ := keyring.New(raw)
	again, _ := keyring.New(raw)
	k := a.Derive("friend exact search")
	if len(k) != 32 || !bytes.Equal(k, again.Derive("friend exact search")) {
		t.Fatalf("not stable: %x", k)
	}
	if bytes.Equal(k, a.Derive("another purpose")) || bytes.Equal(k, newKeyring(t).Derive("friend exact search")) || bytes.Equal(k, raw) {
		t.Fatal("a derived key is shared with another purpose, another master key or the master key")
	}
}

func TestLoadCreatesKeyFileOnce(t *testing.T) {
	t.Parallel()
	file := filepath.Join(t.TempDir(), "linestep.db.key")
	noEnv := func(string) string { return "" }
	var wg sync.WaitGroup
	ids := make([]string, 8)
	for i := range ids {
		wg.Go(func() {
			k, _, err := keyring.Load(noEnv, file)
			if err != nil {
				t.Error(err)
				return
			}
			ids[i] = k.ID()
		})
	}
	wg.Wait()
	for _, id := range ids {
		if id != ids[0] {
			t.Fatalf("concurrent starts got different keys: %v", ids)
		}
	}
	info, err := os.Stat(file)
	if err != nil {
		t.Fatal(err)
	}
	if info.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v, want 0600", info.Mode().Perm())
	}
	k, src, err := keyring.Load(noEnv, file)
	if err != nil || src != keyring.FromFile || k.ID() != ids[0] {
		t.Fatalf("reload: %v %v %v", k, src, err)
	}
	if err := os.Chmod(file, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := keyring.Load(noEnv, file); err == nil || !strings.Contains(err.Error(), "readable by others") {
		t.Fatalf("world-readable key file accepted: %v", err)
	}
}

func TestLoadFromEnvAndRequireKeyForPostgres(t *testing.T) {
	t.Parallel()
	key := keyring.GenerateKey()
	env := func(name string) string {
		if name == keyring.EnvVar {
			return key
		}
		return ""
	}
	if _, src, err := keyring.Load(env, ""); err != nil || src != keyring.FromEnv {
		t.Fatalf("Load from env: %v %v", src, err)
	}
	if _, _, err := keyring.Load(func(string) string { return "" }, ""); !errors.Is(err, keyring.ErrNoKey) {
		t.Fatalf("Load without key or file = %v, want ErrNoKey", err)
	}
	bad := func(string) string { return "not-a-key" }
	if _, _, err := keyring.Load(bad, ""); err == nil || strings.Contains(err.Error(), "not-a-key") {
		t.Fatalf("bad key: error %v (must fail and not echo the value)", err)
	}
}

func TestBindRefusesAnotherKey(t *testing.T) {
	testutil.EachDB(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		k := newKeyring(t)
		if err := k.Bind(ctx, db); err != nil {
			t.Fatal(err)
		}
		if err := k.Bind(ctx, db); err != nil {
			t.Fatalf("same key refused: %v", err)
		}
		if err := newKeyring(t).Bind(ctx, db); err == nil {
			t.Fatal("a different key was accepted")
		}
	})
}
