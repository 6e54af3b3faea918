package scenario

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/line/line-bot-sdk-go/v8/linebot/webhook"

	"github.com/linestep/linestep/internal/clock"
	"github.com/linestep/linestep/internal/delivery"
	"github.com/linestep/linestep/internal/friend"
	"github.com/linestep/linestep/internal/ingest"
	"github.com/linestep/linestep/internal/keyword"
	"github.com/linestep/linestep/internal/message"
	"github.com/linestep/linestep/internal/richmenu"
	"github.com/linestep/linestep/internal/store"
)

// VarsFunc adds variables a step's messages may use beyond the friend's own (coupons).
// It runs in the step's transaction and sees the names the messages use.
type VarsFunc func(ctx context.Context, q store.Querier, channelID string, friendID int64, names []string, now time.Time) (message.MapVars, error)

// Config tunes the runner. Zero values take the defaults.
type Config struct {
	// BatchSize bounds the enrolments one transaction advances; default 2000. A step
	// that many friends reach at once then takes tens of transactions, not hundreds:
	// each commit waits for the disk, and each claim on PostgreSQL walks past the index
	// entries of the runs moved before it.
	BatchSize int
	// Runners is how many batches run at once. On PostgreSQL they share the due steps
	// (SKIP LOCKED) on connections of their own, and the database works on two at once;
	// SQLite has one writer, which a second runner would only wait for. Default 2 on
	// PostgreSQL, 1 on SQLite.
	Runners int
	// PollInterval is how often the runner looks for due steps when nothing wakes it and
	// none falls due sooner; default 1 s.
	PollInterval time.Duration
	// ProfileWait: a run's steps wait up to this long after enrolment for the friend's
	// profile, fetched just after a follow, so a greeting can say their name; default 5 s.
	ProfileWait time.Duration
}

func (c *Config) defaults(d store.Dialect) {
	if c.BatchSize <= 0 {
		c.BatchSize = 2000
	}
	if c.Runners <= 0 {
		c.Runners = 1
		if d == store.Postgres {
			c.Runners = 2
		}
	}
	if c.PollInterval <= 0 {
		c.PollInterval = time.Second
	}
	if c.ProfileWait <= 0 {
		c.ProfileWait = 5 * time.Second
	}
}

// Service stores scenarios, enrols friends and runs their steps.
type Service struct {
	db         *store.DB
	clock      clock.Clock
	friends    *friend.Service
	deliveries *delivery.Service
	logger     *slog.Logger
	cfg        Config
	wake       chan struct{}

	// ExtraVars, when set, supplies variables beyond the friend's (coupons), and
	// CheckVars checks, when a scenario is saved, that those its messages name exist.
	ExtraVars VarsFunc
	CheckVars func(ctx context.Context, q store.Querier, channelID string, names []string) error
	// RichMenus queues the rich menu links of steps' rich_menu actions.
	RichMenus *richmenu.Service
}

// New returns the scenario service; Register subscribes it to events and to tag and
// field changes.
func New(db *store.DB, clk clock.Clock, friends *friend.Service, deliveries *delivery.Service, logger *slog.Logger, cfg Config) *Service {
	cfg.defaults(db.Dialect())
	return &Service{db: db, clock: clk, friends: friends, deliveries: deliveries, logger: logger, cfg: cfg, wake: make(chan struct{}, 1)}
}

// Notify wakes the runner: a step is due.
func (s *Service) Notify() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Register subscribes the service to webhook events (register it after the friend
// service, whose handlers create the friend it reads) and to tag and field changes.
func (s *Service) Register(p *ingest.Processor) {
	p.Handle("follow", s.onFollow)
	p.Handle("unfollow", s.onUnfollow)
	p.Handle("message", s.onMessage)
	p.Handle("postback", s.onPostback)
	s.friends.OnTagAdded(s.onTagAdded)
	s.friends.OnFieldSet(s.onFieldSet)
	s.friends.OnProfileStored(s.Notify)
}

// follower returns the friend an event comes from, if they currently follow.
func follower(ctx context.Context, tx *store.Tx, ev ingest.Event) (id int64, ok bool, err error) {
	if ev.UserID == "" || ev.Standby() {
		return 0, false, nil // standby: another channel has the chat; we must not send
	}
	var status string
	err = tx.QueryRowContext(ctx, "SELECT id, status FROM friends WHERE channel_id = ? AND line_user_id = ?", ev.ChannelID, ev.UserID).Scan(&id, &status)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("scenario: friend: %w", err)
	}
	return id, status == string(friend.Following), nil
}

