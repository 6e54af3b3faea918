// Package access decides who may do what: permissions named resource:action, the
// built-in roles and custom ones made from permissions, the LINE accounts each staff
// member works on, and how personal data is masked for those who may not read it.
//
// The console and the JSON API ask the same Principal the same questions, so a rule
// holds everywhere or nowhere.
package access

import (
	"slices"
	"strings"
)

// Permission is one thing a role may do, "resource:action".
type Permission string

const (
	DashboardRead Permission = "dashboard:read"

	FriendsRead  Permission = "friends:read"  // the friend list and details, personal values masked
	FriendsWrite Permission = "friends:write" // tags and field values
	// FriendsReadPII shows personal values unmasked. Seeing the list is a separate right:
	// staff can work with friends without browsing who they are.
	FriendsReadPII Permission = "friends:read_pii"
	// FriendsReveal unmasks one value at a time, with a stated reason, each audited.
	FriendsReveal Permission = "friends:reveal"
	FriendsExport Permission = "friends:export"
	// FriendsErase deletes a friend and all that names them, for good (APPI's 消去).
	FriendsErase Permission = "friends:erase"

	FieldsManage Permission = "fields:manage" // define tags and custom fields

	ChatsRead   Permission = "chats:read"
	ChatsReply  Permission = "chats:reply"
	ChatsAssign Permission = "chats:assign"

	ScenariosRead    Permission = "scenarios:read"
	ScenariosWrite   Permission = "scenarios:write"
	AutorepliesRead  Permission = "autoreplies:read"
	AutorepliesWrite Permission = "autoreplies:write"
	BroadcastsRead   Permission = "broadcasts:read"
	BroadcastsWrite  Permission = "broadcasts:write" // write, send, schedule, cancel
	TemplatesRead    Permission = "templates:read"
	TemplatesWrite   Permission = "templates:write"
	CouponsRead      Permission = "coupons:read"
	CouponsWrite     Permission = "coupons:write"
	CouponsRedeem    Permission = "coupons:redeem"
	DeliveriesRead   Permission = "deliveries:read"

	StaffRead   Permission = "staff:read"
	StaffManage Permission = "staff:manage" // create, disable, change roles, end sessions
	RolesManage Permission = "roles:manage" // custom roles and their 2FA policy

	AuditRead   Permission = "audit:read"
	AuditExport Permission = "audit:export"
	// LoginsReadAll shows everyone's sign-in history and flags; everyone sees their own.
	LoginsReadAll Permission = "logins:read_all"

	SettingsRead  Permission = "settings:read"
	SettingsWrite Permission = "settings:write" // channels, time zone, quiet hours
	TokensManage  Permission = "tokens:manage"  // API tokens
)

// All lists every permission, in the order the console shows them.
var All = []Permission{
	DashboardRead,
	FriendsRead, FriendsWrite, FriendsReadPII, FriendsReveal, FriendsExport, FriendsErase, FieldsManage,
	ChatsRead, ChatsReply, ChatsAssign,
	ScenariosRead, ScenariosWrite, AutorepliesRead, AutorepliesWrite,
	BroadcastsRead, BroadcastsWrite, TemplatesRead, TemplatesWrite,
	CouponsRead, CouponsWrite, CouponsRedeem, DeliveriesRead,
	StaffRead, StaffManage, RolesManage,
	AuditRead, AuditExport, LoginsReadAll,
	SettingsRead, SettingsWrite, TokensManage,
}

// Known reports whether p is a permission linestep defines.
func Known(p Permission) bool { return slices.Contains(All, p) }

// Resource is the part before the colon ("friends").
func (p Permission) Resource() string {
	r, _, _ := strings.Cut(string(p), ":")
	return r
}

// Built-in role names.
const (
	Owner    = "owner"
	Admin    = "admin"
	Operator = "operator"
	Analyst  = "analyst"
)

// BuiltIn lists the built-in roles, most powerful first.
var BuiltIn = []string{Owner, Admin, Operator, Analyst}

func builtinPermissions(role string) []Permission {
	switch role {
	case Owner:
		return All
	case Admin:
		// An admin runs the accounts and sees personal data; the audit trail and everyone's
		// sign-in history are the owner's, so that what admins do is overseen.
		return slices.DeleteFunc(slices.Clone(All), func(p Permission) bool {
			return p == AuditRead || p == AuditExport || p == LoginsReadAll
		})
	case Operator:
		// Writes broadcasts, handles chats and reservations; does not browse personal data.
		return []Permission{DashboardRead, FriendsRead, FriendsWrite, ChatsRead, ChatsReply, ChatsAssign,
			ScenariosRead, ScenariosWrite, AutorepliesRead, AutorepliesWrite, BroadcastsRead, BroadcastsWrite,
			TemplatesRead, TemplatesWrite, CouponsRead, CouponsWrite, CouponsRedeem, DeliveriesRead, SettingsRead}
	case Analyst:
		return []Permission{DashboardRead, FriendsRead, ChatsRead, ScenariosRead, AutorepliesRead,
			BroadcastsRead, TemplatesRead, CouponsRead, DeliveriesRead}
	}
	return nil
}

// IsBuiltIn reports whether name is a built-in role.
func IsBuiltIn(name string) bool { return slices.Contains(BuiltIn, name) }
