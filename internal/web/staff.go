package web

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/linestep/linestep/internal/access"
	"github.com/linestep/linestep/internal/audit"
	"github.com/linestep/linestep/internal/channel"
	"github.com/linestep/linestep/internal/message"
	"github.com/linestep/linestep/internal/staff"
	"github.com/linestep/linestep/internal/store"
)

// Staff and roles: who works here, as what, on which accounts. Nobody grants what they
// do not hold, nor acts on someone who holds more than they do (access.CheckAssign): the
// form offers only what the member may give, and the server refuses the rest anyway.
// Every change writes its audit record in its own transaction.

var errNotFound = fmt.Errorf("web: %w", store.ErrNotFound)

// statusRefused answers an act the member may do in general but not this one: granting
// what they lack, acting on someone who holds more, on themselves, or against a policy.
// 403 is kept for a route's permission the member lacks (see the route matrix test).
const statusRefused = http.StatusUnprocessableEntity

// inviteTTL is how long an invitation (or a new sign-in link) stays usable.
const inviteTTL = 7 * 24 * time.Hour

func (c *Console) staffRoutes(mux *http.ServeMux) {
	c.handle(mux, "GET", "/console/staff", access.StaffRead, c.staffList)
	c.handle(mux, "POST", "/console/staff", access.StaffManage, c.createMember)
	c.handle(mux, "GET", "/console/staff/{id}", access.StaffRead, c.member)
	c.handle(mux, "POST", "/console/staff/{id}/role", access.StaffManage, c.setMemberRole)
	c.handle(mux, "POST", "/console/staff/{id}/channels", access.StaffManage, c.setMemberChannels)
	c.handle(mux, "POST", "/console/staff/{id}/disable", access.StaffManage, c.disableMember)
	c.handle(mux, "POST", "/console/staff/{id}/enable", access.StaffManage, c.enableMember)
	c.handle(mux, "POST", "/console/staff/{id}/force-password", access.StaffManage, c.forceMemberPassword)
	c.handle(mux, "POST", "/console/staff/{id}/link", access.StaffManage, c.memberLink)
	c.handle(mux, "POST", "/console/staff/{id}/end-sessions", access.StaffManage, c.endMemberSessions)
	c.handle(mux, "POST", "/console/staff/{id}/reset-totp", access.StaffManage, c.resetMemberTOTP)
	c.roleRoutes(mux)
}

// memberRow is a member as the staff pages show them.
type memberRow struct {
	staff.Member
	RoleLabel  string
	Channels   []string // names; nil with AllChannels
	ChannelIDs []string
	AllChans   bool
	LastSignIn time.Time
}

// choice is an option of a form: a value, its label, whether it is chosen.
type choice struct {
	Value, Label string
	On           bool
}

type staffView struct {
	Members  []memberRow
	Roles    []choice // the roles the viewer may give
	Channels []choice // the channels the viewer may give
	Problems []string
	Form     struct{ Login, Name, Role string }
	Flagged  int
}

// roleLabel names a role: built-in roles in the page's language, custom ones by label.
func roleLabel(lang string, roles []access.Role, name string) string {
	for _, r := range roles {
		if r.Name == name && !r.BuiltIn {
			return r.Label
		}
	}
	return label(lang, "role.", name)
}

