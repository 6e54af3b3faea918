// Package friend owns what linestep knows of each LINE friend: follow state, profile,
// tags, custom fields and the conversation log. It applies follow, unfollow, message and
// postback events, and fetches profiles from LINE in the background.
package friend

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	"github.com/linestep/linestep/internal/audit"
	"github.com/linestep/linestep/internal/clock"
	"github.com/linestep/linestep/internal/line"
	"github.com/linestep/linestep/internal/store"
)

// Status is a friend's relation to the account.
type Status string

const (
	Following Status = "following"
	Blocked   Status = "blocked"
	// Unknown: we have seen the user (a message) but neither a follow nor a profile yet.
	Unknown Status = "unknown"
)

// Friend is one LINE user of one channel. DisplayName and PictureURL are personal data
// and written by the user: escape them wherever they are shown, keep them out of logs.
type Friend struct {
	ID              int64
	ChannelID       string
	LineUserID      string
	Status          Status
	DisplayName     string
	PictureURL      string
	Language        string
	FirstFollowedAt time.Time
	FollowedAt      time.Time
	BlockedAt       time.Time
	Unblocked       bool // the latest follow came after a block
	FollowCount     int
	ProfileFetched  time.Time
	LastMessageAt   time.Time
	CreatedAt       time.Time
}

// LogValue keeps personal data out of logs.
func (f Friend) LogValue() slog.Value {
	return slog.GroupValue(slog.Int64("id", f.ID), slog.String("channel", f.ChannelID))
}

// ProfileSource fetches a profile from LINE for a channel; the server implements it with
// the channel's API client.
type ProfileSource interface {
	Profile(ctx context.Context, channelID, userID string) (line.Profile, error)
}

// Service reads and writes friends.
type Service struct {
	db       *store.DB
	clock    clock.Clock
	profiles ProfileSource
	logger   *slog.Logger
	wake     chan struct{}

	// Told of changes inside the transaction that makes them (scenarios start on them).
	tagAdded      []TagAddedFunc
	fieldSet      []FieldSetFunc
	profileStored []func()
	erased        []EraseFunc

	audit           audit.AppendFunc // where the retention job records its deletions
	messagesExpired ExpiryHook       // who is told of deleted messages (the inbox)

	searchKey  []byte      // of the exact-search hashes (exactkey.go)
	exactReady atomic.Bool // every value has its hash: exact searches use the index
}

// TagAddedFunc learns, inside the writing transaction, that a friend got a tag.
type TagAddedFunc func(ctx context.Context, q store.Querier, friendID, tagID int64) error

// FieldSetFunc learns, inside the writing transaction, that a friend's field changed.
type FieldSetFunc func(ctx context.Context, q store.Querier, friendID int64, f Field, value string) error

// OnTagAdded registers f; register before serving.
func (s *Service) OnTagAdded(f TagAddedFunc) { s.tagAdded = append(s.tagAdded, f) }

// OnProfileStored registers f, called after a fetched profile is stored (a greeting
// that says the friend's name waits for it).
func (s *Service) OnProfileStored(f func()) { s.profileStored = append(s.profileStored, f) }

// OnFieldSet registers f; register before serving.
func (s *Service) OnFieldSet(f FieldSetFunc) { s.fieldSet = append(s.fieldSet, f) }

// NewService returns a friend service. profiles may be nil when no profile fetching runs
// (commands that only read). searchKey is keyring.Derive(SearchKeyPurpose): every
// instance sharing a database must be given the same.
func NewService(db *store.DB, clk clock.Clock, profiles ProfileSource, logger *slog.Logger, searchKey []byte) *Service {
	return &Service{db: db, clock: clk, profiles: profiles, logger: logger, wake: make(chan struct{}, 1), searchKey: searchKey}
}

const friendColumns = `id, channel_id, line_user_id, status, display_name, picture_url, language,
	first_followed_at, followed_at, blocked_at, unblocked, follow_count, profile_fetched_at, last_message_at, created_at`

func scanFriend(row interface{ Scan(...any) error }) (Friend, error) {
	var f Friend
	var status string
	var first, followed, blocked, fetched, lastMsg sql.NullInt64
	var created int64
	err := row.Scan(&f.ID, &f.ChannelID, &f.LineUserID, &status, &f.DisplayName, &f.PictureURL, &f.Language,
		&first, &followed, &blocked, &f.Unblocked, &f.FollowCount, &fetched, &lastMsg, &created)
	if err != nil {
		return Friend{}, err
	}
	f.Status = Status(status)
	f.FirstFollowedAt, f.FollowedAt, f.BlockedAt = store.NullTime(first), store.NullTime(followed), store.NullTime(blocked)
	f.ProfileFetched, f.LastMessageAt = store.NullTime(fetched), store.NullTime(lastMsg)
	f.CreatedAt = store.Time(created)
	return f, nil
}

