package web

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/goccy/go-yaml"

	"github.com/linestep/linestep/internal/access"
	"github.com/linestep/linestep/internal/audit"
	"github.com/linestep/linestep/internal/scenario"
	"github.com/linestep/linestep/internal/segment"
	"github.com/linestep/linestep/internal/store"
	"github.com/linestep/linestep/internal/template"
)

// The scenarios area: the list, each scenario as a timeline a shop owner can read,
// switching one on and off, starting it for a friend, and editing its YAML.

func (c *Console) scenarioRoutes(mux *http.ServeMux) {
	base := "/console/channels/{channelID}/scenarios"
	c.handle(mux, "GET", base, access.ScenariosRead, c.scenarioList)
	c.handle(mux, "GET", base+"/new", access.ScenariosWrite, c.scenarioNew)
	c.handle(mux, "POST", base, access.ScenariosWrite, c.scenarioCreate)
	c.handle(mux, "GET", base+"/{key}", access.ScenariosRead, c.scenarioDetail)
	c.handle(mux, "GET", base+"/{key}/edit", access.ScenariosWrite, c.scenarioEdit)
	c.handle(mux, "POST", base+"/{key}", access.ScenariosWrite, c.scenarioUpdate)
	c.handle(mux, "POST", base+"/{key}/enabled", access.ScenariosWrite, c.scenarioEnable)
	c.handle(mux, "POST", base+"/{key}/start", access.ScenariosWrite, c.scenarioStart)
	// Auto-replies are registered here: the list of areas in console.go is not this
	// file's to change, and they belong with scenarios (both answer friends by themselves).
	c.autoreplyRoutes(mux)
}

type scnRow struct {
	Key, Name, Trigger string
	Enabled            bool
	Steps              int
	Census             scenario.Census
}

func (c *Console) scenarioList(w http.ResponseWriter, r *http.Request, q *request) {
	list, err := c.Scenarios.List(r.Context(), q.Channel.ID)
	if err != nil {
		c.fail(w, r, q, err)
		return
	}
	census, err := c.Scenarios.Censuses(r.Context(), q.Channel.ID)
	if err != nil {
		c.fail(w, r, q, err)
		return
	}
	rows := make([]scnRow, 0, len(list))
	for _, sc := range list {
		rows = append(rows, scnRow{Key: sc.Key, Name: sc.Definition.Name, Trigger: triggerWords(q.Lang, sc.Definition.Trigger),
			Enabled: sc.Enabled, Steps: len(sc.Definition.Steps), Census: census[sc.Key]})
	}
	c.render(w, r, http.StatusOK, "scenarios", "scn.title", q, map[string]any{"Scenarios": rows})
}

// stepView is one step of the timeline.
type scnStep struct {
	Number    int
	Key       string
	When      string
	Condition string
	Template  string // the template the step sends, in words; its messages are Messages
	Messages  []msgPreview
	Actions   []string
	Waiting   int
}

type scnPage struct {
	Key, Name   string
	Enabled     bool
	Version     int
	Updated     string
	Trigger     string
	Reentry     string
	QuietHours  string
	Stops       []string
	Steps       []scnStep
	Census      scenario.Census
	Notice      string
	StartFailed bool
}

