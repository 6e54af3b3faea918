package web

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/goccy/go-yaml"

	"github.com/linestep/linestep/internal/access"
	"github.com/linestep/linestep/internal/audit"
	"github.com/linestep/linestep/internal/message"
	"github.com/linestep/linestep/internal/store"
	"github.com/linestep/linestep/internal/template"
)

// The templates area (named message templates), and what every page that shows or
// takes messages shares: the message form, the preview and the problem list.

func (c *Console) templateRoutes(mux *http.ServeMux) {
	c.handle(mux, "GET", "/console/channels/{channelID}/templates", access.TemplatesRead, c.templateList)
	c.handle(mux, "GET", "/console/channels/{channelID}/templates/new", access.TemplatesWrite, c.templateNew)
	c.handle(mux, "POST", "/console/channels/{channelID}/templates", access.TemplatesWrite, c.templateCreate)
	c.handle(mux, "GET", "/console/channels/{channelID}/templates/{key}", access.TemplatesRead, c.templateDetail)
	c.handle(mux, "POST", "/console/channels/{channelID}/templates/{key}", access.TemplatesWrite, c.templateUpdate)
	c.handle(mux, "POST", "/console/channels/{channelID}/templates/{key}/delete", access.TemplatesWrite, c.templateDelete)
}

// shownProblem is one thing to fix, in the member's language, with where it is.
type formProblem struct{ Path, Text string }

// problemsOf returns the problems an error carries (message.Problems anywhere in its
// chain) in lang, and whether it carried any.
func formProblems(lang string, err error) ([]formProblem, bool) {
	var ps message.Problems
	if !errors.As(err, &ps) {
		return nil, false
	}
	out := make([]formProblem, 0, len(ps))
	for _, p := range ps {
		text := p.JA
		if lang == "en" || text == "" {
			text = p.EN
		}
		out = append(out, formProblem{Path: p.Path, Text: text})
	}
	return out, true
}

// problem is a single problem of the console's own (not from a domain package).
func formProblemf(lang, path, key string, args ...any) []formProblem {
	return []formProblem{{Path: path, Text: fmt.Sprintf(translate(lang, key), args...)}}
}

// msgForm is the message part of a form as typed: one text, or messages in YAML for
// what the text box cannot say (stickers, images, flex, quick replies).
type messageForm struct {
	Lang string // for the labels of the form's partial
	Mode string // text | yaml
	Text string
	YAML string
}

// readMsgForm reads the message fields of a posted form.
func readMessageForm(r *http.Request, lang string) messageForm {
	f := messageForm{Lang: lang, Mode: r.PostFormValue("mode"), Text: r.PostFormValue("text"), YAML: r.PostFormValue("yaml")}
	if f.Mode != "yaml" {
		f.Mode = "text"
	}
	return f
}

// template turns the form into messages. Its problems say what to fix; a template
// that reads but breaks LINE's rules is returned for the domain's own check.
func (f messageForm) template(lang string) (message.Template, []formProblem) {
	if f.Mode == "yaml" {
		t, err := message.Parse([]byte(f.YAML))
		if err != nil {
			return message.Template{}, formProblemf(lang, "yaml", "pv.yaml.bad", err.Error())
		}
		return t, nil
	}
	text := strings.ReplaceAll(f.Text, "\r\n", "\n")
	if strings.TrimSpace(text) == "" {
		return message.Template{}, formProblemf(lang, "text", "pv.text.empty")
	}
	return message.Template{Messages: []message.Message{{Type: "text", Text: text}}}, nil
}

// formOf is the form showing saved messages: the text box when it can hold them.
func messageFormOf(t message.Template, lang string) messageForm {
	if len(t.Messages) == 1 && t.Messages[0].Type == "text" && len(t.Messages[0].QuickReply) == 0 {
		return messageForm{Lang: lang, Mode: "text", Text: t.Messages[0].Text}
	}
	b, err := yaml.Marshal(t)
	if err != nil {
		return messageForm{Lang: lang, Mode: "yaml"}
	}
	return messageForm{Lang: lang, Mode: "yaml", YAML: string(b)}
}

// preview is one message as the console shows it: its text (escaped by the template
// like everything else), or a summary of what cannot be shown as text.
type msgPreview struct {
	Kind    string // text | sticker | image | video | audio | location | flex | other
	Label   string // the kind, in the member's language
	Text    string
	Summary string
	Quick   []string // quick reply labels
}

