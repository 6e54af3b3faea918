// Package coupon owns coupons: what a shop offers ("10% off in Osaka"), the code each
// friend is given when a message first shows it, and its redemption at the till or by a
// postback button.
//
// A coupon's codes follow its CodePolicy: one shared code, a code generated for each
// friend, or codes imported in advance and handed out one per friend. A friend is issued
// a coupon at most once and gets the same code every time; they may redeem it up to
// PerFriendLimit times. A redemption carries a key, so that a retried click or a
// redelivered postback counts once.
//
// Templates show a coupon as {{coupon.<key>.code}}, {{coupon.<key>.title}} and
// {{coupon.<key>.valid_until}}; Vars issues the coupon as the message is rendered (a
// broadcast, a scenario step, an auto-reply), and shows the fallback instead once the
// coupon has ended or the friend has used it up.
package coupon

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/linestep/linestep/internal/clock"
	"github.com/linestep/linestep/internal/message"
	"github.com/linestep/linestep/internal/store"
)

// Code policies.
const (
	PolicyShared    = "shared"    // everyone gets SharedCode
	PolicyGenerated = "generated" // a unique code is generated for each friend
	PolicyImported  = "imported"  // unique codes imported in advance, one per friend
)

// Coupon is one offer of a channel.
type Coupon struct {
	ID        int64
	ChannelID string
	// Key is unique per channel: [a-z0-9_]{1,64}, so that it can be written in a
	// template as {{coupon.<key>.code}}.
	Key         string
	Title       string // shown to friends; required, at most 100 characters
	Description string
	CodePolicy  string // shared | generated | imported
	SharedCode  string // shared only: 1 to 64 of A-Z, a-z, 0-9, _ and -
	ValidFrom   time.Time
	ValidUntil  time.Time // exclusive; zero: no end
	// PerFriendLimit is how many times one friend may redeem it; Save takes 0 as 1.
	PerFriendLimit int
	Enabled        bool
	CreatedAt      time.Time
	UpdatedAt      time.Time
}

// Available reports whether the coupon may be issued and redeemed at now.
func (c Coupon) Available(now time.Time) bool {
	return c.Enabled && !now.Before(c.ValidFrom) && (c.ValidUntil.IsZero() || now.Before(c.ValidUntil))
}

// Errors callers branch on. The refusals (see IsRefusal) say why in English and name no
// friend: they may be logged and shown to staff.
var (
	// ErrUnknownCoupon: no coupon of that key in the channel. It matches store.ErrNotFound.
	ErrUnknownCoupon error = notFound("no such coupon")
	// ErrNotAvailable: the coupon is disabled, or now is outside its validity period.
	ErrNotAvailable = errors.New("the coupon is disabled or outside its validity period")
	// ErrExhausted: every imported code has been issued.
	ErrExhausted = errors.New("every imported code has been issued")
	// ErrNotIssued: the friend was never issued the coupon, so cannot redeem it.
	ErrNotIssued = errors.New("the coupon was never issued to this friend")
	// ErrLimitReached: the friend has redeemed it PerFriendLimit times.
	ErrLimitReached = errors.New("the friend has redeemed the coupon as often as allowed")
	// ErrKeyConflict: the redemption key was already used for another friend.
	ErrKeyConflict = errors.New("the redemption key was already used for another friend")
	// ErrInvalid: an argument is malformed (a redemption key, who redeems).
	ErrInvalid = errors.New("invalid")
)

type notFound string

func (e notFound) Error() string        { return string(e) }
func (e notFound) Is(target error) bool { return target == store.ErrNotFound }

// IsRefusal reports whether err is a business refusal of an issue or a redemption, as
// opposed to a failure of the database.
func IsRefusal(err error) bool {
	for _, r := range []error{ErrUnknownCoupon, ErrNotAvailable, ErrExhausted, ErrNotIssued, ErrLimitReached, ErrKeyConflict, ErrInvalid} {
		if errors.Is(err, r) {
			return true
		}
	}
	return false
}

// Service reads and writes coupons, issues and redeems them.
type Service struct {
	db        *store.DB
	clock     clock.Clock
	logger    *slog.Logger
	locations sync.Map // time zone name -> *time.Location
}

// New returns the coupon service.
func New(db *store.DB, clk clock.Clock, logger *slog.Logger) *Service {
	return &Service{db: db, clock: clk, logger: logger}
}

// write runs fn on q when q is a transaction, or in a transaction of its own when q is
// the database: issuing and redeeming take several statements that stand or fall
// together, and the database's own reads go to a read-only pool.
func (s *Service) write(ctx context.Context, q store.Querier, fn func(q store.Querier) error) error {
	if db, ok := q.(*store.DB); ok {
		return db.WriteTx(ctx, func(tx *store.Tx) error { return fn(tx) })
	}
	return fn(q)
}

