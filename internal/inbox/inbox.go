// Package inbox owns the 1:1 chat inbox: one conversation per friend, which staff work
// by status, assignee and unread count, and the staff replies written into the friend's
// conversation log (the messages table, which the friend package fills with what friends
// send).
//
// # What moves a conversation
//
// A conversation is open (対応待ち: the friend is waiting for us), pending (返信待ち: we
// answered and wait for the friend) or resolved (対応済み). Its row is made by the
// friend's first message, or the first staff reply.
//
//   - A message from the friend (text, sticker, image, video, audio, file, location)
//     counts as unread and (re)opens the conversation, whatever its status. It is
//     applied in the transaction that processes the webhook event; a message applied
//     twice (an event redelivered after the event log forgot it) is counted once,
//     because the friend package logs it once and the conversation remembers the newest
//     message it counted.
//   - A postback (a tap on a rich menu or a button) is logged in the conversation but
//     neither opens it nor counts as unread: such taps are answered by scenarios,
//     coupons and auto-replies, and would bury the messages that need a person. Its
//     reply token is kept, like a message's.
//   - A staff reply moves an open conversation to pending: the open tab is then exactly
//     the list of friends waiting for an answer, the to-do list of a small shop. A reply
//     leaves pending and resolved as they are (a follow-up after a case is closed does
//     not reopen it; the friend's answer will). Replying does not mark anything read:
//     the console calls MarkRead when staff see the conversation.
//   - SetStatus and Assign are the staff's own moves; the caller checks permissions.
//
// # Replies
//
// Reply writes the staff text to the conversation log and to the delivery outbox in
// one transaction. It uses the newest reply token of the friend's inbound messages that
// is still fresh and that nothing has claimed (an auto-reply or a scenario step writes
// the token into its delivery or enrolment), so a token is used at most once, and goes
// by push otherwise; the delivery record says which it went by, and the dispatcher still
// pushes if the token turns out to be spent. Staff text is sent as a plain text message:
// it is not a template, so "{{display_name}}" reaches the friend as typed.
//
// To find which tokens are claimed, Reply reads the deliveries and enrollments tables
// (owned by delivery and scenario) in its transaction. On PostgreSQL a scenario step
// committing at the same instant can still take the same token; LINE then refuses one
// of the two replies and the dispatcher pushes it, so nothing is lost either way.
package inbox

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/linestep/linestep/internal/clock"
	"github.com/linestep/linestep/internal/delivery"
	"github.com/linestep/linestep/internal/friend"
	"github.com/linestep/linestep/internal/message"
	"github.com/linestep/linestep/internal/store"
)

// Status is where a conversation stands.
type Status string

const (
	Open     Status = "open"     // the friend wrote and waits for an answer
	Pending  Status = "pending"  // staff answered; waiting for the friend
	Resolved Status = "resolved" // done, until the friend writes again
)

// Valid reports whether s is one of the statuses.
func (s Status) Valid() bool { return s == Open || s == Pending || s == Resolved }

// Source names staff replies in the delivery outbox.
const Source = "inbox"

var (
	// ErrInvalid wraps every refusal of bad input; errors.As finds the message.Problems,
	// which say what to fix in Japanese and English.
	ErrInvalid = errors.New("inbox: invalid")
	// ErrBlocked: the friend blocked the account; LINE delivers nothing to them. The
	// error also carries message.Problems with the explanation in both languages.
	ErrBlocked = errors.New("inbox: the friend has blocked the account")
	// ErrBadCursor is a Filter.Before that no Conversation.Cursor made.
	ErrBadCursor = errors.New("inbox: invalid cursor")
)

// refusal is an error that is both a sentinel (errors.Is) and a list of problems to show
// (errors.As).
type refusal struct {
	kind error
	ps   message.Problems
}

func (e *refusal) Error() string   { return e.kind.Error() + ": " + e.ps.Error() }
func (e *refusal) Unwrap() []error { return []error{e.kind, e.ps} }

func refuse(kind error, path, ja, en string) error {
	return &refusal{kind: kind, ps: message.Problems{{Path: path, JA: ja, EN: en}}}
}

