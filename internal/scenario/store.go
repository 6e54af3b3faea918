package scenario

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/linestep/linestep/internal/delivery"
	"github.com/linestep/linestep/internal/friend"
	"github.com/linestep/linestep/internal/keyword"
	"github.com/linestep/linestep/internal/message"
	"github.com/linestep/linestep/internal/segment"
	"github.com/linestep/linestep/internal/store"
	"github.com/linestep/linestep/internal/template"
)

// Scenario is a saved scenario.
type Scenario struct {
	ID         int64
	ChannelID  string
	Key        string
	Definition Definition
	Enabled    bool // a disabled scenario enrols nobody, and its enrolments wait
	Version    int  // counts saves
	CreatedAt  time.Time
	UpdatedAt  time.Time
}

// ErrInvalid wraps every validation failure; errors.As finds the Problems.
var ErrInvalid = errors.New("scenario: invalid")

type invalidError struct{ ps Problems }

func (e *invalidError) Error() string   { return "scenario: invalid: " + e.ps.Error() }
func (e *invalidError) Unwrap() []error { return []error{ErrInvalid, e.ps} }

func invalid(ps Problems) error { return &invalidError{ps: ps} }

func keyProblem(key string) Problems {
	return Problems{{Path: "key", JA: "キーは英小文字・数字・_・- で64文字以内にしてください", EN: "not a valid scenario key: " + key}}
}

func notFound(key string) error { return fmt.Errorf("scenario %q: %w", key, store.ErrNotFound) }

// Save creates or updates one scenario; see SaveAll.
func (s *Service) Save(ctx context.Context, tx *store.Tx, sc Scenario) (Scenario, error) {
	out, err := s.SaveAll(ctx, tx, []Scenario{sc})
	if err != nil {
		return Scenario{}, err
	}
	return out[0], nil
}

// SaveAll creates or updates scenarios of one channel by key, then checks what they
// refer to: tags (created when missing), fields (must exist; timing fields must be
// dates, set values must fit the field) and scenarios (must exist after the save, so
// scenarios saved together may refer to each other). Friends already enrolled carry on
// as the package comment describes.
func (s *Service) SaveAll(ctx context.Context, tx *store.Tx, scs []Scenario) ([]Scenario, error) {
	now := store.Millis(s.clock.Now())
	out := make([]Scenario, 0, len(scs))
	for _, sc := range scs {
		if !ValidKey(sc.Key) {
			return nil, invalid(keyProblem(sc.Key))
		}
		if ps := sc.Definition.Validate(); ps != nil {
			return nil, fmt.Errorf("%s: %w", sc.Key, invalid(ps))
		}
		def, err := json.Marshal(sc.Definition)
		if err != nil {
			return nil, fmt.Errorf("scenario: encode %s: %w", sc.Key, err)
		}
		tv := triggerValue(sc.Definition.Trigger)
		enabled := 0
		if sc.Enabled {
			enabled = 1
		}
		err = tx.QueryRowContext(ctx, `INSERT INTO scenarios (channel_id, key, name, definition, trigger_type, trigger_value, enabled, version, created_at, updated_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, 1, ?, ?)
			ON CONFLICT (channel_id, key) DO UPDATE SET name = excluded.name, definition = excluded.definition,
				trigger_type = excluded.trigger_type, trigger_value = excluded.trigger_value, enabled = excluded.enabled,
				version = scenarios.version + 1, updated_at = excluded.updated_at
			RETURNING id, version, created_at`,
			sc.ChannelID, sc.Key, sc.Definition.Name, string(def), sc.Definition.Trigger.Type, tv, enabled, now, now).
			Scan(&sc.ID, &sc.Version, &now)
		if err != nil {
			return nil, fmt.Errorf("scenario: save %s: %w", sc.Key, err)
		}
		sc.CreatedAt, sc.UpdatedAt = store.Time(now), s.clock.Now()
		now = store.Millis(s.clock.Now())
		out = append(out, sc)
	}
	for _, sc := range out {
		if err := s.checkReferences(ctx, tx, sc); err != nil {
			return nil, fmt.Errorf("%s: %w", sc.Key, err)
		}
	}
	return out, nil
}

// triggerValue is the indexed part of a trigger: what an event is looked up by.
func triggerValue(t Trigger) string {
	switch t.Type {
	case TriggerTag:
		return t.Tag
	case TriggerField:
		return t.Field
	case TriggerKeyword:
		return keyword.Normalize(t.Value)
	case TriggerPostback:
		return t.Value
	}
	return ""
}