func (c *Console) scenarioDetail(w http.ResponseWriter, r *http.Request, q *request) {
	ctx := r.Context()
	sc, err := c.Scenarios.Get(ctx, c.DB, q.Channel.ID, r.PathValue("key"))
	if err != nil {
		c.fail(w, r, q, err)
		return
	}
	waiting, err := c.Scenarios.Waiting(ctx, sc.ID)
	if err != nil {
		c.fail(w, r, q, err)
		return
	}
	census, err := c.Scenarios.Censuses(ctx, q.Channel.ID)
	if err != nil {
		c.fail(w, r, q, err)
		return
	}
	settings, err := c.Channels.Settings(ctx, q.Channel.ID)
	if err != nil {
		c.fail(w, r, q, err)
		return
	}
	tpls, err := template.List(ctx, c.DB, q.Channel.ID)
	if err != nil {
		c.fail(w, r, q, err)
		return
	}
	lang, d := q.Lang, sc.Definition
	page := scnPage{Key: sc.Key, Name: d.Name, Enabled: sc.Enabled, Version: sc.Version,
		Updated: zoneTime(lang, channelZone(q.Channel.TimeZone), sc.UpdatedAt), Trigger: triggerWords(lang, d.Trigger),
		Reentry: reentryWords(lang, d), QuietHours: quietWords(lang, d.QuietHours, settings.QuietHours),
		Stops: stopWords(lang, d.Stop), Census: census[sc.Key]}
	for i, st := range d.Steps {
		v := scnStep{Number: i + 1, Key: st.Key, When: timingWords(lang, d.Trigger.Type, i, st.Timing),
			Messages: msgPreviews(lang, st.Messages), Actions: actionWords(lang, st.Actions), Waiting: waiting[st.Key]}
		if st.If != nil {
			v.Condition = segNodeWords(lang, *st.If, true) // a step runs for followers only: no rider
		}
		if st.Template != "" {
			// The step sends the template as it reads when it runs: show it as it reads now.
			i := slices.IndexFunc(tpls, func(t template.Template) bool { return t.Key == st.Template })
			if i < 0 {
				v.Template = fmt.Sprintf(translate(lang, "scn.tpl.missing"), st.Template)
			} else {
				v.Template = fmt.Sprintf(translate(lang, "scn.tpl"), st.Template)
				v.Messages = msgPreviews(lang, tpls[i].Body.Messages)
			}
		}
		page.Steps = append(page.Steps, v)
	}
	switch r.URL.Query().Get("notice") {
	case "saved":
		page.Notice = translate(lang, "ct.saved")
	case "started":
		page.Notice = translate(lang, "scn.start.done")
	case "notstarted":
		page.Notice, page.StartFailed = translate(lang, "scn.start.not"), true
	}
	title := d.Name
	if title == "" {
		title = sc.Key
	}
	// render looks the title up as a key; a name is not one, so it shows as written.
	c.render(w, r, http.StatusOK, "scenario", title, q, page)
}

// scenarioEditPage is the YAML editor.
type scnEditPage struct {
	New      bool
	Key      string
	YAML     string
	Enabled  bool
	Problems []formProblem
}

const scenarioExample = `name: 友だち追加のあいさつ
trigger: {type: follow}
steps:
  - key: greet
    messages:
      - {type: text, text: "{{display_name|お客様}}さん、友だち追加ありがとうございます！"}
  - key: day1
    timing: {day: 1, at: "10:00"}
    messages:
      - {type: text, text: 翌日のご案内です}
`

func (c *Console) scenarioNew(w http.ResponseWriter, r *http.Request, q *request) {
	c.render(w, r, http.StatusOK, "scenario_edit", "scn.new", q, scnEditPage{New: true, YAML: scenarioExample})
}

func (c *Console) scenarioEdit(w http.ResponseWriter, r *http.Request, q *request) {
	sc, err := c.Scenarios.Get(r.Context(), c.DB, q.Channel.ID, r.PathValue("key"))
	if err != nil {
		c.fail(w, r, q, err)
		return
	}
	text, err := definitionYAML(sc.Definition)
	if err != nil {
		c.fail(w, r, q, err)
		return
	}
	c.render(w, r, http.StatusOK, "scenario_edit", "scn.edit", q, scnEditPage{Key: sc.Key, YAML: text, Enabled: sc.Enabled})
}

// definitionYAML writes a definition as staff edit it. It goes through JSON, the form
// the database keeps, so that flex contents come out as mappings.
func definitionYAML(d scenario.Definition) (string, error) {
	j, err := json.Marshal(d)
	if err != nil {
		return "", err
	}
	b, err := yaml.JSONToYAML(j)
	if err != nil {
		return "", fmt.Errorf("web: scenario as YAML: %w", err)
	}
	return string(b), nil
}

func (c *Console) scenarioCreate(w http.ResponseWriter, r *http.Request, q *request) {
	c.saveScenario(w, r, q, true, strings.TrimSpace(r.PostFormValue("key")))
}

func (c *Console) scenarioUpdate(w http.ResponseWriter, r *http.Request, q *request) {
	c.saveScenario(w, r, q, false, r.PathValue("key"))
}

