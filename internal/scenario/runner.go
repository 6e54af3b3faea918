package scenario

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/linestep/linestep/internal/clock"
	"github.com/linestep/linestep/internal/delivery"
	"github.com/linestep/linestep/internal/friend"
	"github.com/linestep/linestep/internal/message"
	"github.com/linestep/linestep/internal/richmenu"
	"github.com/linestep/linestep/internal/segment"
	"github.com/linestep/linestep/internal/store"
	"github.com/linestep/linestep/internal/template"
)

// Run advances due steps until ctx is done, cfg.Runners batches at a time.
func (s *Service) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	for i := range s.cfg.Runners {
		// Every other runner claims from the late end of what is due: a claim skips the
		// runs others hold locked, row by row, and two walking from the same end paid
		// for each other's batch (twice the claim's work on PostgreSQL).
		fromLate := i%2 == 1
		wg.Go(func() { s.runLoop(ctx, fromLate) })
	}
	wg.Wait()
	return nil
}

// gather: steps falling due just after a run wait this long from its start, to run
// together. Woken for each, the runner would send each moment's few in a multicast call
// of their own, and LINE allows far fewer calls than recipients.
const gather = 250 * time.Millisecond

// firstBatch bounds the first batch after a wait: one multicast's worth, committed
// soon, so that the dispatcher starts sending while the rest of a step that many
// friends reach at once is still being written.
const firstBatch = 500

func (s *Service) runLoop(ctx context.Context, fromLate bool) {
	limit := min(firstBatch, s.cfg.BatchSize)
	prepared := false
	for {
		if !prepared {
			// Outside any transaction, as preparing needs the writer; until it works,
			// the deliveries are written with statements compiled at each use.
			prepared = s.deliveries.Prepare(ctx) == nil
		}
		started := s.clock.Now()
		n, err := s.runDue(ctx, limit, fromLate)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			s.logger.Warn("scenario steps failed; retrying", "err", err)
		}
		if n == limit && err == nil {
			limit = s.cfg.BatchSize
			continue // more is due
		}
		limit = min(firstBatch, s.cfg.BatchSize)
		wait := s.cfg.PollInterval
		if err == nil {
			wait = s.untilNextDue(ctx, started, wait)
			if n > 0 {
				wait = max(wait, min(gather, s.cfg.PollInterval)-s.clock.Now().Sub(started))
			}
		}
		if _, err := clock.Wait(ctx, s.clock, wait, s.wake); err != nil {
			return
		}
	}
}

// untilNextDue is how long the runner may sleep: until the next step falls due after the
// batch that started at since, at most limit. Polling alone would start a step up to a
// poll interval late, and a step that many friends reach at once would spend that much
// of its time waiting for the runner. Steps due before since were claimed, or are held
// back (a disabled scenario, a profile awaited): those are left to the poll and to the
// wake-ups, or the runner would spin on them.
func (s *Service) untilNextDue(ctx context.Context, since time.Time, limit time.Duration) time.Duration {
	var next sql.NullInt64
	if err := s.db.QueryRowContext(ctx, "SELECT MIN(due_at) FROM enrollments WHERE state = 'active' AND due_at > ?",
		store.Millis(since)).Scan(&next); err != nil || !next.Valid {
		return limit
	}
	return max(0, min(limit, store.Time(next.Int64).Sub(s.clock.Now())))
}

// due is one claimed enrolment with what running its step needs.
type due struct {
	id, scenarioID, friendID int64
	channelID, lineUserID    string
	next, last               string
	anchor, lastAt, dueAt    time.Time
	replyToken               string
	replyExpires             time.Time
	following                bool
}

// RunDue runs one batch of due steps in one transaction: each step's messages are
// queued in the outbox, its actions applied and the enrolment advanced together, so a
// crash leaves a step either wholly done or not begun. Several instances share the work
// on PostgreSQL (SKIP LOCKED). It returns how many enrolments it advanced.
func (s *Service) RunDue(ctx context.Context) (int, error) {
	return s.runDue(ctx, s.cfg.BatchSize, false)
}

