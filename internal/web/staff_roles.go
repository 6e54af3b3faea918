package web

import (
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/linestep/linestep/internal/access"
	"github.com/linestep/linestep/internal/audit"
	"github.com/linestep/linestep/internal/store"
)

// Roles: the built-in ones with what they may do, and custom ones made from permissions.
// A member offers only the permissions they hold; access.SaveRole refuses the rest
// whatever the form said. Changing what a role may do is a sensitive act: confirm first.

func (c *Console) roleRoutes(mux *http.ServeMux) {
	c.handle(mux, "GET", "/console/staff/roles", access.StaffRead, c.roles)
	c.handle(mux, "POST", "/console/staff/roles", access.RolesManage, c.saveRole)
	c.handle(mux, "GET", "/console/staff/roles/{name}/edit", access.RolesManage, c.editRole)
	c.handle(mux, "POST", "/console/staff/roles/{name}/delete", access.RolesManage, c.deleteRole)
	c.handle(mux, "POST", "/console/staff/roles/{name}/totp", access.RolesManage, c.setRoleTOTP)
}

// permGroup is the permissions of one resource, for a checklist.
type permGroup struct {
	Label string
	Perms []choice
}

type roleRow struct {
	access.Role
	Title  string
	Groups []permGroup
	// CanEdit: the viewer manages roles and holds everything this role grants.
	CanEdit bool
}

type rolesView struct {
	Roles    []roleRow
	Form     roleForm
	Problems []string
	Done     string
}

type roleForm struct {
	Name, Label string
	Editing     bool
	RequireTOTP bool
	Groups      []permGroup // what the viewer may grant, chosen as the role has it
}

// groups lists perms by resource in the console's order; with offer, every permission
// the viewer holds, chosen if in perms.
func groups(lang string, perms []access.Permission, offer *access.Principal) []permGroup {
	var out []permGroup
	for _, p := range access.All {
		held := slices.Contains(perms, p)
		if offer == nil && !held || offer != nil && !offer.Can(p) {
			continue
		}
		res := label(lang, "permgroup.", p.Resource())
		if len(out) == 0 || out[len(out)-1].Label != res {
			out = append(out, permGroup{Label: res})
		}
		g := &out[len(out)-1]
		g.Perms = append(g.Perms, choice{Value: string(p), Label: label(lang, "perm.", string(p)), On: held})
	}
	return out
}

func (c *Console) roles(w http.ResponseWriter, r *http.Request, q *request) {
	c.showRoles(w, r, q, http.StatusOK, roleForm{Groups: groups(q.Lang, nil, &q.P)}, nil)
}

func (c *Console) showRoles(w http.ResponseWriter, r *http.Request, q *request, status int, form roleForm, problems []string) {
	roles, err := c.Access.Roles(r.Context())
	if err != nil {
		c.fail(w, r, q, err)
		return
	}
	v := rolesView{Form: form, Problems: problems}
	if r.URL.Query().Get("done") == "saved" {
		v.Done = "roles.done"
	}
	for _, ro := range roles {
		row := roleRow{Role: ro, Title: roleLabel(q.Lang, roles, ro.Name), Groups: groups(q.Lang, ro.Permissions, nil)}
		row.CanEdit = q.P.Can(access.RolesManage) && !slices.ContainsFunc(ro.Permissions, func(p access.Permission) bool { return !q.P.Can(p) })
		v.Roles = append(v.Roles, row)
	}
	c.render(w, r, status, "roles", "roles.title", q, v)
}

func (c *Console) editRole(w http.ResponseWriter, r *http.Request, q *request) {
	ro, err := c.Access.Role(r.Context(), c.DB, r.PathValue("name"))
	if err != nil {
		c.fail(w, r, q, err)
		return
	}
	if ro.BuiltIn {
		http.Redirect(w, r, "/console/staff/roles", http.StatusSeeOther)
		return
	}
	form := roleForm{Name: ro.Name, Label: ro.Label, Editing: true, RequireTOTP: ro.RequireTOTP, Groups: groups(q.Lang, ro.Permissions, &q.P)}
	c.showRoles(w, r, q, http.StatusOK, form, nil)
}