func (c *Console) saveScenario(w http.ResponseWriter, r *http.Request, q *request, isNew bool, key string) {
	ctx := r.Context()
	page := scnEditPage{New: isNew, Key: key, YAML: strings.ReplaceAll(r.PostFormValue("yaml"), "\r\n", "\n"),
		Enabled: r.PostFormValue("enabled") == "1"}
	title := "scn.edit"
	if isNew {
		title = "scn.new"
	}
	again := func(ps []formProblem) {
		page.Problems = ps
		c.render(w, r, http.StatusUnprocessableEntity, "scenario_edit", title, q, page)
	}
	if !scenario.ValidKey(key) {
		again(formProblemf(q.Lang, "key", "scn.key.bad"))
		return
	}
	def, err := scenario.ParseDefinition([]byte(page.YAML))
	if err != nil {
		again(formProblemf(q.Lang, "yaml", "scn.yaml.bad", err.Error()))
		return
	}
	err = c.DB.WriteTx(ctx, func(tx *store.Tx) error {
		enabled := page.Enabled
		old, err := c.Scenarios.Get(ctx, tx, q.Channel.ID, key)
		switch {
		case err == nil && isNew:
			return errKeyTaken
		case err == nil:
			enabled = old.Enabled // the editor changes the definition; the switch is on the page
		case !errors.Is(err, store.ErrNotFound):
			return err
		case !isNew:
			return err
		}
		if _, err := c.Scenarios.Save(ctx, tx, scenario.Scenario{ChannelID: q.Channel.ID, Key: key, Definition: def, Enabled: enabled}); err != nil {
			return err
		}
		return c.record(ctx, tx, r, q, audit.Record{Action: "scenario.update", Subject: "scenario:" + key})
	})
	c.afterSave(w, r, q, err, again, inChannel(q, "/scenarios/"+url.PathEscape(key)+"?notice=saved"))
}

func (c *Console) scenarioEnable(w http.ResponseWriter, r *http.Request, q *request) {
	key, on := r.PathValue("key"), r.PostFormValue("on") == "1"
	action := audit.Action("scenario.disable")
	if on {
		action = "scenario.enable"
	}
	err := c.DB.WriteTx(r.Context(), func(tx *store.Tx) error {
		if err := c.Scenarios.SetEnabled(r.Context(), tx, q.Channel.ID, key, on); err != nil {
			return err
		}
		return c.record(r.Context(), tx, r, q, audit.Record{Action: action, Subject: "scenario:" + key})
	})
	if err != nil {
		c.fail(w, r, q, err)
		return
	}
	http.Redirect(w, r, inChannel(q, "/scenarios/"+url.PathEscape(key)), http.StatusSeeOther)
}

func (c *Console) scenarioStart(w http.ResponseWriter, r *http.Request, q *request) {
	key := r.PathValue("key")
	friendID, err := strconv.ParseInt(strings.TrimSpace(r.PostFormValue("friend")), 10, 64)
	if err != nil || friendID <= 0 {
		http.Redirect(w, r, inChannel(q, "/scenarios/"+url.PathEscape(key)+"?notice=notstarted"), http.StatusSeeOther)
		return
	}
	var started bool
	err = c.DB.WriteTx(r.Context(), func(tx *store.Tx) error {
		var err error
		if started, err = c.Scenarios.Start(r.Context(), tx, q.Channel.ID, friendID, key); err != nil || !started {
			return err
		}
		return c.record(r.Context(), tx, r, q, audit.Record{Action: "scenario.start", Subject: audit.Subject("friend", friendID),
			Detail: map[string]string{"scenario": key}})
	})
	if err != nil {
		c.fail(w, r, q, err)
		return
	}
	notice := "notstarted"
	if started {
		notice = "started"
		c.Scenarios.Notify()
	}
	http.Redirect(w, r, inChannel(q, "/scenarios/"+url.PathEscape(key)+"?notice="+notice), http.StatusSeeOther)
}

// Words for a scenario's parts, as a shop owner reads them.

func triggerWords(lang string, t scenario.Trigger) string {
	tr := func(key string, args ...any) string { return fmt.Sprintf(translate(lang, key), args...) }
	switch t.Type {
	case scenario.TriggerFollow:
		s := tr("scn.trigger.follow")
		switch t.Refollow {
		case scenario.RefollowResume:
			s += tr("scn.refollow.resume")
		case scenario.RefollowIgnore:
			s += tr("scn.refollow.ignore")
		}
		return s
	case scenario.TriggerTag:
		return tr("scn.trigger.tag", t.Tag)
	case scenario.TriggerField:
		if t.Value != "" {
			return tr("scn.trigger.fieldvalue", t.Field, t.Value)
		}
		return tr("scn.trigger.field", t.Field)
	case scenario.TriggerKeyword:
		if t.Match == "contains" {
			return tr("scn.trigger.contains", t.Value)
		}
		return tr("scn.trigger.keyword", t.Value)
	case scenario.TriggerPostback:
		return tr("scn.trigger.postback", t.Value)
	case scenario.TriggerManual:
		return tr("scn.trigger.manual")
	case scenario.TriggerScenario:
		return tr("scn.trigger.scenario")
	}
	return t.Type
}

