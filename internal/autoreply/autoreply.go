// Package autoreply owns keyword auto-replies: rules that answer a friend's text message
// when one of their keywords matches and their time window is open. The reply is
// written to the delivery outbox in the transaction that applies the message event, so
// it exists if and only if the event is applied, and goes out as a reply while the
// event's reply token is fresh.
//
// Matching compares normalised text (see Normalize): full-width and half-width forms,
// and upper and lower case, are the same to a rule. Of the rules of a channel that match
// and whose window is open, the one with the highest priority answers, and of equal
// priorities the oldest (lowest ID); a message gets at most one auto-reply.
//
// A reply may show coupons ({{coupon.<key>.code}}, through ExtraVars): the friend is
// issued the coupon in the transaction that writes the reply, once, and is shown the
// same code when they ask again; the fallback once it has ended or they have used it up.
//
// Rules are read from the database for every message rather than cached, so that every
// instance sees a change at once; MaxRules bounds that work.
package autoreply

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/linestep/linestep/internal/clock"
	"github.com/linestep/linestep/internal/delivery"
	"github.com/linestep/linestep/internal/friend"
	"github.com/linestep/linestep/internal/message"
	"github.com/linestep/linestep/internal/store"
)

// Match kinds: how a keyword is compared with the friend's text, both normalised.
const (
	MatchExact    = "exact"    // the whole text equals the keyword
	MatchContains = "contains" // the text contains the keyword
	// MatchRegex: the keyword is a Go (RE2) regular expression, NFKC-normalised and
	// case-insensitive, searched for in the normalised text; it is not anchored, so
	// write ^...$ to match the whole text.
	MatchRegex = "regex"
)

// Limits on a rule, and on a channel.
const (
	MaxRules      = 500 // per channel: every message is tried against them all
	MaxKeywords   = 20
	MaxKeywordLen = 100 // characters, exact and contains
	MaxPatternLen = 200 // characters, regex
	maxNameLen    = 100
)

// Rule is one keyword auto-reply of a channel.
type Rule struct {
	ID        int64
	ChannelID string
	Key       string // unique per channel: [a-z0-9_-]{1,64}
	Name      string
	Match     string   // exact | contains | regex
	Keywords  []string // the rule matches when any of them does
	Priority  int      // higher wins; ties: lower ID
	Window    *Window  // nil: any time
	Template  message.Template
	Enabled   bool

	// Hits and LastHitAt count the messages the rule answered; Save leaves them alone.
	Hits      int64
	LastHitAt time.Time
	CreatedAt time.Time
	UpdatedAt time.Time
}

// Window is when a rule may answer, in the channel's time zone. From and To are HH:MM;
// the window includes From and excludes To. When To is before From the window wraps
// midnight (21:00-09:00 is the night), and its hours after midnight belong to the day
// it began: Days [fri] with 21:00-09:00 is open from Friday 21:00 to Saturday 09:00.
type Window struct {
	Days []string // mon tue wed thu fri sat sun; empty: every day
	From string
	To   string
}

// VarsFunc adds variables a reply may use beyond the friend's own (coupons), in the
// transaction that writes the reply.
type VarsFunc func(ctx context.Context, q store.Querier, channelID string, friendID int64, names []string, now time.Time) (message.MapVars, error)

// Service reads, writes and applies auto-reply rules.
type Service struct {
	db         *store.DB
	clock      clock.Clock
	friends    *friend.Service
	deliveries *delivery.Service
	logger     *slog.Logger

	// ExtraVars, when set, supplies variables beyond the friend's (coupons: issued as
	// the reply is written, in its transaction), and CheckVars checks, when a rule is
	// saved, that those its messages name exist; its error is message.Problems.
	ExtraVars VarsFunc
	CheckVars func(ctx context.Context, q store.Querier, channelID string, names []string) error

	patterns  patternCache
	locations sync.Map // time zone name -> *time.Location
}

// New returns the auto-reply service.
func New(db *store.DB, clk clock.Clock, friends *friend.Service, deliveries *delivery.Service, logger *slog.Logger) *Service {
	return &Service{db: db, clock: clk, friends: friends, deliveries: deliveries, logger: logger}
}

// Validate checks a rule as Save would; a non-nil error is message.Problems, each saying
// what to fix in Japanese and English.
func (s *Service) Validate(r Rule) error {
	if ps := validate(r); ps != nil {
		return ps
	}
	return nil
}