// Conversation is one friend's chat as the inbox lists it. DisplayName and PictureURL
// come from the friend, unmasked (the console masks them for staff who may not read
// them), and PreviewText is what the friend or staff wrote: keep them all out of logs.
type Conversation struct {
	FriendID       int64
	ChannelID      string
	Status         Status
	StatusAt       time.Time
	AssigneeID     int64 // staff member; 0: unassigned
	Unread         int   // friend's messages since staff last marked it read
	LastInboundAt  time.Time
	LastActivityAt time.Time // the newest message either way: the inbox order
	// The newest message, to show under the name: direction, kind (text, sticker,
	// image, ...) and its first characters.
	PreviewDirection friend.Direction
	PreviewKind      string
	PreviewText      string
	ReadAt           time.Time
	CreatedAt        time.Time
	UpdatedAt        time.Time

	DisplayName  string
	PictureURL   string
	FriendStatus friend.Status // blocked friends cannot be replied to
}

// LogValue keeps personal data out of logs.
func (c Conversation) LogValue() slog.Value {
	return slog.GroupValue(slog.Int64("friend", c.FriendID), slog.String("channel", c.ChannelID), slog.String("status", string(c.Status)))
}

// Cursor is where the next page after this conversation starts: pass it as
// Filter.Before.
func (c Conversation) Cursor() string {
	return strconv.FormatInt(store.Millis(c.LastActivityAt), 10) + "." + strconv.FormatInt(c.FriendID, 10)
}

func parseCursor(s string) (at, friendID int64, err error) {
	a, f, ok := strings.Cut(s, ".")
	if !ok {
		return 0, 0, ErrBadCursor
	}
	if at, err = strconv.ParseInt(a, 10, 64); err != nil {
		return 0, 0, ErrBadCursor
	}
	if friendID, err = strconv.ParseInt(f, 10, 64); err != nil || friendID <= 0 {
		return 0, 0, ErrBadCursor
	}
	return at, friendID, nil
}

// Filter narrows List and Counts.
type Filter struct {
	Status Status // empty: every status (Counts ignores it)
	// AssigneeID lists the conversations assigned to one staff member; the "mine" view
	// passes the signed-in staff member's ID. 0: anyone's.
	AssigneeID int64
	Unassigned bool   // only conversations nobody is assigned to
	Before     string // a Conversation.Cursor: the page after it (List only)
	Limit      int    // default 50, at most 200 (List only)
}

// Service is the inbox.
type Service struct {
	db         *store.DB
	clock      clock.Clock
	deliveries *delivery.Service
	logger     *slog.Logger
}

// New returns the inbox service.
func New(db *store.DB, clk clock.Clock, deliveries *delivery.Service, logger *slog.Logger) *Service {
	return &Service{db: db, clock: clk, deliveries: deliveries, logger: logger}
}

const conversationColumns = `c.friend_id, c.channel_id, c.status, c.status_at, COALESCE(c.assignee_id, 0), c.unread,
	c.last_inbound_at, c.last_activity_at, c.preview_direction, c.preview_kind, c.preview_text, c.read_at, c.created_at, c.updated_at,
	f.display_name, f.picture_url, f.status
	FROM conversations c JOIN friends f ON f.id = c.friend_id`

func scanConversation(row interface{ Scan(...any) error }) (Conversation, error) {
	var c Conversation
	var status, dir, fstatus string
	var statusAt, activity, created, updated int64
	var inbound, read sql.NullInt64
	err := row.Scan(&c.FriendID, &c.ChannelID, &status, &statusAt, &c.AssigneeID, &c.Unread,
		&inbound, &activity, &dir, &c.PreviewKind, &c.PreviewText, &read, &created, &updated,
		&c.DisplayName, &c.PictureURL, &fstatus)
	if err != nil {
		return Conversation{}, err
	}
	c.Status, c.PreviewDirection, c.FriendStatus = Status(status), friend.Direction(dir), friend.Status(fstatus)
	c.StatusAt, c.LastActivityAt = store.Time(statusAt), store.Time(activity)
	c.LastInboundAt, c.ReadAt = store.NullTime(inbound), store.NullTime(read)
	c.CreatedAt, c.UpdatedAt = store.Time(created), store.Time(updated)
	return c, nil
}

// Get returns a friend's conversation, or an error wrapping store.ErrNotFound when the
// friend is not of the channel or has none yet.
func (s *Service) Get(ctx context.Context, channelID string, friendID int64) (Conversation, error) {
	c, err := scanConversation(s.db.QueryRowContext(ctx, "SELECT "+conversationColumns+
		" WHERE c.channel_id = ? AND c.friend_id = ?", channelID, friendID))
	if errors.Is(err, sql.ErrNoRows) {
		return Conversation{}, fmt.Errorf("inbox: conversation of friend %d: %w", friendID, store.ErrNotFound)
	}
	if err != nil {
		return Conversation{}, fmt.Errorf("inbox: get: %w", err)
	}
	return c, nil
}

