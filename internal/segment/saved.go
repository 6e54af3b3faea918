package segment

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/linestep/linestep/internal/store"
)

// Saved is a filter kept under a key of a channel, for broadcasts, coupons and setup
// files to name. It stores the filter as written: names are resolved again at each use,
// so a tag deleted later is noticed then.
type Saved struct {
	ID        int64
	ChannelID string
	Key       string
	Name      string
	Filter    Filter
	CreatedAt time.Time
	UpdatedAt time.Time
}

var savedKey = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,63}$`)

// ValidKey reports whether s can name a saved segment.
func ValidKey(s string) bool { return savedKey.MatchString(s) }

// SaveSegment creates the channel's segment of s.Key, or replaces its name and filter.
// The filter must resolve against the channel now (its tags, fields and scenarios exist):
// a segment that selects nobody because of a typo is worse than none. Errors about the
// segment wrap ErrInvalid; their Path is "key", "name" or "filter" and the node in it.
func SaveSegment(ctx context.Context, q store.Querier, s Saved) (Saved, error) {
	if !ValidKey(s.Key) {
		return Saved{}, errAt("key", "%q: write at most 64 of a-z, 0-9, _ and -, starting with a letter or digit", s.Key)
	}
	if utf8.RuneCountInString(s.Name) > 100 || strings.ContainsAny(s.Name, "\r\n") {
		return Saved{}, errAt("name", "at most 100 characters on one line")
	}
	if _, err := Resolve(ctx, q, s.ChannelID, s.Filter); err != nil {
		var e *Error
		if errors.As(err, &e) {
			path := "filter"
			if e.Path != "" {
				path += "." + e.Path
			}
			return Saved{}, &Error{Path: path, Msg: e.Msg}
		}
		return Saved{}, err
	}
	raw, err := json.Marshal(s.Filter)
	if err != nil {
		return Saved{}, fmt.Errorf("segment: save %s: %w", s.Key, err)
	}
	// Exec, not a RETURNING query: a query on a store.DB goes to the read-only pool.
	now := store.Millis(time.Now())
	_, err = q.ExecContext(ctx, `INSERT INTO segments (channel_id, key, name, filter, created_at, updated_at)
		VALUES (?, ?, ?, ?, ?, ?)
		ON CONFLICT (channel_id, key) DO UPDATE SET name = excluded.name, filter = excluded.filter, updated_at = excluded.updated_at`,
		s.ChannelID, s.Key, s.Name, string(raw), now, now)
	if err != nil {
		return Saved{}, fmt.Errorf("segment: save %s: %w", s.Key, err)
	}
	return GetSegment(ctx, q, s.ChannelID, s.Key)
}

const savedColumns = "id, channel_id, key, name, filter, created_at, updated_at"

func scanSaved(row interface{ Scan(...any) error }) (Saved, error) {
	var s Saved
	var filter string
	var created, updated int64
	if err := row.Scan(&s.ID, &s.ChannelID, &s.Key, &s.Name, &filter, &created, &updated); err != nil {
		return Saved{}, err
	}
	if err := json.Unmarshal([]byte(filter), &s.Filter); err != nil {
		return Saved{}, fmt.Errorf("segment %s: stored filter: %w", s.Key, err)
	}
	s.CreatedAt, s.UpdatedAt = store.Time(created), store.Time(updated)
	return s, nil
}

// GetSegment returns a channel's saved segment by key, or an error wrapping
// store.ErrNotFound.
func GetSegment(ctx context.Context, q store.Querier, channelID, key string) (Saved, error) {
	s, err := scanSaved(q.QueryRowContext(ctx, "SELECT "+savedColumns+" FROM segments WHERE channel_id = ? AND key = ?", channelID, key))
	if errors.Is(err, sql.ErrNoRows) {
		return Saved{}, fmt.Errorf("segment %q: %w", key, store.ErrNotFound)
	}
	if err != nil {
		return Saved{}, fmt.Errorf("segment: get %s: %w", key, err)
	}
	return s, nil
}

// ListSegments returns a channel's saved segments by key (in byte order, the same on
// both engines).
func ListSegments(ctx context.Context, q store.Querier, channelID string) ([]Saved, error) {
	rows, err := q.QueryContext(ctx, "SELECT "+savedColumns+" FROM segments WHERE channel_id = ?", channelID)
	if err != nil {
		return nil, fmt.Errorf("segment: list: %w", err)
	}
	defer rows.Close()
	var out []Saved
	for rows.Next() {
		s, err := scanSaved(rows)
		if err != nil {
			return nil, fmt.Errorf("segment: list: %w", err)
		}
		out = append(out, s)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("segment: list: %w", err)
	}
	slices.SortFunc(out, func(a, b Saved) int { return strings.Compare(a.Key, b.Key) })
	return out, nil
}

// DeleteSegment removes a channel's saved segment by key, or returns an error wrapping
// store.ErrNotFound.
func DeleteSegment(ctx context.Context, q store.Querier, channelID, key string) error {
	res, err := q.ExecContext(ctx, "DELETE FROM segments WHERE channel_id = ? AND key = ?", channelID, key)
	if err != nil {
		return fmt.Errorf("segment: delete %s: %w", key, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("segment: delete %s: %w", key, err)
	} else if n == 0 {
		return fmt.Errorf("segment %q: %w", key, store.ErrNotFound)
	}
	return nil
}
