package access

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/linestep/linestep/internal/clock"
	"github.com/linestep/linestep/internal/store"
	"github.com/linestep/linestep/internal/testutil"
)

func TestMask(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"山田 太郎", "山* **"},
		{"山田　太郎", "山*　**"}, // full-width space
		{"090-1234-5678", "***-****-5678"},
		{"+81 90 1234 5678", "+** ** **** 5678"},
		{"taro@example.com", "t***@e******.com"},
		{"1990-04-01", "****-**-**"},
		{"35", "**"},
		{"Taro", "T***"},
		{"<script>alert(1)</script>", "<************************"},
		{"", ""},
	} {
		if got := Mask(c.in); got != c.want {
			t.Errorf("Mask(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestBuiltInRoles(t *testing.T) {
	owner, admin, operator, analyst := builtinPermissions(Owner), builtinPermissions(Admin), builtinPermissions(Operator), builtinPermissions(Analyst)
	if len(owner) != len(All) {
		t.Errorf("owner holds %d of %d permissions", len(owner), len(All))
	}
	for _, p := range []Permission{AuditRead, AuditExport, LoginsReadAll} {
		if slices.Contains(admin, p) {
			t.Errorf("admin holds %s, which oversees admins", p)
		}
	}
	for _, p := range []Permission{FriendsReadPII, FriendsExport, FriendsReveal, StaffManage, RolesManage} {
		if slices.Contains(operator, p) || slices.Contains(analyst, p) {
			t.Errorf("operator or analyst holds %s", p)
		}
	}
	if !slices.Contains(operator, BroadcastsWrite) || !slices.Contains(operator, ChatsReply) {
		t.Error("an operator must write broadcasts and answer chats")
	}
	for _, p := range analyst {
		if p.Resource() != "dashboard" && !slices.Contains([]string{"read"}, string(p)[len(p.Resource())+1:]) {
			t.Errorf("analyst holds %s, which is not a read", p)
		}
	}
	for _, ps := range [][]Permission{owner, admin, operator, analyst} {
		for _, p := range ps {
			if !Known(p) {
				t.Errorf("built-in role holds unknown %s", p)
			}
		}
	}
}

func TestGrantingOnlyWhatOneHolds(t *testing.T) {
	testutil.EachDB(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		s := New(db, clock.NewFake(time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)))
		ownerID, adminID, operatorID := addStaff(t, db, "o", Owner), addStaff(t, db, "a", Admin), addStaff(t, db, "p", Operator)
		owner := principal(t, s, ownerID, "o", Owner)
		admin := principal(t, s, adminID, "a", Admin)
		operator := principal(t, s, operatorID, "p", Operator)
		tx := func(f func(tx *store.Tx) error) error { return db.WriteTx(ctx, f) }

		reception := Role{Name: "reception", Label: "受付", Permissions: []Permission{FriendsRead, FriendsReveal, ChatsRead, ChatsReply}}
		if err := tx(func(tx *store.Tx) error { return s.SaveRole(ctx, tx, operator, reception) }); !errors.Is(err, ErrNotHeld) {
			t.Errorf("an operator (no roles:manage) made a role: %v", err)
		}
		if err := tx(func(tx *store.Tx) error { return s.SaveRole(ctx, tx, admin, reception) }); err != nil {
			t.Fatalf("admin makes a role within their rights: %v", err)
		}
		auditor := Role{Name: "auditor", Label: "監査", Permissions: []Permission{AuditRead}}
		if err := tx(func(tx *store.Tx) error { return s.SaveRole(ctx, tx, admin, auditor) }); !errors.Is(err, ErrNotHeld) {
			t.Errorf("admin granted audit:read, which they lack: %v", err)
		}
		if err := tx(func(tx *store.Tx) error { return s.SaveRole(ctx, tx, owner, auditor) }); err != nil {
			t.Fatal(err)
		}
		// Changing the owner's role is out of the admin's reach even to narrow it.
		auditor.Permissions = nil
		if err := tx(func(tx *store.Tx) error { return s.SaveRole(ctx, tx, admin, auditor) }); !errors.Is(err, ErrNotHeld) {
			t.Errorf("admin changed a role holding what they lack: %v", err)
		}
		if err := tx(func(tx *store.Tx) error {
			return s.SaveRole(ctx, tx, owner, Role{Name: "x", Label: "x", Permissions: []Permission{"friends:everything"}})
		}); !errors.Is(err, ErrInvalid) {
			t.Errorf("unknown permission accepted: %v", err)
		}
		if err := tx(func(tx *store.Tx) error { return s.SaveRole(ctx, tx, owner, Role{Name: Admin, Label: "x"}) }); !errors.Is(err, ErrInvalid) {
			t.Errorf("built-in role redefined: %v", err)
		}

		for _, c := range []struct {
			by       Principal
			from, to string
			ok       bool
		}{
			{admin, Operator, "reception", true},
			{admin, Operator, Owner, false}, // cannot make an owner
			{admin, Owner, Operator, false}, // cannot demote one
			{admin, Operator, "auditor", false},
			{owner, Admin, Owner, true},
			{operator, Analyst, Operator, false},
		} {
			err := s.CheckAssign(ctx, db, c.by, c.from, c.to)
			if (err == nil) != c.ok {
				t.Errorf("%s assigning %s -> %s: err %v, want ok=%v", c.by.Role, c.from, c.to, err, c.ok)
			}
		}

		// A member of a custom role holds exactly its permissions.
		rID := addStaff(t, db, "r", "reception")
		r := principal(t, s, rID, "r", "reception")
		if !r.Can(FriendsReveal) || r.Can(FriendsReadPII) || r.Can(BroadcastsWrite) {
			t.Errorf("reception holds %v", r.Permissions())
		}
		if err := tx(func(tx *store.Tx) error { return s.DeleteRole(ctx, tx, owner, "reception") }); !errors.Is(err, ErrInUse) {
			t.Errorf("deleted a role in use: %v", err)
		}
		if _, err := db.ExecContext(ctx, "UPDATE staff SET role = 'analyst' WHERE id = ?", rID); err != nil {
			t.Fatal(err)
		}
		if err := tx(func(tx *store.Tx) error { return s.DeleteRole(ctx, tx, owner, "reception") }); err != nil {
			t.Fatal(err)
		}
		if gone := principal(t, s, rID, "r", "reception"); len(gone.Permissions()) != 0 {
			t.Errorf("a deleted role still grants %v", gone.Permissions())
		}
	})
}

