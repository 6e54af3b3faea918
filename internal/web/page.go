package web

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"net"
	"net/http"
	"strings"

	"github.com/linestep/linestep/internal/access"
	"github.com/linestep/linestep/internal/audit"
	"github.com/linestep/linestep/internal/channel"
	"github.com/linestep/linestep/internal/staff"
	"github.com/linestep/linestep/internal/store"
)

// Route is one console route and the permission it needs. Every signed-in route is
// registered through handle, with a permission: the route table test walks this list
// with every role, so a route without a check cannot slip in.
type Route struct {
	Method, Pattern string
	Perm            access.Permission // "" only for pages every signed-in member has (their own account)
}

// request is a signed-in request: who, as what, on which account, in which language.
type request struct {
	Member  *staff.Member
	P       access.Principal
	Channel *channel.Channel // set on /console/channels/{channelID}/... routes
	Lang    string
	CSRF    string // the form token of this session
	session string
}

type pageFunc func(w http.ResponseWriter, r *http.Request, q *request)

// handle registers a signed-in route: the session is checked, then the channel in the
// path (a member sees only the accounts they work on: others are "not found"), then the
// permission, then, on anything but GET, the form token.
func (c *Console) handle(mux *http.ServeMux, method, pattern string, perm access.Permission, h pageFunc) {
	c.table = append(c.table, Route{Method: method, Pattern: pattern, Perm: perm})
	mux.Handle(method+" "+pattern, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q, ok := c.admit(w, r)
		if !ok {
			return
		}
		if strings.Contains(pattern, "{channelID}") {
			ch, err := c.Channels.Get(r.Context(), r.PathValue("channelID"))
			if errors.Is(err, store.ErrNotFound) || (err == nil && !q.P.OnChannel(ch.ID)) {
				c.render(w, r, http.StatusNotFound, "error", "error.notfound", q, "error.notfound")
				return
			}
			if err != nil {
				c.fail(w, r, q, err)
				return
			}
			q.Channel = &ch
		}
		if perm != "" && !q.P.Can(perm) {
			c.render(w, r, http.StatusForbidden, "error", "error.forbidden", q, "error.forbidden")
			return
		}
		if method != http.MethodGet && !c.validCSRF(r, q) {
			c.render(w, r, http.StatusForbidden, "error", "error.csrf", q, "error.csrf")
			return
		}
		h(w, r, q)
	}))
}

// Table lists the signed-in routes and their permissions.
func (c *Console) Table() []Route { return c.table }

// admit finds the session and the member's principal, or sends the browser to sign in.
func (c *Console) admit(w http.ResponseWriter, r *http.Request) (*request, bool) {
	ck, err := r.Cookie(sessionCookie(r))
	if err != nil {
		http.Redirect(w, r, "/login", http.StatusSeeOther)
		return nil, false
	}
	m, err := c.Staff.Session(r.Context(), ck.Value)
	if errors.Is(err, staff.ErrInvalidToken) {
		http.Redirect(w, r, "/login", http.StatusSeeOther)
		return nil, false
	}
	if err != nil {
		c.fail(w, r, nil, err)
		return nil, false
	}
	p, err := c.Access.StaffPrincipal(r.Context(), m.ID, m.Login, string(m.Role))
	if err != nil {
		c.fail(w, r, nil, err)
		return nil, false
	}
	rememberLanguage(w, r)
	return &request{Member: &m, P: p, Lang: language(r), CSRF: csrfToken(ck.Value), session: ck.Value}, true
}

// record writes an audit record of what the member did, inside tx: the record commits
// with the act or not at all. Who, when, from where and on which account are filled in.
func (c *Console) record(ctx context.Context, tx *store.Tx, r *http.Request, q *request, rec audit.Record) error {
	rec.Actor = audit.Staff(q.Member.ID, q.Member.Login)
	rec.ClientAddr, rec.UserAgent = clientAddr(r), r.UserAgent()
	if rec.ChannelID == "" && q.Channel != nil {
		rec.ChannelID = q.Channel.ID
	}
	_, err := c.Audit.Append(ctx, tx, rec)
	return err
}

// clientAddr is the peer's address without the port. linestep is meant to sit behind a
// TLS proxy on the same machine or network: trusting X-Forwarded-For from anyone would
// let a client write any address into the login history and audit log, so it is not read.
func clientAddr(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// csrfToken is derived from the session token, which only the member's browser holds
// (HttpOnly cookie): a page on another site can neither read nor compute it. It is
// the second line behind http.CrossOriginProtection, for browsers that send neither
// Sec-Fetch-Site nor Origin.
func csrfToken(session string) string {
	sum := sha256.Sum256([]byte("linestep csrf\x00" + session))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

func (c *Console) validCSRF(r *http.Request, q *request) bool {
	got := r.PostFormValue("csrf")
	if got == "" {
		got = r.Header.Get("X-CSRF-Token") // the console's own fetch() calls
	}
	return subtle.ConstantTimeCompare([]byte(got), []byte(q.CSRF)) == 1
}
