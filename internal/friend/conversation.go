package friend

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/linestep/linestep/internal/store"
)

// Direction tells who wrote a message.
type Direction string

const (
	Inbound  Direction = "in"  // from the friend
	Outbound Direction = "out" // from the account
)

// Message is one entry of a conversation log. Text and PostbackData come from the friend:
// hostile until escaped.
type Message struct {
	ID               int64
	FriendID         int64
	Direction        Direction
	Kind             string // text, sticker, image, video, audio, file, location, postback, other
	Text             string
	StickerPackageID string
	StickerID        string
	LineMessageID    string // fetch image/video/audio/file content with it
	PostbackData     string
	PostbackParams   string // JSON
	OccurredAt       time.Time
}

// Conversation returns a friend's latest messages, oldest first.
func (s *Service) Conversation(ctx context.Context, channelID string, friendID int64, limit int) ([]Message, error) {
	if limit <= 0 || limit > 500 {
		limit = 100
	}
	rows, err := s.db.QueryContext(ctx, `SELECT id, friend_id, direction, kind, text, sticker_package_id, sticker_id,
			line_message_id, postback_data, postback_params, occurred_at
		FROM messages WHERE channel_id = ? AND friend_id = ? ORDER BY occurred_at DESC, id DESC LIMIT ?`, channelID, friendID, limit)
	out, err := scanMessages(rows, err)
	if err != nil {
		return nil, err
	}
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out, nil
}

// WholeConversation returns all of a friend's messages that are kept, oldest first, for
// the friend's own copy of their data (a disclosure). The conversation's retention
// bounds it.
func (s *Service) WholeConversation(ctx context.Context, q store.Querier, friendID int64) ([]Message, error) {
	rows, err := q.QueryContext(ctx, `SELECT id, friend_id, direction, kind, text, sticker_package_id, sticker_id,
			line_message_id, postback_data, postback_params, occurred_at
		FROM messages WHERE friend_id = ? ORDER BY occurred_at, id`, friendID)
	return scanMessages(rows, err)
}

// scanMessages reads the rows of a messages query (its columns as Conversation selects
// them), and closes them.
func scanMessages(rows *sql.Rows, err error) ([]Message, error) {
	if err != nil {
		return nil, fmt.Errorf("friend: conversation: %w", err)
	}
	defer rows.Close()
	var out []Message
	for rows.Next() {
		var m Message
		var dir string
		var at int64
		if err := rows.Scan(&m.ID, &m.FriendID, &dir, &m.Kind, &m.Text, &m.StickerPackageID, &m.StickerID,
			&m.LineMessageID, &m.PostbackData, &m.PostbackParams, &at); err != nil {
			return nil, fmt.Errorf("friend: conversation: %w", err)
		}
		m.Direction, m.OccurredAt = Direction(dir), store.Time(at)
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("friend: conversation: %w", err)
	}
	return out, nil
}
