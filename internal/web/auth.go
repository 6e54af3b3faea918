package web

import (
	"errors"
	"net/http"

	"github.com/linestep/linestep/internal/audit"
	"github.com/linestep/linestep/internal/staff"
)

// Signing in: a login and password (or a one-time link standing in for them), then a
// code from the authenticator app or a recovery code for members with two-factor
// sign-in. A member who must first set a password or set up two-factor gets a session
// restricted to that page (see signin_unfinished.go). Every failure of the first step
// gets the same answer, whatever went wrong: an unknown login, a wrong password, a
// disabled account or a locked one.

// sessionCookie names the session cookie. Over TLS it carries the __Host- prefix, which
// browsers accept only with Secure, Path=/ and no Domain: the cookie cannot be set by a
// sibling subdomain. Over plain HTTP (a laptop, the demo) the prefix is impossible.
func sessionCookie(r *http.Request) string {
	if r.TLS != nil {
		return "__Host-linestep_session"
	}
	return "linestep_session"
}

// pendingCookie names the cookie that carries a sign-in waiting for its second factor:
// a short-lived token that proves the password was right, nothing more.
func pendingCookie(r *http.Request) string {
	if r.TLS != nil {
		return "__Host-linestep_pending"
	}
	return "linestep_pending"
}

// setCookie sets (maxAge > 0) or clears (maxAge < 0) one of the sign-in cookies, always
// HttpOnly, Secure over TLS, SameSite=Lax and for the whole site.
func setCookie(w http.ResponseWriter, r *http.Request, name, value string, maxAge int) {
	http.SetCookie(w, &http.Cookie{
		Name: name, Value: value, Path: "/", MaxAge: maxAge,
		HttpOnly: true, Secure: r.TLS != nil, SameSite: http.SameSiteLaxMode,
	})
}

func client(r *http.Request) staff.Client {
	return staff.Client{Addr: clientAddr(r), UserAgent: r.UserAgent()}
}

// loginForm is what the sign-in page shows.
type loginForm struct {
	Error string // a text key
	Login string // as typed, to spare typing it again
}

// loginPage shows the sign-in form, or sends a browser that is signed in already where
// it belongs.
func (c *Console) loginPage(w http.ResponseWriter, r *http.Request) {
	rememberLanguage(w, r)
	if ck, err := r.Cookie(sessionCookie(r)); err == nil {
		if cur, err := c.Staff.Current(r.Context(), ck.Value); err == nil {
			http.Redirect(w, r, unfinishedPage(cur.Restriction), http.StatusSeeOther)
			return
		}
	}
	c.render(w, r, http.StatusOK, "login", "login.title", nil, loginForm{})
}

func (c *Console) login(w http.ResponseWriter, r *http.Request) {
	login := r.PostFormValue("login")
	res, err := c.Staff.SignIn(r.Context(), login, r.PostFormValue("password"), client(r))
	if errors.Is(err, staff.ErrBadCredentials) {
		c.render(w, r, http.StatusUnauthorized, "login", "login.title", nil, loginForm{Error: "signin.failed", Login: login})
		return
	}
	if err != nil {
		c.fail(w, r, nil, err)
		return
	}
	c.signedIn(w, r, res)
}