// saveRole creates or changes a custom role; the audit record lists what it grants now
// and what changed.
func (c *Console) saveRole(w http.ResponseWriter, r *http.Request, q *request) {
	name := strings.TrimSpace(r.PostFormValue("name"))
	back := "/console/staff/roles"
	if r.PostFormValue("editing") != "" {
		back += "/" + url.PathEscape(name) + "/edit"
	}
	if !c.recent(w, r, q, back) {
		return
	}
	var perms []access.Permission
	for _, p := range r.PostForm["perms"] {
		perms = append(perms, access.Permission(p))
	}
	ro := access.Role{Name: name, Label: r.PostFormValue("label"), Permissions: perms, RequireTOTP: r.PostFormValue("require_totp") != ""}
	ctx := r.Context()
	err := c.DB.WriteTx(ctx, func(tx *store.Tx) error {
		old, err := c.Access.Role(ctx, tx, name)
		isNew := errors.Is(err, store.ErrNotFound)
		if err != nil && !isNew {
			return err
		}
		if err := c.Access.SaveRole(ctx, tx, q.P, ro); err != nil {
			return err
		}
		added, removed := diffPerms(old.Permissions, perms)
		return c.record(ctx, tx, r, q, audit.Record{Action: audit.PermissionChange, Subject: "role:" + name,
			Detail: map[string]string{"label": ro.Label, "added": added, "removed": removed,
				"require_totp": boolText(ro.RequireTOTP), "new": boolText(isNew)}})
	})
	if err != nil {
		form := roleForm{Name: name, Label: ro.Label, Editing: r.PostFormValue("editing") != "", RequireTOTP: ro.RequireTOTP,
			Groups: groups(q.Lang, perms, &q.P)}
		switch {
		case errors.Is(err, access.ErrNotHeld):
			c.showRoles(w, r, q, statusRefused, form, []string{translate(q.Lang, "members.err.notheld")})
		case errors.Is(err, access.ErrInvalid):
			c.showRoles(w, r, q, http.StatusBadRequest, form, []string{translate(q.Lang, "roles.err.invalid")})
		default:
			c.fail(w, r, q, err)
		}
		return
	}
	http.Redirect(w, r, "/console/staff/roles?done=saved", http.StatusSeeOther)
}

func diffPerms(old, now []access.Permission) (added, removed string) {
	var a, rm []string
	for _, p := range now {
		if !slices.Contains(old, p) {
			a = append(a, string(p))
		}
	}
	for _, p := range old {
		if !slices.Contains(now, p) {
			rm = append(rm, string(p))
		}
	}
	return strings.Join(a, " "), strings.Join(rm, " ")
}

func boolText(b bool) string {
	if b {
		return "true"
	}
	return "false"
}

func (c *Console) deleteRole(w http.ResponseWriter, r *http.Request, q *request) {
	if !c.recent(w, r, q, "/console/staff/roles") {
		return
	}
	name := r.PathValue("name")
	ctx := r.Context()
	err := c.DB.WriteTx(ctx, func(tx *store.Tx) error {
		if err := c.Access.DeleteRole(ctx, tx, q.P, name); err != nil {
			return err
		}
		return c.record(ctx, tx, r, q, audit.Record{Action: audit.PermissionChange, Subject: "role:" + name,
			Detail: map[string]string{"deleted": "true"}})
	})
	c.roleChanged(w, r, q, err)
}

// setRoleTOTP sets whether a role's members must use two-factor sign-in (owners and
// admins always must).
func (c *Console) setRoleTOTP(w http.ResponseWriter, r *http.Request, q *request) {
	if !c.recent(w, r, q, "/console/staff/roles") {
		return
	}
	name, require := r.PathValue("name"), r.PostFormValue("require_totp") == "on"
	ctx := r.Context()
	err := c.DB.WriteTx(ctx, func(tx *store.Tx) error {
		if err := c.Access.SetRequireTOTP(ctx, tx, q.P, name, require); err != nil {
			return err
		}
		return c.record(ctx, tx, r, q, audit.Record{Action: audit.PermissionChange, Subject: "role:" + name,
			Detail: map[string]string{"require_totp": boolText(require)}})
	})
	c.roleChanged(w, r, q, err)
}

func (c *Console) roleChanged(w http.ResponseWriter, r *http.Request, q *request, err error) {
	form := roleForm{Groups: groups(q.Lang, nil, &q.P)}
	switch {
	case err == nil:
		http.Redirect(w, r, "/console/staff/roles?done=saved", http.StatusSeeOther)
	case errors.Is(err, access.ErrNotHeld):
		c.showRoles(w, r, q, statusRefused, form, []string{translate(q.Lang, "members.err.notheld")})
	case errors.Is(err, access.ErrInUse):
		c.showRoles(w, r, q, http.StatusConflict, form, []string{translate(q.Lang, "roles.err.inuse")})
	case errors.Is(err, access.ErrInvalid):
		c.showRoles(w, r, q, http.StatusBadRequest, form, []string{translate(q.Lang, "roles.err.invalid")})
	default:
		c.fail(w, r, q, err)
	}
}