// previews describes messages as written, variables left as {{name|fallback}}.
func msgPreviews(lang string, msgs []message.Message) []msgPreview {
	out := make([]msgPreview, 0, len(msgs))
	for _, m := range msgs {
		p := msgPreview{Kind: m.Type}
		switch m.Type {
		case "text":
			p.Text = m.Text
		case "sticker":
			p.Summary = m.PackageID + "/" + m.StickerID
		case "image", "video", "audio":
			p.Summary = m.OriginalContentURL
		case "location":
			p.Text, p.Summary = m.Title, m.Address
		case "flex":
			p.Text, p.Summary = m.AltText, msgFlexSummary(lang, m.Contents)
		default:
			p.Kind = "other"
		}
		for _, q := range m.QuickReply {
			p.Quick = append(p.Quick, q.Label)
		}
		p.Label = keyed(lang, "pv.kind.%s", p.Kind)
		out = append(out, p)
	}
	return out
}

// rendered describes messages as a friend with vars would receive them: variables
// replaced, fallbacks where a value is missing.
func msgRendered(lang string, t message.Template, vars message.Vars) []msgPreview {
	raws, err := t.Render(vars)
	if err != nil {
		return msgPreviews(lang, t.Messages) // invalid: shown as written, the problems say why
	}
	msgs := make([]message.Message, 0, len(raws))
	for _, raw := range raws {
		var w struct {
			message.Message
			QuickReply *struct {
				Items []struct {
					Action struct {
						Label string `json:"label"`
					} `json:"action"`
				} `json:"items"`
			} `json:"quickReply"`
		}
		if json.Unmarshal(raw, &w) != nil {
			continue
		}
		m := w.Message
		m.QuickReply = nil
		if w.QuickReply != nil {
			for _, it := range w.QuickReply.Items {
				m.QuickReply = append(m.QuickReply, message.QuickReplyItem{Label: it.Action.Label})
			}
		}
		msgs = append(msgs, m)
	}
	return msgPreviews(lang, msgs)
}

// flexSummary says what a flex message holds: a bubble, or a carousel of n.
func msgFlexSummary(lang string, raw json.RawMessage) string {
	var c struct {
		Type     string            `json:"type"`
		Contents []json.RawMessage `json:"contents"`
	}
	if json.Unmarshal(raw, &c) != nil {
		return translate(lang, "pv.flex")
	}
	if c.Type == "carousel" {
		return fmt.Sprintf(translate(lang, "pv.flex.carousel"), len(c.Contents))
	}
	return translate(lang, "pv.flex.bubble")
}

// summary is a one-line description of messages for lists.
func msgSummary(lang string, msgs []message.Message) string {
	for _, p := range msgPreviews(lang, msgs) {
		s := p.Text
		if s == "" {
			s = "[" + keyed(lang, "pv.kind.%s", p.Kind) + "]"
		}
		if r := []rune(strings.ReplaceAll(s, "\n", " ")); len(r) > 60 {
			s = string(r[:60]) + "…"
		}
		if len(msgs) > 1 {
			s += fmt.Sprintf(translate(lang, "pv.more"), len(msgs)-1)
		}
		return s
	}
	return ""
}

type tplRow struct {
	template.Template
	Summary string
	Updated string
}

func (c *Console) templateList(w http.ResponseWriter, r *http.Request, q *request) {
	list, err := template.List(r.Context(), c.DB, q.Channel.ID)
	if err != nil {
		c.fail(w, r, q, err)
		return
	}
	loc := channelZone(q.Channel.TimeZone)
	rows := make([]tplRow, 0, len(list))
	for _, t := range list {
		rows = append(rows, tplRow{Template: t, Summary: msgSummary(q.Lang, t.Body.Messages), Updated: zoneTime(q.Lang, loc, t.UpdatedAt)})
	}
	c.render(w, r, http.StatusOK, "templates", "tpl.title", q, map[string]any{"Templates": rows})
}

// templatePage is the data of the template page: the saved template with its preview,
// and the form (as typed when it came back with problems).
type tplPage struct {
	New      bool
	Key      string
	Name     string
	Form     messageForm
	Problems []formProblem
	Saved    bool
	Preview  []msgPreview
	Vars     []tplVar
}

type tplVar struct{ Name, Value string }

func (c *Console) templateNew(w http.ResponseWriter, r *http.Request, q *request) {
	c.render(w, r, http.StatusOK, "template", "tpl.new", q, tplPage{New: true, Form: messageForm{Lang: q.Lang, Mode: "text"}})
}

func (c *Console) templateDetail(w http.ResponseWriter, r *http.Request, q *request) {
	c.showTemplate(w, r, q, http.StatusOK, nil)
}

// showTemplate renders the template page, with problems of an action that was refused.
func (c *Console) showTemplate(w http.ResponseWriter, r *http.Request, q *request, status int, problems []formProblem) {
	t, err := template.Get(r.Context(), c.DB, q.Channel.ID, r.PathValue("key"))
	if err != nil {
		c.fail(w, r, q, err)
		return
	}
	// Staff try the variables with values of their own (?v.display_name=佐藤); the empty
	// ones show the fallback a friend without a value gets.
	vars := message.MapVars{}
	var shown []tplVar
	for _, name := range t.Body.Variables() {
		v := r.URL.Query().Get("v." + name)
		if v != "" {
			vars[name] = v
		}
		shown = append(shown, tplVar{Name: name, Value: v})
	}
	c.render(w, r, status, "template", "tpl.detail", q, tplPage{
		Key: t.Key, Name: t.Name, Form: messageFormOf(t.Body, q.Lang), Saved: r.URL.Query().Get("saved") == "1",
		Preview: msgRendered(q.Lang, t.Body, vars), Vars: shown, Problems: problems,
	})
}