// where turns a filter's assignee conditions into SQL.
func (f Filter) where(channelID string) (string, []any, error) {
	q := " WHERE c.channel_id = ?"
	args := []any{channelID}
	switch {
	case f.Unassigned && f.AssigneeID != 0:
		return "", nil, refuse(ErrInvalid, "assignee", "「担当者なし」と担当者の指定は同時に使えません",
			"ask for unassigned conversations or for one assignee's, not both")
	case f.Unassigned:
		q += " AND c.assignee_id IS NULL"
	case f.AssigneeID != 0:
		q += " AND c.assignee_id = ?"
		args = append(args, f.AssigneeID)
	}
	return q, args, nil
}

// List returns a channel's conversations, the latest activity first, a page at a time:
// pass the last one's Cursor as Filter.Before for the next page.
func (s *Service) List(ctx context.Context, channelID string, f Filter) ([]Conversation, error) {
	where, args, err := f.where(channelID)
	if err != nil {
		return nil, err
	}
	if f.Status != "" {
		if !f.Status.Valid() {
			return nil, invalidStatus(f.Status)
		}
		where += " AND c.status = ?"
		args = append(args, string(f.Status))
	}
	if f.Before != "" {
		at, id, err := parseCursor(f.Before)
		if err != nil {
			return nil, err
		}
		where += " AND (c.last_activity_at < ? OR (c.last_activity_at = ? AND c.friend_id < ?))"
		args = append(args, at, at, id)
	}
	limit := f.Limit
	if limit <= 0 {
		limit = 50
	}
	args = append(args, min(limit, 200))
	rows, err := s.db.QueryContext(ctx, "SELECT "+conversationColumns+where+
		" ORDER BY c.last_activity_at DESC, c.friend_id DESC LIMIT ?", args...)
	if err != nil {
		return nil, fmt.Errorf("inbox: list: %w", err)
	}
	defer rows.Close()
	var out []Conversation
	for rows.Next() {
		c, err := scanConversation(rows)
		if err != nil {
			return nil, fmt.Errorf("inbox: list: %w", err)
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("inbox: list: %w", err)
	}
	return out, nil
}

// Counts is how many conversations are in each status, for the inbox tabs and the
// dashboard; Unread counts the conversations (of any status) with unread messages.
type Counts struct {
	Open, Pending, Resolved, Unread int
}

// Counts counts a channel's conversations, narrowed by the filter's assignee conditions
// (AssigneeID: the "mine" tabs).
func (s *Service) Counts(ctx context.Context, channelID string, f Filter) (Counts, error) {
	where, args, err := f.where(channelID)
	if err != nil {
		return Counts{}, err
	}
	rows, err := s.db.QueryContext(ctx, "SELECT c.status, COUNT(*), COUNT(CASE WHEN c.unread > 0 THEN 1 END) FROM conversations c"+
		where+" GROUP BY c.status", args...)
	if err != nil {
		return Counts{}, fmt.Errorf("inbox: counts: %w", err)
	}
	defer rows.Close()
	var out Counts
	for rows.Next() {
		var st string
		var n, unread int
		if err := rows.Scan(&st, &n, &unread); err != nil {
			return Counts{}, fmt.Errorf("inbox: counts: %w", err)
		}
		switch Status(st) {
		case Open:
			out.Open = n
		case Pending:
			out.Pending = n
		case Resolved:
			out.Resolved = n
		}
		out.Unread += unread
	}
	if err := rows.Err(); err != nil {
		return Counts{}, fmt.Errorf("inbox: counts: %w", err)
	}
	return out, nil
}

func invalidStatus(st Status) error {
	return refuse(ErrInvalid, "status", "状態は open（対応待ち）・pending（返信待ち）・resolved（対応済み）のいずれかにしてください",
		fmt.Sprintf("the status must be open, pending or resolved, not %q", short(string(st))))
}

// short cuts what a caller sent for an error message.
func short(s string) string {
	if r := []rune(s); len(r) > 20 {
		return string(r[:20]) + "…"
	}
	return s
}