// runDue runs up to limit due steps in one transaction, the earliest due first unless
// fromLate.
func (s *Service) runDue(ctx context.Context, limit int, fromLate bool) (int, error) {
	var n int
	err := s.db.WriteTx(ctx, func(tx *store.Tx) error {
		// The commit need not wait for the disk: nothing it writes leaves the database
		// before a worker's claim of it commits (the dispatcher's, the rich menu
		// worker's), and that commit, waiting for the log up to itself, makes this one
		// durable first. A crash before then loses the batch whole, and its steps run
		// again.
		if err := tx.CommitWithoutFlush(ctx); err != nil {
			return fmt.Errorf("scenario: run: %w", err)
		}
		now := s.clock.Now()
		batch, err := s.claim(ctx, tx, now, limit, fromLate)
		if err != nil {
			return err
		}
		n = len(batch)
		r := &stepRun{s: s, tx: tx, now: now, scenarios: map[int64]*Scenario{}, accounts: map[string]account{},
			conds: map[stepID]*segment.Compiled{}, rendered: map[stepID][]json.RawMessage{}, touched: map[int64]bool{},
			moves: map[move][]int64{}, items: make([]delivery.Item, 0, len(batch))}
		for _, d := range batch {
			if err := r.advance(ctx, d); err != nil {
				return err
			}
		}
		return r.flush(ctx)
	})
	return n, err
}

func (s *Service) claim(ctx context.Context, tx *store.Tx, now time.Time, limit int, fromLate bool) ([]due, error) {
	order := ""
	if fromLate {
		order = " DESC"
	}
	lock := ""
	if tx.Dialect() == store.Postgres {
		lock = " FOR UPDATE OF e SKIP LOCKED" // the runs, not their friends
	}
	// The due index gives the order and the limit stops the walk; each friend is then
	// found by key (a nested loop, on both engines). A run waits for its friend's profile
	// for a moment after enrolment (a greeting says their name), and a disabled
	// scenario's runs wait until it is enabled.
	rows, err := tx.QueryContext(ctx, `SELECT e.id, e.scenario_id, e.friend_id, e.channel_id, e.next_step, e.last_step, e.anchor_at,
		e.last_step_at, e.due_at, e.reply_token, e.reply_expires_at, f.line_user_id, f.status
		FROM enrollments e JOIN friends f ON f.id = e.friend_id
		WHERE e.state = 'active' AND e.due_at <= ?
		AND e.scenario_id NOT IN (SELECT id FROM scenarios WHERE enabled = 0)
		AND NOT (f.profile_fetched_at IS NULL AND f.profile_due_at IS NOT NULL AND e.anchor_at > ?)
		ORDER BY e.due_at`+order+` LIMIT ?`+lock,
		store.Millis(now), store.Millis(now.Add(-s.cfg.ProfileWait)), limit)
	if err != nil {
		return nil, fmt.Errorf("scenario: claim: %w", err)
	}
	defer rows.Close()
	out := make([]due, 0, limit)
	for rows.Next() {
		var d due
		var anchor, dueAt int64
		var last, expires sql.NullInt64
		var status string
		if err := rows.Scan(&d.id, &d.scenarioID, &d.friendID, &d.channelID, &d.next, &d.last, &anchor, &last, &dueAt,
			&d.replyToken, &expires, &d.lineUserID, &status); err != nil {
			return nil, fmt.Errorf("scenario: claim: %w", err)
		}
		d.anchor, d.lastAt, d.dueAt, d.replyExpires = store.Time(anchor), store.NullTime(last), store.Time(dueAt), store.NullTime(expires)
		d.following = status == string(friend.Following)
		out = append(out, d)
	}
	return out, rows.Err()
}

// stepRun holds what one batch shares: scenarios, account settings, compiled conditions
// and messages that are the same for everyone.
type stepRun struct {
	s         *Service
	tx        *store.Tx
	now       time.Time
	scenarios map[int64]*Scenario
	accounts  map[string]account
	conds     map[stepID]*segment.Compiled
	rendered  map[stepID][]json.RawMessage
	// touched: friends whose data or runs an action changed in this batch; their later
	// enrolments are re-read, since an action may have stopped them.
	touched map[int64]bool

	// Writes gathered across the batch and made a few statements at a time: when many
	// friends reach the same step at once, their moves are identical but for the ID.
	items []delivery.Item
	moves map[move][]int64
}

