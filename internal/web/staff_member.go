package web

import (
	"context"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/linestep/linestep/internal/audit"
	"github.com/linestep/linestep/internal/channel"
	"github.com/linestep/linestep/internal/staff"
	"github.com/linestep/linestep/internal/store"
)

// One member's page: their role, channels, sessions and the acts on them.

type memberView struct {
	memberRow
	Roles          []choice
	ChannelChoices []choice
	Sessions       []sessionRow
	Self           bool
	CanManage      bool // the viewer holds staff:manage and everything this member holds
	Problems       []string
	Done           string // a text key
	Link           string // a new sign-in link, shown once
}

var memberDone = map[string]string{
	"role": "members.done.role", "channels": "members.done.channels", "disabled": "members.done.disabled",
	"enabled": "members.done.enabled", "password": "members.done.password", "sessions": "members.done.sessions",
	"totp": "members.done.totp",
}

func (c *Console) member(w http.ResponseWriter, r *http.Request, q *request) {
	c.showMember(w, r, q, http.StatusOK, nil, "")
}

func (c *Console) showMember(w http.ResponseWriter, r *http.Request, q *request, status int, problems []string, link string) {
	ctx := r.Context()
	id, ok := pathInt(r, "id")
	if !ok {
		c.fail(w, r, q, errNotFound)
		return
	}
	m, err := c.Staff.Get(ctx, id)
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
	rows, err := c.memberRows(r, q, []staff.Member{m}, roles, chans)
	if err != nil {
		c.fail(w, r, q, err)
		return
	}
	v := memberView{memberRow: rows[0], Self: m.ID == q.Member.ID, Problems: problems, Link: link,
		Done: memberDone[r.URL.Query().Get("done")]}
	v.CanManage = c.Access.CheckAssign(ctx, c.DB, q.P, string(m.Role), "") == nil
	v.Roles, v.ChannelChoices = c.choices(r, q, roles, chans, string(m.Role), v.ChannelIDs)
	sessions, err := c.Staff.ListSessions(ctx, m.ID, "")
	if err != nil {
		c.fail(w, r, q, err)
		return
	}
	v.Sessions = sessionRows(sessions)
	c.render(w, r, status, "staff_member", "members.member.title", q, v)
}

// actOnMember runs an act on the member in the path, if q may act on them at all: q must
// hold everything they hold (checked again inside the act's transaction, with the audit
// record), and some acts are not for oneself. The act gets an Also to pass on.
func (c *Console) actOnMember(w http.ResponseWriter, r *http.Request, q *request, notSelf bool, done string,
	act func(ctx context.Context, id int64, also staff.Also) error, action audit.Action, detail map[string]string) {
	id, ok := pathInt(r, "id")
	if !ok {
		c.fail(w, r, q, errNotFound)
		return
	}
	ctx := r.Context()
	also := func(tx *store.Tx, m staff.Member) error {
		if notSelf && m.ID == q.Member.ID {
			return errSelf
		}
		if err := c.Access.CheckAssign(ctx, tx, q.P, string(m.Role), ""); err != nil {
			return err
		}
		return c.record(ctx, tx, r, q, audit.Record{Action: action, Subject: audit.Subject("staff", m.ID), Detail: detail})
	}
	err := act(ctx, id, also)
	if problems, status := c.staffProblems(q, err); problems != nil {
		c.showMember(w, r, q, status, problems, "")
		return
	}
	if err != nil {
		c.fail(w, r, q, err)
		return
	}
	http.Redirect(w, r, "/console/staff/"+strconv.FormatInt(id, 10)+"?done="+done, http.StatusSeeOther)
}

// setMemberRole changes a member's role, after the changer confirms who they are. The
// changer must hold every permission of the old role and of the new one: an admin can
// neither make an owner nor demote one.
func (c *Console) setMemberRole(w http.ResponseWriter, r *http.Request, q *request) {
	if !c.recent(w, r, q, "/console/staff/"+r.PathValue("id")) {
		return
	}
	to := r.PostFormValue("role")
	c.actOnMember(w, r, q, true, "role", func(ctx context.Context, id int64, also staff.Also) error {
		return c.Staff.SetRole(ctx, id, staff.Role(to), func(tx *store.Tx, m staff.Member) error {
			if m.ID == q.Member.ID {
				return errSelf
			}
			if err := c.Access.CheckAssign(ctx, tx, q.P, string(m.Role), to); err != nil {
				return err
			}
			return c.record(ctx, tx, r, q, audit.Record{Action: audit.RoleChange, Subject: audit.Subject("staff", m.ID),
				Detail: map[string]string{"from": string(m.Role), "to": to}})
		})
	}, "", nil)
}

