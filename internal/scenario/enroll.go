package scenario

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/linestep/linestep/internal/delivery"
	"github.com/linestep/linestep/internal/store"
)

// Enrolment states.
const (
	Active    = "active"
	Completed = "completed"
	Stopped   = "stopped"
)

// Why a run stopped early.
const (
	StopBlocked = "blocked"
	StopManual  = "manual"
)

// origin is what enrols a friend: the reply token of the event that did, while fresh,
// lets the first step go out as a reply.
type origin struct {
	replyToken   string
	replyExpires time.Time
	refollow     bool // a follow after a block: the follow trigger's refollow policy decides
}

// Enrolment is one friend's run through one scenario.
type Enrolment struct {
	ID          int64
	ScenarioID  int64
	ScenarioKey string
	FriendID    int64
	State       string
	NextStep    string
	LastStep    string
	AnchorAt    time.Time
	LastStepAt  time.Time
	DueAt       time.Time
	Runs        int
	StopReason  string
}

// enrol starts sc for the friend unless its policies say no, and reports whether it did.
func (s *Service) enrol(ctx context.Context, q store.Querier, sc Scenario, friendID int64, o origin) (bool, error) {
	var id int64
	var state, reason string
	err := q.QueryRowContext(ctx, "SELECT id, state, stop_reason FROM enrollments WHERE scenario_id = ? AND friend_id = ?",
		sc.ID, friendID).Scan(&id, &state, &reason)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return false, fmt.Errorf("scenario: enrol: %w", err)
	}
	d := &sc.Definition
	resume := false
	switch {
	case errors.Is(err, sql.ErrNoRows):
	case state == Active:
		return false, nil
	case o.refollow && d.Trigger.Type == TriggerFollow:
		switch d.Trigger.Refollow {
		case RefollowIgnore:
			return false, nil
		case RefollowResume:
			if state != Stopped || reason != StopBlocked {
				return false, nil // it had run to its end: nothing to resume
			}
			resume = true
		}
	case d.Reentry != ReentryAfterEnd:
		return false, nil
	}

	now := s.clock.Now()
	acct, err := loadAccount(ctx, q, sc.ChannelID)
	if err != nil {
		return false, err
	}
	acct = acct.forScenario(d)
	if resume {
		var next string
		var anchor int64
		if err := q.QueryRowContext(ctx, "SELECT next_step, anchor_at FROM enrollments WHERE id = ?", id).Scan(&next, &anchor); err != nil {
			return false, fmt.Errorf("scenario: resume: %w", err)
		}
		from := slices.IndexFunc(d.Steps, func(st Step) bool { return st.Key == next })
		if from < 0 {
			from = len(d.Steps)
		}
		// Delays count from the return: a friend back after a month does not get a
		// month of steps at once.
		p, err := s.plan(ctx, q, acct, d, from, store.Time(anchor), now, friendID, now)
		if err != nil {
			return false, err
		}
		_, err = q.ExecContext(ctx, `UPDATE enrollments SET state = ?, next_step = ?, last_step_at = ?, due_at = ?, stop_reason = '',
			reply_token = ?, reply_expires_at = ?, updated_at = ? WHERE id = ?`,
			p.state(), p.key, store.Millis(now), p.dueArg(), o.replyToken, store.NullMillis(o.replyExpires), store.Millis(now), id)
		if err != nil {
			return false, fmt.Errorf("scenario: resume: %w", err)
		}
	} else {
		p, err := s.plan(ctx, q, acct, d, 0, now, time.Time{}, friendID, now)
		if err != nil {
			return false, err
		}
		if id == 0 {
			_, err = q.ExecContext(ctx, `INSERT INTO enrollments (scenario_id, friend_id, channel_id, state, next_step, anchor_at, due_at,
				reply_token, reply_expires_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
				sc.ID, friendID, sc.ChannelID, p.state(), p.key, store.Millis(now), p.dueArg(), o.replyToken,
				store.NullMillis(o.replyExpires), store.Millis(now))
		} else {
			_, err = q.ExecContext(ctx, `UPDATE enrollments SET state = ?, next_step = ?, last_step = '', anchor_at = ?, last_step_at = NULL,
				due_at = ?, runs = runs + 1, stop_reason = '', reply_token = ?, reply_expires_at = ?, updated_at = ? WHERE id = ?`,
				p.state(), p.key, store.Millis(now), p.dueArg(), o.replyToken, store.NullMillis(o.replyExpires), store.Millis(now), id)
		}
		if err != nil {
			return false, fmt.Errorf("scenario: enrol: %w", err)
		}
	}
	if err := s.stopOnStart(ctx, q, sc, friendID); err != nil {
		return false, err
	}
	if tx, ok := q.(*store.Tx); ok {
		tx.AfterCommit(s.Notify)
	} else {
		s.Notify()
	}
	return true, nil
}

// plan is the next step a friend runs and when.
type planned struct {
	key string
	due time.Time
}

func (p planned) state() string {
	if p.key == "" {
		return Completed
	}
	return Active
}

func (p planned) dueArg() sql.NullInt64 {
	if p.key == "" {
		return sql.NullInt64{}
	}
	return store.NullMillis(p.due)
}

// plan finds the first step from index `from` that can run for the friend, and its
// time; a step timed by a field the friend has no date in is passed over. No step left:
// key "" (the run is complete).
func (s *Service) plan(ctx context.Context, q store.Querier, acct account, d *Definition, from int, anchor, prev time.Time,
	friendID int64, now time.Time) (planned, error) {
	for i := from; i < len(d.Steps); i++ {
		st := d.Steps[i]
		var value string
		if st.Timing.Field != "" {
			err := q.QueryRowContext(ctx, `SELECT ff.value FROM friend_fields ff JOIN fields fl ON fl.id = ff.field_id
				WHERE ff.friend_id = ? AND fl.key = ?`, friendID, st.Timing.Field).Scan(&value)
			if err != nil && !errors.Is(err, sql.ErrNoRows) {
				return planned{}, fmt.Errorf("scenario: plan: %w", err)
			}
		}
		due, skip := acct.stepTime(st.Timing, anchor, prev, value, now)
		if !skip {
			return planned{key: st.Key, due: due}, nil
		}
	}
	return planned{}, nil
}

// stopOnStart stops the friend's other runs whose stop rules name the scenario that
// just started.
func (s *Service) stopOnStart(ctx context.Context, q store.Querier, started Scenario, friendID int64) error {
	return s.stopWhere(ctx, q, friendID, "scenario:"+started.Key, func(d *Definition) bool {
		return slices.Contains(d.Stop.Scenarios, started.Key)
	})
}

// stopWhere stops the friend's active runs of scenarios for which match holds.
func (s *Service) stopWhere(ctx context.Context, q store.Querier, friendID int64, reason string, match func(*Definition) bool) error {
	runs, err := s.activeRuns(ctx, q, friendID)
	if err != nil {
		return err
	}
	for _, r := range runs {
		if match(&r.sc.Definition) {
			if err := s.stopRun(ctx, q, r.id, friendID, reason); err != nil {
				return err
			}
		}
	}
	return nil
}

type run struct {
	id int64
	sc Scenario
}

func (s *Service) activeRuns(ctx context.Context, q store.Querier, friendID int64) ([]run, error) {
	rows, err := q.QueryContext(ctx, `SELECT e.id, s.id, s.channel_id, s.key, s.definition, s.enabled, s.version, s.created_at, s.updated_at
		FROM enrollments e JOIN scenarios s ON s.id = e.scenario_id WHERE e.friend_id = ? AND e.state = ?`, friendID, Active)
	if err != nil {
		return nil, fmt.Errorf("scenario: active runs: %w", err)
	}
	defer rows.Close()
	var out []run
	for rows.Next() {
		var r run
		var row scenarioRow
		if err := rows.Scan(append([]any{&r.id}, row.dest()...)...); err != nil {
			return nil, err
		}
		if r.sc, err = row.decode(); err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// stopRun ends a friend's run early and cancels what it queued and was not yet sent
// (found through the friend: deliveries are indexed by source for broadcasts only).
func (s *Service) stopRun(ctx context.Context, q store.Querier, id, friendID int64, reason string) error {
	now := store.Millis(s.clock.Now())
	if _, err := q.ExecContext(ctx, `UPDATE enrollments SET state = ?, stop_reason = ?, due_at = NULL, reply_token = '', updated_at = ?
		WHERE id = ? AND state = ?`, Stopped, reason, now, id, Active); err != nil {
		return fmt.Errorf("scenario: stop: %w", err)
	}
	if _, err := q.ExecContext(ctx, `UPDATE deliveries SET state = ?, last_error = ? WHERE friend_id = ? AND source = 'scenario'
		AND source_id = ? AND state = ?`, delivery.Cancelled, "scenario stopped: "+reason, friendID, id, delivery.Pending); err != nil {
		return fmt.Errorf("scenario: stop: %w", err)
	}
	return nil
}

// Start enrols a friend in a scenario by key (the manual trigger: staff, the API, or
// another scenario's action), unless its re-entry policy says no. It reports whether
// the friend was enrolled.
func (s *Service) Start(ctx context.Context, q store.Querier, channelID string, friendID int64, key string) (bool, error) {
	sc, err := s.Get(ctx, q, channelID, key)
	if err != nil {
		return false, err
	}
	if !sc.Enabled {
		return false, nil
	}
	var n int
	if err := q.QueryRowContext(ctx, "SELECT COUNT(*) FROM friends WHERE id = ? AND channel_id = ? AND status = 'following'",
		friendID, channelID).Scan(&n); err != nil {
		return false, fmt.Errorf("scenario: start: %w", err)
	}
	if n == 0 {
		return false, nil // not a follower: nothing could be sent
	}
	return s.enrol(ctx, q, sc, friendID, origin{})
}

// Stop ends a friend's run of a scenario (manual stop, or another scenario's action).
func (s *Service) Stop(ctx context.Context, q store.Querier, channelID string, friendID int64, key, reason string) error {
	var id int64
	err := q.QueryRowContext(ctx, `SELECT e.id FROM enrollments e JOIN scenarios s ON s.id = e.scenario_id
		WHERE s.channel_id = ? AND s.key = ? AND e.friend_id = ? AND e.state = ?`, channelID, key, friendID, Active).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("scenario: stop: %w", err)
	}
	return s.stopRun(ctx, q, id, friendID, reason)
}

// Enrolments lists a friend's runs, newest first.
func (s *Service) Enrolments(ctx context.Context, q store.Querier, friendID int64) ([]Enrolment, error) {
	rows, err := q.QueryContext(ctx, `SELECT e.id, e.scenario_id, s.key, e.friend_id, e.state, e.next_step, e.last_step, e.anchor_at,
		e.last_step_at, e.due_at, e.runs, e.stop_reason FROM enrollments e JOIN scenarios s ON s.id = e.scenario_id
		WHERE e.friend_id = ? ORDER BY e.updated_at DESC, e.id DESC`, friendID)
	if err != nil {
		return nil, fmt.Errorf("scenario: enrolments: %w", err)
	}
	defer rows.Close()
	var out []Enrolment
	for rows.Next() {
		var e Enrolment
		var anchor int64
		var last, due sql.NullInt64
		if err := rows.Scan(&e.ID, &e.ScenarioID, &e.ScenarioKey, &e.FriendID, &e.State, &e.NextStep, &e.LastStep, &anchor,
			&last, &due, &e.Runs, &e.StopReason); err != nil {
			return nil, err
		}
		e.AnchorAt, e.LastStepAt, e.DueAt = store.Time(anchor), store.NullTime(last), store.NullTime(due)
		out = append(out, e)
	}
	return out, rows.Err()
}

// HoldRuns waits until no runner holds the friend's runs, and keeps them until the
// transaction ends (PostgreSQL): a runner writes deliveries for the friend without
// locking the friend's row, so erasing the friend (friend.Erase) must let a batch in
// progress commit first, and then deletes what it wrote.
func (s *Service) HoldRuns(ctx context.Context, tx *store.Tx, friendID int64) error {
	if err := tx.Hold(ctx, "SELECT id FROM enrollments WHERE friend_id = ? FOR UPDATE", friendID); err != nil {
		return fmt.Errorf("scenario: hold runs: %w", err)
	}
	return nil
}
