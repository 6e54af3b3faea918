package coupon

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/linestep/linestep/internal/message"
	"github.com/linestep/linestep/internal/store"
)

// Issued is a coupon as given to one friend.
type Issued struct {
	CouponID   int64
	Key        string
	Title      string
	Code       string
	FriendID   int64
	IssuedAt   time.Time
	ValidUntil time.Time // zero: no end
	Redeemed   int       // times the friend has redeemed it
	// PerFriendLimit is the coupon's: Redeemed reaching it means the code is used up.
	PerFriendLimit int
}

// UsedUp reports whether the friend has redeemed the coupon as often as allowed.
func (is Issued) UsedUp() bool { return is.PerFriendLimit > 0 && is.Redeemed >= is.PerFriendLimit }

// Issue gives the friend the channel's coupon of that key and returns it. A friend is
// issued a coupon once: calling again returns the same code. A coupon that is disabled
// or outside its validity period at now is refused with ErrNotAvailable, even to a friend
// issued it before (a message must not show a code that cannot be used); an imported
// coupon with no free code left, with ErrExhausted.
//
// q may be a transaction (the caller's), or the database, for a transaction of its own.
func (s *Service) Issue(ctx context.Context, q store.Querier, channelID string, friendID int64, key string, now time.Time) (Issued, error) {
	var out Issued
	err := s.write(ctx, q, func(q store.Querier) error {
		var err error
		out, err = issue(ctx, q, channelID, friendID, key, now)
		return err
	})
	if err != nil {
		return Issued{}, err
	}
	return out, nil
}

func issue(ctx context.Context, q store.Querier, channelID string, friendID int64, key string, now time.Time) (Issued, error) {
	c, err := get(ctx, q, channelID, key)
	if err != nil {
		return Issued{}, err
	}
	if !c.Available(now) {
		return Issued{}, fmt.Errorf("coupon %s: %w", key, ErrNotAvailable)
	}
	is := Issued{CouponID: c.ID, Key: c.Key, Title: c.Title, FriendID: friendID, ValidUntil: c.ValidUntil, PerFriendLimit: c.PerFriendLimit}
	found, err := issuedBefore(ctx, q, &is)
	if err != nil || found {
		return is, err
	}
	var n int
	if err := q.QueryRowContext(ctx, "SELECT COUNT(*) FROM friends WHERE id = ? AND channel_id = ?", friendID, channelID).Scan(&n); err != nil {
		return Issued{}, fmt.Errorf("coupon: issue %s: %w", key, err)
	}
	if n == 0 {
		return Issued{}, fmt.Errorf("coupon: issue %s: friend %d of the channel: %w", key, friendID, store.ErrNotFound)
	}
	// The friend's one issue is claimed before a code is taken: another instance issuing
	// to the same friend waits on this row, then finds it, and takes no second code.
	var issueID int64
	err = q.QueryRowContext(ctx, `INSERT INTO coupon_issues (coupon_id, friend_id, code, issued_at) VALUES (?, ?, '', ?)
		ON CONFLICT (coupon_id, friend_id) DO NOTHING RETURNING id`, c.ID, friendID, store.Millis(now)).Scan(&issueID)
	if isNoRows(err) {
		if found, err := issuedBefore(ctx, q, &is); err != nil || found {
			return is, err
		}
		return Issued{}, fmt.Errorf("coupon: issue %s: the issue row vanished", key)
	}
	if err != nil {
		return Issued{}, fmt.Errorf("coupon: issue %s: %w", key, err)
	}
	code, err := takeCode(ctx, q, c, friendID, now)
	if errors.Is(err, ErrExhausted) {
		if _, derr := q.ExecContext(ctx, "DELETE FROM coupon_issues WHERE id = ?", issueID); derr != nil {
			return Issued{}, fmt.Errorf("coupon: issue %s: %w", key, derr)
		}
		return Issued{}, err
	}
	if err != nil {
		return Issued{}, err
	}
	if _, err := q.ExecContext(ctx, "UPDATE coupon_issues SET code = ? WHERE id = ?", code, issueID); err != nil {
		return Issued{}, fmt.Errorf("coupon: issue %s: %w", key, err)
	}
	is.Code, is.IssuedAt = code, store.Time(store.Millis(now))
	return is, nil
}

// issuedBefore fills is from the friend's existing issue, if there is one.
func issuedBefore(ctx context.Context, q store.Querier, is *Issued) (bool, error) {
	var at int64
	err := q.QueryRowContext(ctx, "SELECT code, redeemed, issued_at FROM coupon_issues WHERE coupon_id = ? AND friend_id = ?",
		is.CouponID, is.FriendID).Scan(&is.Code, &is.Redeemed, &at)
	if isNoRows(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("coupon: issue %s: %w", is.Key, err)
	}
	is.IssuedAt = store.Time(at)
	return true, nil
}

func isNoRows(err error) bool { return errors.Is(err, sql.ErrNoRows) }

// Variable fields a template may show of a coupon.
var varFields = map[string]bool{"code": true, "title": true, "valid_until": true}

// parseVar splits coupon.<key>.<field>.
func parseVar(name string) (key, field string, ok bool) {
	rest, ok := strings.CutPrefix(name, "coupon.")
	if !ok {
		return "", "", false
	}
	key, field, ok = strings.Cut(rest, ".")
	return key, field, ok && ValidKey(key) && varFields[field]
}

// KeysIn returns the keys of the coupons that variable names refer to, each once, in
// the order of names. Other names are ignored.
func KeysIn(names []string) []string {
	var keys []string
	seen := map[string]bool{}
	for _, n := range names {
		if key, _, ok := parseVar(n); ok && !seen[key] {
			seen[key] = true
			keys = append(keys, key)
		}
	}
	return keys
}

