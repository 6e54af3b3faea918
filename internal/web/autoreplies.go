package web

import (
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/linestep/linestep/internal/access"
	"github.com/linestep/linestep/internal/audit"
	"github.com/linestep/linestep/internal/autoreply"
	"github.com/linestep/linestep/internal/store"
)

// The auto-replies area: keyword rules that answer a friend's message by themselves.
// Registered from scenarioRoutes.

func (c *Console) autoreplyRoutes(mux *http.ServeMux) {
	base := "/console/channels/{channelID}/autoreplies"
	c.handle(mux, "GET", base, access.AutorepliesRead, c.autoreplyList)
	c.handle(mux, "GET", base+"/new", access.AutorepliesWrite, c.autoreplyNew)
	c.handle(mux, "POST", base, access.AutorepliesWrite, c.autoreplyCreate)
	c.handle(mux, "GET", base+"/{key}", access.AutorepliesRead, c.autoreplyDetail)
	c.handle(mux, "POST", base+"/{key}", access.AutorepliesWrite, c.autoreplyUpdate)
	c.handle(mux, "POST", base+"/{key}/enabled", access.AutorepliesWrite, c.autoreplyEnable)
	c.handle(mux, "POST", base+"/{key}/delete", access.AutorepliesWrite, c.autoreplyDelete)
}

var arWeekdays = []string{"mon", "tue", "wed", "thu", "fri", "sat", "sun"}

type arRow struct {
	autoreply.Rule
	MatchLabel string
	Window     string
	Reply      string
	LastHit    string
}

func (c *Console) autoreplyList(w http.ResponseWriter, r *http.Request, q *request) {
	rules, err := c.Replies.List(r.Context(), q.Channel.ID)
	if err != nil {
		c.fail(w, r, q, err)
		return
	}
	loc := channelZone(q.Channel.TimeZone)
	rows := make([]arRow, 0, len(rules))
	for _, ru := range rules {
		rows = append(rows, arRow{Rule: ru, MatchLabel: keyed(q.Lang, "ar.match.%s", ru.Match), Window: windowWords(q.Lang, ru.Window),
			Reply: msgSummary(q.Lang, ru.Template.Messages), LastHit: zoneTime(q.Lang, loc, ru.LastHitAt)})
	}
	c.render(w, r, http.StatusOK, "autoreplies", "ar.title", q, map[string]any{"Rules": rows})
}

// windowWords: "月・水 09:00〜18:00", or "いつでも".
func windowWords(lang string, w *autoreply.Window) string {
	if w == nil {
		return translate(lang, "ar.anytime")
	}
	days := translate(lang, "ar.everyday")
	if len(w.Days) > 0 {
		names := make([]string, len(w.Days))
		for i, d := range w.Days {
			names[i] = keyed(lang, "ar.day.%s", d)
		}
		days = strings.Join(names, translate(lang, "ar.daysep"))
	}
	return days + " " + w.From + "〜" + w.To
}

// arForm is the rule form, as typed.
type arForm struct {
	New      bool
	Key      string
	Name     string
	Match    string
	Keywords string
	Priority string
	Days     map[string]bool
	From, To string
	Enabled  bool
	Msg      messageForm
	Problems []formProblem
	// Shown beside the form of a saved rule.
	Saved   bool
	Hits    int64
	LastHit string
	Preview []msgPreview
	Weekday []arDay
}

type arDay struct{ Key, Label string }

func (f *arForm) days(lang string) {
	for _, d := range arWeekdays {
		f.Weekday = append(f.Weekday, arDay{d, keyed(lang, "ar.day.%s", d)})
	}
}

func (c *Console) autoreplyNew(w http.ResponseWriter, r *http.Request, q *request) {
	f := arForm{New: true, Match: autoreply.MatchExact, Priority: "0", Days: map[string]bool{}, Enabled: true,
		Msg: messageForm{Lang: q.Lang, Mode: "text"}}
	f.days(q.Lang)
	c.render(w, r, http.StatusOK, "autoreplies_edit", "ar.new", q, f)
}

func (c *Console) autoreplyDetail(w http.ResponseWriter, r *http.Request, q *request) {
	ru, err := c.Replies.Get(r.Context(), q.Channel.ID, r.PathValue("key"))
	if err != nil {
		c.fail(w, r, q, err)
		return
	}
	f := arFormOf(ru, q)
	f.Saved = r.URL.Query().Get("saved") == "1"
	c.render(w, r, http.StatusOK, "autoreplies_edit", "ar.detail", q, f)
}

// arFormOf is the form of a saved rule.
func arFormOf(ru autoreply.Rule, q *request) arForm {
	f := arForm{Key: ru.Key, Name: ru.Name, Match: ru.Match, Keywords: strings.Join(ru.Keywords, "\n"),
		Priority: strconv.Itoa(ru.Priority), Days: map[string]bool{}, Enabled: ru.Enabled, Msg: messageFormOf(ru.Template, q.Lang),
		Hits: ru.Hits, LastHit: zoneTime(q.Lang, channelZone(q.Channel.TimeZone), ru.LastHitAt),
		Preview: msgPreviews(q.Lang, ru.Template.Messages)}
	if ru.Window != nil {
		f.From, f.To = ru.Window.From, ru.Window.To
		for _, d := range ru.Window.Days {
			f.Days[d] = true
		}
	}
	f.days(q.Lang)
	return f
}

