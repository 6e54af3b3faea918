package inbox

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/linestep/linestep/internal/delivery"
	"github.com/linestep/linestep/internal/friend"
	"github.com/linestep/linestep/internal/store"
)

// MaxTextLen is the longest reply, counted as LINE counts a text message: in UTF-16
// code units, so an emoji outside the basic plane counts 2.
const MaxTextLen = 5000

// replyMargin: a token closer than this to its expiry is left unused, since the
// dispatcher would push anyway (delivery.Config.ReplyMargin has the same default).
const replyMargin = 5 * time.Second

// CheckText returns the text as it will be sent, or an error wrapping ErrInvalid with
// message.Problems. It must be valid UTF-8, not blank (spaces, full-width spaces and
// line breaks alone are blank), at most MaxTextLen long, and free of control characters
// other than line breaks and tabs. Line breaks are sent as "\n" (a browser sends
// "\r\n"); nothing else is changed.
func CheckText(text string) (string, error) {
	bad := func(ja, en string) (string, error) { return "", refuse(ErrInvalid, "text", ja, en) }
	if !utf8.ValidString(text) {
		return bad("文字コードが正しくありません（UTF-8 で送ってください）", "the text is not valid UTF-8")
	}
	text = strings.ReplaceAll(text, "\r\n", "\n")
	text = strings.ReplaceAll(text, "\r", "\n")
	if strings.TrimSpace(text) == "" {
		return bad("メッセージを入力してください", "write a message; it is empty")
	}
	n := 0
	for _, r := range text {
		if (r < 0x20 && r != '\n' && r != '\t') || (r >= 0x7f && r < 0xa0) {
			return bad("メッセージに使えない制御文字が含まれています", "the text contains a control character")
		}
		n++
		if r >= 0x10000 {
			n++
		}
	}
	if n > MaxTextLen {
		return bad(fmt.Sprintf("メッセージは%d文字以内にしてください（絵文字などは2文字と数えます。今は%d文字）", MaxTextLen, n),
			fmt.Sprintf("the text must be at most %d characters, as LINE counts them (an emoji may count 2); it has %d", MaxTextLen, n))
	}
	return text, nil
}

// Sent tells what Reply queued.
type Sent struct {
	MessageID  int64 // the staff message in the conversation log
	DeliveryID int64 // its row in the delivery outbox
	// ByReply: it was queued with a fresh reply token (free of quota). The dispatcher
	// still pushes if the token is spent by the time it goes out; the delivery record's
	// method says what happened.
	ByReply bool
}

// textMessage is a LINE text message. Encoding the staff text as a JSON string value
// is all that happens to it: it is not a template, and nothing in it can add
// properties or messages.
type textMessage struct {
	Type string `json:"type"`
	Text string `json:"text"`
}