// ValidateReferences checks the coupon variables among names (a template's Variables)
// when a template, step or broadcast is saved: each must be coupon.<key>.code, .title or
// .valid_until of a coupon of the channel. The error is message.Problems whose paths are
// the variable names.
func (s *Service) ValidateReferences(ctx context.Context, q store.Querier, channelID string, names []string) error {
	var ps message.Problems
	exists := map[string]bool{}
	for _, n := range names {
		if !strings.HasPrefix(n, "coupon.") {
			continue
		}
		key, _, ok := parseVar(n)
		if !ok {
			ps = append(ps, message.Problem{Path: n,
				JA: fmt.Sprintf("{{%s}} はクーポンの変数として正しくありません。{{coupon.キー.code}}、{{coupon.キー.title}}、{{coupon.キー.valid_until}} のいずれかにしてください", n),
				EN: fmt.Sprintf("{{%s}} is not a coupon variable; use {{coupon.<key>.code}}, {{coupon.<key>.title}} or {{coupon.<key>.valid_until}}", n)})
			continue
		}
		known, checked := exists[key]
		if !checked {
			var c int
			if err := q.QueryRowContext(ctx, "SELECT COUNT(*) FROM coupons WHERE channel_id = ? AND key = ?", channelID, key).Scan(&c); err != nil {
				return fmt.Errorf("coupon: check references: %w", err)
			}
			known = c > 0
			exists[key] = known
		}
		if !known {
			ps = append(ps, message.Problem{Path: n,
				JA: fmt.Sprintf("クーポン「%s」はありません。キーを確認するか、先にクーポンを作成してください", key),
				EN: fmt.Sprintf("there is no coupon %q; check the key or create the coupon first", key)})
		}
	}
	if len(ps) == 0 {
		return nil
	}
	return ps
}

// Vars issues to the friend each coupon that names refers to (see KeysIn) and returns
// the values of its variables. A friend asking again (a keyword sent twice, a second
// broadcast) is shown the code issued the first time: no second issue, no second code.
// A coupon that cannot be issued (unknown, not available, exhausted), or that the friend
// has redeemed PerFriendLimit times already, leaves its variables absent, so the
// template's fallback applies: a message must not offer a code the till would refuse.
// Other errors are returned. q is as for Issue.
func (s *Service) Vars(ctx context.Context, q store.Querier, channelID string, friendID int64, names []string, now time.Time) (message.MapVars, error) {
	keys := KeysIn(names)
	if len(keys) == 0 {
		return nil, nil
	}
	loc, err := s.location(ctx, q, channelID)
	if err != nil {
		return nil, err
	}
	vars := make(message.MapVars, 3*len(keys))
	for _, key := range keys {
		is, err := s.Issue(ctx, q, channelID, friendID, key, now)
		switch {
		case errors.Is(err, ErrUnknownCoupon), errors.Is(err, ErrNotAvailable), errors.Is(err, ErrExhausted):
			continue
		case err != nil:
			return nil, err
		case is.UsedUp():
			continue
		}
		p := "coupon." + key + "."
		vars[p+"code"] = is.Code
		vars[p+"title"] = is.Title
		if !is.ValidUntil.IsZero() {
			vars[p+"valid_until"] = LastDay(is.ValidUntil, loc)
		}
	}
	return vars, nil
}

// LastDay is the last date on which a coupon ending at until (exclusive) can be used, as
// YYYY-MM-DD in loc: an end at midnight means the day before, which is what a friend
// must read.
func LastDay(until time.Time, loc *time.Location) string {
	return until.Add(-time.Millisecond).In(loc).Format("2006-01-02")
}

// location returns the channel's time zone; Japan when the zone is unknown, as the
// column's default says.
func (s *Service) location(ctx context.Context, q store.Querier, channelID string) (*time.Location, error) {
	var tz string
	err := q.QueryRowContext(ctx, "SELECT time_zone FROM channels WHERE id = ?", channelID).Scan(&tz)
	if err != nil && !isNoRows(err) {
		return nil, fmt.Errorf("coupon: channel time zone: %w", err)
	}
	if tz == "" {
		tz = "Asia/Tokyo"
	}
	if loc, ok := s.locations.Load(tz); ok {
		return loc.(*time.Location), nil
	}
	// LoadLocation reads the zone database on every call: keep what it found.
	loc, err := time.LoadLocation(tz)
	if err != nil {
		loc = tokyo
	}
	s.locations.Store(tz, loc)
	return loc, nil
}

var tokyo = func() *time.Location {
	loc, err := time.LoadLocation("Asia/Tokyo")
	if err != nil {
		return time.FixedZone("JST", 9*60*60) // no zone database on this system
	}
	return loc
}()

// IssuedTo lists the coupons issued to a friend, oldest first, for the friend's own copy
// of their data (a disclosure).
func (s *Service) IssuedTo(ctx context.Context, q store.Querier, friendID int64) ([]Issued, error) {
	rows, err := q.QueryContext(ctx, `SELECT c.id, c.key, c.title, i.code, i.redeemed, i.issued_at FROM coupon_issues i
		JOIN coupons c ON c.id = i.coupon_id WHERE i.friend_id = ? ORDER BY i.id`, friendID)
	if err != nil {
		return nil, fmt.Errorf("coupon: issued to friend: %w", err)
	}
	defer rows.Close()
	var out []Issued
	for rows.Next() {
		is := Issued{FriendID: friendID}
		var at int64
		if err := rows.Scan(&is.CouponID, &is.Key, &is.Title, &is.Code, &is.Redeemed, &at); err != nil {
			return nil, fmt.Errorf("coupon: issued to friend: %w", err)
		}
		is.IssuedAt = store.Time(at)
		out = append(out, is)
	}
	return out, rows.Err()
}
