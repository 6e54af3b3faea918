package staff_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/linestep/linestep/internal/message"
	"github.com/linestep/linestep/internal/staff"
	"github.com/linestep/linestep/internal/store"
	"github.com/linestep/linestep/internal/testutil"
)

func TestPasswordPolicy(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name, password string
		ok             bool
		reason         string // part of the English text expected
	}{
		{"long enough", "violet tractor on the moon", true, ""},
		{"11 characters", "abcdefghijk", false, "at least 12"},
		{"12 characters", "kumo7fuji3ta", true, ""},
		{"a keyboard run", "qwertyuiop12", false, "common"},
		{"a sequence", "abcdefghijkl", false, "common"},
		{"12 Japanese characters", "すもももももももものうち", true, ""},
		{"11 Japanese characters", "すもももももももものう", false, "at least 12"},
		{"too long", strings.Repeat("ab", 65), false, "at most 128"},
		{"common", "password1234", false, "common"},
		{"common, other case", "PassWord1234", false, "common"},
		// NFKC: full-width letters typed with a Japanese input method are the same password.
		{"common, full-width", "ｐａｓｓｗｏｒｄ１２３４", false, "common"},
		{"one character repeated", "zzzzzzzzzzzzzz", false, "single character"},
		{"contains the login", "my-hanako-passphrase", false, "login"},
		{"contains the name", "yamada loves ramen", false, "name"},
		{"contains the Japanese name", "山田花子のひみつのあいことば", false, "name"},
	} {
		err := staff.CheckPassword(c.password, "hanako", "山田 花子 Hanako Yamada")
		if c.ok {
			if err != nil {
				t.Errorf("%s: refused: %v", c.name, err)
			}
			continue
		}
		var ps message.Problems
		if !errors.As(err, &ps) || len(ps) == 0 {
			t.Errorf("%s: error %v, want message.Problems", c.name, err)
			continue
		}
		if !strings.Contains(ps.Error(), c.reason) {
			t.Errorf("%s: problems %q, want one about %q", c.name, ps.Error(), c.reason)
		}
		for _, p := range ps {
			if p.JA == "" || p.EN == "" || p.Path != "password" {
				t.Errorf("%s: problem %+v lacks a language or the path", c.name, p)
			}
			if strings.Contains(p.JA+p.EN, c.password) {
				t.Errorf("%s: the problem repeats the password", c.name)
			}
		}
	}
}

func TestDefaultParamsMeetOWASP(t *testing.T) {
	t.Parallel()
	p := staff.DefaultParams
	// OWASP Password Storage Cheat Sheet: Argon2id with at least 19 MiB, 2 iterations, 1
	// lane; more memory may trade for fewer iterations (46 MiB with 1).
	if !(p.Memory >= 19*1024 && p.Time >= 2 || p.Memory >= 46*1024 && p.Time >= 1) || p.Threads < 1 || p.KeyLen < 32 {
		t.Fatalf("DefaultParams %+v are below OWASP's minimum", p)
	}
}

func TestPasswordHashRoundTripAndRehash(t *testing.T) {
	t.Parallel()
	testutil.EachDB(t, func(t *testing.T, db *store.DB) {
		f := newFixture(t, db)
		m := f.member("alice", staff.Operator)
		hash := storedHash(t, f, m.ID)
		if !strings.HasPrefix(hash, "$argon2id$v=19$m=64,t=1,p=1$") || strings.Contains(hash, goodPassword) {
			t.Fatalf("stored hash %q is not a PHC Argon2id string of the current parameters", hash)
		}
		f.signIn("alice", staff.SignedIn)
		f.wrong("alice", goodPassword+"!", browser)
		if storedHash(t, f, m.ID) != hash {
			t.Fatal("hash changed without a parameter change")
		}

		// Raising the cost: the next successful sign-in rehashes, a failed one does not.
		f.svc.Hashing = staff.Params{Memory: 128, Time: 2, Threads: 1, KeyLen: 32}
		f.wrong("alice", "not the password at all", browser)
		if storedHash(t, f, m.ID) != hash {
			t.Fatal("a failed sign-in rehashed")
		}
		f.signIn("alice", staff.SignedIn)
		rehashed := storedHash(t, f, m.ID)
		if !strings.HasPrefix(rehashed, "$argon2id$v=19$m=128,t=2,p=1$") {
			t.Fatalf("not rehashed with the new parameters: %q", rehashed)
		}
		f.signIn("alice", staff.SignedIn)
		if storedHash(t, f, m.ID) != rehashed {
			t.Fatal("rehashed again with unchanged parameters")
		}
		f.wrong("alice", "still not the password", browser)
	})
}

func storedHash(t *testing.T, f *fixture, id int64) string {
	t.Helper()
	var h string
	if err := f.db.QueryRowContext(f.ctx, "SELECT password_hash FROM staff WHERE id = ?", id).Scan(&h); err != nil {
		t.Fatal(err)
	}
	return h
}

// TestUnknownLoginCostsAHash checks, with the real parameters, that an unknown login is
// answered after an Argon2 computation like a wrong password, not at once.
func TestUnknownLoginCostsAHash(t *testing.T) {
	t.Parallel()
	testutil.EachDB(t, func(t *testing.T, db *store.DB) {
		f := newFixture(t, db)
		f.member("alice", staff.Operator)
		f.svc.Hashing = staff.DefaultParams
		f.signIn("alice", staff.SignedIn) // rehash to the real parameters, warm up
		f.wrong("nobody", "whatever password", staff.Client{Addr: "192.0.2.1"})
		start := time.Now()
		f.wrong("alice", "a wrong password", staff.Client{Addr: "192.0.2.2"})
		wrongPassword := time.Since(start)
		start = time.Now()
		f.wrong("nobody-at-all", "a wrong password", staff.Client{Addr: "192.0.2.3"})
		unknown := time.Since(start)
		if unknown < wrongPassword/3 {
			t.Fatalf("unknown login answered in %v, a wrong password in %v: the difference shows which logins exist", unknown, wrongPassword)
		}
	})
}

func TestCreateMemberChecks(t *testing.T) {
	t.Parallel()
	testutil.EachDB(t, func(t *testing.T, db *store.DB) {
		f := newFixture(t, db)
		var ps message.Problems
		_, err := f.svc.CreateMember(f.ctx, "bad login", "", "", "short")
		if !errors.As(err, &ps) || len(ps) != 4 {
			t.Fatalf("CreateMember with four problems: %v", err)
		}
		m, err := f.svc.CreateMember(f.ctx, " Ｈａｎａｋｏ ", "山田 花子", "shop-manager", "")
		if err != nil || m.Login != "hanako" || m.Role != "shop-manager" || m.HasPassword {
			t.Fatalf("invite with a custom role = %+v, %v", m, err)
		}
		if _, err := f.svc.CreateMember(f.ctx, "HANAKO", "other", staff.Analyst, ""); !errors.Is(err, staff.ErrLoginTaken) {
			t.Fatalf("same login again: %v, want ErrLoginTaken", err)
		}
		if err := f.svc.SetRole(f.ctx, m.ID, staff.Admin); err != nil {
			t.Fatal(err)
		}
		if got, _ := f.svc.GetByLogin(f.ctx, "Hanako"); got.Role != staff.Admin {
			t.Fatalf("role after SetRole = %q", got.Role)
		}
		list, err := f.svc.List(f.ctx)
		if err != nil || len(list) != 1 {
			t.Fatalf("List = %v, %v", list, err)
		}
		if _, err := f.svc.Get(f.ctx, 999); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("Get(unknown) = %v", err)
		}
	})
}
