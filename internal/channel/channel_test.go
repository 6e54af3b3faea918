package channel_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/linestep/linestep/internal/channel"
	"github.com/linestep/linestep/internal/clock"
	"github.com/linestep/linestep/internal/keyring"
	"github.com/linestep/linestep/internal/store"
	"github.com/linestep/linestep/internal/testutil"
)

func TestChannelLifecycle(t *testing.T) {
	testutil.EachDB(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		key, _ := keyring.ParseKey(keyring.GenerateKey())
		keys, _ := keyring.New(key)
		clk := clock.NewFake(time.Date(2026, 11, 1, 9, 0, 0, 0, time.UTC))
		svc := channel.NewService(db, keys, clk)

		ch, err := svc.Add(ctx, " Cafe Mugi ", "secret0123456789abcdef0123456789", "token-abc")
		if err != nil {
			t.Fatal(err)
		}
		if ch.Name != "Cafe Mugi" || ch.TimeZone != "Asia/Tokyo" || ch.WebhookPath() != "/webhook/"+ch.ID {
			t.Fatalf("added %+v", ch)
		}

		// Credentials are sealed in the database.
		var secretEnc, tokenEnc []byte
		if err := db.QueryRowContext(ctx, "SELECT secret_enc, token_enc FROM channels WHERE id = ?", ch.ID).Scan(&secretEnc, &tokenEnc); err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(secretEnc, []byte("secret0123")) || bytes.Contains(tokenEnc, []byte("token-abc")) {
			t.Fatal("credentials stored in plaintext")
		}

		got, err := svc.Get(ctx, ch.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.Credentials.Secret != "secret0123456789abcdef0123456789" || got.Credentials.AccessToken != "token-abc" {
			t.Fatal("credentials do not round-trip")
		}
		if s := fmt.Sprintf("%v %+v %#v", got, got, got); bytes.Contains([]byte(s), []byte("token-abc")) || bytes.Contains([]byte(s), []byte("secret0123")) {
			t.Fatalf("credentials printed: %s", s)
		}

		list, err := svc.List(ctx)
		if err != nil || len(list) != 1 || list[0].ID != ch.ID || list[0].Credentials.Secret != "" {
			t.Fatalf("List = %+v, %v", list, err)
		}

		if err := svc.SetTimeZone(ctx, ch.ID, "Mars/Olympus"); !errors.Is(err, channel.ErrInvalid) {
			t.Fatalf("bad zone: %v", err)
		}
		if err := svc.Remove(ctx, ch.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := svc.Get(ctx, ch.ID); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("Get after remove = %v, want ErrNotFound", err)
		}
		if err := svc.Remove(ctx, ch.ID); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("second remove = %v", err)
		}
	})
}

func TestAddRejectsBadInput(t *testing.T) {
	db := testutil.NewSQLite(t)
	key, _ := keyring.ParseKey(keyring.GenerateKey())
	keys, _ := keyring.New(key)
	svc := channel.NewService(db, keys, clock.Real)
	for _, c := range []struct{ name, secret, token string }{
		{"", "s", "t"},
		{"n", "", "t"},
		{"n", "s", ""},
		{"n", "s s", "t"},
		{"n", "s", "t\n"},
	} {
		if _, err := svc.Add(context.Background(), c.name, c.secret, c.token); !errors.Is(err, channel.ErrInvalid) {
			t.Errorf("Add(%q, %q, %q) = %v, want ErrInvalid", c.name, c.secret, c.token, err)
		}
	}
}

// Reissued credentials replace the old ones, sealed like them; each can be replaced
// alone, and another instance (its own service, its own cache) sees them within the
// cache's lifetime.
func TestSetCredentials(t *testing.T) {
	testutil.EachDB(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		key, _ := keyring.ParseKey(keyring.GenerateKey())
		keys, _ := keyring.New(key)
		clk := clock.NewFake(time.Date(2026, 11, 1, 9, 0, 0, 0, time.UTC))
		svc := channel.NewService(db, keys, clk)
		other := channel.NewService(db, keys, clk)
		ch, err := svc.Add(ctx, "Cafe Mugi", "old-secret", "old-token")
		if err != nil {
			t.Fatal(err)
		}
		creds := func(s *channel.Service) channel.Credentials {
			t.Helper()
			got, err := s.Get(ctx, ch.ID)
			if err != nil {
				t.Fatal(err)
			}
			return got.Credentials
		}
		if c := creds(other); c.AccessToken != "old-token" {
			t.Fatalf("before: %q", c.AccessToken)
		}
		if err := svc.SetCredentials(ctx, ch.ID, "", "new-token"); err != nil {
			t.Fatal(err)
		}
		if c := creds(svc); c.Secret != "old-secret" || c.AccessToken != "new-token" {
			t.Fatal("a new token alone: the secret changed or the token did not")
		}
		if c := creds(other); c.AccessToken != "old-token" {
			t.Fatal("the other instance's cache was not used") // read within its lifetime
		}
		clk.Advance(11 * time.Second)
		if c := creds(other); c.AccessToken != "new-token" {
			t.Fatal("the other instance still uses the old token after its cache ran out")
		}
		if err := svc.SetCredentials(ctx, ch.ID, "new-secret", ""); err != nil {
			t.Fatal(err)
		}
		if c := creds(svc); c.Secret != "new-secret" || c.AccessToken != "new-token" {
			t.Fatal("a new secret alone")
		}
		var secretEnc, tokenEnc []byte
		if err := db.QueryRowContext(ctx, "SELECT secret_enc, token_enc FROM channels WHERE id = ?", ch.ID).Scan(&secretEnc, &tokenEnc); err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(secretEnc, []byte("new-secret")) || bytes.Contains(tokenEnc, []byte("new-token")) {
			t.Fatal("new credentials stored in plaintext")
		}
		for name, c := range map[string][2]string{
			"neither":         {"", ""},
			"token with text": {"", "new token"},
			"secret too long": {strings.Repeat("s", 2001), ""},
		} {
			if err := svc.SetCredentials(ctx, ch.ID, c[0], c[1]); !errors.Is(err, channel.ErrInvalid) {
				t.Errorf("%s: %v", name, err)
			}
		}
		if c := creds(svc); c.Secret != "new-secret" || c.AccessToken != "new-token" {
			t.Fatal("a refused change changed something")
		}
		if err := svc.SetCredentials(ctx, "nosuchchannel", "s", "t"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("unknown channel: %v", err)
		}
	})
}
