package web

import (
	"errors"
	"net"
	"net/http"

	"github.com/linestep/linestep/internal/staff"
)

// sessionCookie names the session cookie. Over TLS it carries the __Host- prefix, which
// browsers accept only with Secure, Path=/ and no Domain: the cookie cannot be set by a
// sibling subdomain. Over plain HTTP (a laptop, the demo) the prefix is impossible.
func sessionCookie(r *http.Request) string {
	if r.TLS != nil {
		return "__Host-linestep_session"
	}
	return "linestep_session"
}

func (c *Console) loginPage(w http.ResponseWriter, r *http.Request) {
	rememberLanguage(w, r)
	c.render(w, r, http.StatusOK, "login", "login.title", nil, nil)
}

// loginLinkPage asks for a button press instead of signing in on GET: link previewers
// in chat apps fetch URLs and would otherwise use up the one-time link.
func (c *Console) loginLinkPage(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Referrer-Policy", "no-referrer")
	c.render(w, r, http.StatusOK, "login_link", "login.link.title", nil, r.PathValue("token"))
}

func (c *Console) redeemLoginLink(w http.ResponseWriter, r *http.Request) {
	token := r.PostFormValue("token")
	host, _, _ := net.SplitHostPort(r.RemoteAddr)
	session, _, err := c.Staff.RedeemLoginLink(r.Context(), token, host, r.UserAgent())
	if errors.Is(err, staff.ErrInvalidToken) {
		c.render(w, r, http.StatusUnauthorized, "login", "login.title", nil, "login.invalid")
		return
	}
	if err != nil {
		c.fail(w, r, nil, err)
		return
	}
	http.SetCookie(w, &http.Cookie{
		Name: sessionCookie(r), Value: session, Path: "/",
		HttpOnly: true, Secure: r.TLS != nil, SameSite: http.SameSiteLaxMode,
		MaxAge: int(staff.AbsoluteTimeout.Seconds()),
	})
	http.Redirect(w, r, "/console/", http.StatusSeeOther)
}

func (c *Console) logout(w http.ResponseWriter, r *http.Request, q *request) {
	if err := c.Staff.EndSession(r.Context(), q.session); err != nil {
		c.fail(w, r, q, err)
		return
	}
	http.SetCookie(w, &http.Cookie{Name: sessionCookie(r), Value: "", Path: "/", MaxAge: -1, HttpOnly: true, Secure: r.TLS != nil, SameSite: http.SameSiteLaxMode})
	http.Redirect(w, r, "/login", http.StatusSeeOther)
}

// SecurityHeaders sets the headers every console answer carries: a strict CSP (no inline
// script, no foreign script at all), no framing, no MIME sniffing, no referrer leaks.
func SecurityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' https:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "same-origin")
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
		h.Set("Cache-Control", "no-store")
		next.ServeHTTP(w, r)
	})
}
