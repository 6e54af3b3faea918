package coupon

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/linestep/linestep/internal/store"
)

// Redemption is one use of a coupon by a friend.
type Redemption struct {
	ID            int64
	CouponID      int64
	Key           string
	FriendID      int64
	RedemptionKey string
	By            string // staff:<id> | postback
	Number        int    // the friend's 1st, 2nd, ... use
	RedeemedAt    time.Time
}

// ByPostback is By for a redemption the friend made by tapping a postback button.
const ByPostback = "postback"

const maxRedemptionKeyLen = 200

func validBy(by string) bool {
	if by == ByPostback {
		return true
	}
	id, ok := strings.CutPrefix(by, "staff:")
	return ok && id != "" && len(id) <= 100 && !strings.ContainsFunc(id, func(r rune) bool { return r < 0x20 || r == 0x7f })
}

// Redeem records that the friend used the channel's coupon of that key, once per
// redemptionKey: a retried staff click or a redelivered postback with the same key
// returns the first redemption and counts nothing. by is "staff:<id>" or "postback".
// It refuses, with ErrNotIssued, ErrNotAvailable or ErrLimitReached, a friend who was
// never issued the coupon, a coupon disabled or outside its validity period at now, and
// a friend who has redeemed it PerFriendLimit times. q is as for Issue.
func (s *Service) Redeem(ctx context.Context, q store.Querier, channelID string, friendID int64, key, redemptionKey, by string, now time.Time) (Redemption, error) {
	if redemptionKey == "" || len(redemptionKey) > maxRedemptionKeyLen {
		return Redemption{}, fmt.Errorf("coupon %s: %w: a redemption key must be 1 to %d bytes", key, ErrInvalid, maxRedemptionKeyLen)
	}
	if !validBy(by) {
		return Redemption{}, fmt.Errorf("coupon %s: %w: who redeems must be \"postback\" or \"staff:<id>\"", key, ErrInvalid)
	}
	var out Redemption
	err := s.write(ctx, q, func(q store.Querier) error {
		var err error
		out, err = redeem(ctx, q, channelID, friendID, key, redemptionKey, by, now)
		return err
	})
	if err != nil {
		return Redemption{}, err
	}
	return out, nil
}

func redeem(ctx context.Context, q store.Querier, channelID string, friendID int64, key, rkey, by string, now time.Time) (Redemption, error) {
	c, err := get(ctx, q, channelID, key)
	if err != nil {
		return Redemption{}, err
	}
	// A repeat is answered before any check: the coupon may have ended since.
	if r, found, err := redemptionByKey(ctx, q, c, friendID, rkey); err != nil || found {
		return r, err
	}
	if !c.Available(now) {
		return Redemption{}, fmt.Errorf("coupon %s: %w", key, ErrNotAvailable)
	}
	var issueID int64
	var redeemed int
	err = q.QueryRowContext(ctx, "SELECT id, redeemed FROM coupon_issues WHERE coupon_id = ? AND friend_id = ?", c.ID, friendID).
		Scan(&issueID, &redeemed)
	if isNoRows(err) {
		return Redemption{}, fmt.Errorf("coupon %s: %w", key, ErrNotIssued)
	}
	if err != nil {
		return Redemption{}, fmt.Errorf("coupon: redeem %s: %w", key, err)
	}
	if redeemed >= c.PerFriendLimit {
		return Redemption{}, fmt.Errorf("coupon %s: %w", key, ErrLimitReached)
	}
	// The redemption row goes first: a concurrent redemption with the same key (another
	// instance, the same postback) waits on the unique key and then finds this one,
	// rather than being refused by the limit this one used up.
	var id int64
	err = q.QueryRowContext(ctx, `INSERT INTO coupon_redemptions (coupon_id, friend_id, redemption_key, redeemed_by, redeemed_at)
		VALUES (?, ?, ?, ?, ?) ON CONFLICT (coupon_id, redemption_key) DO NOTHING RETURNING id`,
		c.ID, friendID, rkey, by, store.Millis(now)).Scan(&id)
	if isNoRows(err) {
		if r, found, err := redemptionByKey(ctx, q, c, friendID, rkey); err != nil || found {
			return r, err
		}
		return Redemption{}, fmt.Errorf("coupon: redeem %s: the redemption row vanished", key)
	}
	if err != nil {
		return Redemption{}, fmt.Errorf("coupon: redeem %s: %w", key, err)
	}
	// The count and the limit are compared in the statement that raises the count, so
	// that two redemptions at once cannot both take the last use.
	var number int
	err = q.QueryRowContext(ctx, "UPDATE coupon_issues SET redeemed = redeemed + 1 WHERE id = ? AND redeemed < ? RETURNING redeemed",
		issueID, c.PerFriendLimit).Scan(&number)
	if isNoRows(err) {
		if _, err := q.ExecContext(ctx, "DELETE FROM coupon_redemptions WHERE id = ?", id); err != nil {
			return Redemption{}, fmt.Errorf("coupon: redeem %s: %w", key, err)
		}
		return Redemption{}, fmt.Errorf("coupon %s: %w", key, ErrLimitReached)
	}
	if err != nil {
		return Redemption{}, fmt.Errorf("coupon: redeem %s: %w", key, err)
	}
	if _, err := q.ExecContext(ctx, "UPDATE coupon_redemptions SET use_number = ? WHERE id = ?", number, id); err != nil {
		return Redemption{}, fmt.Errorf("coupon: redeem %s: %w", key, err)
	}
	return Redemption{ID: id, CouponID: c.ID, Key: c.Key, FriendID: friendID, RedemptionKey: rkey, By: by,
		Number: number, RedeemedAt: store.Time(store.Millis(now))}, nil
}