func reentryWords(lang string, d scenario.Definition) string {
	if d.Reentry == scenario.ReentryAfterEnd {
		return translate(lang, "scn.reentry.again")
	}
	return translate(lang, "scn.reentry.once")
}

// quietWords says when steps wait: the scenario's own quiet hours, else the channel's.
func quietWords(lang, own, channel string) string {
	switch {
	case own == "off":
		return translate(lang, "scn.quiet.off")
	case own != "":
		return fmt.Sprintf(translate(lang, "scn.quiet.own"), quietRange(own))
	case channel != "":
		return fmt.Sprintf(translate(lang, "scn.quiet.channel"), quietRange(channel))
	}
	return translate(lang, "scn.quiet.none")
}

func quietRange(s string) string {
	from, to, _ := strings.Cut(s, "-")
	return strings.TrimSpace(from) + "〜" + strings.TrimSpace(to)
}

func stopWords(lang string, s scenario.Stop) []string {
	out := []string{translate(lang, "scn.stop.block")}
	for _, t := range s.Tags {
		out = append(out, fmt.Sprintf(translate(lang, "scn.stop.tag"), t))
	}
	for _, k := range s.Scenarios {
		out = append(out, fmt.Sprintf(translate(lang, "scn.stop.scenario"), k))
	}
	return out
}

// timingWords says when step i runs: "友だち追加直後", "1日後 10:00", "next_visit の1日前 10:00".
func timingWords(lang, trigger string, i int, t scenario.Timing) string {
	tr := func(key string, args ...any) string { return fmt.Sprintf(translate(lang, key), args...) }
	start := tr("scn.when.start")
	if trigger == scenario.TriggerFollow {
		start = tr("scn.when.follow")
	}
	switch {
	case t.Day != nil:
		if *t.Day == 0 {
			return tr("scn.when.sameday", start, t.At)
		}
		return tr("scn.when.day", *t.Day, t.At)
	case t.Field != "":
		at := t.At
		if at == "" {
			at = "10:00"
		}
		switch {
		case t.Days < 0:
			return tr("scn.when.before", t.Field, -t.Days, at)
		case t.Days > 0:
			return tr("scn.when.after", t.Field, t.Days, at)
		}
		return tr("scn.when.on", t.Field, at)
	case t.After != 0 && (t.From == "start" || i == 0):
		return tr("scn.when.afterstart", start, spanWords(lang, t.After))
	case t.After != 0:
		return tr("scn.when.afterprev", spanWords(lang, t.After))
	case i == 0 || t.From == "start":
		return tr("scn.when.now", start)
	}
	return tr("scn.when.next")
}

// durationWords writes 1d12h as "1日12時間" or "1 day 12 hours".
func spanWords(lang string, d segment.Duration) string {
	s := d.String()
	var out []string
	for s != "" {
		i := 0
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		if i == 0 || i >= len(s) {
			return d.String()
		}
		n, _ := strconv.Atoi(s[:i])
		unit := "tm." + string(s[i])
		if lang == "en" && n != 1 {
			unit += "s"
		}
		out = append(out, fmt.Sprintf(translate(lang, unit), n))
		s = s[i+1:]
	}
	if lang == "en" {
		return strings.Join(out, " ")
	}
	return strings.Join(out, "")
}

func actionWords(lang string, a scenario.Actions) []string {
	var out []string
	list := func(key string, items []string) {
		if len(items) > 0 {
			out = append(out, fmt.Sprintf(translate(lang, key), strings.Join(items, translate(lang, "seg.comma"))))
		}
	}
	list("scn.act.addtags", a.AddTags)
	list("scn.act.removetags", a.RemoveTags)
	var sets []string
	for _, k := range slices.Sorted(maps.Keys(a.SetFields)) {
		sets = append(sets, k+" = "+a.SetFields[k])
	}
	list("scn.act.set", sets)
	list("scn.act.start", a.Start)
	list("scn.act.stop", a.Stop)
	switch a.RichMenu {
	case "":
	case scenario.RichMenuDefault:
		out = append(out, translate(lang, "scn.act.menudefault"))
	default:
		out = append(out, fmt.Sprintf(translate(lang, "scn.act.richmenu"), a.RichMenu))
	}
	return out
}
