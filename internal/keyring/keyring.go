// Package keyring owns the master key and the sealing of secrets at rest (channel secrets,
// access tokens, and later the per-friend data keys). Sealing is AES-256-GCM with the
// secret's identity as associated data, so a sealed value copied onto another row or
// column does not open.
package keyring

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// EnvVar names the environment variable that holds the master key.
const EnvVar = "LINESTEP_MASTER_KEY"

// version prefixes every sealed value so that a later key rotation can tell old from new.
const version byte = 1

var (
	// ErrNoKey is returned when PostgreSQL is used without LINESTEP_MASTER_KEY.
	ErrNoKey = errors.New("keyring: no master key: set " + EnvVar)
	// ErrOpen is returned when a sealed value does not open: wrong key, wrong identity or
	// tampered bytes.
	ErrOpen = errors.New("keyring: sealed value does not open (wrong master key or tampered data)")
)

// Keyring seals and opens secrets under one master key.
type Keyring struct {
	aead   cipher.AEAD
	id     string // a short fingerprint of the key, safe to show
	master []byte // for Derive
}

// New returns a keyring for a 32-byte master key.
func New(key []byte) (*Keyring, error) {
	if len(key) != 32 {
		return nil, fmt.Errorf("keyring: master key must be 32 bytes, got %d", len(key))
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("keyring: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("keyring: %w", err)
	}
	sum := sha256.Sum256(append([]byte("linestep key id\x00"), key...))
	return &Keyring{aead: aead, id: hex.EncodeToString(sum[:4]), master: slices.Clone(key)}, nil
}

// Derive returns a 32-byte key for one purpose (HKDF-SHA256 of the master key), for what
// is not sealing: the keyed hashes under which exact values are found without being
// stored in the clear. Keys for two purposes are unrelated, and none reveals the master.
func (k *Keyring) Derive(purpose string) []byte {
	key, err := hkdf.Key(sha256.New, k.master, nil, "linestep "+purpose, 32)
	if err != nil {
		panic("keyring: derive: " + err.Error()) // only for lengths HKDF cannot give
	}
	return key
}

// ID is a fingerprint of the master key: it tells keys apart without revealing them.
func (k *Keyring) ID() string { return k.id }

// Seal encrypts plaintext, binding it to identity (e.g. "channel/C1/secret").
func (k *Keyring) Seal(plaintext []byte, identity string) []byte {
	nonce := make([]byte, k.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		panic("keyring: no randomness: " + err.Error()) // crypto/rand does not fail on supported systems
	}
	out := make([]byte, 0, 1+len(nonce)+len(plaintext)+k.aead.Overhead())
	out = append(out, version)
	out = append(out, nonce...)
	return k.aead.Seal(out, nonce, plaintext, []byte(identity))
}

// Open decrypts a value sealed under the same key and identity.
func (k *Keyring) Open(sealed []byte, identity string) ([]byte, error) {
	ns := k.aead.NonceSize()
	if len(sealed) < 1+ns+k.aead.Overhead() || sealed[0] != version {
		return nil, ErrOpen
	}
	plain, err := k.aead.Open(nil, sealed[1:1+ns], sealed[1+ns:], []byte(identity))
	if err != nil {
		return nil, ErrOpen
	}
	return plain, nil
}

// ParseKey reads a master key written as 64 hex digits or as base64 of 32 bytes.
func ParseKey(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	if b, err := hex.DecodeString(s); err == nil && len(b) == 32 {
		return b, nil
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil && len(b) == 32 {
			return b, nil
		}
	}
	return nil, errors.New("keyring: master key must be 32 bytes as 64 hex digits or base64")
}

// GenerateKey returns a new random master key, base64-encoded.
func GenerateKey() string {
	b := make([]byte, 32)
	rand.Read(b)
	return base64.StdEncoding.EncodeToString(b)
}

// Source says where a master key came from, for the start-up log.
type Source string

const (
	FromEnv     Source = "environment"
	FromFile    Source = "key file"
	CreatedFile Source = "new key file"
)

// Load finds the master key: LINESTEP_MASTER_KEY if set; otherwise, when keyFile is not
// empty (SQLite), the key in keyFile, created with mode 0600 on first start. With neither
// (PostgreSQL without the variable) it returns ErrNoKey.
func Load(getenv func(string) string, keyFile string) (*Keyring, Source, error) {
	if v := getenv(EnvVar); v != "" {
		key, err := ParseKey(v)
		if err != nil {
			return nil, "", fmt.Errorf("%s: %w", EnvVar, err)
		}
		k, err := New(key)
		return k, FromEnv, err
	}
	if keyFile == "" {
		return nil, "", ErrNoKey
	}
	data, err := os.ReadFile(keyFile)
	switch {
	case err == nil:
		if info, statErr := os.Stat(keyFile); statErr == nil && info.Mode().Perm()&0o077 != 0 {
			return nil, "", fmt.Errorf("keyring: key file %s is readable by others (mode %v); run chmod 600", keyFile, info.Mode().Perm())
		}
		key, err := ParseKey(string(data))
		if err != nil {
			return nil, "", fmt.Errorf("keyring: key file %s: %w", keyFile, err)
		}
		k, err := New(key)
		return k, FromFile, err
	case errors.Is(err, fs.ErrNotExist):
		encoded := GenerateKey()
		if err := createExclusive(keyFile, []byte(encoded+"\n")); errors.Is(err, fs.ErrExist) {
			return Load(getenv, keyFile) // another process created it first: use theirs
		} else if err != nil {
			return nil, "", fmt.Errorf("keyring: create key file: %w", err)
		}
		key, _ := ParseKey(encoded)
		k, err := New(key)
		return k, CreatedFile, err
	default:
		return nil, "", fmt.Errorf("keyring: read key file: %w", err)
	}
}

// createExclusive writes data to path, mode 0600, only if path does not exist yet. It
// writes a temporary file and hard-links it into place, so that a process starting at the
// same moment sees either no file or the whole key, never half of one.
func createExclusive(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".linestep-key-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Link(tmp.Name(), path)
}