const redemptionColumns = "id, friend_id, redemption_key, redeemed_by, use_number, redeemed_at"

func scanRedemption(row interface{ Scan(...any) error }, c Coupon) (Redemption, error) {
	r := Redemption{CouponID: c.ID, Key: c.Key}
	var at int64
	if err := row.Scan(&r.ID, &r.FriendID, &r.RedemptionKey, &r.By, &r.Number, &at); err != nil {
		return Redemption{}, err
	}
	r.RedeemedAt = store.Time(at)
	return r, nil
}

// redemptionByKey finds the redemption of c recorded under rkey; one recorded for
// another friend is a conflict, not a repeat.
func redemptionByKey(ctx context.Context, q store.Querier, c Coupon, friendID int64, rkey string) (Redemption, bool, error) {
	r, err := scanRedemption(q.QueryRowContext(ctx, "SELECT "+redemptionColumns+" FROM coupon_redemptions WHERE coupon_id = ? AND redemption_key = ?",
		c.ID, rkey), c)
	if isNoRows(err) {
		return Redemption{}, false, nil
	}
	if err != nil {
		return Redemption{}, false, fmt.Errorf("coupon: redeem %s: %w", c.Key, err)
	}
	if r.FriendID != friendID {
		return Redemption{}, false, fmt.Errorf("coupon %s: %w", c.Key, ErrKeyConflict)
	}
	return r, true, nil
}

// Redemptions lists the redemptions of the channel's coupon of that key, oldest first.
func (s *Service) Redemptions(ctx context.Context, channelID, key string) ([]Redemption, error) {
	c, err := get(ctx, s.db, channelID, key)
	if err != nil {
		return nil, err
	}
	rows, err := s.db.QueryContext(ctx, "SELECT "+redemptionColumns+" FROM coupon_redemptions WHERE coupon_id = ? ORDER BY redeemed_at, id", c.ID)
	if err != nil {
		return nil, fmt.Errorf("coupon: redemptions of %s: %w", key, err)
	}
	defer rows.Close()
	var out []Redemption
	for rows.Next() {
		r, err := scanRedemption(rows, c)
		if err != nil {
			return nil, fmt.Errorf("coupon: redemptions of %s: %w", key, err)
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// Stats counts what became of a coupon.
type Stats struct {
	Issued          int // friends issued the coupon
	Redemptions     int // redemptions in all
	RedeemedFriends int // friends who redeemed it at least once
	CodesLeft       int // imported codes not issued yet (0 for other policies)
}

// Stats returns the counts of the channel's coupon of that key.
func (s *Service) Stats(ctx context.Context, channelID, key string) (Stats, error) {
	c, err := get(ctx, s.db, channelID, key)
	if err != nil {
		return Stats{}, err
	}
	var st Stats
	err = s.db.QueryRowContext(ctx, `SELECT
			(SELECT COUNT(*) FROM coupon_issues WHERE coupon_id = ?),
			(SELECT COUNT(*) FROM coupon_redemptions WHERE coupon_id = ?),
			(SELECT COUNT(*) FROM coupon_issues WHERE coupon_id = ? AND redeemed > 0),
			(SELECT COUNT(*) FROM coupon_codes WHERE coupon_id = ? AND assigned_at IS NULL)`,
		c.ID, c.ID, c.ID, c.ID).Scan(&st.Issued, &st.Redemptions, &st.RedeemedFriends, &st.CodesLeft)
	if err != nil {
		return Stats{}, fmt.Errorf("coupon: stats of %s: %w", key, err)
	}
	return st, nil
}