// Save creates the rule, or updates the channel's rule of the same key (keeping its ID
// and counters). Invalid rules, rules whose messages name a coupon the channel does not
// have, and a new rule past MaxRules, are refused with message.Problems.
func (s *Service) Save(ctx context.Context, q store.Querier, r Rule) (Rule, error) {
	if ps := validate(r); ps != nil {
		return Rule{}, ps
	}
	if err := s.checkVars(ctx, q, r); err != nil {
		return Rule{}, err
	}
	var others int
	err := q.QueryRowContext(ctx, "SELECT COUNT(*) FROM autoreplies WHERE channel_id = ? AND key <> ?", r.ChannelID, r.Key).Scan(&others)
	if err != nil {
		return Rule{}, fmt.Errorf("autoreply: save %s: %w", r.Key, err)
	}
	// Two saves racing on PostgreSQL may pass the cap by one; it bounds work, not a quota.
	if others >= MaxRules {
		return Rule{}, message.Problems{{
			JA: fmt.Sprintf("自動応答は1チャネルにつき%d件までです。使わないものを削除してください", MaxRules),
			EN: fmt.Sprintf("a channel has at most %d auto-reply rules; delete some you no longer use", MaxRules),
		}}
	}
	keywords, err := json.Marshal(r.Keywords)
	if err != nil {
		return Rule{}, fmt.Errorf("autoreply: save %s: %w", r.Key, err)
	}
	tmpl, err := json.Marshal(r.Template)
	if err != nil {
		return Rule{}, fmt.Errorf("autoreply: save %s: %w", r.Key, err)
	}
	var days, from, to string
	if w := r.Window; w != nil {
		days, from, to = strings.Join(w.Days, ","), w.From, w.To
	}
	enabled := 0
	if r.Enabled {
		enabled = 1
	}
	now := store.Millis(s.clock.Now())
	_, err = q.ExecContext(ctx, `INSERT INTO autoreplies (channel_id, key, name, match_kind, keywords, priority,
			window_days, window_from, window_to, template, enabled, created_at, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (channel_id, key) DO UPDATE SET name = excluded.name, match_kind = excluded.match_kind,
			keywords = excluded.keywords, priority = excluded.priority, window_days = excluded.window_days,
			window_from = excluded.window_from, window_to = excluded.window_to, template = excluded.template,
			enabled = excluded.enabled, updated_at = excluded.updated_at`,
		r.ChannelID, r.Key, r.Name, r.Match, string(keywords), r.Priority, days, from, to, string(tmpl), enabled, now, now)
	if err != nil {
		return Rule{}, fmt.Errorf("autoreply: save %s: %w", r.Key, err)
	}
	return s.get(ctx, q, "channel_id = ? AND key = ?", r.ChannelID, r.Key)
}

// checkVars refuses variables that name what the channel does not have (a coupon),
// with message.Problems at "template" that name the variable.
func (s *Service) checkVars(ctx context.Context, q store.Querier, r Rule) error {
	if s.CheckVars == nil {
		return nil
	}
	err := s.CheckVars(ctx, q, r.ChannelID, r.Template.Variables())
	var ps message.Problems
	if !errors.As(err, &ps) {
		if err != nil {
			return fmt.Errorf("autoreply: save %s: %w", r.Key, err)
		}
		return nil
	}
	out := make(message.Problems, len(ps))
	for i, p := range ps {
		p.Path = "template"
		out[i] = p
	}
	return out
}

// SetEnabled switches a channel's rule on or off and returns it. Switching off always
// succeeds, so that a rule naming a coupon deleted since can still be stopped;
// switching on checks the rule as Save does.
func (s *Service) SetEnabled(ctx context.Context, q store.Querier, channelID, key string, on bool) (Rule, error) {
	r, err := s.get(ctx, q, "channel_id = ? AND key = ?", channelID, key)
	if err != nil {
		return Rule{}, err
	}
	if on {
		r.Enabled = true
		return s.Save(ctx, q, r)
	}
	_, err = q.ExecContext(ctx, "UPDATE autoreplies SET enabled = 0, updated_at = ? WHERE id = ?", store.Millis(s.clock.Now()), r.ID)
	if err != nil {
		return Rule{}, fmt.Errorf("autoreply: switch off %s: %w", key, err)
	}
	return s.get(ctx, q, "id = ?", r.ID)
}

