package web

import (
	"errors"
	"net/http"
	"net/url"
	"strings"

	"github.com/linestep/linestep/internal/staff"
)

// Sensitive acts (changing roles and permissions, exporting the audit log, turning
// two-factor off, new recovery codes) need the member to have proved who they are within
// the last few minutes, not only to hold a session: a session left open on a shop's
// shared computer is not enough. The act sends them to confirm their password (and code),
// then back to the page, where they do it again.

func (c *Console) reauthRoutes(mux *http.ServeMux) {
	c.handle(mux, "GET", "/console/account/reauth", "", c.reauthPage)
	c.handle(mux, "POST", "/console/account/reauth", "", c.reauth)
}

type reauthForm struct {
	Next     string
	NeedTOTP bool
	Error    string
}

// recent reports whether q's session proved who it is recently; if not, it sends the
// browser to confirm and come back to back.
func (c *Console) recent(w http.ResponseWriter, r *http.Request, q *request, back string) bool {
	cur, err := c.Staff.Current(r.Context(), q.session)
	if err != nil {
		c.fail(w, r, q, err)
		return false
	}
	if c.Staff.RecentlyAuthenticated(cur, staff.ReauthWindow) {
		return true
	}
	http.Redirect(w, r, "/console/account/reauth?next="+url.QueryEscape(back), http.StatusSeeOther)
	return false
}

// localNext is where to go after confirming: a console page of this site, never
// anywhere else.
func localNext(next string) string {
	u, err := url.Parse(next)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil || !strings.HasPrefix(u.Path, "/console/") ||
		strings.ContainsAny(next, "\\\r\n") || strings.HasPrefix(next, "//") {
		return "/console/account"
	}
	return u.RequestURI()
}

func (c *Console) reauthPage(w http.ResponseWriter, r *http.Request, q *request) {
	c.render(w, r, http.StatusOK, "reauth", "reauth.title", q,
		reauthForm{Next: localNext(r.URL.Query().Get("next")), NeedTOTP: q.Member.TOTPEnabled})
}

func (c *Console) reauth(w http.ResponseWriter, r *http.Request, q *request) {
	next := localNext(r.PostFormValue("next"))
	err := c.Staff.Reauthenticate(r.Context(), q.session, r.PostFormValue("password"), r.PostFormValue("code"), client(r))
	if errors.Is(err, staff.ErrBadCredentials) || errors.Is(err, staff.ErrBadCode) || errors.Is(err, staff.ErrSecondFactorRequired) {
		c.render(w, r, http.StatusUnauthorized, "reauth", "reauth.title", q,
			reauthForm{Next: next, NeedTOTP: q.Member.TOTPEnabled, Error: "reauth.failed"})
		return
	}
	if err != nil {
		c.fail(w, r, q, err)
		return
	}
	http.Redirect(w, r, next, http.StatusSeeOther)
}