func (c *Console) autoreplyCreate(w http.ResponseWriter, r *http.Request, q *request) {
	c.saveAutoreply(w, r, q, true, strings.TrimSpace(r.PostFormValue("key")))
}

func (c *Console) autoreplyUpdate(w http.ResponseWriter, r *http.Request, q *request) {
	c.saveAutoreply(w, r, q, false, r.PathValue("key"))
}

func (c *Console) saveAutoreply(w http.ResponseWriter, r *http.Request, q *request, isNew bool, key string) {
	ctx := r.Context()
	f := arForm{New: isNew, Key: key, Name: strings.TrimSpace(r.PostFormValue("name")), Match: r.PostFormValue("match"),
		Keywords: r.PostFormValue("keywords"), Priority: strings.TrimSpace(r.PostFormValue("priority")), Days: map[string]bool{},
		From: strings.TrimSpace(r.PostFormValue("from")), To: strings.TrimSpace(r.PostFormValue("to")),
		Enabled: r.PostFormValue("enabled") == "1", Msg: readMessageForm(r, q.Lang)}
	f.days(q.Lang)
	title := "ar.detail"
	if isNew {
		title = "ar.new"
	}
	again := func(ps []formProblem) {
		f.Problems = ps
		c.render(w, r, http.StatusUnprocessableEntity, "autoreplies_edit", title, q, f)
	}
	ru := autoreply.Rule{ChannelID: q.Channel.ID, Key: key, Name: f.Name, Match: f.Match, Enabled: f.Enabled}
	for _, d := range r.PostForm["day"] {
		if slices.Contains(arWeekdays, d) {
			f.Days[d] = true
		}
	}
	for _, k := range strings.Split(strings.ReplaceAll(f.Keywords, "\r\n", "\n"), "\n") {
		if k = strings.TrimSpace(k); k != "" {
			ru.Keywords = append(ru.Keywords, k)
		}
	}
	if f.Priority != "" {
		p, err := strconv.Atoi(f.Priority)
		if err != nil || p < -1000 || p > 1000 {
			again(formProblemf(q.Lang, "priority", "ar.priority.bad"))
			return
		}
		ru.Priority = p
	}
	if f.From != "" || f.To != "" {
		ru.Window = &autoreply.Window{From: f.From, To: f.To}
		for _, d := range arWeekdays {
			if f.Days[d] {
				ru.Window.Days = append(ru.Window.Days, d)
			}
		}
	}
	tpl, ps := f.Msg.template(q.Lang)
	if ps != nil {
		again(ps)
		return
	}
	ru.Template = tpl
	if err := c.Replies.Validate(ru); err != nil {
		ps, _ := formProblems(q.Lang, err)
		again(ps)
		return
	}
	err := c.DB.WriteTx(ctx, func(tx *store.Tx) error {
		if isNew {
			if _, err := c.Replies.Get(ctx, q.Channel.ID, key); err == nil {
				return errKeyTaken
			}
		}
		if _, err := c.Replies.Save(ctx, tx, ru); err != nil {
			return err
		}
		return c.record(ctx, tx, r, q, audit.Record{Action: "autoreply.save", Subject: "autoreply:" + key})
	})
	c.afterSave(w, r, q, err, again, inChannel(q, "/autoreplies/"+url.PathEscape(key)+"?saved=1"))
}

func (c *Console) autoreplyEnable(w http.ResponseWriter, r *http.Request, q *request) {
	ctx, key := r.Context(), r.PathValue("key")
	on := r.PostFormValue("on") == "1"
	err := c.DB.WriteTx(ctx, func(tx *store.Tx) error {
		if _, err := c.Replies.SetEnabled(ctx, tx, q.Channel.ID, key, on); err != nil {
			return err
		}
		return c.record(ctx, tx, r, q, audit.Record{Action: "autoreply.save", Subject: "autoreply:" + key,
			Detail: map[string]string{"enabled": strconv.FormatBool(on)}})
	})
	if ps, ok := formProblems(q.Lang, err); ok {
		// Switched on, the rule is checked again (a coupon it names may be gone): its
		// form says what to fix.
		ru, err := c.Replies.Get(ctx, q.Channel.ID, key)
		if err != nil {
			c.fail(w, r, q, err)
			return
		}
		f := arFormOf(ru, q)
		f.Problems = ps
		c.render(w, r, http.StatusUnprocessableEntity, "autoreplies_edit", "ar.detail", q, f)
		return
	}
	if err != nil {
		c.fail(w, r, q, err)
		return
	}
	http.Redirect(w, r, inChannel(q, "/autoreplies"), http.StatusSeeOther)
}

func (c *Console) autoreplyDelete(w http.ResponseWriter, r *http.Request, q *request) {
	ctx, key := r.Context(), r.PathValue("key")
	err := c.DB.WriteTx(ctx, func(tx *store.Tx) error {
		if err := c.Replies.Delete(ctx, tx, q.Channel.ID, key); err != nil {
			return err
		}
		return c.record(ctx, tx, r, q, audit.Record{Action: "autoreply.delete", Subject: "autoreply:" + key})
	})
	if err != nil {
		c.fail(w, r, q, err)
		return
	}
	http.Redirect(w, r, inChannel(q, "/autoreplies"), http.StatusSeeOther)
}