func (s *Service) triggered(ctx context.Context, q store.Querier, channelID, typ string) ([]Scenario, error) {
	return s.query(ctx, q, "WHERE channel_id = ? AND trigger_type = ? AND enabled = 1 ORDER BY id", channelID, typ)
}

func (s *Service) onFollow(ctx context.Context, tx *store.Tx, ev ingest.Event) error {
	id, ok, err := follower(ctx, tx, ev)
	if err != nil || !ok {
		return err // not following: an older follow arriving after a newer block
	}
	fe, _ := ev.Decoded.(webhook.FollowEvent)
	o := origin{replyToken: fe.ReplyToken, replyExpires: delivery.ReplyExpiry(ev)}
	o.refollow = fe.Follow != nil && fe.Follow.IsUnblocked
	scs, err := s.triggered(ctx, tx, ev.ChannelID, TriggerFollow)
	if err != nil {
		return err
	}
	for _, sc := range scs {
		if _, err := s.enrol(ctx, tx, sc, id, o); err != nil {
			return err
		}
	}
	return nil
}

// onUnfollow stops every run of a friend who blocked the account.
func (s *Service) onUnfollow(ctx context.Context, tx *store.Tx, ev ingest.Event) error {
	var id int64
	err := tx.QueryRowContext(ctx, "SELECT id FROM friends WHERE channel_id = ? AND line_user_id = ? AND status = 'blocked'",
		ev.ChannelID, ev.UserID).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return nil
	}
	if err != nil {
		return err
	}
	return s.stopWhere(ctx, tx, id, StopBlocked, func(*Definition) bool { return true })
}

func (s *Service) onMessage(ctx context.Context, tx *store.Tx, ev ingest.Event) error {
	me, ok := ev.Decoded.(webhook.MessageEvent)
	if !ok {
		return nil
	}
	text, ok := me.Message.(webhook.TextMessageContent)
	if !ok {
		return nil
	}
	id, ok, err := follower(ctx, tx, ev)
	if err != nil || !ok {
		return err
	}
	scs, err := s.triggered(ctx, tx, ev.ChannelID, TriggerKeyword)
	if err != nil {
		return err
	}
	said := keyword.Normalize(text.Text)
	o := origin{replyToken: me.ReplyToken, replyExpires: delivery.ReplyExpiry(ev)}
	for _, sc := range scs {
		want := keyword.Normalize(sc.Definition.Trigger.Value)
		hit := said == want
		if sc.Definition.Trigger.Match == "contains" {
			hit = strings.Contains(said, want)
		}
		if hit {
			if _, err := s.enrol(ctx, tx, sc, id, o); err != nil {
				return err
			}
			o = origin{} // one reply token serves one reply
		}
	}
	return nil
}

func (s *Service) onPostback(ctx context.Context, tx *store.Tx, ev ingest.Event) error {
	pe, ok := ev.Decoded.(webhook.PostbackEvent)
	if !ok || pe.Postback == nil {
		return nil
	}
	id, ok, err := follower(ctx, tx, ev)
	if err != nil || !ok {
		return err
	}
	scs, err := s.query(ctx, tx, "WHERE channel_id = ? AND trigger_type = ? AND trigger_value = ? AND enabled = 1 ORDER BY id",
		ev.ChannelID, TriggerPostback, pe.Postback.Data)
	if err != nil {
		return err
	}
	o := origin{replyToken: pe.ReplyToken, replyExpires: delivery.ReplyExpiry(ev)}
	for _, sc := range scs {
		if _, err := s.enrol(ctx, tx, sc, id, o); err != nil {
			return err
		}
		o = origin{}
	}
	return nil
}