// Get returns a channel's rule by key, or an error wrapping store.ErrNotFound.
func (s *Service) Get(ctx context.Context, channelID, key string) (Rule, error) {
	return s.get(ctx, s.db, "channel_id = ? AND key = ?", channelID, key)
}

// List returns a channel's rules in the order they are tried: priority, then age.
func (s *Service) List(ctx context.Context, channelID string) ([]Rule, error) {
	rows, err := s.db.QueryContext(ctx, "SELECT "+ruleColumns+" FROM autoreplies WHERE channel_id = ? ORDER BY priority DESC, id", channelID)
	if err != nil {
		return nil, fmt.Errorf("autoreply: list: %w", err)
	}
	defer rows.Close()
	var out []Rule
	for rows.Next() {
		r, err := scanRule(rows)
		if err != nil {
			return nil, fmt.Errorf("autoreply: list: %w", err)
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// Delete removes a channel's rule by key. Deliveries it already wrote stay (they name it
// in source_ref).
func (s *Service) Delete(ctx context.Context, q store.Querier, channelID, key string) error {
	res, err := q.ExecContext(ctx, "DELETE FROM autoreplies WHERE channel_id = ? AND key = ?", channelID, key)
	if err != nil {
		return fmt.Errorf("autoreply: delete %s: %w", key, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("autoreply: delete %s: %w", key, err)
	}
	if n == 0 {
		return fmt.Errorf("autoreply %s: %w", key, store.ErrNotFound)
	}
	return nil
}

const ruleColumns = `id, channel_id, key, name, match_kind, keywords, priority, window_days, window_from, window_to,
	template, enabled, hits, last_hit_at, created_at, updated_at`

func (s *Service) get(ctx context.Context, q store.Querier, where string, args ...any) (Rule, error) {
	r, err := scanRule(q.QueryRowContext(ctx, "SELECT "+ruleColumns+" FROM autoreplies WHERE "+where, args...))
	if errors.Is(err, sql.ErrNoRows) {
		return Rule{}, fmt.Errorf("autoreply: %w", store.ErrNotFound)
	}
	if err != nil {
		return Rule{}, fmt.Errorf("autoreply: get: %w", err)
	}
	return r, nil
}

func scanRule(row interface{ Scan(...any) error }) (Rule, error) {
	var r Rule
	var keywords, days, from, to, tmpl string
	var enabled int64
	var lastHit sql.NullInt64
	var created, updated int64
	err := row.Scan(&r.ID, &r.ChannelID, &r.Key, &r.Name, &r.Match, &keywords, &r.Priority, &days, &from, &to,
		&tmpl, &enabled, &r.Hits, &lastHit, &created, &updated)
	if err != nil {
		return Rule{}, err
	}
	if err := json.Unmarshal([]byte(keywords), &r.Keywords); err != nil {
		return Rule{}, fmt.Errorf("rule %s: keywords: %w", r.Key, err)
	}
	if err := json.Unmarshal([]byte(tmpl), &r.Template); err != nil {
		return Rule{}, fmt.Errorf("rule %s: template: %w", r.Key, err)
	}
	r.Window = windowOf(days, from, to)
	r.Enabled = enabled != 0
	r.LastHitAt, r.CreatedAt, r.UpdatedAt = store.NullTime(lastHit), store.Time(created), store.Time(updated)
	return r, nil
}

// windowOf rebuilds a window from its columns; no from means no window.
func windowOf(days, from, to string) *Window {
	if from == "" {
		return nil
	}
	w := &Window{From: from, To: to}
	if days != "" {
		w.Days = strings.Split(days, ",")
	}
	return w
}

// patternCache keeps compiled patterns by their text: a compiled regexp is safe for
// concurrent use and its text says all it is, so the cache needs no invalidation.
type patternCache struct {
	mu sync.Mutex
	m  map[string]*regexp.Regexp
}

const maxCachedPatterns = 4096

func (c *patternCache) get(pattern string) (*regexp.Regexp, error) {
	c.mu.Lock()
	re, ok := c.m[pattern]
	c.mu.Unlock()
	if ok {
		return re, nil
	}
	re, err := compilePattern(pattern)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	if c.m == nil || len(c.m) >= maxCachedPatterns {
		c.m = map[string]*regexp.Regexp{} // crude, but bounded; patterns rarely change
	}
	c.m[pattern] = re
	c.mu.Unlock()
	return re, nil
}