// Get returns one friend of a channel.
func (s *Service) Get(ctx context.Context, channelID string, id int64) (Friend, error) {
	f, err := scanFriend(s.db.QueryRowContext(ctx, "SELECT "+friendColumns+" FROM friends WHERE channel_id = ? AND id = ?", channelID, id))
	if errors.Is(err, sql.ErrNoRows) {
		return Friend{}, fmt.Errorf("friend %d: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return Friend{}, fmt.Errorf("friend: get: %w", err)
	}
	return f, nil
}

// ByLineUserID returns the friend with a LINE user ID in a channel.
func (s *Service) ByLineUserID(ctx context.Context, channelID, userID string) (Friend, error) {
	f, err := scanFriend(s.db.QueryRowContext(ctx, "SELECT "+friendColumns+" FROM friends WHERE channel_id = ? AND line_user_id = ?", channelID, userID))
	if errors.Is(err, sql.ErrNoRows) {
		return Friend{}, fmt.Errorf("friend: %w", store.ErrNotFound)
	}
	if err != nil {
		return Friend{}, fmt.Errorf("friend: get by user ID: %w", err)
	}
	return f, nil
}

// ListFilter narrows List.
type ListFilter struct {
	Status Status // empty: all
	TagID  int64  // 0: any
	After  int64  // keyset paging: friends with a smaller ID than this (0: from the newest)
	Limit  int    // default 50, at most 500
}

// List returns a channel's friends, newest first.
func (s *Service) List(ctx context.Context, channelID string, f ListFilter) ([]Friend, error) {
	q := "SELECT " + friendColumns + " FROM friends WHERE channel_id = ?"
	args := []any{channelID}
	if f.Status != "" {
		q += " AND status = ?"
		args = append(args, string(f.Status))
	}
	if f.TagID != 0 {
		q += " AND id IN (SELECT friend_id FROM friend_tags WHERE tag_id = ?)"
		args = append(args, f.TagID)
	}
	if f.After != 0 {
		q += " AND id < ?"
		args = append(args, f.After)
	}
	limit := f.Limit
	if limit <= 0 {
		limit = 50
	}
	q += " ORDER BY id DESC LIMIT ?"
	args = append(args, min(limit, 500))
	rows, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("friend: list: %w", err)
	}
	defer rows.Close()
	var out []Friend
	for rows.Next() {
		fr, err := scanFriend(rows)
		if err != nil {
			return nil, fmt.Errorf("friend: list: %w", err)
		}
		out = append(out, fr)
	}
	return out, rows.Err()
}

// Counts reports how many friends of a channel are in each status.
func (s *Service) Counts(ctx context.Context, channelID string) (map[Status]int, error) {
	rows, err := s.db.QueryContext(ctx, "SELECT status, COUNT(*) FROM friends WHERE channel_id = ? GROUP BY status", channelID)
	if err != nil {
		return nil, fmt.Errorf("friend: counts: %w", err)
	}
	defer rows.Close()
	out := map[Status]int{}
	for rows.Next() {
		var st string
		var n int
		if err := rows.Scan(&st, &n); err != nil {
			return nil, fmt.Errorf("friend: counts: %w", err)
		}
		out[Status(st)] = n
	}
	return out, rows.Err()
}

// ensure returns the ID of the friend row for a user, creating it (status unknown, a
// profile fetch owed) if this is the first we hear of them, and locks it for the rest of
// the transaction on PostgreSQL so that concurrent events for one user apply in turn.
func ensure(ctx context.Context, tx *store.Tx, channelID, userID string, now time.Time) (row friendRow, err error) {
	nowMs := store.Millis(now)
	_, err = tx.ExecContext(ctx, `INSERT INTO friends (channel_id, line_user_id, status, status_at, profile_due_at, created_at, updated_at)
		VALUES (?, ?, 'unknown', 0, ?, ?, ?) ON CONFLICT (channel_id, line_user_id) DO NOTHING`,
		channelID, userID, nowMs, nowMs, nowMs)
	if err != nil {
		return row, fmt.Errorf("friend: create: %w", err)
	}
	q := `SELECT id, status, status_at, first_followed_at, followed_at FROM friends WHERE channel_id = ? AND line_user_id = ?`
	if tx.Dialect() == store.Postgres {
		q += " FOR UPDATE"
	}
	var status string
	err = tx.QueryRowContext(ctx, q, channelID, userID).Scan(&row.id, &status, &row.statusAt, &row.firstFollowed, &row.followed)
	if err != nil {
		return row, fmt.Errorf("friend: lock: %w", err)
	}
	row.status = Status(status)
	return row, nil
}

type friendRow struct {
	id                      int64
	status                  Status
	statusAt                int64
	firstFollowed, followed sql.NullInt64
}

func validUserID(id string) bool {
	return len(id) == 33 && id[0] == 'U' && strings.Trim(id[1:], "0123456789abcdef") == ""
}

// DB is the database the service reads, for callers passing it as a store.Querier.
func (s *Service) DB() *store.DB { return s.db }
