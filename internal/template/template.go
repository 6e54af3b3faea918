// Package template owns named message templates: a message.Template kept under a key of
// a channel, so that broadcasts, scenario steps, the console and setup files can refer to
// the same messages. A broadcast copies the template's messages when it is created; a
// scenario step that names a template reads it each time it runs, so a template in use
// by a scenario cannot be deleted. Auto-replies hold their messages inline.
package template

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

	"github.com/linestep/linestep/internal/message"
	"github.com/linestep/linestep/internal/store"
)

// Template is a saved template of a channel.
type Template struct {
	ID        int64
	ChannelID string
	Key       string
	Name      string
	Body      message.Template
	CreatedAt time.Time
	UpdatedAt time.Time
}

const maxNameLen = 100

var keyPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,63}$`)

// ValidKey reports whether s can name a template.
func ValidKey(s string) bool { return keyPattern.MatchString(s) }

// Check returns what is wrong with a template before it is saved, or nil: the key, the
// name, and the messages against the LINE rules.
func Check(key, name string, body message.Template) message.Problems {
	var ps message.Problems
	if !ValidKey(key) {
		ps = append(ps, message.Problem{Path: "key",
			JA: "キーは英小文字・数字・「_」「-」の64文字以内で、英小文字か数字で始めてください（例: osaka-coupon）",
			EN: "the key must be at most 64 of a-z, 0-9, _ and -, starting with a letter or digit (e.g. osaka-coupon)"})
	}
	if utf8.RuneCountInString(name) > maxNameLen || strings.ContainsAny(name, "\r\n") {
		ps = append(ps, message.Problem{Path: "name",
			JA: fmt.Sprintf("名前は改行なしの%d文字以内にしてください", maxNameLen),
			EN: fmt.Sprintf("the name must be at most %d characters on one line", maxNameLen)})
	}
	ps = append(ps, body.Validate()...)
	if len(ps) == 0 {
		return nil
	}
	return ps
}

// Save creates the channel's template of that key, or replaces its name and messages.
// An invalid template is refused with message.Problems.
func Save(ctx context.Context, q store.Querier, channelID, key, name string, body message.Template) (Template, error) {
	if ps := Check(key, name, body); ps != nil {
		return Template{}, ps
	}
	raw, err := json.Marshal(body)
	if err != nil {
		return Template{}, fmt.Errorf("template: save %s: %w", key, err)
	}
	// Exec, not a RETURNING query: a query on a store.DB goes to the read-only pool.
	now := store.Millis(time.Now())
	_, err = q.ExecContext(ctx, `INSERT INTO templates (channel_id, key, name, body, created_at, updated_at)
		VALUES (?, ?, ?, ?, ?, ?)
		ON CONFLICT (channel_id, key) DO UPDATE SET name = excluded.name, body = excluded.body, updated_at = excluded.updated_at`,
		channelID, key, name, string(raw), now, now)
	if err != nil {
		return Template{}, fmt.Errorf("template: save %s: %w", key, err)
	}
	return Get(ctx, q, channelID, key)
}

const columns = "id, channel_id, key, name, body, created_at, updated_at"

func scan(row interface{ Scan(...any) error }) (Template, error) {
	var t Template
	var body string
	var created, updated int64
	if err := row.Scan(&t.ID, &t.ChannelID, &t.Key, &t.Name, &body, &created, &updated); err != nil {
		return Template{}, err
	}
	if err := json.Unmarshal([]byte(body), &t.Body); err != nil {
		return Template{}, fmt.Errorf("template %s: stored body: %w", t.Key, err)
	}
	t.CreatedAt, t.UpdatedAt = store.Time(created), store.Time(updated)
	return t, nil
}

// Get returns a channel's template by key, or an error wrapping store.ErrNotFound.
func Get(ctx context.Context, q store.Querier, channelID, key string) (Template, error) {
	t, err := scan(q.QueryRowContext(ctx, "SELECT "+columns+" FROM templates WHERE channel_id = ? AND key = ?", channelID, key))
	if errors.Is(err, sql.ErrNoRows) {
		return Template{}, fmt.Errorf("template %q: %w", key, store.ErrNotFound)
	}
	if err != nil {
		return Template{}, fmt.Errorf("template: get %s: %w", key, err)
	}
	return t, nil
}

// List returns a channel's templates by key (in byte order, the same on both engines).
func List(ctx context.Context, q store.Querier, channelID string) ([]Template, error) {
	rows, err := q.QueryContext(ctx, "SELECT "+columns+" FROM templates WHERE channel_id = ?", channelID)
	if err != nil {
		return nil, fmt.Errorf("template: list: %w", err)
	}
	defer rows.Close()
	var out []Template
	for rows.Next() {
		t, err := scan(rows)
		if err != nil {
			return nil, fmt.Errorf("template: list: %w", err)
		}
		out = append(out, t)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("template: list: %w", err)
	}
	slices.SortFunc(out, func(a, b Template) int { return strings.Compare(a.Key, b.Key) })
	return out, nil
}

// Use is Get for a save that is about to refer to the template: on PostgreSQL it holds
// the row until tx ends, so that a Delete running meanwhile waits and then finds the
// new user (see Delete).
func Use(ctx context.Context, tx *store.Tx, channelID, key string) (Template, error) {
	lock := ""
	if tx.Dialect() == store.Postgres {
		lock = " FOR SHARE"
	}
	t, err := scan(tx.QueryRowContext(ctx, "SELECT "+columns+" FROM templates WHERE channel_id = ? AND key = ?"+lock, channelID, key))
	if errors.Is(err, sql.ErrNoRows) {
		return Template{}, fmt.Errorf("template %q: %w", key, store.ErrNotFound)
	}
	if err != nil {
		return Template{}, fmt.Errorf("template: get %s: %w", key, err)
	}
	return t, nil
}

// Users names what refers to a channel's template by key (the scenarios whose steps send
// it); Delete refuses while there is anything.
type Users func(ctx context.Context, q store.Querier, channelID, key string) ([]string, error)

// ErrInUse: the template is referred to and was not deleted. The error is an *InUseError.
var ErrInUse = errors.New("template: in use")

// InUseError names the scenarios that keep a template from being deleted.
type InUseError struct {
	Key       string
	Scenarios []string
}

func (e *InUseError) Error() string {
	return fmt.Sprintf("template %q is used by scenarios %s", e.Key, strings.Join(e.Scenarios, ", "))
}

// Unwrap lets errors.Is find ErrInUse and errors.As the message.Problems, which say what
// to do in both languages.
func (e *InUseError) Unwrap() []error { return []error{ErrInUse, e.Problems()} }

// Problems is the refusal as a problem of the template.
func (e *InUseError) Problems() message.Problems {
	return message.Problems{{Path: "key",
		JA: fmt.Sprintf("テンプレート「%s」はシナリオ「%s」のステップで使われているため削除できません。先にそのステップを変更してください",
			e.Key, strings.Join(e.Scenarios, "」「")),
		EN: fmt.Sprintf("template %q is sent by steps of scenarios %s: change those steps before deleting it",
			e.Key, strings.Join(e.Scenarios, ", "))}}
}

// Delete removes a channel's template by key in tx, or returns an error wrapping
// store.ErrNotFound; with users, it refuses with an *InUseError while they name anything,
// and the caller rolls tx back. The row goes first and users are asked after: a save that
// took the row with Use either made Delete wait and is seen now, or finds no template.
func Delete(ctx context.Context, tx *store.Tx, channelID, key string, users Users) error {
	res, err := tx.ExecContext(ctx, "DELETE FROM templates WHERE channel_id = ? AND key = ?", channelID, key)
	if err != nil {
		return fmt.Errorf("template: delete %s: %w", key, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("template: delete %s: %w", key, err)
	} else if n == 0 {
		return fmt.Errorf("template %q: %w", key, store.ErrNotFound)
	}
	if users == nil {
		return nil
	}
	names, err := users(ctx, tx, channelID, key)
	if err != nil {
		return fmt.Errorf("template: delete %s: %w", key, err)
	}
	if len(names) > 0 {
		return &InUseError{Key: key, Scenarios: names}
	}
	return nil
}
