package web

import (
	"errors"
	"net/http"
	"strings"

	"github.com/linestep/linestep/internal/audit"
	"github.com/linestep/linestep/internal/message"
	"github.com/linestep/linestep/internal/staff"
	"github.com/linestep/linestep/internal/store"
)

// Sessions restricted to finishing sign-in (a password to set or change, two-factor to
// set up) reach only their own page. The console's admission (admit) refuses them, as
// Staff.Session does; these pages admit them through Staff.Current instead, and send any
// other session where it belongs. They render without the console's navigation, which
// would lead nowhere yet.

// signinRoutes registers the sign-in steps beyond console.go's login and link routes.
func (c *Console) signinRoutes(mux *http.ServeMux) {
	mux.HandleFunc("POST /login", c.login)
	mux.HandleFunc("GET /login/code", c.codePage)
	mux.HandleFunc("POST /login/code", c.code)
	mux.HandleFunc("POST /login/cancel", c.cancelSignIn)
	mux.HandleFunc("GET /login/password", c.unfinished(staff.RestrictChangePassword, c.forcedPasswordPage))
	mux.HandleFunc("POST /login/password", c.unfinished(staff.RestrictChangePassword, c.forcedPassword))
	mux.HandleFunc("GET /login/totp", c.unfinished(staff.RestrictEnrolTOTP, c.forcedTOTPPage))
	mux.HandleFunc("POST /login/totp", c.unfinished(staff.RestrictEnrolTOTP, c.forcedTOTP))
	mux.HandleFunc("GET /login/totp/qr.png", c.unfinished(staff.RestrictEnrolTOTP, c.totpQR))
}

// unfinishedPage is where a session with restriction r belongs.
func unfinishedPage(r staff.Restriction) string {
	switch r {
	case staff.RestrictChangePassword:
		return "/login/password"
	case staff.RestrictEnrolTOTP:
		return "/login/totp"
	}
	return "/console/"
}

// unfinished admits only sessions restricted to want, checking the form token on
// anything but GET.
func (c *Console) unfinished(want staff.Restriction, h pageFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ck, err := r.Cookie(sessionCookie(r))
		if err != nil {
			http.Redirect(w, r, "/login", http.StatusSeeOther)
			return
		}
		cur, err := c.Staff.Current(r.Context(), ck.Value)
		if errors.Is(err, staff.ErrInvalidToken) {
			http.Redirect(w, r, "/login", http.StatusSeeOther)
			return
		}
		if err != nil {
			c.fail(w, r, nil, err)
			return
		}
		if cur.Restriction != want {
			http.Redirect(w, r, unfinishedPage(cur.Restriction), http.StatusSeeOther)
			return
		}
		rememberLanguage(w, r)
		q := &request{Member: &cur.Member, Lang: language(r), CSRF: csrfToken(ck.Value), session: ck.Value}
		if r.Method != http.MethodGet && !c.validCSRF(r, q) {
			c.render(w, r, http.StatusForbidden, "error", "error.csrf", nil, "error.csrf")
			return
		}
		h(w, r, q)
	}
}

// renew gives a session that just finished signing in a new token (see
// staff.RenewSession) and the browser the new cookie.
func (c *Console) renew(w http.ResponseWriter, r *http.Request, q *request) bool {
	token, err := c.Staff.RenewSession(r.Context(), q.session)
	if err != nil {
		c.fail(w, r, nil, err)
		return false
	}
	setCookie(w, r, sessionCookie(r), token, int(staff.AbsoluteTimeout.Seconds()))
	q.session, q.CSRF = token, csrfToken(token)
	return true
}

// cancelSignIn ends a restricted session: "sign out" before the sign-in is finished.
func (c *Console) cancelSignIn(w http.ResponseWriter, r *http.Request) {
	if ck, err := r.Cookie(sessionCookie(r)); err == nil {
		q := &request{CSRF: csrfToken(ck.Value)}
		if !c.validCSRF(r, q) {
			c.render(w, r, http.StatusForbidden, "error", "error.csrf", nil, "error.csrf")
			return
		}
		if err := c.Staff.EndSession(r.Context(), ck.Value); err != nil {
			c.fail(w, r, nil, err)
			return
		}
	}
	setCookie(w, r, sessionCookie(r), "", -1)
	setCookie(w, r, pendingCookie(r), "", -1)
	http.Redirect(w, r, "/login", http.StatusSeeOther)
}

// passwordForm is the page that sets or changes the password.
type passwordForm struct {
	CSRF        string
	Action      string
	Invited     bool // no password yet: nothing to confirm
	Forced      bool // the sign-in requires the change
	Problems    []string
	MinPassword int
}

func (c *Console) forcedPasswordPage(w http.ResponseWriter, r *http.Request, q *request) {
	c.render(w, r, http.StatusOK, "password", passwordTitle(q), nil, c.passwordForm(q, true, nil))
}

func passwordTitle(q *request) string {
	if !q.Member.HasPassword {
		return "signin.setpw.title"
	}
	return "signin.changepw.title"
}

func (c *Console) passwordForm(q *request, forced bool, problems []string) passwordForm {
	action := "/console/account/password"
	if forced {
		action = "/login/password"
	}
	return passwordForm{CSRF: q.CSRF, Action: action, Invited: !q.Member.HasPassword, Forced: forced,
		Problems: problems, MinPassword: staff.MinPasswordRunes}
}