// stepID names a step of a scenario, as a key built without allocating: looked up for
// every run of a batch.
type stepID struct {
	scenario int64
	step     string
}

// move is the change of one enrolment after a step, without its ID.
type move struct {
	state, next, last string
	lastAt, due       sql.NullInt64
	replyToken        string
}

func (r *stepRun) scenario(ctx context.Context, id int64) (*Scenario, error) {
	if sc, ok := r.scenarios[id]; ok {
		return sc, nil
	}
	sc, err := scanScenario(r.tx.QueryRowContext(ctx, "SELECT "+scenarioColumns+" FROM scenarios WHERE id = ?", id))
	if err != nil {
		return nil, fmt.Errorf("scenario %d: %w", id, err)
	}
	r.scenarios[id] = &sc
	return &sc, nil
}

func (r *stepRun) account(ctx context.Context, sc *Scenario) (account, error) {
	a, ok := r.accounts[sc.ChannelID]
	if !ok {
		var err error
		if a, err = loadAccount(ctx, r.tx, sc.ChannelID); err != nil {
			return account{}, err
		}
		r.accounts[sc.ChannelID] = a
	}
	return a.forScenario(&sc.Definition), nil
}

// advance runs the step an enrolment waits for, then schedules the next one.
func (r *stepRun) advance(ctx context.Context, d due) error {
	s := r.s
	if r.touched[d.friendID] {
		var state, next string
		if err := r.tx.QueryRowContext(ctx, "SELECT state, next_step FROM enrollments WHERE id = ?", d.id).Scan(&state, &next); err != nil {
			return fmt.Errorf("scenario: reread: %w", err)
		}
		if state != Active || next != d.next {
			return nil
		}
	}
	if !d.following {
		return s.stopRun(ctx, r.tx, d.id, d.friendID, StopBlocked)
	}
	sc, err := r.scenario(ctx, d.scenarioID)
	if err != nil {
		return err
	}
	def := &sc.Definition
	acct, err := r.account(ctx, sc)
	if err != nil {
		return err
	}
	i := slices.IndexFunc(def.Steps, func(st Step) bool { return st.Key == d.next })
	if i < 0 {
		// The step was deleted by an edit: go on after the last step the friend ran.
		from := 0
		if d.last != "" {
			if from = slices.IndexFunc(def.Steps, func(st Step) bool { return st.Key == d.last }) + 1; from == 0 {
				from = len(def.Steps) // neither is left: nothing can be placed
			}
		}
		p, err := s.plan(ctx, r.tx, acct, def, from, d.anchor, d.lastAt, d.friendID, r.now)
		if err != nil {
			return err
		}
		return r.moveTo(ctx, d, p, d.last, d.lastAt)
	}
	st := def.Steps[i]
	run := true
	if st.If != nil {
		key := stepID{sc.ID, st.Key}
		c, ok := r.conds[key]
		if !ok {
			if c, err = segment.Resolve(ctx, r.tx, sc.ChannelID, *st.If); err != nil {
				// A tag or field it names was deleted: the condition cannot hold.
				s.logger.Warn("scenario step condition unusable; step skipped", "scenario", sc.Key, "step", st.Key, "err", err)
			}
			r.conds[key] = c
		}
		run = false
		if c != nil {
			if run, err = c.Match(ctx, r.tx, d.friendID, r.now); err != nil {
				return err
			}
		}
	}
	replied, stopped := false, false
	if run {
		// Actions first, so that the step's messages see the fields it sets, and a run
		// its own action stops still sends the step that stopped it.
		if !st.Actions.empty() {
			// Actions may stop runs whose writes are still gathered: write them first.
			if err := r.flush(ctx); err != nil {
				return err
			}
			r.touched[d.friendID] = true
			if err := r.act(ctx, sc, st.Actions, d.friendID); err != nil {
				return err
			}
			var state string
			if err := r.tx.QueryRowContext(ctx, "SELECT state FROM enrollments WHERE id = ?", d.id).Scan(&state); err != nil {
				return err
			}
			stopped = state != Active // by a stop tag it added, or a scenario it started
		}
		if st.sends() {
			if replied, err = r.send(ctx, sc, st, d); err != nil {
				return err
			}
		}
	}
	if stopped {
		_, err := r.tx.ExecContext(ctx, "UPDATE enrollments SET last_step = ?, last_step_at = ? WHERE id = ?", st.Key, store.Millis(d.dueAt), d.id)
		return err
	}
	p, err := s.plan(ctx, r.tx, acct, def, i+1, d.anchor, d.dueAt, d.friendID, r.now)
	if err != nil {
		return err
	}
	if replied {
		d.replyToken = ""
	}
	return r.moveTo(ctx, d, p, st.Key, d.dueAt)
}