func (s *Service) checkReferences(ctx context.Context, tx *store.Tx, sc Scenario) error {
	d := sc.Definition
	var ps Problems
	tags := slices.Concat(d.Stop.Tags)
	if d.Trigger.Type == TriggerTag {
		tags = append(tags, d.Trigger.Tag)
	}
	fields := map[string]string{} // key -> path
	if d.Trigger.Type == TriggerField {
		fields[d.Trigger.Field] = "trigger.field"
	}
	scenarios := slices.Concat(d.Stop.Scenarios)
	for i, st := range d.Steps {
		path := fmt.Sprintf("steps[%d]", i)
		tags = append(tags, st.Actions.AddTags...)
		tags = append(tags, st.Actions.RemoveTags...)
		scenarios = append(scenarios, st.Actions.Start...)
		scenarios = append(scenarios, st.Actions.Stop...)
		if st.Timing.Field != "" {
			f, err := s.friends.FieldByKey(ctx, tx, sc.ChannelID, st.Timing.Field)
			switch {
			case errors.Is(err, store.ErrNotFound):
				ps = append(ps, Problem{Path: path + ".timing.field", JA: "項目「" + st.Timing.Field + "」がありません", EN: "no field " + st.Timing.Field})
			case err != nil:
				return err
			case f.Type != friend.DateField:
				ps = append(ps, Problem{Path: path + ".timing.field", JA: "日付の項目を指定してください", EN: "must be a date field"})
			}
		}
		for key, v := range st.Actions.SetFields {
			f, err := s.friends.FieldByKey(ctx, tx, sc.ChannelID, key)
			switch {
			case errors.Is(err, store.ErrNotFound):
				ps = append(ps, Problem{Path: path + ".actions.set_fields." + key, JA: "項目「" + key + "」がありません", EN: "no field " + key})
			case err != nil:
				return err
			default:
				if _, err := f.CheckValue(v); err != nil {
					ps = append(ps, Problem{Path: path + ".actions.set_fields." + key, JA: "項目の値が正しくありません", EN: err.Error()})
				}
			}
		}
		if st.If != nil {
			tags = append(tags, conditionTags(*st.If)...)
		}
		if s.CheckVars != nil && len(st.Messages) > 0 {
			if err := s.CheckVars(ctx, tx, sc.ChannelID, message.Template{Messages: st.Messages}.Variables()); err != nil {
				ps = append(ps, Problem{Path: path + ".messages", JA: "メッセージの変数が正しくありません（クーポンがありません）", EN: err.Error()})
			}
		}
		if st.Template != "" {
			// Use holds the template on PostgreSQL until this save commits, so that a
			// delete running meanwhile waits, then sees this scenario and is refused.
			t, err := template.Use(ctx, tx, sc.ChannelID, st.Template)
			switch {
			case errors.Is(err, store.ErrNotFound):
				ps = append(ps, Problem{Path: path + ".template",
					JA: fmt.Sprintf("ステップ「%s」: テンプレート「%s」がありません。先にテンプレートを作成してください", st.Key, st.Template),
					EN: fmt.Sprintf("step %q: there is no template %q; create it first", st.Key, st.Template)})
			case err != nil:
				return err
			case s.CheckVars != nil:
				if err := s.CheckVars(ctx, tx, sc.ChannelID, t.Body.Variables()); err != nil {
					ps = append(ps, Problem{Path: path + ".template", JA: "テンプレートの変数が正しくありません（クーポンがありません）", EN: err.Error()})
				}
			}
		}
	}
	for key, path := range fields {
		if _, err := s.friends.FieldByKey(ctx, tx, sc.ChannelID, key); errors.Is(err, store.ErrNotFound) {
			ps = append(ps, Problem{Path: path, JA: "項目「" + key + "」がありません", EN: "no field " + key})
		} else if err != nil {
			return err
		}
	}
	// Tags are labels: naming one creates it (a condition on a tag nobody has yet is
	// valid). This runs before conditions are resolved below.
	for _, name := range tags {
		if _, err := s.friends.CreateTag(ctx, tx, sc.ChannelID, name); err != nil {
			ps = append(ps, Problem{Path: "tags", JA: "タグ名が正しくありません", EN: err.Error()})
		}
	}
	for i, st := range d.Steps {
		if st.If == nil {
			continue
		}
		if _, err := segment.Resolve(ctx, tx, sc.ChannelID, *st.If); err != nil {
			ps = append(ps, Problem{Path: fmt.Sprintf("steps[%d].if", i), JA: "条件が正しくありません", EN: err.Error()})
		}
	}
	for _, key := range scenarios {
		var id int64
		err := tx.QueryRowContext(ctx, "SELECT id FROM scenarios WHERE channel_id = ? AND key = ?", sc.ChannelID, key).Scan(&id)
		if errors.Is(err, sql.ErrNoRows) {
			ps = append(ps, Problem{Path: "scenarios", JA: "シナリオ「" + key + "」がありません", EN: "no scenario " + key})
		} else if err != nil {
			return err
		}
	}
	if ps != nil {
		return invalid(ps)
	}
	return nil
}