func (c *Console) forcedPassword(w http.ResponseWriter, r *http.Request, q *request) {
	cur, problems, status, err := c.changePassword(r, q)
	if err != nil {
		c.fail(w, r, nil, err)
		return
	}
	if problems != nil {
		c.render(w, r, status, "password", passwordTitle(q), nil, c.passwordForm(q, true, problems))
		return
	}
	if cur.Restriction == staff.Unrestricted && !c.renew(w, r, q) {
		return
	}
	http.Redirect(w, r, unfinishedPage(cur.Restriction), http.StatusSeeOther)
}

// changePassword changes the session's password from the form, auditing it in the same
// transaction. If the change was refused it returns what to tell the member, and the
// status to answer with.
func (c *Console) changePassword(r *http.Request, q *request) (staff.Current, []string, int, error) {
	next := r.PostFormValue("new")
	if next != r.PostFormValue("confirm") {
		return staff.Current{}, []string{translate(q.Lang, "signin.pw.mismatch")}, http.StatusBadRequest, nil
	}
	cur, err := c.Staff.ChangePassword(r.Context(), q.session, r.PostFormValue("current"), next, client(r),
		c.also(r, q, audit.PasswordChange, nil))
	var ps message.Problems
	switch {
	case errors.Is(err, staff.ErrBadCredentials):
		return cur, []string{translate(q.Lang, "signin.pw.wrongcurrent")}, http.StatusUnauthorized, nil
	case errors.As(err, &ps):
		return cur, problemTexts(q.Lang, ps), http.StatusBadRequest, nil
	}
	return cur, nil, 0, err
}

// problemTexts turns validation problems into sentences in the page's language.
func problemTexts(lang string, ps message.Problems) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.JA
		if lang == "en" {
			out[i] = p.EN
		}
	}
	return out
}

// totpForm is the two-factor set-up page.
type totpForm struct {
	CSRF, Action, QR, Cancel string
	Secret                   string // grouped by four for typing
	RawSecret                string
	Error                    string // a text key
	Forced                   bool
}

// enrolment returns the set-up under way for the session, or begins one.
func (c *Console) enrolment(r *http.Request, q *request) (staff.Enrolment, error) {
	e, err := c.Staff.PendingTOTP(r.Context(), q.session)
	if errors.Is(err, staff.ErrNoPendingTOTP) {
		return c.Staff.BeginTOTP(r.Context(), q.session)
	}
	return e, err
}

func (c *Console) totpForm(r *http.Request, q *request, forced bool, errKey string) (totpForm, error) {
	e, err := c.enrolment(r, q)
	if err != nil {
		return totpForm{}, err
	}
	f := totpForm{CSRF: q.CSRF, Secret: groupBy4(e.Secret), RawSecret: e.Secret, Error: errKey, Forced: forced,
		Action: "/console/account/totp", QR: "/console/account/totp/qr.png", Cancel: "/console/account"}
	if forced {
		f.Action, f.QR, f.Cancel = "/login/totp", "/login/totp/qr.png", ""
	}
	return f, nil
}

func groupBy4(s string) string {
	var b strings.Builder
	for i, r := range s {
		if i > 0 && i%4 == 0 {
			b.WriteByte(' ')
		}
		b.WriteRune(r)
	}
	return b.String()
}

func (c *Console) forcedTOTPPage(w http.ResponseWriter, r *http.Request, q *request) {
	f, err := c.totpForm(r, q, true, "")
	if err != nil {
		c.fail(w, r, nil, err)
		return
	}
	c.render(w, r, http.StatusOK, "totp_enrol", "totp.enrol.title", nil, f)
}

func (c *Console) forcedTOTP(w http.ResponseWriter, r *http.Request, q *request) {
	c.confirmTOTP(w, r, q, true)
}

// confirmTOTP finishes a set-up with the first code from the app and shows the recovery
// codes, once: only their hashes are kept.
func (c *Console) confirmTOTP(w http.ResponseWriter, r *http.Request, q *request, forced bool) {
	pageQ := q
	if forced {
		pageQ = nil
	}
	codes, err := c.Staff.ConfirmTOTP(r.Context(), q.session, r.PostFormValue("code"), c.also(r, q, audit.TwoFactorEnable, nil))
	if errors.Is(err, staff.ErrBadCode) || errors.Is(err, staff.ErrNoPendingTOTP) {
		key := "totp.badcode"
		if errors.Is(err, staff.ErrNoPendingTOTP) {
			key = "totp.expired"
		}
		f, err := c.totpForm(r, q, forced, key)
		if err != nil {
			c.fail(w, r, pageQ, err)
			return
		}
		c.render(w, r, http.StatusBadRequest, "totp_enrol", "totp.enrol.title", pageQ, f)
		return
	}
	if err != nil {
		c.fail(w, r, pageQ, err)
		return
	}
	if forced && !c.renew(w, r, q) {
		return
	}
	c.render(w, r, http.StatusOK, "totp_codes", "totp.codes.title", pageQ, codes)
}

// totpQR serves the QR code of the set-up under way. It is an image of the secret: the
// page's no-store header applies to it too.
func (c *Console) totpQR(w http.ResponseWriter, r *http.Request, q *request) {
	e, err := c.Staff.PendingTOTP(r.Context(), q.session)
	if errors.Is(err, staff.ErrNoPendingTOTP) {
		http.NotFound(w, r)
		return
	}
	if err != nil {
		c.fail(w, r, nil, err)
		return
	}
	w.Header().Set("Content-Type", "image/png")
	w.Write(e.QRCodePNG)
}

// also returns an Also that records q's act on the member acted on, in the act's own
// transaction.
func (c *Console) also(r *http.Request, q *request, action audit.Action, detail map[string]string) staff.Also {
	return func(tx *store.Tx, m staff.Member) error {
		return c.record(r.Context(), tx, r, q, audit.Record{Action: action, Subject: audit.Subject("staff", m.ID), Detail: detail})
	}
}
