// Package web serves the console: server-rendered pages for the staff who run the
// account. Everything a LINE user wrote (names, messages) reaches the page only through
// html/template's contextual escaping, under a strict Content-Security-Policy.
package web

import (
	"context"
	"embed"
	"errors"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/linestep/linestep/internal/access"
	"github.com/linestep/linestep/internal/audit"
	"github.com/linestep/linestep/internal/autoreply"
	"github.com/linestep/linestep/internal/broadcast"
	"github.com/linestep/linestep/internal/channel"
	"github.com/linestep/linestep/internal/clock"
	"github.com/linestep/linestep/internal/coupon"
	"github.com/linestep/linestep/internal/delivery"
	"github.com/linestep/linestep/internal/friend"
	"github.com/linestep/linestep/internal/inbox"
	"github.com/linestep/linestep/internal/scenario"
	"github.com/linestep/linestep/internal/staff"
	"github.com/linestep/linestep/internal/store"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Pending counts stored events not yet processed (the ingest processor).
type Pending interface {
	Pending(ctx context.Context) (int, error)
}

// Console holds what the console's handlers need.
type Console struct {
	DB         *store.DB
	Staff      *staff.Service
	Access     *access.Service
	Channels   *channel.Service
	Friends    *friend.Service
	Scenarios  *scenario.Service
	Broadcasts *broadcast.Service
	Coupons    *coupon.Service
	Replies    *autoreply.Service
	Delivery   *delivery.Service
	Inbox      *inbox.Service
	Audit      *audit.Log
	Events     Pending
	Clock      clock.Clock
	Logger     *slog.Logger

	pages map[string]*template.Template
	table []Route
}

// Routes registers the console's routes on mux.
func (c *Console) Routes(mux *http.ServeMux) error {
	if err := c.parseTemplates(); err != nil {
		return err
	}
	static, _ := fs.Sub(staticFS, "static")
	mux.Handle("GET /static/", http.StripPrefix("/static/", http.FileServerFS(static)))
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/console/", http.StatusSeeOther)
	})
	mux.HandleFunc("GET /login", c.loginPage)
	mux.HandleFunc("GET /login/link/{token}", c.loginLinkPage)
	mux.HandleFunc("POST /login/link", c.redeemLoginLink)
	c.handle(mux, "POST", "/logout", "", c.logout)
	c.privacyRoutes(mux) // public: the friends' privacy notice
	// One function per area of the console, each in its own file.
	for _, add := range []func(*http.ServeMux){
		c.dashboardRoutes, c.friendRoutes, c.inboxRoutes, c.scenarioRoutes, c.broadcastRoutes,
		c.templateRoutes, c.couponRoutes, c.settingsRoutes, c.accountRoutes, c.staffRoutes, c.auditRoutes,
	} {
		add(mux)
	}
	return nil
}

func (c *Console) parseTemplates() error {
	funcs := template.FuncMap{
		"t": translate,
		"when": func(lang string, t time.Time) string {
			if t.IsZero() {
				return "-"
			}
			jst := t.In(tokyo)
			if lang == "en" {
				return jst.Format("2006-01-02 15:04")
			}
			return jst.Format("2006年1月2日 15:04")
		},
	}
	// Every templates/NAME.html is a page, rendered inside layout.html; templates/_*.html
	// are partials every page may use.
	files, err := fs.Glob(templateFS, "templates/*.html")
	if err != nil {
		return err
	}
	var partials []string
	for _, f := range files {
		if strings.HasPrefix(path.Base(f), "_") {
			partials = append(partials, f)
		}
	}
	c.pages = map[string]*template.Template{}
	for _, f := range files {
		name := strings.TrimSuffix(path.Base(f), ".html")
		if name == "layout" || strings.HasPrefix(name, "_") {
			continue
		}
		patterns := append([]string{"templates/layout.html", f}, partials...)
		t, err := template.New("layout.html").Funcs(funcs).ParseFS(templateFS, patterns...)
		if err != nil {
			return err
		}
		c.pages[name] = t
	}
	return nil
}

var tokyo = func() *time.Location {
	loc, err := time.LoadLocation("Asia/Tokyo")
	if err != nil {
		return time.FixedZone("JST", 9*3600)
	}
	return loc
}()

// view is what every page template receives. P answers permission questions in
// templates ({{if .P.Can "friends:read_pii"}}); CSRF goes into every form as a hidden
// field named csrf.
type view struct {
	Lang    string
	Title   string
	Member  *staff.Member
	P       access.Principal
	Channel *channel.Channel
	CSRF    string
	Data    any
	// Public: a page for friends (the privacy notice), without the console's header.
	Public bool
}

// publicPages are shown to friends, not staff.
var publicPages = map[string]bool{"privacy": true}

// render writes a page. q is nil on pages before sign-in.
func (c *Console) render(w http.ResponseWriter, r *http.Request, status int, page, titleKey string, q *request, data any) {
	lang := language(r)
	v := view{Lang: lang, Title: translate(lang, titleKey), Data: data, Public: publicPages[page]}
	if q != nil {
		v.Member, v.P, v.Channel, v.CSRF = q.Member, q.P, q.Channel, q.CSRF
	}
	t, ok := c.pages[page]
	if !ok {
		c.Logger.Error("console: no such page template", "page", page)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	if err := t.Execute(w, v); err != nil {
		c.Logger.Error("console: render failed", "page", page, "err", err)
	}
}

// fail answers an error: not found as 404, anything else as 500 with the details in the
// log only. Errors never carry personal data (see the domain packages), so logging one
// is safe.
func (c *Console) fail(w http.ResponseWriter, r *http.Request, q *request, err error) {
	if errors.Is(err, store.ErrNotFound) {
		c.render(w, r, http.StatusNotFound, "error", "error.notfound", q, "error.notfound")
		return
	}
	c.Logger.Error("console: request failed", "path", r.Pattern, "err", err)
	c.render(w, r, http.StatusInternalServerError, "error", "error.internal", q, "error.internal")
}

// language picks the console language: ?lang= (remembered in a cookie), else the cookie,
// else Japanese.
func language(r *http.Request) string {
	if l := r.URL.Query().Get("lang"); l == "en" || l == "ja" {
		return l
	}
	if ck, err := r.Cookie("lang"); err == nil && (ck.Value == "en" || ck.Value == "ja") {
		return ck.Value
	}
	return "ja"
}

func rememberLanguage(w http.ResponseWriter, r *http.Request) {
	if l := r.URL.Query().Get("lang"); l == "en" || l == "ja" {
		http.SetCookie(w, &http.Cookie{Name: "lang", Value: l, Path: "/", MaxAge: 365 * 24 * 3600, SameSite: http.SameSiteLaxMode, HttpOnly: true})
	}
}

func pathInt(r *http.Request, name string) (int64, bool) {
	v, err := strconv.ParseInt(r.PathValue(name), 10, 64)
	return v, err == nil && v > 0
}
