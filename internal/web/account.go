package web

import (
	"errors"
	"net/http"
	"slices"

	"github.com/linestep/linestep/internal/access"
	"github.com/linestep/linestep/internal/audit"
	"github.com/linestep/linestep/internal/staff"
)

// The member's own account: where they are signed in, their sign-in history with the
// suspicious ones shown first, their password and their two-factor sign-in. Every
// signed-in member has it, whatever their role.

func (c *Console) accountRoutes(mux *http.ServeMux) {
	c.signinRoutes(mux)
	c.reauthRoutes(mux)
	c.handle(mux, "GET", "/console/account", "", c.account)
	c.handle(mux, "POST", "/console/account/password", "", c.accountPassword)
	c.handle(mux, "POST", "/console/account/sessions/{id}/end", "", c.endMySession)
	c.handle(mux, "POST", "/console/account/sessions/end-all", "", c.endAllMySessions)
	c.handle(mux, "POST", "/console/account/flags/{id}/ack", "", c.ackMyFlag)
	c.handle(mux, "GET", "/console/account/totp", "", c.accountTOTPPage)
	c.handle(mux, "POST", "/console/account/totp", "", c.accountTOTP)
	c.handle(mux, "GET", "/console/account/totp/qr.png", "", c.totpQR)
	c.handle(mux, "POST", "/console/account/totp/disable", "", c.disableMyTOTP)
	c.handle(mux, "POST", "/console/account/recovery", "", c.newRecoveryCodes)
}

// attemptRow is a line of a sign-in history.
type attemptRow struct {
	staff.Attempt
	Who     string // the member's name, on everyone's history
	Failed  bool
	Flagged bool // a suspicious sign-in not yet acknowledged
	Outcome string
	Step    string
	Factor  string
	Browser string
}

// flagRow is an open suspicious sign-in.
type flagRow struct {
	staff.Flag
	Kind    string
	Who     string
	Browser string
}

// sessionRow is one of a member's sessions.
type sessionRow struct {
	staff.SessionInfo
	Browser string
}

func sessionRows(ss []staff.SessionInfo) []sessionRow {
	out := make([]sessionRow, len(ss))
	for i, s := range ss {
		out[i] = sessionRow{SessionInfo: s, Browser: browserName(s.UserAgent)}
	}
	return out
}

// accountView is the account page.
type accountView struct {
	Sessions      []sessionRow
	History       []attemptRow
	Flags         []flagRow
	OthersFlagged int // everyone's open flags, for those who see everyone's history
	RoleLabel     string
	TOTPRequired  bool
	CodesLeft     int
	Password      passwordForm
	Done          string // a text key: what just went through
	Problem       string // a text key: what was refused
}

// accountDone lists the notices ?done= may show.
var accountDone = map[string]string{
	"password": "account.done.password", "session": "account.done.session",
	"flag": "account.done.flag", "totpoff": "account.done.totpoff",
}

func (c *Console) accountView(r *http.Request, q *request) (accountView, error) {
	ctx := r.Context()
	v := accountView{Password: c.passwordForm(q, false, nil), Done: accountDone[r.URL.Query().Get("done")]}
	sessions, err := c.Staff.ListSessions(ctx, q.Member.ID, q.session)
	if err != nil {
		return v, err
	}
	v.Sessions = sessionRows(sessions)
	flags, err := c.Staff.Flags(ctx, staff.FlagFilter{StaffID: q.Member.ID, Unacknowledged: true})
	if err != nil {
		return v, err
	}
	v.Flags = flagRows(q.Lang, flags, nil)
	history, err := c.Staff.History(ctx, q.Member.ID, staff.Page{Limit: 30})
	if err != nil {
		return v, err
	}
	v.History = attemptRows(q.Lang, history, flags, nil)
	if q.P.Can(access.LoginsReadAll) {
		all, err := c.Staff.Flags(ctx, staff.FlagFilter{Unacknowledged: true, Page: staff.Page{Limit: 500}})
		if err != nil {
			return v, err
		}
		v.OthersFlagged = len(all) - len(flags)
	}
	v.TOTPRequired = c.Access.RequireTOTP(ctx, string(q.Member.Role))
	roles, err := c.Access.Roles(ctx)
	if err != nil {
		return v, err
	}
	v.RoleLabel = roleLabel(q.Lang, roles, string(q.Member.Role))
	if q.Member.TOTPEnabled {
		if v.CodesLeft, err = c.Staff.RecoveryCodesLeft(ctx, q.Member.ID); err != nil {
			return v, err
		}
	}
	return v, nil
}