func TestChannelsAndTOTPPolicy(t *testing.T) {
	testutil.EachDB(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		s := New(db, clock.NewFake(time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)))
		for _, ch := range []string{"c1", "c2", "c3"} {
			if _, err := db.ExecContext(ctx, "INSERT INTO channels (id, name, secret_enc, token_enc, created_at) VALUES (?, ?, ?, ?, 0)", ch, ch, []byte{1}, []byte{1}); err != nil {
				t.Fatal(err)
			}
		}
		owner := principal(t, s, addStaff(t, db, "o", Owner), "o", Owner)
		adminID, opID := addStaff(t, db, "a", Admin), addStaff(t, db, "p", Operator)
		if err := db.WriteTx(ctx, func(tx *store.Tx) error { return s.SetChannels(ctx, tx, owner, adminID, []string{"c1", "c2"}) }); err != nil {
			t.Fatal(err)
		}
		admin := principal(t, s, adminID, "a", Admin)
		if !admin.CanOn("c1", FriendsReadPII) || admin.OnChannel("c3") || !owner.OnChannel("c3") {
			t.Errorf("channels: admin %v, owner all=%v", admin.Channels(), owner.AllChannels())
		}
		if err := db.WriteTx(ctx, func(tx *store.Tx) error { return s.SetChannels(ctx, tx, admin, opID, []string{"c1", "c3"}) }); !errors.Is(err, ErrNotHeld) {
			t.Errorf("admin gave access to a channel they do not work on: %v", err)
		}
		if err := db.WriteTx(ctx, func(tx *store.Tx) error { return s.SetChannels(ctx, tx, admin, opID, []string{"c1"}) }); err != nil {
			t.Fatal(err)
		}
		op := principal(t, s, opID, "p", Operator)
		if !op.CanOn("c1", ChatsReply) || op.CanOn("c1", FriendsReadPII) || op.OnChannel("c2") {
			t.Errorf("operator: channels %v", op.Channels())
		}
		if op.Show("山田 太郎", true) != "山* **" || op.Show("osaka", false) != "osaka" || admin.Show("山田 太郎", true) != "山田 太郎" {
			t.Error("Show does not mask by permission and sensitivity")
		}

		if !s.RequireTOTP(ctx, Owner) || !s.RequireTOTP(ctx, Admin) || s.RequireTOTP(ctx, Operator) || !s.RequireTOTP(ctx, "no-such-role") {
			t.Error("default 2FA policy wrong")
		}
		if err := db.WriteTx(ctx, func(tx *store.Tx) error { return s.SetRequireTOTP(ctx, tx, admin, Operator, true) }); err != nil {
			t.Fatal(err)
		}
		if !s.RequireTOTP(ctx, Operator) {
			t.Error("operator 2FA requirement not kept")
		}
		if err := db.WriteTx(ctx, func(tx *store.Tx) error { return s.SetRequireTOTP(ctx, tx, owner, Admin, false) }); !errors.Is(err, ErrInvalid) {
			t.Errorf("2FA made optional for admins: %v", err)
		}
	})
}

func addStaff(t *testing.T, db *store.DB, login, role string) int64 {
	t.Helper()
	var id int64
	err := db.WriteTx(context.Background(), func(tx *store.Tx) error {
		return tx.QueryRowContext(context.Background(), "INSERT INTO staff (login, name, role, created_at) VALUES (?, ?, ?, 0) RETURNING id", login, login, role).Scan(&id)
	})
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func principal(t *testing.T, s *Service, id int64, login, role string) Principal {
	t.Helper()
	p, err := s.StaffPrincipal(context.Background(), id, login, role)
	if err != nil {
		t.Fatal(err)
	}
	return p
}
