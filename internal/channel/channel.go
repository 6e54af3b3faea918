// Package channel owns the LINE channels (official accounts) linestep serves: their names,
// time zones and credentials. Credentials are sealed under the master key in the
// database and are never printed once registered.
package channel

import (
	"context"
	"crypto/rand"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"
	"unicode"

	"github.com/linestep/linestep/internal/clock"
	"github.com/linestep/linestep/internal/keyring"
	"github.com/linestep/linestep/internal/store"
)

// DefaultTimeZone is the zone of a new channel: linestep's users are in Japan.
const DefaultTimeZone = "Asia/Tokyo"

// ErrInvalid wraps every validation failure of Add.
var ErrInvalid = errors.New("invalid channel")

// Channel is one LINE official account.
type Channel struct {
	ID        string
	Name      string
	TimeZone  string
	CreatedAt time.Time
	// Credentials are filled by Get only; List leaves them empty.
	Credentials Credentials
}

// WebhookPath is where LINE must send this channel's webhooks.
func (c Channel) WebhookPath() string { return "/webhook/" + c.ID }

// LogValue keeps credentials out of logs whatever the caller logs.
func (c Channel) LogValue() slog.Value {
	return slog.GroupValue(slog.String("id", c.ID))
}

// Credentials are the channel secret (it signs webhooks) and the access token (it
// authorises API calls).
type Credentials struct {
	Secret      string
	AccessToken string
}

// String hides the values from fmt's %v, so a stray print shows nothing secret.
func (Credentials) String() string { return "[credentials redacted]" }

// GoString does the same for %#v.
func (Credentials) GoString() string { return "[credentials redacted]" }

// Service registers, lists and looks up channels.
type Service struct {
	db    *store.DB
	keys  *keyring.Keyring
	clock clock.Clock

	mu    sync.Mutex
	cache map[string]cached
}

type cached struct {
	ch      Channel
	expires time.Time
}

// cacheTTL bounds how long a removed channel keeps receiving webhooks on an instance that
// did not remove it, and spares a database read and two decryptions per webhook.
const cacheTTL = 10 * time.Second

// NewService returns a channel service.
func NewService(db *store.DB, keys *keyring.Keyring, clk clock.Clock) *Service {
	return &Service{db: db, keys: keys, clock: clk, cache: map[string]cached{}}
}

// Add registers a channel and returns it with a new ID.
func (s *Service) Add(ctx context.Context, name, secret, token string) (Channel, error) {
	name = strings.TrimSpace(name)
	if name == "" || len(name) > 200 {
		return Channel{}, fmt.Errorf("%w: the name must be 1 to 200 characters", ErrInvalid)
	}
	if err := checkCredential("channel secret", secret); err != nil {
		return Channel{}, err
	}
	if err := checkCredential("access token", token); err != nil {
		return Channel{}, err
	}
	ch := Channel{ID: newID(), Name: name, TimeZone: DefaultTimeZone, CreatedAt: s.clock.Now(),
		Credentials: Credentials{Secret: secret, AccessToken: token}}
	_, err := s.db.ExecContext(ctx, `INSERT INTO channels (id, name, secret_enc, token_enc, time_zone, created_at)
		VALUES (?, ?, ?, ?, ?, ?)`,
		ch.ID, ch.Name,
		s.keys.Seal([]byte(secret), sealID(ch.ID, "secret")),
		s.keys.Seal([]byte(token), sealID(ch.ID, "token")),
		ch.TimeZone, store.Millis(ch.CreatedAt))
	if err != nil {
		return Channel{}, fmt.Errorf("channel: add: %w", err)
	}
	return ch, nil
}

func checkCredential(what, v string) error {
	if v == "" {
		return fmt.Errorf("%w: the %s is empty", ErrInvalid, what)
	}
	if len(v) > 2000 {
		return fmt.Errorf("%w: the %s is too long", ErrInvalid, what)
	}
	if strings.IndexFunc(v, func(r rune) bool { return unicode.IsSpace(r) || !unicode.IsPrint(r) }) >= 0 {
		return fmt.Errorf("%w: the %s contains spaces or control characters (copied with extra text?)", ErrInvalid, what)
	}
	return nil
}

// List returns every channel, without credentials.
func (s *Service) List(ctx context.Context) ([]Channel, error) {
	rows, err := s.db.QueryContext(ctx, "SELECT id, name, time_zone, created_at FROM channels ORDER BY created_at, id")
	if err != nil {
		return nil, fmt.Errorf("channel: list: %w", err)
	}
	defer rows.Close()
	var out []Channel
	for rows.Next() {
		var c Channel
		var created int64
		if err := rows.Scan(&c.ID, &c.Name, &c.TimeZone, &created); err != nil {
			return nil, fmt.Errorf("channel: list: %w", err)
		}
		c.CreatedAt = store.Time(created)
		out = append(out, c)
	}
	return out, rows.Err()
}