func (c *Console) templateCreate(w http.ResponseWriter, r *http.Request, q *request) {
	c.saveTemplate(w, r, q, true, strings.TrimSpace(r.PostFormValue("key")))
}

func (c *Console) templateUpdate(w http.ResponseWriter, r *http.Request, q *request) {
	c.saveTemplate(w, r, q, false, r.PathValue("key"))
}

func (c *Console) saveTemplate(w http.ResponseWriter, r *http.Request, q *request, isNew bool, key string) {
	page := tplPage{New: isNew, Key: key, Name: strings.TrimSpace(r.PostFormValue("name")), Form: readMessageForm(r, q.Lang)}
	title := "tpl.detail"
	if isNew {
		title = "tpl.new"
	}
	again := func(ps []formProblem) {
		page.Problems = ps
		c.render(w, r, http.StatusUnprocessableEntity, "template", title, q, page)
	}
	body, ps := page.Form.template(q.Lang)
	if ps != nil {
		again(ps)
		return
	}
	if bad := template.Check(key, page.Name, body); bad != nil {
		ps, _ := formProblems(q.Lang, bad)
		again(ps)
		return
	}
	err := c.DB.WriteTx(r.Context(), func(tx *store.Tx) error {
		if isNew {
			if _, err := template.Get(r.Context(), tx, q.Channel.ID, key); err == nil {
				return errKeyTaken
			}
		}
		if _, err := template.Save(r.Context(), tx, q.Channel.ID, key, page.Name, body); err != nil {
			return err
		}
		return c.record(r.Context(), tx, r, q, audit.Record{Action: "template.save", Subject: "template:" + key})
	})
	c.afterSave(w, r, q, err, again, inChannel(q, "/templates/"+url.PathEscape(key)+"?saved=1"))
}

func (c *Console) templateDelete(w http.ResponseWriter, r *http.Request, q *request) {
	key := r.PathValue("key")
	err := c.DB.WriteTx(r.Context(), func(tx *store.Tx) error {
		if err := template.Delete(r.Context(), tx, q.Channel.ID, key, c.Scenarios.TemplateUsers); err != nil {
			return err
		}
		return c.record(r.Context(), tx, r, q, audit.Record{Action: "template.delete", Subject: "template:" + key})
	})
	if errors.Is(err, template.ErrInUse) {
		// Scenarios send it: the page says which, and the template stays.
		ps, _ := formProblems(q.Lang, err)
		c.showTemplate(w, r, q, http.StatusConflict, ps)
		return
	}
	if err != nil {
		c.fail(w, r, q, err)
		return
	}
	http.Redirect(w, r, inChannel(q, "/templates"), http.StatusSeeOther)
}

// errTaken: a new item's key is in use already; the form says so.
var errKeyTaken = errors.New("web: key taken")

// afterSave answers a form that saved something: the form again with what to fix (a key
// in use, the service's problems), a failure page, or on to where the saved item shows.
func (c *Console) afterSave(w http.ResponseWriter, r *http.Request, q *request, err error, again func([]formProblem), to string) {
	if errors.Is(err, errKeyTaken) {
		again(formProblemf(q.Lang, "key", "ct.keytaken"))
		return
	}
	if ps, ok := formProblems(q.Lang, err); ok {
		again(ps)
		return
	}
	if err != nil {
		c.fail(w, r, q, err)
		return
	}
	http.Redirect(w, r, to, http.StatusSeeOther)
}

// chanPath is a path under the request's channel.
func inChannel(q *request, rest string) string {
	return "/console/channels/" + url.PathEscape(q.Channel.ID) + rest
}

// chanLoc is a channel's time zone; Japan when the zone is unknown to this system.
func channelZone(tz string) *time.Location {
	if loc, err := time.LoadLocation(tz); err == nil && tz != "" {
		return loc
	}
	return tokyo
}

// fmtTime writes a time in a channel's zone, in the member's language.
func zoneTime(lang string, loc *time.Location, t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	if lang == "en" {
		return t.In(loc).Format("2006-01-02 15:04")
	}
	return t.In(loc).Format("2006年1月2日 15:04")
}

// keyed translates a key made from a format and a name, such as the state of a
// broadcast: the catalog test finds keys written whole, and a prefix plus a name is not.
func keyed(lang, format, name string) string {
	return translate(lang, fmt.Sprintf(format, name))
}