// setMemberChannels sets the accounts a member works on; the changer must work on every
// account added or taken away.
func (c *Console) setMemberChannels(w http.ResponseWriter, r *http.Request, q *request) {
	chans := r.PostForm["channels"]
	known, err := c.Channels.List(r.Context())
	if err != nil {
		c.fail(w, r, q, err)
		return
	}
	chans = slices.DeleteFunc(slices.Clone(chans), func(id string) bool {
		return !slices.ContainsFunc(known, func(ch channel.Channel) bool { return ch.ID == id })
	})
	c.actOnMember(w, r, q, false, "channels", func(ctx context.Context, id int64, also staff.Also) error {
		m, err := c.Staff.Get(ctx, id)
		if err != nil {
			return err
		}
		return c.DB.WriteTx(ctx, func(tx *store.Tx) error {
			old, err := c.Access.Channels(ctx, tx, id)
			if err != nil {
				return err
			}
			if err := c.Access.SetChannels(ctx, tx, q.P, id, chans); err != nil {
				return err
			}
			if err := c.Access.CheckAssign(ctx, tx, q.P, string(m.Role), ""); err != nil {
				return err
			}
			return c.record(ctx, tx, r, q, audit.Record{Action: audit.PermissionChange, Subject: audit.Subject("staff", id),
				Detail: map[string]string{"channels_from": strings.Join(old, " "), "channels_to": strings.Join(chans, " ")}})
		})
	}, "", nil)
}

func (c *Console) disableMember(w http.ResponseWriter, r *http.Request, q *request) {
	c.actOnMember(w, r, q, true, "disabled", func(ctx context.Context, id int64, also staff.Also) error {
		return c.Staff.Disable(ctx, id, also)
	}, audit.StaffDisable, nil)
}

func (c *Console) enableMember(w http.ResponseWriter, r *http.Request, q *request) {
	c.actOnMember(w, r, q, true, "enabled", func(ctx context.Context, id int64, also staff.Also) error {
		return c.Staff.Enable(ctx, id, also)
	}, staff.AuditEnable, nil)
}

// forceMemberPassword is for a password someone else may know: the member's sessions end
// and their next sign-in must change it.
func (c *Console) forceMemberPassword(w http.ResponseWriter, r *http.Request, q *request) {
	c.actOnMember(w, r, q, true, "password", func(ctx context.Context, id int64, also staff.Also) error {
		return c.Staff.ForcePasswordChange(ctx, id, also)
	}, staff.AuditForcePassword, nil)
}

func (c *Console) endMemberSessions(w http.ResponseWriter, r *http.Request, q *request) {
	c.actOnMember(w, r, q, false, "sessions", func(ctx context.Context, id int64, also staff.Also) error {
		_, err := c.Staff.EndAllSessions(ctx, id, also)
		return err
	}, audit.SignOut, map[string]string{"scope": "everywhere", "by": "admin"})
}

// resetMemberTOTP turns off the two-factor sign-in of a member who lost their phone and
// their recovery codes; if their role requires it, they set it up again at their next
// sign-in.
func (c *Console) resetMemberTOTP(w http.ResponseWriter, r *http.Request, q *request) {
	if !c.recent(w, r, q, "/console/staff/"+r.PathValue("id")) {
		return
	}
	c.actOnMember(w, r, q, true, "totp", func(ctx context.Context, id int64, also staff.Also) error {
		return c.Staff.DisableTOTP(ctx, id, also)
	}, audit.TwoFactorDisable, nil)
}

// memberLink issues a one-time sign-in link for a member who forgot their password (or
// never used their invitation): their sessions end and they must choose a new password
// after signing in with it. The link is shown once.
func (c *Console) memberLink(w http.ResponseWriter, r *http.Request, q *request) {
	id, ok := pathInt(r, "id")
	if !ok {
		c.fail(w, r, q, errNotFound)
		return
	}
	ctx := r.Context()
	err := c.Staff.ForcePasswordChange(ctx, id, func(tx *store.Tx, m staff.Member) error {
		if m.ID == q.Member.ID || m.Disabled() {
			return errSelf
		}
		if err := c.Access.CheckAssign(ctx, tx, q.P, string(m.Role), ""); err != nil {
			return err
		}
		return c.record(ctx, tx, r, q, audit.Record{Action: staff.AuditSignInLink, Subject: audit.Subject("staff", m.ID)})
	})
	if problems, status := c.staffProblems(q, err); problems != nil {
		c.showMember(w, r, q, status, problems, "")
		return
	}
	if err != nil {
		c.fail(w, r, q, err)
		return
	}
	token, err := c.Staff.IssueLoginLink(ctx, id, inviteTTL)
	if err != nil {
		c.fail(w, r, q, err)
		return
	}
	c.showMember(w, r, q, http.StatusOK, nil, siteURL(r)+"/login/link/"+token)
}