const scenarioColumns = "id, channel_id, key, definition, enabled, version, created_at, updated_at"

// scenarioRow receives scenarioColumns, alone or as part of a join.
type scenarioRow struct {
	sc               Scenario
	def              string
	enabled          int
	created, updated int64
}

func (r *scenarioRow) dest() []any {
	return []any{&r.sc.ID, &r.sc.ChannelID, &r.sc.Key, &r.def, &r.enabled, &r.sc.Version, &r.created, &r.updated}
}

func (r *scenarioRow) decode() (Scenario, error) {
	sc := r.sc
	if err := json.Unmarshal([]byte(r.def), &sc.Definition); err != nil {
		return Scenario{}, fmt.Errorf("scenario %s: stored definition: %w", sc.Key, err)
	}
	sc.Enabled = r.enabled != 0
	sc.CreatedAt, sc.UpdatedAt = store.Time(r.created), store.Time(r.updated)
	return sc, nil
}

func scanScenario(row interface{ Scan(...any) error }) (Scenario, error) {
	var r scenarioRow
	if err := row.Scan(r.dest()...); err != nil {
		return Scenario{}, err
	}
	return r.decode()
}

// Get returns a channel's scenario by key.
func (s *Service) Get(ctx context.Context, q store.Querier, channelID, key string) (Scenario, error) {
	sc, err := scanScenario(q.QueryRowContext(ctx, "SELECT "+scenarioColumns+" FROM scenarios WHERE channel_id = ? AND key = ?", channelID, key))
	if errors.Is(err, sql.ErrNoRows) {
		return Scenario{}, notFound(key)
	}
	return sc, err
}

// List returns a channel's scenarios by key.
func (s *Service) List(ctx context.Context, channelID string) ([]Scenario, error) {
	return s.query(ctx, s.db, "WHERE channel_id = ? ORDER BY key", channelID)
}

func (s *Service) query(ctx context.Context, q store.Querier, where string, args ...any) ([]Scenario, error) {
	rows, err := q.QueryContext(ctx, "SELECT "+scenarioColumns+" FROM scenarios "+where, args...)
	if err != nil {
		return nil, fmt.Errorf("scenario: list: %w", err)
	}
	defer rows.Close()
	var out []Scenario
	for rows.Next() {
		sc, err := scanScenario(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, sc)
	}
	return out, rows.Err()
}

// SetEnabled turns a scenario on or off. Off: nobody new is enrolled and the friends in
// it wait (their steps run, late, when it is turned on again).
func (s *Service) SetEnabled(ctx context.Context, tx *store.Tx, channelID, key string, on bool) error {
	v := 0
	if on {
		v = 1
	}
	res, err := tx.ExecContext(ctx, "UPDATE scenarios SET enabled = ?, updated_at = ? WHERE channel_id = ? AND key = ?",
		v, store.Millis(s.clock.Now()), channelID, key)
	if err != nil {
		return fmt.Errorf("scenario: enable: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return notFound(key)
	}
	if on {
		tx.AfterCommit(s.Notify)
	}
	return nil
}

// Delete removes a scenario with its enrolments; what it had queued and not yet sent is
// cancelled.
func (s *Service) Delete(ctx context.Context, tx *store.Tx, channelID, key string) error {
	sc, err := s.Get(ctx, tx, channelID, key)
	if err != nil {
		return err
	}
	// 'pending' is written out so that both engines read the deliveries through the index
	// of pending ones (a partial index is used only for a predicate known when planning).
	if _, err := tx.ExecContext(ctx, `UPDATE deliveries SET state = ?, last_error = 'scenario deleted'
		WHERE state = 'pending' AND source = 'scenario' AND source_id IN (SELECT id FROM enrollments WHERE scenario_id = ?)`,
		delivery.Cancelled, sc.ID); err != nil {
		return fmt.Errorf("scenario: delete: %w", err)
	}
	if _, err := tx.ExecContext(ctx, "DELETE FROM scenarios WHERE id = ?", sc.ID); err != nil {
		return fmt.Errorf("scenario: delete: %w", err)
	}
	return nil
}

// conditionTags lists the tags a condition names.
func conditionTags(f segment.Filter) []string {
	var out []string
	if f.Tag != "" {
		out = append(out, f.Tag)
	}
	for _, sub := range slices.Concat(f.All, f.Any) {
		out = append(out, conditionTags(sub)...)
	}
	if f.Not != nil {
		out = append(out, conditionTags(*f.Not)...)
	}
	return out
}
