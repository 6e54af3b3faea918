package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/linestep/linestep/internal/access"
	"github.com/linestep/linestep/internal/friend"
	"github.com/linestep/linestep/internal/idempotency"
	"github.com/linestep/linestep/internal/message"
	"github.com/linestep/linestep/internal/scenario"
	"github.com/linestep/linestep/internal/store"
)

// scenarioJSON is a saved scenario; the list leaves the definition out (steps can be
// long) and names its trigger instead.
type scenarioJSON struct {
	Key        string               `json:"key"`
	Name       string               `json:"name"`
	Enabled    bool                 `json:"enabled"`
	Version    int                  `json:"version"`
	Trigger    scenario.Trigger     `json:"trigger"`
	Definition *scenario.Definition `json:"definition,omitempty"`
	CreatedAt  *time.Time           `json:"created_at"`
	UpdatedAt  *time.Time           `json:"updated_at"`
}

func toScenarioJSON(sc scenario.Scenario, withDefinition bool) scenarioJSON {
	out := scenarioJSON{Key: sc.Key, Name: sc.Definition.Name, Enabled: sc.Enabled, Version: sc.Version,
		Trigger: sc.Definition.Trigger, CreatedAt: at(sc.CreatedAt), UpdatedAt: at(sc.UpdatedAt)}
	if withDefinition {
		out.Definition = &sc.Definition
	}
	return out
}

type enrolmentJSON struct {
	ID          int64      `json:"id"`
	ScenarioKey string     `json:"scenario_key"`
	State       string     `json:"state"`
	NextStep    string     `json:"next_step,omitempty"`
	LastStep    string     `json:"last_step,omitempty"`
	AnchorAt    *time.Time `json:"anchor_at"`
	LastStepAt  *time.Time `json:"last_step_at"`
	DueAt       *time.Time `json:"due_at"`
	Runs        int        `json:"runs"`
	StopReason  string     `json:"stop_reason,omitempty"`
}

func (a *API) scenarioRoutes() []route {
	return []route{
		{"GET", "/api/v1/channels/{ch}/scenarios", access.ScenariosRead, a.listScenarios},
		{"GET", "/api/v1/channels/{ch}/scenarios/{key}", access.ScenariosRead, a.getScenario},
		{"PUT", "/api/v1/channels/{ch}/scenarios/{key}", access.ScenariosWrite, a.putScenario},
		{"DELETE", "/api/v1/channels/{ch}/scenarios/{key}", access.ScenariosWrite, a.deleteScenario},
		{"POST", "/api/v1/channels/{ch}/scenarios/{key}/start", access.ScenariosWrite, a.startScenario},
		{"POST", "/api/v1/channels/{ch}/scenarios/{key}/stop", access.ScenariosWrite, a.stopScenario},
		{"GET", "/api/v1/channels/{ch}/friends/{id}/enrolments", access.ScenariosRead, a.friendEnrolments},
	}
}

var errNoScenario = notFound("scenario", "シナリオ")

func scenarioError(err error) error {
	if errors.Is(err, store.ErrNotFound) {
		return errNoScenario
	}
	return err
}

func (a *API) listScenarios(w http.ResponseWriter, r *http.Request, c *call) error {
	scs, err := a.cfg.Scenarios.List(r.Context(), c.channel)
	if err != nil {
		return err
	}
	out := make([]scenarioJSON, 0, len(scs))
	for _, sc := range scs {
		out = append(out, toScenarioJSON(sc, false))
	}
	writeJSON(w, http.StatusOK, map[string]any{"scenarios": out})
	return nil
}

func (a *API) getScenario(w http.ResponseWriter, r *http.Request, c *call) error {
	sc, err := a.cfg.Scenarios.Get(r.Context(), a.cfg.DB, c.channel, r.PathValue("key"))
	if err != nil {
		return scenarioError(err)
	}
	writeJSON(w, http.StatusOK, toScenarioJSON(sc, true))
	return nil
}

// putScenario creates (201) or replaces (200) a scenario. Problems come back with paths
// into the request body, in Japanese and English. Without "enabled", a new scenario is
// on and an existing one keeps its state.
func (a *API) putScenario(w http.ResponseWriter, r *http.Request, c *call) error {
	key := r.PathValue("key")
	if !scenario.ValidKey(key) {
		return invalidInput(Problem{Path: "key", EN: "a scenario key is lower-case letters, digits, _ and -, at most 64",
			JA: "キーは英小文字・数字・_・- で64文字以内にしてください"})
	}
	var req struct {
		Definition json.RawMessage `json:"definition"`
		Enabled    *bool           `json:"enabled"`
	}
	if err := decode(r, &req); err != nil {
		return err
	}
	if raw := bytes.TrimSpace(req.Definition); len(raw) == 0 || raw[0] != '{' {
		return invalidInput(Problem{Path: "definition", EN: "give the definition as a JSON object", JA: "definition を JSON オブジェクトで指定してください"})
	}
	def, err := scenario.ParseDefinition(req.Definition)
	if err != nil {
		if p, ok := jsonProblem(err, "definition"); ok {
			return invalidInput(p)
		}
		return invalidInput(Problem{Path: "definition", EN: "the definition is not of the expected form",
			JA: "definition の形が正しくありません"})
	}
	var saved scenario.Scenario
	status := http.StatusOK
	err = a.cfg.DB.WriteTx(r.Context(), func(tx *store.Tx) error {
		enabled := true
		status = http.StatusCreated
		old, err := a.cfg.Scenarios.Get(r.Context(), tx, c.channel, key)
		if err == nil {
			enabled, status = old.Enabled, http.StatusOK
		} else if !errors.Is(err, store.ErrNotFound) {
			return err
		}
		if req.Enabled != nil {
			enabled = *req.Enabled
		}
		saved, err = a.cfg.Scenarios.Save(r.Context(), tx, scenario.Scenario{ChannelID: c.channel, Key: key, Definition: def, Enabled: enabled})
		return err
	})
	var ps message.Problems
	if errors.Is(err, scenario.ErrInvalid) && errors.As(err, &ps) {
		out := make([]Problem, len(ps))
		for i, p := range ps {
			if p.Path != "key" {
				p.Path = strings.TrimSuffix("definition."+p.Path, ".")
			}
			out[i] = p
		}
		return invalidInput(out...)
	}
	if err != nil {
		return err
	}
	writeJSON(w, status, toScenarioJSON(saved, true))
	return nil
}