func flagRows(lang string, flags []staff.Flag, names map[int64]string) []flagRow {
	out := make([]flagRow, len(flags))
	for i, f := range flags {
		out[i] = flagRow{Flag: f, Kind: label(lang, "flag.", string(f.Kind)), Who: names[f.StaffID], Browser: browserName(f.UserAgent)}
	}
	return out
}

// attemptRows labels attempts, marking the failures and those an open flag is about.
func attemptRows(lang string, as []staff.Attempt, open []staff.Flag, names map[int64]string) []attemptRow {
	out := make([]attemptRow, len(as))
	for i, a := range as {
		flagged := slices.ContainsFunc(open, func(f staff.Flag) bool {
			return f.At.Equal(a.At) && f.ClientAddr == a.ClientAddr && (f.StaffID == a.StaffID || f.StaffID == 0)
		})
		ok := a.Outcome == staff.OutcomeSuccess || a.Outcome == staff.OutcomeRecoveryUsed || a.Outcome == staff.OutcomeSecondFactor
		out[i] = attemptRow{Attempt: a, Who: names[a.StaffID], Failed: !ok, Flagged: flagged,
			Outcome: label(lang, "outcome.", string(a.Outcome)), Step: label(lang, "step.", string(a.Action)),
			Factor: label(lang, "factor.", string(a.Factor)), Browser: browserName(a.UserAgent)}
	}
	return out
}

// label translates prefix+name, showing the name itself when there is no text for it
// (a value newer than the console).
func label(lang, prefix, name string) string {
	if name == "" {
		return ""
	}
	if _, ok := catalog["ja"][prefix+name]; !ok {
		return name
	}
	return translate(lang, prefix+name)
}

func (c *Console) account(w http.ResponseWriter, r *http.Request, q *request) {
	c.showAccount(w, r, q, http.StatusOK, nil, "")
}

func (c *Console) showAccount(w http.ResponseWriter, r *http.Request, q *request, status int, pwProblems []string, problem string) {
	v, err := c.accountView(r, q)
	if err != nil {
		c.fail(w, r, q, err)
		return
	}
	v.Password.Problems, v.Problem = pwProblems, problem
	c.render(w, r, status, "account", "account.title", q, v)
}

func (c *Console) accountPassword(w http.ResponseWriter, r *http.Request, q *request) {
	_, problems, status, err := c.changePassword(r, q)
	if err != nil {
		c.fail(w, r, q, err)
		return
	}
	if problems != nil {
		c.showAccount(w, r, q, status, problems, "")
		return
	}
	http.Redirect(w, r, "/console/account?done=password", http.StatusSeeOther)
}

func (c *Console) endMySession(w http.ResponseWriter, r *http.Request, q *request) {
	id := r.PathValue("id")
	err := c.Staff.EndSessionByID(r.Context(), q.Member.ID, id, c.also(r, q, audit.SignOut, map[string]string{"session": id}))
	if err != nil {
		c.fail(w, r, q, err)
		return
	}
	http.Redirect(w, r, "/console/account?done=session", http.StatusSeeOther)
}