// Reply sends text from a staff member (staffID; 0 when it comes through an API token)
// to a friend: it writes the message into the conversation log and queues its delivery,
// in one transaction. The caller checks that the staff member may reply. The text is
// refused (ErrInvalid) as CheckText says, and a friend who blocked the account cannot
// be replied to (ErrBlocked); in both cases nothing is written.
func (s *Service) Reply(ctx context.Context, channelID string, friendID, staffID int64, text string) (Sent, error) {
	text, err := CheckText(text)
	if err != nil {
		return Sent{}, err
	}
	raw, err := json.Marshal(textMessage{Type: "text", Text: text})
	if err != nil {
		return Sent{}, fmt.Errorf("inbox: reply: %w", err)
	}
	var sent Sent
	err = s.db.WriteTx(ctx, func(tx *store.Tx) error {
		sent = Sent{}
		now := s.clock.Now()
		userID, err := lockFriend(ctx, tx, channelID, friendID)
		if err != nil {
			return err
		}
		token, expires, err := freshToken(ctx, tx, friendID, now)
		if err != nil {
			return err
		}
		staff := sql.NullInt64{Int64: staffID, Valid: staffID != 0}
		err = tx.QueryRowContext(ctx, `INSERT INTO messages (channel_id, friend_id, direction, kind, text, staff_id, occurred_at, created_at)
			VALUES (?, ?, 'out', 'text', ?, ?, ?, ?) RETURNING id`,
			channelID, friendID, text, staff, store.Millis(now), store.Millis(now)).Scan(&sent.MessageID)
		if err != nil {
			return fmt.Errorf("inbox: log reply: %w", err)
		}
		it := delivery.Item{ChannelID: channelID, FriendID: friendID, LineUserID: userID,
			Source: Source, SourceID: sent.MessageID, Messages: []json.RawMessage{raw},
			ReplyToken: token, ReplyExpiresAt: expires}
		if staffID != 0 {
			it.SourceRef = "staff:" + strconv.FormatInt(staffID, 10)
		}
		if sent.DeliveryID, err = s.deliveries.Enqueue(ctx, tx, it); err != nil {
			return fmt.Errorf("inbox: reply: %w", err)
		}
		sent.ByReply = token != ""
		if _, err := tx.ExecContext(ctx, `UPDATE messages SET delivery_id = ? WHERE id = ?`, sent.DeliveryID, sent.MessageID); err != nil {
			return fmt.Errorf("inbox: log reply: %w", err)
		}
		return s.outbound(ctx, tx, channelID, friendID, text, store.Millis(now))
	})
	if err != nil {
		return Sent{}, err
	}
	return sent, nil
}

// lockFriend returns the LINE user ID of a friend who can be written to, locking the
// friend row on PostgreSQL (as the friend service does while applying their events) so
// that the conversation changes of one friend apply in turn.
func lockFriend(ctx context.Context, tx *store.Tx, channelID string, friendID int64) (string, error) {
	q := `SELECT line_user_id, status FROM friends WHERE channel_id = ? AND id = ?`
	if tx.Dialect() == store.Postgres {
		q += " FOR UPDATE"
	}
	var userID, status string
	err := tx.QueryRowContext(ctx, q, channelID, friendID).Scan(&userID, &status)
	if errors.Is(err, sql.ErrNoRows) {
		return "", fmt.Errorf("inbox: friend %d: %w", friendID, store.ErrNotFound)
	}
	if err != nil {
		return "", fmt.Errorf("inbox: look up friend: %w", err)
	}
	if friend.Status(status) == friend.Blocked {
		return "", refuse(ErrBlocked, "friend", "この友だちはアカウントをブロックしているため、メッセージを送れません",
			"this friend has blocked the account, so no message can be sent to them")
	}
	return userID, nil
}

// freshToken returns the newest reply token of the friend's inbound messages that is
// fresh and unclaimed: no delivery carries it (an auto-reply, a scenario step, an
// earlier staff reply) and no running scenario holds it for its next step. A reply
// token is good for one reply, however many messages it carries.
func freshToken(ctx context.Context, tx *store.Tx, friendID int64, now time.Time) (string, time.Time, error) {
	var token string
	var expires int64
	err := tx.QueryRowContext(ctx, `SELECT m.reply_token, m.reply_expires_at FROM messages m
		WHERE m.friend_id = ? AND m.reply_token <> '' AND m.reply_expires_at > ? AND m.direction = 'in'
		AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.friend_id = m.friend_id AND d.reply_token = m.reply_token)
		AND NOT EXISTS (SELECT 1 FROM enrollments e WHERE e.friend_id = m.friend_id AND e.reply_token = m.reply_token AND e.state = 'active')
		ORDER BY m.reply_expires_at DESC, m.id DESC LIMIT 1`,
		friendID, store.Millis(now.Add(replyMargin))).Scan(&token, &expires)
	if errors.Is(err, sql.ErrNoRows) {
		return "", time.Time{}, nil
	}
	if err != nil {
		return "", time.Time{}, fmt.Errorf("inbox: find reply token: %w", err)
	}
	return token, store.Time(expires), nil
}