// Get returns a channel with its credentials opened. Results are cached briefly: the
// webhook handler calls it on every request.
func (s *Service) Get(ctx context.Context, id string) (Channel, error) {
	now := s.clock.Now()
	s.mu.Lock()
	c, ok := s.cache[id]
	s.mu.Unlock()
	if ok && now.Before(c.expires) {
		return c.ch, nil
	}
	var ch Channel
	var secret, token []byte
	var created int64
	err := s.db.QueryRowContext(ctx, "SELECT id, name, time_zone, created_at, secret_enc, token_enc FROM channels WHERE id = ?", id).
		Scan(&ch.ID, &ch.Name, &ch.TimeZone, &created, &secret, &token)
	if errors.Is(err, sql.ErrNoRows) {
		return Channel{}, fmt.Errorf("channel %s: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return Channel{}, fmt.Errorf("channel: get: %w", err)
	}
	ch.CreatedAt = store.Time(created)
	sec, err := s.keys.Open(secret, sealID(ch.ID, "secret"))
	if err != nil {
		return Channel{}, fmt.Errorf("channel %s: secret: %w", id, err)
	}
	tok, err := s.keys.Open(token, sealID(ch.ID, "token"))
	if err != nil {
		return Channel{}, fmt.Errorf("channel %s: token: %w", id, err)
	}
	ch.Credentials = Credentials{Secret: string(sec), AccessToken: string(tok)}
	s.mu.Lock()
	s.cache[id] = cached{ch: ch, expires: now.Add(cacheTTL)}
	s.mu.Unlock()
	return ch, nil
}

// Remove deletes a channel and everything recorded for it: its friends and what hangs
// on them by cascade, and their deliveries, which on PostgreSQL hold no reference to the
// friend (migration 0018). The channel row is locked first: whoever writes deliveries
// holds a share lock on it until they commit, so once the lock is ours no delivery for
// the channel is being written, and none can be afterwards.
func (s *Service) Remove(ctx context.Context, id string) error {
	err := s.db.WriteTx(ctx, func(tx *store.Tx) error {
		lock := ""
		if tx.Dialect() == store.Postgres {
			lock = " FOR UPDATE"
		}
		var got string
		err := tx.QueryRowContext(ctx, "SELECT id FROM channels WHERE id = ?"+lock, id).Scan(&got)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("channel %s: %w", id, store.ErrNotFound)
		}
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, "DELETE FROM deliveries WHERE friend_id IN (SELECT id FROM friends WHERE channel_id = ?)", id); err != nil {
			return err
		}
		// Remembered requests (they name no friend, and go within a day anyway).
		if _, err := tx.ExecContext(ctx, "DELETE FROM idempotency_keys WHERE channel_id = ?", id); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, "DELETE FROM channels WHERE id = ?", id)
		return err
	})
	if errors.Is(err, store.ErrNotFound) {
		return err
	}
	if err != nil {
		return fmt.Errorf("channel: remove: %w", err)
	}
	s.mu.Lock()
	delete(s.cache, id)
	s.mu.Unlock()
	return nil
}

// SetCredentials replaces a channel's secret, access token or both (an empty value keeps
// the one stored): after either is reissued in the LINE Developers console, the old one
// stops working. Every instance uses the new values within cacheTTL.
func (s *Service) SetCredentials(ctx context.Context, id, secret, token string) error {
	if secret == "" && token == "" {
		return fmt.Errorf("%w: give a new channel secret, access token or both", ErrInvalid)
	}
	set, args := []string{}, []any{}
	for _, c := range []struct{ what, column, seal, value string }{
		{"channel secret", "secret_enc", "secret", secret},
		{"access token", "token_enc", "token", token},
	} {
		if c.value == "" {
			continue
		}
		if err := checkCredential(c.what, c.value); err != nil {
			return err
		}
		set = append(set, c.column+" = ?")
		args = append(args, s.keys.Seal([]byte(c.value), sealID(id, c.seal)))
	}
	return s.update(ctx, s.db, "set credentials", id, strings.Join(set, ", "), args...)
}

// update sets columns of a channel (set is the SET list, args its values) and forgets
// the cached copy; what names the change in errors.
func (s *Service) update(ctx context.Context, q store.Querier, what, id, set string, args ...any) error {
	res, err := q.ExecContext(ctx, "UPDATE channels SET "+set+" WHERE id = ?", append(args, id)...)
	if err != nil {
		return fmt.Errorf("channel: %s: %w", what, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("channel %s: %w", id, store.ErrNotFound)
	}
	s.mu.Lock()
	delete(s.cache, id)
	s.mu.Unlock()
	return nil
}

// SetTimeZone changes the zone in which the channel's wall-clock times are read.
func (s *Service) SetTimeZone(ctx context.Context, id, zone string) error {
	if _, err := time.LoadLocation(zone); err != nil || zone == "" || zone == "Local" {
		return fmt.Errorf("%w: unknown time zone %q", ErrInvalid, zone)
	}
	return s.update(ctx, s.db, "set time zone", id, "time_zone = ?", zone)
}

func sealID(channelID, what string) string { return "channel/" + channelID + "/" + what }

// newID returns a short random ID that is safe in a URL path and does not reveal how
// many channels exist.
func newID() string {
	const alphabet = "abcdefghijkmnopqrstuvwxyz23456789" // no l, 0, 1: read aloud without confusion
	b := make([]byte, 12)
	rand.Read(b)
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return "ch" + string(b)
}
