package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/linestep/linestep/internal/api"
	"github.com/linestep/linestep/internal/clock"
	"github.com/linestep/linestep/internal/store"
)

func TestTokenCreateListRevoke(t *testing.T) {
	ctx := context.Background()
	db := filepath.Join(t.TempDir(), "cli.db")
	env := map[string]string{"LINESTEP_DB": db, "LINESTEP_MASTER_KEY": testKey}

	r := runCLI(ctx, env, "", "token", "create", "--name", "予約システム", "--role", "operator", "--json")
	if r.code != 0 {
		t.Fatalf("create: %+v", r)
	}
	var made struct {
		ID                int64
		Name, Role, Token string
		ChannelID         string `json:"channel_id"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &made); err != nil || made.ID == 0 || made.Role != "operator" ||
		made.Name != "予約システム" || !strings.HasPrefix(made.Token, api.TokenPrefix) {
		t.Fatalf("create --json: %q %v", r.stdout, err)
	}
	r = runCLI(ctx, env, "", "token", "create", "--name", "read only")
	if r.code != 0 || !strings.Contains(r.stdout, "role analyst") || !strings.Contains(r.stdout, "lst_") {
		t.Fatalf("create, default role: %+v", r)
	}
	for _, bad := range [][]string{
		{"--role", "operator"},
		{"--name", "x", "--role", "superuser"},
		{"--name", "x", "--channel", "chnosuch"},
	} {
		if r := runCLI(ctx, env, "", append([]string{"token", "create"}, bad...)...); r.code == 0 {
			t.Errorf("create %v succeeded: %+v", bad, r)
		}
	}

	ch := runCLI(ctx, env, "", "channel", "add", "--name", "shop", "--secret", "s3cret", "--token", "t0ken", "--json")
	var added map[string]string
	if err := json.Unmarshal([]byte(ch.stdout), &added); err != nil {
		t.Fatalf("channel add: %+v", ch)
	}
	if r := runCLI(ctx, env, "", "token", "create", "--name", "shop only", "--channel", added["id"]); r.code != 0 || !strings.Contains(r.stdout, "channel "+added["id"]) {
		t.Errorf("create for a channel: %+v", r)
	}

	list := runCLI(ctx, env, "", "token", "list")
	listJSON := runCLI(ctx, env, "", "token", "list", "--json")
	if list.code != 0 || !strings.Contains(list.stdout, "予約システム") || !strings.Contains(list.stdout, "(all)") || listJSON.code != 0 {
		t.Fatalf("list: %+v %+v", list, listJSON)
	}
	for _, out := range []string{list.stdout, list.stderr, listJSON.stdout, listJSON.stderr} {
		if strings.Contains(out, made.Token) || strings.Contains(out, "lst_") {
			t.Errorf("list printed a token: %q", out)
		}
	}
	for _, f := range []string{db, db + "-wal"} {
		raw, _ := os.ReadFile(f)
		if bytes.Contains(raw, []byte(made.Token)) || bytes.Contains(raw, []byte(strings.TrimPrefix(made.Token, api.TokenPrefix))) {
			t.Errorf("the token is stored in plain text in %s", filepath.Base(f))
		}
	}

	// The token works until it is revoked.
	d, err := store.Open(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	tokens := api.NewTokens(d, clock.Real)
	if _, err := tokens.Authenticate(ctx, made.Token, api.Client{}); err != nil {
		t.Fatalf("a new token does not authenticate: %v", err)
	}
	id := strconv.FormatInt(made.ID, 10)
	if r := runCLI(ctx, env, "", "token", "revoke", id); r.code != 0 || !strings.Contains(r.stdout, "revoked") {
		t.Fatalf("revoke: %+v", r)
	}
	if _, err := tokens.Authenticate(ctx, made.Token, api.Client{}); err != api.ErrInvalidToken {
		t.Fatalf("a revoked token authenticates: %v", err)
	}
	if r := runCLI(ctx, env, "", "token", "revoke", "--db", db, id); r.code != 0 {
		t.Errorf("revoking again, ID after the flags: %+v", r)
	}
	if r := runCLI(ctx, env, "", "token", "list", "--json"); !strings.Contains(r.stdout, `"revoked_at":"`) {
		t.Errorf("revocation not listed: %s", r.stdout)
	}
	if r := runCLI(ctx, env, "", "token", "revoke", "999"); r.code != 1 || !strings.Contains(r.stderr, "no token 999") {
		t.Errorf("revoke unknown: %+v", r)
	}
	if r := runCLI(ctx, env, "", "token", "revoke"); r.code != 2 {
		t.Errorf("revoke without an ID: %+v", r)
	}
	for _, sub := range []string{"create", "list", "revoke"} {
		if r := runCLI(ctx, env, "", "token", sub, "--help"); r.code != 0 || !strings.Contains(r.stderr, "Usage:") || !strings.Contains(r.stderr, "トークン") {
			t.Errorf("token %s --help: %+v", sub, r)
		}
	}
}