// signedIn continues a sign-in step that went through: to the code page, or with a new
// session (a new token every time: one planted before sign-in is never promoted) to the
// console or to the page the session is restricted to.
func (c *Console) signedIn(w http.ResponseWriter, r *http.Request, res staff.Result) {
	if ck, err := r.Cookie(sessionCookie(r)); err == nil {
		// A session this browser held before (another member's, perhaps) ends here.
		if err := c.Staff.EndSession(r.Context(), ck.Value); err != nil {
			c.fail(w, r, nil, err)
			return
		}
		setCookie(w, r, sessionCookie(r), "", -1)
	}
	if res.Status == staff.NeedSecondFactor {
		setCookie(w, r, pendingCookie(r), res.PendingToken, int(staff.PendingTTL.Seconds()))
		http.Redirect(w, r, "/login/code", http.StatusSeeOther)
		return
	}
	setCookie(w, r, pendingCookie(r), "", -1)
	setCookie(w, r, sessionCookie(r), res.SessionToken, int(staff.AbsoluteTimeout.Seconds()))
	switch res.Status {
	case staff.MustChangePassword:
		http.Redirect(w, r, unfinishedPage(staff.RestrictChangePassword), http.StatusSeeOther)
	case staff.MustEnrolTOTP:
		http.Redirect(w, r, unfinishedPage(staff.RestrictEnrolTOTP), http.StatusSeeOther)
	default:
		http.Redirect(w, r, "/console/", http.StatusSeeOther)
	}
}

// codePage asks for the second factor.
func (c *Console) codePage(w http.ResponseWriter, r *http.Request) {
	rememberLanguage(w, r)
	if _, err := r.Cookie(pendingCookie(r)); err != nil {
		http.Redirect(w, r, "/login", http.StatusSeeOther)
		return
	}
	c.render(w, r, http.StatusOK, "signin_code", "signin.code.title", nil, loginForm{})
}

func (c *Console) code(w http.ResponseWriter, r *http.Request) {
	ck, err := r.Cookie(pendingCookie(r))
	if err != nil {
		http.Redirect(w, r, "/login", http.StatusSeeOther)
		return
	}
	res, err := c.Staff.CompleteSecondFactor(r.Context(), ck.Value, r.PostFormValue("code"), client(r))
	switch {
	case errors.Is(err, staff.ErrBadCode):
		c.render(w, r, http.StatusUnauthorized, "signin_code", "signin.code.title", nil, loginForm{Error: "signin.badcode"})
		return
	case errors.Is(err, staff.ErrInvalidToken):
		// Expired, too many codes tried, or the login got locked: start again.
		setCookie(w, r, pendingCookie(r), "", -1)
		c.render(w, r, http.StatusUnauthorized, "login", "login.title", nil, loginForm{Error: "signin.expired"})
		return
	case err != nil:
		c.fail(w, r, nil, err)
		return
	}
	c.signedIn(w, r, res)
}

// loginLinkPage asks for a button press instead of signing in on GET: link previewers
// in chat apps fetch URLs and would otherwise use up the one-time link.
func (c *Console) loginLinkPage(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Referrer-Policy", "no-referrer")
	c.render(w, r, http.StatusOK, "login_link", "login.link.title", nil, r.PathValue("token"))
}

// redeemLoginLink signs in with a one-time link, which stands in for the password: a
// member with two-factor sign-in is asked for a code next, one who must set it up (an
// owner, an admin) or must set a password (an invited member) gets that page first.
func (c *Console) redeemLoginLink(w http.ResponseWriter, r *http.Request) {
	res, err := c.Staff.SignInWithLink(r.Context(), r.PostFormValue("token"), client(r))
	if errors.Is(err, staff.ErrInvalidToken) {
		c.render(w, r, http.StatusUnauthorized, "login", "login.title", nil, loginForm{Error: "login.invalid"})
		return
	}
	if err != nil {
		c.fail(w, r, nil, err)
		return
	}
	c.signedIn(w, r, res)
}

func (c *Console) logout(w http.ResponseWriter, r *http.Request, q *request) {
	err := c.Staff.EndSession(r.Context(), q.session, c.also(r, q, audit.SignOut, nil))
	if err != nil {
		c.fail(w, r, q, err)
		return
	}
	setCookie(w, r, sessionCookie(r), "", -1)
	http.Redirect(w, r, "/login", http.StatusSeeOther)
}

// SecurityHeaders sets the headers every console answer carries: a strict CSP (no inline
// script, no foreign script at all), no framing, no MIME sniffing, no referrer leaks.
func SecurityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' https:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "same-origin")
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
		h.Set("Cache-Control", "no-store")
		next.ServeHTTP(w, r)
	})
}
