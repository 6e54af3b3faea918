package friend

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/linestep/linestep/internal/store"
)

// ErrInvalid wraps validation failures of tags and fields.
var ErrInvalid = errors.New("invalid")

// Tag labels friends ("member", "area:osaka"); segments and scenarios select by tags.
type Tag struct {
	ID        int64
	ChannelID string
	Name      string
	CreatedAt time.Time
	Friends   int // how many friends carry it (filled by Tags)
}

func checkName(what, name string, max int) (string, error) {
	name = strings.TrimSpace(name)
	if name == "" || utf8.RuneCountInString(name) > max || strings.ContainsAny(name, "\x00\r\n\t") {
		return "", fmt.Errorf("%w: a %s name must be 1 to %d characters on one line", ErrInvalid, what, max)
	}
	return name, nil
}

// CreateTag creates a tag, or returns the existing one of that name.
func (s *Service) CreateTag(ctx context.Context, q store.Querier, channelID, name string) (Tag, error) {
	name, err := checkName("tag", name, 100)
	if err != nil {
		return Tag{}, err
	}
	now := s.clock.Now()
	_, err = q.ExecContext(ctx, "INSERT INTO tags (channel_id, name, created_at) VALUES (?, ?, ?) ON CONFLICT (channel_id, name) DO NOTHING",
		channelID, name, store.Millis(now))
	if err != nil {
		return Tag{}, fmt.Errorf("friend: create tag: %w", err)
	}
	t := Tag{ChannelID: channelID, Name: name}
	var created int64
	if err := q.QueryRowContext(ctx, "SELECT id, created_at FROM tags WHERE channel_id = ? AND name = ?", channelID, name).Scan(&t.ID, &created); err != nil {
		return Tag{}, fmt.Errorf("friend: create tag: %w", err)
	}
	t.CreatedAt = store.Time(created)
	return t, nil
}

// Tags lists a channel's tags with how many friends carry each.
func (s *Service) Tags(ctx context.Context, channelID string) ([]Tag, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT t.id, t.name, t.created_at, COUNT(ft.friend_id)
		FROM tags t LEFT JOIN friend_tags ft ON ft.tag_id = t.id
		WHERE t.channel_id = ? GROUP BY t.id, t.name, t.created_at ORDER BY t.name`, channelID)
	if err != nil {
		return nil, fmt.Errorf("friend: tags: %w", err)
	}
	defer rows.Close()
	var out []Tag
	for rows.Next() {
		t := Tag{ChannelID: channelID}
		var created int64
		if err := rows.Scan(&t.ID, &t.Name, &created, &t.Friends); err != nil {
			return nil, fmt.Errorf("friend: tags: %w", err)
		}
		t.CreatedAt = store.Time(created)
		out = append(out, t)
	}
	return out, rows.Err()
}

// TagByName finds a tag of a channel.
func (s *Service) TagByName(ctx context.Context, q store.Querier, channelID, name string) (Tag, error) {
	t := Tag{ChannelID: channelID, Name: name}
	var created int64
	err := q.QueryRowContext(ctx, "SELECT id, created_at FROM tags WHERE channel_id = ? AND name = ?", channelID, name).Scan(&t.ID, &created)
	if errors.Is(err, sql.ErrNoRows) {
		return Tag{}, fmt.Errorf("tag %q: %w", name, store.ErrNotFound)
	}
	if err != nil {
		return Tag{}, fmt.Errorf("friend: tag by name: %w", err)
	}
	t.CreatedAt = store.Time(created)
	return t, nil
}

// DeleteTag removes a tag from the channel and from every friend.
func (s *Service) DeleteTag(ctx context.Context, q store.Querier, channelID string, tagID int64) error {
	res, err := q.ExecContext(ctx, "DELETE FROM tags WHERE channel_id = ? AND id = ?", channelID, tagID)
	if err != nil {
		return fmt.Errorf("friend: delete tag: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("tag %d: %w", tagID, store.ErrNotFound)
	}
	return nil
}

// AddTag puts a tag on a friend. It reports whether the friend did not carry it yet
// (scenarios start on a tag being added, not on it being added twice).
func (s *Service) AddTag(ctx context.Context, q store.Querier, friendID, tagID int64) (bool, error) {
	res, err := q.ExecContext(ctx, `INSERT INTO friend_tags (friend_id, tag_id, added_at)
		SELECT f.id, t.id, ? FROM friends f JOIN tags t ON t.channel_id = f.channel_id WHERE f.id = ? AND t.id = ?
		ON CONFLICT (friend_id, tag_id) DO NOTHING`, store.Millis(s.clock.Now()), friendID, tagID)
	if err != nil {
		return false, fmt.Errorf("friend: add tag: %w", err)
	}
	n, _ := res.RowsAffected()
	if n == 0 {
		return false, nil
	}
	for _, f := range s.tagAdded {
		if err := f(ctx, q, friendID, tagID); err != nil {
			return false, err
		}
	}
	return true, nil
}

// RemoveTag takes a tag off a friend and reports whether they carried it.
func (s *Service) RemoveTag(ctx context.Context, q store.Querier, friendID, tagID int64) (bool, error) {
	res, err := q.ExecContext(ctx, "DELETE FROM friend_tags WHERE friend_id = ? AND tag_id = ?", friendID, tagID)
	if err != nil {
		return false, fmt.Errorf("friend: remove tag: %w", err)
	}
	n, _ := res.RowsAffected()
	return n > 0, nil
}

// FriendTags lists the tags a friend carries.
func (s *Service) FriendTags(ctx context.Context, q store.Querier, friendID int64) ([]Tag, error) {
	rows, err := q.QueryContext(ctx, `SELECT t.id, t.channel_id, t.name, t.created_at FROM tags t
		JOIN friend_tags ft ON ft.tag_id = t.id WHERE ft.friend_id = ? ORDER BY t.name`, friendID)
	if err != nil {
		return nil, fmt.Errorf("friend: friend tags: %w", err)
	}
	defer rows.Close()
	var out []Tag
	for rows.Next() {
		var t Tag
		var created int64
		if err := rows.Scan(&t.ID, &t.ChannelID, &t.Name, &created); err != nil {
			return nil, fmt.Errorf("friend: friend tags: %w", err)
		}
		t.CreatedAt = store.Time(created)
		out = append(out, t)
	}
	return out, rows.Err()
}