func (a *API) deleteScenario(w http.ResponseWriter, r *http.Request, c *call) error {
	key := r.PathValue("key")
	err := a.cfg.DB.WriteTx(r.Context(), func(tx *store.Tx) error {
		return a.cfg.Scenarios.Delete(r.Context(), tx, c.channel, key)
	})
	if err != nil {
		return scenarioError(err)
	}
	writeJSON(w, http.StatusOK, map[string]any{"key": key, "deleted": true})
	return nil
}

type friendRequest struct {
	FriendID int64 `json:"friend_id"`
}

// bodyFriend reads the body naming the friend a start or stop is for.
func (a *API) bodyFriend(r *http.Request, c *call) (friend.Friend, error) {
	var req friendRequest
	if err := decode(r, &req); err != nil {
		return friend.Friend{}, err
	}
	if req.FriendID <= 0 {
		return friend.Friend{}, invalidInput(Problem{Path: "friend_id", EN: "give the friend's ID", JA: "友だちの ID を指定してください"})
	}
	f, err := a.cfg.Friends.Get(r.Context(), c.channel, req.FriendID)
	if errors.Is(err, store.ErrNotFound) {
		return friend.Friend{}, notFound("friend", "友だち")
	}
	return f, err
}

// startScenario enrols a friend by hand. What the scenario cannot do is a 409 saying
// why; "started": false means the friend is in it already or its re-entry rule says no.
func (a *API) startScenario(w http.ResponseWriter, r *http.Request, c *call) error {
	f, err := a.bodyFriend(r, c)
	if err != nil {
		return err
	}
	key := r.PathValue("key")
	// A repeat after a timeout must not enrol the friend again: a scenario that may be
	// entered again after it ended would greet them twice.
	idem, err := idempotentOf(r, c, "POST /api/v1/channels/{ch}/scenarios/{key}/start", map[string]int64{"friend_id": f.ID})
	if err != nil {
		return err
	}
	var answer *idempotency.Answer
	replayed := false
	err = a.cfg.DB.WriteTx(r.Context(), func(tx *store.Tx) error {
		first, err := idem.claim(r.Context(), tx, a.cfg.Clock.Now())
		if err != nil || first != nil {
			answer, replayed = first, first != nil
			return err
		}
		sc, err := a.cfg.Scenarios.Get(r.Context(), tx, c.channel, key)
		if err != nil {
			return scenarioError(err)
		}
		if !sc.Enabled {
			return conflict("scenario_disabled", "the scenario is turned off", "シナリオが停止中です")
		}
		if f.Status != friend.Following {
			return conflict("not_following", "the friend does not follow the account: nothing could be sent",
				"この友だちはアカウントを友だち追加していないため、送信できません")
		}
		started, err := a.cfg.Scenarios.Start(r.Context(), tx, c.channel, f.ID, key)
		if err != nil {
			return err
		}
		answer, err = idem.answer(r.Context(), tx, http.StatusOK, map[string]any{"friend_id": f.ID, "key": key, "started": started})
		return err
	})
	if err != nil {
		return err
	}
	writeAnswer(w, answer, replayed)
	return nil
}

// stopScenario ends a friend's run; "stopped": false means there was none running.
func (a *API) stopScenario(w http.ResponseWriter, r *http.Request, c *call) error {
	f, err := a.bodyFriend(r, c)
	if err != nil {
		return err
	}
	key := r.PathValue("key")
	var stopped bool
	err = a.cfg.DB.WriteTx(r.Context(), func(tx *store.Tx) error {
		if _, err := a.cfg.Scenarios.Get(r.Context(), tx, c.channel, key); err != nil {
			return scenarioError(err)
		}
		es, err := a.cfg.Scenarios.Enrolments(r.Context(), tx, f.ID)
		if err != nil {
			return err
		}
		for _, e := range es {
			stopped = stopped || (e.ScenarioKey == key && e.State == scenario.Active)
		}
		return a.cfg.Scenarios.Stop(r.Context(), tx, c.channel, f.ID, key, scenario.StopManual)
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"friend_id": f.ID, "key": key, "stopped": stopped})
	return nil
}

func (a *API) friendEnrolments(w http.ResponseWriter, r *http.Request, c *call) error {
	f, err := a.friend(r, c)
	if err != nil {
		return err
	}
	es, err := a.cfg.Scenarios.Enrolments(r.Context(), a.cfg.DB, f.ID)
	if err != nil {
		return err
	}
	out := make([]enrolmentJSON, 0, len(es))
	for _, e := range es {
		out = append(out, enrolmentJSON{ID: e.ID, ScenarioKey: e.ScenarioKey, State: e.State, NextStep: e.NextStep, LastStep: e.LastStep,
			AnchorAt: at(e.AnchorAt), LastStepAt: at(e.LastStepAt), DueAt: at(e.DueAt), Runs: e.Runs, StopReason: e.StopReason})
	}
	writeJSON(w, http.StatusOK, map[string]any{"enrolments": out})
	return nil
}