func (c *Console) memberRows(r *http.Request, q *request, members []staff.Member, roles []access.Role, chans []channel.Channel) ([]memberRow, error) {
	last, err := c.Staff.LastSignIns(r.Context())
	if err != nil {
		return nil, err
	}
	names := map[string]string{}
	for _, ch := range chans {
		names[ch.ID] = ch.Name
	}
	out := make([]memberRow, len(members))
	for i, m := range members {
		row := memberRow{Member: m, RoleLabel: roleLabel(q.Lang, roles, string(m.Role)), LastSignIn: last[m.ID], AllChans: m.Role == staff.Owner}
		ids, err := c.Access.Channels(r.Context(), c.DB, m.ID)
		if err != nil {
			return nil, err
		}
		row.ChannelIDs = ids
		for _, id := range ids {
			row.Channels = append(row.Channels, cmpOr(names[id], id))
		}
		out[i] = row
	}
	return out, nil
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// choices lists the roles q may give and the channels q works on, chosen as given.
func (c *Console) choices(r *http.Request, q *request, roles []access.Role, chans []channel.Channel, role string, on []string) ([]choice, []choice) {
	var rs, cs []choice
	for _, ro := range roles {
		if c.Access.CheckAssign(r.Context(), c.DB, q.P, "", ro.Name) == nil {
			rs = append(rs, choice{Value: ro.Name, Label: roleLabel(q.Lang, roles, ro.Name), On: ro.Name == role})
		}
	}
	for _, ch := range chans {
		if q.P.OnChannel(ch.ID) {
			cs = append(cs, choice{Value: ch.ID, Label: ch.Name, On: slices.Contains(on, ch.ID)})
		}
	}
	return rs, cs
}

func (c *Console) staffList(w http.ResponseWriter, r *http.Request, q *request) {
	c.showStaff(w, r, q, http.StatusOK, nil)
}

func (c *Console) showStaff(w http.ResponseWriter, r *http.Request, q *request, status int, problems []string) {
	ctx := r.Context()
	members, err := c.Staff.List(ctx)
	if err != nil {
		c.fail(w, r, q, err)
		return
	}
	roles, err := c.Access.Roles(ctx)
	if err != nil {
		c.fail(w, r, q, err)
		return
	}
	chans, err := c.Channels.List(ctx)
	if err != nil {
		c.fail(w, r, q, err)
		return
	}
	var v staffView
	if v.Members, err = c.memberRows(r, q, members, roles, chans); err != nil {
		c.fail(w, r, q, err)
		return
	}
	v.Problems = problems
	v.Form.Login, v.Form.Name, v.Form.Role = r.PostFormValue("login"), r.PostFormValue("name"), r.PostFormValue("role")
	if v.Form.Role == "" {
		v.Form.Role = access.Operator
	}
	v.Roles, v.Channels = c.choices(r, q, roles, chans, v.Form.Role, r.PostForm["channels"])
	if q.P.Can(access.LoginsReadAll) {
		open, err := c.Staff.Flags(ctx, staff.FlagFilter{Unacknowledged: true, Page: staff.Page{Limit: 500}})
		if err != nil {
			c.fail(w, r, q, err)
			return
		}
		v.Flagged = len(open)
	}
	c.render(w, r, status, "staff", "members.title", q, v)
}

// createdView is the page after a member is created: the invitation link, shown once.
type createdView struct {
	Member staff.Member
	Link   string
}

// createMember adds a member with a password the creator chose (to be changed at the
// first sign-in unless unticked) or with an invitation link. The role check, the channels
// and the audit record share the member's transaction: a refused role leaves no member.
func (c *Console) createMember(w http.ResponseWriter, r *http.Request, q *request) {
	ctx := r.Context()
	role := r.PostFormValue("role")
	chans := r.PostForm["channels"]
	invite := r.PostFormValue("mode") == "invite"
	password := r.PostFormValue("password")
	if invite {
		password = ""
	} else if password == "" {
		c.showStaff(w, r, q, http.StatusBadRequest, []string{translate(q.Lang, "members.err.nopassword")})
		return
	}
	mustChange := !invite && r.PostFormValue("must_change") != ""
	m, err := c.Staff.CreateMember(ctx, r.PostFormValue("login"), r.PostFormValue("name"), staff.Role(role), password,
		func(tx *store.Tx, m staff.Member) error {
			if err := c.Access.CheckAssign(ctx, tx, q.P, "", role); err != nil {
				return err
			}
			if role != access.Owner {
				if err := c.Access.SetChannels(ctx, tx, q.P, m.ID, chans); err != nil {
					return err
				}
			}
			if mustChange {
				if err := c.Staff.MarkMustChangePassword(ctx, tx, m.ID); err != nil {
					return err
				}
			}
			return c.record(ctx, tx, r, q, audit.Record{Action: audit.StaffCreate, Subject: audit.Subject("staff", m.ID),
				Detail: map[string]string{"login": m.Login, "role": role, "channels": strings.Join(chans, " "), "invited": fmt.Sprint(invite)}})
		})
	if problems, status := c.staffProblems(q, err); problems != nil {
		c.showStaff(w, r, q, status, problems)
		return
	}
	if err != nil {
		c.fail(w, r, q, err)
		return
	}
	v := createdView{Member: m}
	if invite {
		token, err := c.Staff.IssueLoginLink(ctx, m.ID, inviteTTL)
		if err != nil {
			c.fail(w, r, q, err)
			return
		}
		v.Link = siteURL(r) + "/login/link/" + token
	}
	c.render(w, r, http.StatusOK, "staff_created", "members.created.title", q, v)
}

func siteURL(r *http.Request) string {
	if r.TLS != nil {
		return "https://" + r.Host
	}
	return "http://" + r.Host
}

// staffProblems turns a refused staff change into what to tell the member; nil for an
// error that is not a refusal.
func (c *Console) staffProblems(q *request, err error) ([]string, int) {
	var ps message.Problems
	switch {
	case err == nil:
		return nil, 0
	case errors.As(err, &ps):
		return problemTexts(q.Lang, ps), http.StatusBadRequest
	case errors.Is(err, staff.ErrLoginTaken):
		return []string{translate(q.Lang, "members.err.taken")}, http.StatusConflict
	case errors.Is(err, access.ErrNotHeld):
		return []string{translate(q.Lang, "members.err.notheld")}, statusRefused
	case errors.Is(err, store.ErrNotFound):
		return []string{translate(q.Lang, "members.err.role")}, http.StatusBadRequest
	case errors.Is(err, errSelf):
		return []string{translate(q.Lang, "members.err.self")}, statusRefused
	}
	return nil, 0
}

// errSelf refuses acts on oneself that could lock the last owner out (a role change,
// disabling): someone else does them.
var errSelf = errors.New("web: not on oneself")