// Save creates the channel's coupon of c.Key, or updates it (keeping its ID, issues and
// codes). An invalid coupon is refused with message.Problems, and so is a change of code
// policy once codes were issued or imported. Friends already issued keep their code when
// the shared code changes.
func (s *Service) Save(ctx context.Context, q store.Querier, c Coupon) (Coupon, error) {
	if c.PerFriendLimit == 0 {
		c.PerFriendLimit = 1
	}
	if err := Validate(c); err != nil {
		return Coupon{}, err
	}
	var out Coupon
	err := s.write(ctx, q, func(q store.Querier) error {
		old, err := get(ctx, q, c.ChannelID, c.Key)
		switch {
		case errors.Is(err, ErrUnknownCoupon):
		case err != nil:
			return err
		case old.CodePolicy != c.CodePolicy:
			var used int
			err := q.QueryRowContext(ctx, `SELECT (SELECT COUNT(*) FROM coupon_issues WHERE coupon_id = ?)
				+ (SELECT COUNT(*) FROM coupon_codes WHERE coupon_id = ?)`, old.ID, old.ID).Scan(&used)
			if err != nil {
				return fmt.Errorf("coupon: save %s: %w", c.Key, err)
			}
			if used > 0 {
				return message.Problems{{Path: "code_policy",
					JA: "コードを配布または取り込み済みのため、コードの方式は変更できません。新しいクーポンを作成してください",
					EN: "codes were already issued or imported, so the code policy cannot change; create a new coupon instead"}}
			}
		}
		now := store.Millis(s.clock.Now())
		shared := ""
		if c.CodePolicy == PolicyShared {
			shared = c.SharedCode
		}
		_, err = q.ExecContext(ctx, `INSERT INTO coupons (channel_id, key, title, description, code_policy, shared_code,
				valid_from, valid_until, per_friend_limit, enabled, created_at, updated_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (channel_id, key) DO UPDATE SET title = excluded.title, description = excluded.description,
				code_policy = excluded.code_policy, shared_code = excluded.shared_code, valid_from = excluded.valid_from,
				valid_until = excluded.valid_until, per_friend_limit = excluded.per_friend_limit,
				enabled = excluded.enabled, updated_at = excluded.updated_at`,
			c.ChannelID, c.Key, c.Title, c.Description, c.CodePolicy, shared,
			store.Millis(c.ValidFrom), store.NullMillis(c.ValidUntil), c.PerFriendLimit, boolInt(c.Enabled), now, now)
		if err != nil {
			return fmt.Errorf("coupon: save %s: %w", c.Key, err)
		}
		out, err = get(ctx, q, c.ChannelID, c.Key)
		return err
	})
	if err != nil {
		return Coupon{}, err
	}
	return out, nil
}

// Get returns a channel's coupon by key, or an error matching ErrUnknownCoupon (and
// store.ErrNotFound).
func (s *Service) Get(ctx context.Context, channelID, key string) (Coupon, error) {
	return get(ctx, s.db, channelID, key)
}

// List returns a channel's coupons by key.
func (s *Service) List(ctx context.Context, channelID string) ([]Coupon, error) {
	rows, err := s.db.QueryContext(ctx, "SELECT "+couponColumns+" FROM coupons WHERE channel_id = ? ORDER BY key", channelID)
	if err != nil {
		return nil, fmt.Errorf("coupon: list: %w", err)
	}
	defer rows.Close()
	var out []Coupon
	for rows.Next() {
		c, err := scanCoupon(rows)
		if err != nil {
			return nil, fmt.Errorf("coupon: list: %w", err)
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

// Delete removes a channel's coupon with its codes, issues and redemptions.
func (s *Service) Delete(ctx context.Context, q store.Querier, channelID, key string) error {
	res, err := q.ExecContext(ctx, "DELETE FROM coupons WHERE channel_id = ? AND key = ?", channelID, key)
	if err != nil {
		return fmt.Errorf("coupon: delete %s: %w", key, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("coupon %s: %w", key, ErrUnknownCoupon)
	}
	return nil
}

const couponColumns = `id, channel_id, key, title, description, code_policy, shared_code, valid_from, valid_until,
	per_friend_limit, enabled, created_at, updated_at`

func get(ctx context.Context, q store.Querier, channelID, key string) (Coupon, error) {
	c, err := scanCoupon(q.QueryRowContext(ctx, "SELECT "+couponColumns+" FROM coupons WHERE channel_id = ? AND key = ?", channelID, key))
	if errors.Is(err, sql.ErrNoRows) {
		return Coupon{}, fmt.Errorf("coupon %s: %w", key, ErrUnknownCoupon)
	}
	if err != nil {
		return Coupon{}, fmt.Errorf("coupon: get %s: %w", key, err)
	}
	return c, nil
}

func scanCoupon(row interface{ Scan(...any) error }) (Coupon, error) {
	var c Coupon
	var from, created, updated, enabled int64
	var until sql.NullInt64
	err := row.Scan(&c.ID, &c.ChannelID, &c.Key, &c.Title, &c.Description, &c.CodePolicy, &c.SharedCode,
		&from, &until, &c.PerFriendLimit, &enabled, &created, &updated)
	if err != nil {
		return Coupon{}, err
	}
	c.ValidFrom, c.ValidUntil = store.Time(from), store.NullTime(until)
	c.Enabled = enabled != 0
	c.CreatedAt, c.UpdatedAt = store.Time(created), store.Time(updated)
	return c, nil
}

// boolInt: booleans are 0/1 integers on both engines.
func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