// moveTo records the step that ran (or was passed) and the next one.
func (r *stepRun) moveTo(ctx context.Context, d due, p planned, last string, lastAt time.Time) error {
	m := move{state: p.state(), next: p.key, last: last, lastAt: store.NullMillis(lastAt), due: p.dueArg(), replyToken: d.replyToken}
	r.moves[m] = append(r.moves[m], d.id)
	return nil
}

// flush writes the gathered deliveries and moves. A move applies only to a run still
// active: one stopped meanwhile (by an action in this batch) stays stopped.
func (r *stepRun) flush(ctx context.Context) error {
	if err := r.s.deliveries.EnqueueMany(ctx, r.tx, r.items); err != nil {
		return err
	}
	r.items = r.items[:0]
	wake := false
	for m, ids := range r.moves {
		// A run that stays active keeps its state column out of the statement: SQLite
		// rewrites the entries of every index on a column an UPDATE sets, changed or not.
		set, args := "", []any{}
		if m.state != Active {
			set, args = "state = ?, ", append(args, m.state)
		}
		args = append(args, m.next, m.last, m.lastAt, m.due, m.replyToken, store.Millis(r.now))
		for _, w := range idSets(r.tx.Dialect(), ids) {
			_, err := r.tx.ExecContext(ctx, `UPDATE enrollments SET `+set+`next_step = ?, last_step = ?, last_step_at = ?, due_at = ?,
				reply_token = ?, updated_at = ? WHERE state = 'active' AND id `+w.in, append(slices.Clip(args), w.args...)...)
			if err != nil {
				return fmt.Errorf("scenario: advance: %w", err)
			}
		}
		wake = wake || m.next != "" && m.due.Int64 <= store.Millis(r.now)
	}
	clear(r.moves)
	if wake {
		r.tx.AfterCommit(r.s.Notify)
	}
	return nil
}

// idSet is a condition on id for some IDs ("IN (...)"), with its arguments.
type idSet struct {
	in   string
	args []any
}

// idSets says "id is one of ids" in as few statements as the engine allows: PostgreSQL
// takes them all as one array, SQLite lists of up to 500.
func idSets(d store.Dialect, ids []int64) []idSet {
	if d == store.Postgres {
		return []idSet{{in: "= ANY(?::bigint[])", args: []any{ids}}}
	}
	var out []idSet
	for start := 0; start < len(ids); start += 500 {
		chunk := ids[start:min(start+500, len(ids))]
		args := make([]any, len(chunk))
		for i, id := range chunk {
			args[i] = id
		}
		out = append(out, idSet{in: "IN " + store.Placeholders(1, len(chunk)), args: args})
	}
	return out
}