// endAllMySessions signs the member out everywhere, here too: whoever else held one of
// their sessions (a stolen cookie, a forgotten shared computer) is out.
func (c *Console) endAllMySessions(w http.ResponseWriter, r *http.Request, q *request) {
	_, err := c.Staff.EndAllSessions(r.Context(), q.Member.ID, c.also(r, q, audit.SignOut, map[string]string{"scope": "everywhere"}))
	if err != nil {
		c.fail(w, r, q, err)
		return
	}
	setCookie(w, r, sessionCookie(r), "", -1)
	http.Redirect(w, r, "/login", http.StatusSeeOther)
}

// ackMyFlag acknowledges one of the member's own open flags ("that was me").
func (c *Console) ackMyFlag(w http.ResponseWriter, r *http.Request, q *request) {
	id, ok := pathInt(r, "id")
	if !ok {
		c.fail(w, r, q, errNotFound)
		return
	}
	mine, err := c.Staff.Flags(r.Context(), staff.FlagFilter{StaffID: q.Member.ID, Unacknowledged: true, Page: staff.Page{Limit: 500}})
	if err != nil {
		c.fail(w, r, q, err)
		return
	}
	if !slices.ContainsFunc(mine, func(f staff.Flag) bool { return f.ID == id }) {
		c.fail(w, r, q, errNotFound)
		return
	}
	if err := c.Staff.AcknowledgeFlag(r.Context(), id, q.Member.ID); err != nil {
		c.fail(w, r, q, err)
		return
	}
	http.Redirect(w, r, "/console/account?done=flag", http.StatusSeeOther)
}

// accountTOTPPage sets two-factor sign-in up for a member who has none. Setting up a new
// authenticator over a working one is done by turning it off first.
func (c *Console) accountTOTPPage(w http.ResponseWriter, r *http.Request, q *request) {
	if q.Member.TOTPEnabled {
		http.Redirect(w, r, "/console/account", http.StatusSeeOther)
		return
	}
	f, err := c.totpForm(r, q, false, "")
	if err != nil {
		c.fail(w, r, q, err)
		return
	}
	c.render(w, r, http.StatusOK, "totp_enrol", "totp.enrol.title", q, f)
}

func (c *Console) accountTOTP(w http.ResponseWriter, r *http.Request, q *request) {
	if q.Member.TOTPEnabled {
		http.Redirect(w, r, "/console/account", http.StatusSeeOther)
		return
	}
	c.confirmTOTP(w, r, q, false)
}

// disableMyTOTP turns the member's two-factor sign-in off, after they confirm who they
// are, unless their role requires it.
func (c *Console) disableMyTOTP(w http.ResponseWriter, r *http.Request, q *request) {
	if c.Access.RequireTOTP(r.Context(), string(q.Member.Role)) {
		c.showAccount(w, r, q, statusRefused, nil, "account.totp.required")
		return
	}
	if !c.recent(w, r, q, "/console/account") {
		return
	}
	if err := c.Staff.DisableTOTP(r.Context(), q.Member.ID, c.also(r, q, audit.TwoFactorDisable, nil)); err != nil {
		c.fail(w, r, q, err)
		return
	}
	http.Redirect(w, r, "/console/account?done=totpoff", http.StatusSeeOther)
}

// newRecoveryCodes replaces the member's recovery codes (the old ones stop working) and
// shows the new ones once.
func (c *Console) newRecoveryCodes(w http.ResponseWriter, r *http.Request, q *request) {
	if !c.recent(w, r, q, "/console/account") {
		return
	}
	codes, err := c.Staff.NewRecoveryCodes(r.Context(), q.Member.ID,
		c.also(r, q, staff.AuditRecoveryCodes, nil))
	if errors.Is(err, staff.ErrTOTPNotEnabled) {
		http.Redirect(w, r, "/console/account", http.StatusSeeOther)
		return
	}
	if err != nil {
		c.fail(w, r, q, err)
		return
	}
	c.render(w, r, http.StatusOK, "totp_codes", "totp.codes.title", q, codes)
}
