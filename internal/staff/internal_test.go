package staff

import (
	"strings"
	"testing"
)

func TestAddrKey(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"192.0.2.1":              "192.0.2.1",
		"192.0.2.1:51234":        "192.0.2.1",
		"::ffff:192.0.2.1":       "192.0.2.1",
		"2001:db8:1:2::10":       "2001:db8:1:2::/64",
		"[2001:db8:1:2:aa::1]:8": "2001:db8:1:2::/64",
		"":                       "",
		"not an address":         "not an address",
	} {
		if got := addrKey(in); got != want {
			t.Errorf("addrKey(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestDecodeHashRefusesJunk(t *testing.T) {
	t.Parallel()
	good := encodeHash("a password of some length", Params{Memory: 64, Time: 1, Threads: 1, KeyLen: 32})
	if _, _, _, err := decodeHash(good); err != nil {
		t.Fatalf("own hash refused: %v", err)
	}
	for _, bad := range []string{
		"",
		"$2y$10$abcdefghijklmnopqrstuv", // bcrypt
		strings.Replace(good, "argon2id", "argon2i", 1), // other variant
		strings.Replace(good, "m=64", "m=99999999", 1),  // absurd memory from the database
		strings.Replace(good, "t=1", "t=0", 1),
		strings.Replace(good, "v=19", "v=16", 1),
		good[:len(good)-30],
	} {
		if _, _, _, err := decodeHash(bad); err == nil {
			t.Errorf("decodeHash(%q) accepted", bad)
		}
	}
	ok, stale, err := verifyHash(good, "a password of some length", Params{Memory: 64, Time: 1, Threads: 1, KeyLen: 32})
	if !ok || stale || err != nil {
		t.Fatalf("verifyHash = %v %v %v", ok, stale, err)
	}
	if ok, stale, _ := verifyHash(good, "a password of some length", DefaultParams); !ok || !stale {
		t.Fatal("a hash with other parameters is not reported stale")
	}
}