// onTagAdded applies stop rules naming the tag, then the scenarios it triggers.
func (s *Service) onTagAdded(ctx context.Context, q store.Querier, friendID, tagID int64) error {
	var channelID, name, status string
	err := q.QueryRowContext(ctx, `SELECT t.channel_id, t.name, f.status FROM tags t JOIN friends f ON f.id = ? WHERE t.id = ?`,
		friendID, tagID).Scan(&channelID, &name, &status)
	if err != nil {
		return fmt.Errorf("scenario: tag added: %w", err)
	}
	if err := s.stopWhere(ctx, q, friendID, "tag:"+name, func(d *Definition) bool { return slices.Contains(d.Stop.Tags, name) }); err != nil {
		return err
	}
	if status != string(friend.Following) {
		return nil
	}
	scs, err := s.query(ctx, q, "WHERE channel_id = ? AND trigger_type = ? AND trigger_value = ? AND enabled = 1 ORDER BY id",
		channelID, TriggerTag, name)
	if err != nil {
		return err
	}
	for _, sc := range scs {
		if _, err := s.enrol(ctx, q, sc, friendID, origin{}); err != nil {
			return err
		}
	}
	return nil
}

// onFieldSet starts the scenarios the field triggers and moves reminders timed by it to
// the new date.
func (s *Service) onFieldSet(ctx context.Context, q store.Querier, friendID int64, f friend.Field, value string) error {
	if err := s.reschedule(ctx, q, friendID, f.Key); err != nil {
		return err
	}
	var status string
	if err := q.QueryRowContext(ctx, "SELECT status FROM friends WHERE id = ?", friendID).Scan(&status); err != nil {
		return fmt.Errorf("scenario: field set: %w", err)
	}
	if status != string(friend.Following) {
		return nil
	}
	scs, err := s.query(ctx, q, "WHERE channel_id = ? AND trigger_type = ? AND trigger_value = ? AND enabled = 1 ORDER BY id",
		f.ChannelID, TriggerField, f.Key)
	if err != nil {
		return err
	}
	for _, sc := range scs {
		if want := sc.Definition.Trigger.Value; want != "" && want != value {
			continue
		}
		if _, err := s.enrol(ctx, q, sc, friendID, origin{}); err != nil {
			return err
		}
	}
	return nil
}

// reschedule recomputes the time of the friend's waiting steps that are timed by the
// field: a reminder follows the booking when it moves.
func (s *Service) reschedule(ctx context.Context, q store.Querier, friendID int64, fieldKey string) error {
	rows, err := q.QueryContext(ctx, `SELECT e.id, e.next_step, e.anchor_at, e.last_step_at, s.id, s.channel_id, s.key, s.definition,
		s.enabled, s.version, s.created_at, s.updated_at
		FROM enrollments e JOIN scenarios s ON s.id = e.scenario_id WHERE e.friend_id = ? AND e.state = ?`, friendID, Active)
	if err != nil {
		return fmt.Errorf("scenario: reschedule: %w", err)
	}
	type waiting struct {
		id           int64
		next         string
		anchor, last time.Time
		sc           Scenario
	}
	var ws []waiting
	for rows.Next() {
		var w waiting
		var anchor int64
		var last sql.NullInt64
		var row scenarioRow
		if err := rows.Scan(append([]any{&w.id, &w.next, &anchor, &last}, row.dest()...)...); err != nil {
			rows.Close()
			return err
		}
		if w.sc, err = row.decode(); err != nil {
			rows.Close()
			return err
		}
		w.anchor, w.last = store.Time(anchor), store.NullTime(last)
		ws = append(ws, w)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	now := s.clock.Now()
	for _, w := range ws {
		d := &w.sc.Definition
		i := slices.IndexFunc(d.Steps, func(st Step) bool { return st.Key == w.next })
		if i < 0 || d.Steps[i].Timing.Field != fieldKey {
			continue
		}
		acct, err := loadAccount(ctx, q, w.sc.ChannelID)
		if err != nil {
			return err
		}
		p, err := s.plan(ctx, q, acct.forScenario(d), d, i, w.anchor, w.last, friendID, now)
		if err != nil {
			return err
		}
		if _, err := q.ExecContext(ctx, "UPDATE enrollments SET state = ?, next_step = ?, due_at = ?, updated_at = ? WHERE id = ?",
			p.state(), p.key, p.dueArg(), store.Millis(now), w.id); err != nil {
			return fmt.Errorf("scenario: reschedule: %w", err)
		}
	}
	return nil
}
