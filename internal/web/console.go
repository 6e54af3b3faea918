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
	"strconv"
	"time"

	"github.com/linestep/linestep/internal/channel"
	"github.com/linestep/linestep/internal/clock"
	"github.com/linestep/linestep/internal/friend"
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
	Staff    *staff.Service
	Channels *channel.Service
	Friends  *friend.Service
	Events   Pending
	Clock    clock.Clock
	Logger   *slog.Logger

	pages map[string]*template.Template
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
	mux.Handle("POST /logout", c.signedIn(c.logout))
	mux.Handle("GET /console/{$}", c.signedIn(c.dashboard))
	mux.Handle("GET /console/channels/{channelID}/friends", c.signedIn(c.friendList))
	mux.Handle("GET /console/channels/{channelID}/friends/{friendID}", c.signedIn(c.friendDetail))
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
	c.pages = map[string]*template.Template{}
	for _, page := range []string{"login", "login_link", "dashboard", "friends", "friend", "error"} {
		t, err := template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/"+page+".html")
		if err != nil {
			return err
		}
		c.pages[page] = t
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

// view is what every page template receives.
type view struct {
	Lang   string
	Title  string
	Member *staff.Member
	Data   any
}

func (c *Console) render(w http.ResponseWriter, r *http.Request, status int, page, titleKey string, member *staff.Member, data any) {
	lang := language(r)
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	err := c.pages[page].Execute(w, view{Lang: lang, Title: translate(lang, titleKey), Member: member, Data: data})
	if err != nil {
		c.Logger.Error("console: render failed", "page", page, "err", err)
	}
}

func (c *Console) fail(w http.ResponseWriter, r *http.Request, member *staff.Member, err error) {
	if errors.Is(err, store.ErrNotFound) {
		c.render(w, r, http.StatusNotFound, "error", "error.notfound", member, "error.notfound")
		return
	}
	c.Logger.Error("console: request failed", "path", r.URL.Path, "err", err)
	c.render(w, r, http.StatusInternalServerError, "error", "error.internal", member, "error.internal")
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