// send renders the step's messages for the friend and queues them; the first step after
// an event that carried a reply token goes out as a reply while the token is fresh. A
// step that names a template sends the template as it reads now.
func (r *stepRun) send(ctx context.Context, sc *Scenario, st Step, d due) (replied bool, err error) {
	key := stepID{sc.ID, st.Key}
	msgs, same := r.rendered[key]
	if !same {
		tpl := message.Template{Messages: st.Messages}
		if st.Template != "" {
			t, err := template.Get(ctx, r.tx, sc.ChannelID, st.Template)
			if errors.Is(err, store.ErrNotFound) {
				// Deleting a template in use is refused; this is a race with that check
				// or a change made outside linestep. Skip the messages, not the friend.
				r.s.logger.Warn("scenario step's template is missing; messages skipped", "scenario", sc.Key, "step", st.Key, "template", st.Template)
				return false, nil
			}
			if err != nil {
				return false, err
			}
			tpl = t.Body
		}
		names := tpl.Variables()
		var vars message.MapVars
		if len(names) > 0 {
			if vars, err = r.s.friends.Vars(ctx, r.tx, d.friendID); err != nil {
				return false, err
			}
			if r.s.ExtraVars != nil {
				extra, err := r.s.ExtraVars(ctx, r.tx, sc.ChannelID, d.friendID, names, r.now)
				if err != nil {
					return false, err
				}
				for k, v := range extra {
					vars[k] = v
				}
			}
		}
		if msgs, err = tpl.Render(vars); err != nil {
			// Saved templates are validated; a value cannot make one invalid (Render
			// cuts to LINE's limits). Skip the messages rather than block the friend.
			r.s.logger.Warn("scenario step could not be rendered; messages skipped", "scenario", sc.Key, "step", st.Key, "err", err)
			return false, nil
		}
		if len(names) == 0 {
			r.rendered[key] = msgs
		}
	}
	it := delivery.Item{ChannelID: d.channelID, FriendID: d.friendID, LineUserID: d.lineUserID, Source: "scenario",
		SourceID: d.id, SourceRef: st.Key, Messages: msgs}
	if d.replyToken != "" && d.replyExpires.After(r.now) {
		it.ReplyToken, it.ReplyExpiresAt, replied = d.replyToken, d.replyExpires, true
	}
	if err := it.Check(); err != nil {
		r.s.logger.Warn("scenario step not sendable; messages skipped", "scenario", sc.Key, "step", st.Key, "err", err)
		return false, nil
	}
	r.items = append(r.items, it)
	return replied, nil
}

// act applies a step's actions. Tag and field changes go through the friend service, so
// they trigger scenarios and stop rules like any other change.
func (r *stepRun) act(ctx context.Context, sc *Scenario, a Actions, friendID int64) error {
	s, tx := r.s, r.tx
	for _, name := range a.AddTags {
		t, err := s.friends.CreateTag(ctx, tx, sc.ChannelID, name)
		if err != nil {
			return err
		}
		if _, err := s.friends.AddTag(ctx, tx, friendID, t.ID); err != nil {
			return err
		}
	}
	for _, name := range a.RemoveTags {
		t, err := s.friends.TagByName(ctx, tx, sc.ChannelID, name)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return err
		}
		if _, err := s.friends.RemoveTag(ctx, tx, friendID, t.ID); err != nil {
			return err
		}
	}
	for _, key := range sortedKeys(a.SetFields) {
		f, err := s.friends.FieldByKey(ctx, tx, sc.ChannelID, key)
		if errors.Is(err, store.ErrNotFound) {
			s.logger.Warn("scenario step sets a field that no longer exists", "scenario", sc.Key, "field", key)
			continue
		}
		if err != nil {
			return err
		}
		if _, err := s.friends.SetField(ctx, tx, friendID, f, a.SetFields[key]); err != nil {
			if errors.Is(err, friend.ErrInvalid) {
				s.logger.Warn("scenario step sets a value the field no longer takes", "scenario", sc.Key, "field", key)
				continue
			}
			if errors.Is(err, friend.ErrNoConsent) {
				// Not a reason to hold the friend's steps: the rest of the step stands.
				s.logger.Warn("scenario step sets a special field the friend has not consented to; value not set", "scenario", sc.Key, "field", key)
				continue
			}
			return err
		}
	}
	for _, key := range a.Stop {
		if err := s.Stop(ctx, tx, sc.ChannelID, friendID, key, "scenario:"+sc.Key); err != nil {
			return err
		}
	}
	for _, key := range a.Start {
		if _, err := s.Start(ctx, tx, sc.ChannelID, friendID, key); err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
	}
	if a.RichMenu != "" {
		if s.RichMenus == nil {
			// Not a reason to hold every friend's steps: the rest of the step stands.
			s.logger.Error("scenario step links a rich menu, but no rich menu service is set; link skipped", "scenario", sc.Key)
			return nil
		}
		menu := a.RichMenu
		if menu == RichMenuDefault {
			menu = ""
		}
		if err := s.RichMenus.Enqueue(ctx, tx, richmenu.Request{ChannelID: sc.ChannelID, FriendID: friendID, RichMenuID: menu,
			Source: "scenario:" + sc.Key}); err != nil {
			return err
		}
	}
	return nil
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