// outbound records a staff message in the friend's conversation: an open conversation
// becomes pending; pending and resolved stay.
func (s *Service) outbound(ctx context.Context, tx *store.Tx, channelID string, friendID int64, text string, now int64) error {
	if err := ensure(ctx, tx, channelID, friendID, Pending, now); err != nil {
		return err
	}
	_, err := tx.ExecContext(ctx, `UPDATE conversations SET
			status_at = CASE WHEN status = 'open' THEN ? ELSE status_at END,
			status = CASE WHEN status = 'open' THEN 'pending' ELSE status END,
			preview_direction = CASE WHEN last_activity_at <= ? THEN 'out' ELSE preview_direction END,
			preview_kind = CASE WHEN last_activity_at <= ? THEN 'text' ELSE preview_kind END,
			preview_text = CASE WHEN last_activity_at <= ? THEN ? ELSE preview_text END,
			last_activity_at = CASE WHEN last_activity_at < ? THEN ? ELSE last_activity_at END,
			updated_at = ?
		WHERE friend_id = ?`,
		now, now, now, now, preview(text), now, now, now, friendID)
	if err != nil {
		return fmt.Errorf("inbox: update conversation: %w", err)
	}
	return nil
}

// Message is one entry of a conversation log as the inbox shows it: the friend's
// message, or an outbound one with who wrote it and how its delivery went. Text is
// personal data, hostile until escaped.
type Message struct {
	friend.Message
	StaffID        int64  // the staff member who wrote an outbound message; 0: none (inbound, or the API)
	DeliveryID     int64  // the outbox row of a staff reply
	DeliveryState  string // pending | sending | sent | failed | dropped (delivery states)
	DeliveryMethod string // reply | push, once sent
	DeliveryError  string
}

// Messages returns a friend's conversation log, oldest first: the newest limit entries
// (default 100, at most 500), or with beforeID the ones before that message.
func (s *Service) Messages(ctx context.Context, channelID string, friendID, beforeID int64, limit int) ([]Message, error) {
	if limit <= 0 || limit > 500 {
		limit = 100
	}
	where := "m.channel_id = ? AND m.friend_id = ?"
	args := []any{channelID, friendID}
	if beforeID > 0 {
		where += ` AND EXISTS (SELECT 1 FROM messages b WHERE b.id = ? AND b.friend_id = m.friend_id
			AND (m.occurred_at < b.occurred_at OR (m.occurred_at = b.occurred_at AND m.id < b.id)))`
		args = append(args, beforeID)
	}
	args = append(args, limit)
	rows, err := s.db.QueryContext(ctx, `SELECT m.id, m.friend_id, m.direction, m.kind, m.text, m.sticker_package_id, m.sticker_id,
			m.line_message_id, m.postback_data, m.postback_params, m.occurred_at, COALESCE(m.staff_id, 0),
			COALESCE(d.id, 0), COALESCE(`+delivery.StateSQL("d", "b")+`, ''), COALESCE(`+delivery.MethodSQL("d", "b")+`, ''),
			COALESCE(d.last_error, '')
		FROM messages m LEFT JOIN deliveries d ON d.id = m.delivery_id LEFT JOIN batches b ON b.id = d.batch_id
		WHERE `+where+` ORDER BY m.occurred_at DESC, m.id DESC LIMIT ?`, args...)
	if err != nil {
		return nil, fmt.Errorf("inbox: messages: %w", err)
	}
	defer rows.Close()
	var out []Message
	for rows.Next() {
		var m Message
		var dir string
		var at int64
		if err := rows.Scan(&m.ID, &m.FriendID, &dir, &m.Kind, &m.Text, &m.StickerPackageID, &m.StickerID,
			&m.LineMessageID, &m.PostbackData, &m.PostbackParams, &at, &m.StaffID,
			&m.DeliveryID, &m.DeliveryState, &m.DeliveryMethod, &m.DeliveryError); err != nil {
			return nil, fmt.Errorf("inbox: messages: %w", err)
		}
		m.Direction, m.OccurredAt = friend.Direction(dir), store.Time(at)
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("inbox: messages: %w", err)
	}
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out, nil
}
