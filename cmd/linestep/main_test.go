package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const testKey = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"

type runResult struct {
	code           int
	stdout, stderr string
}

func runCLI(ctx context.Context, env map[string]string, stdin string, args ...string) runResult {
	var out, errb bytes.Buffer
	e := &environment{stdout: &out, stderr: &errb, stdin: strings.NewReader(stdin),
		getenv: func(k string) string { return env[k] }}
	code := run(ctx, e, args)
	return runResult{code, out.String(), errb.String()}
}

func TestHelpOnEverySubcommand(t *testing.T) {
	ctx := context.Background()
	for _, c := range commands {
		r := runCLI(ctx, nil, "", c.name, "--help")
		if r.code != 0 || !strings.Contains(r.stderr, "Usage: linestep "+c.name) || len(r.stderr) < 150 {
			t.Errorf("%s --help: code %d\n%s", c.name, r.code, r.stderr)
		}
	}
	for _, sub := range []string{"add", "list", "rotate", "remove"} {
		if r := runCLI(ctx, nil, "", "channel", sub, "--help"); r.code != 0 || !strings.Contains(r.stderr, "Usage:") {
			t.Errorf("channel %s --help: %d %s", sub, r.code, r.stderr)
		}
	}
	if r := runCLI(ctx, nil, "", "frobnicate"); r.code != 2 || !strings.Contains(r.stderr, "unknown command") {
		t.Errorf("unknown command: %+v", r)
	}
	if r := runCLI(ctx, nil, "", "serve", "--no-such-flag"); r.code != 2 {
		t.Errorf("bad flag: %+v", r)
	}
}

func TestChannelAddListRemove(t *testing.T) {
	ctx := context.Background()
	db := filepath.Join(t.TempDir(), "cli.db")
	env := map[string]string{"LINESTEP_DB": db}
	const secret, token = "5ecret-never-printed", "t0ken-never-printed"
	r := runCLI(ctx, env, token+"\n", "channel", "add", "--name", "渋谷店", "--secret", secret, "--token", "-", "--json")
	if r.code != 0 {
		t.Fatalf("add: %+v", r)
	}
	var added map[string]string
	if err := json.Unmarshal([]byte(r.stdout), &added); err != nil || added["id"] == "" || added["webhook_path"] != "/webhook/"+added["id"] {
		t.Fatalf("add --json: %q %v", r.stdout, err)
	}
	// Without LINESTEP_MASTER_KEY a key file is created beside the database, private.
	st, err := os.Stat(db + ".key")
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("key file: %v %v", st, err)
	}
	r = runCLI(ctx, env, "", "channel", "list")
	if r.code != 0 || !strings.Contains(r.stdout, added["id"]) || !strings.Contains(r.stdout, "渋谷店") {
		t.Errorf("list: %+v", r)
	}
	r2 := runCLI(ctx, env, "", "channel", "list", "--json")
	for _, out := range []string{r.stdout, r.stderr, r2.stdout, r2.stderr} {
		if strings.Contains(out, secret) || strings.Contains(out, token) {
			t.Errorf("a secret was printed: %q", out)
		}
	}
	for _, f := range []string{db, db + "-wal"} {
		raw, _ := os.ReadFile(f)
		if bytes.Contains(raw, []byte(secret)) || bytes.Contains(raw, []byte(token)) {
			t.Errorf("a secret is stored in plain text in %s", filepath.Base(f))
		}
	}
	if r := runCLI(ctx, env, "", "channel", "add", "--name", "x"); r.code == 0 {
		t.Errorf("add without secret succeeded: %+v", r)
	}
	// Reissued credentials, read from standard input, replace the old ones unseen.
	const secret2, token2 = "n3w-5ecret-never-printed", "n3w-t0ken-never-printed"
	r3 := runCLI(ctx, env, secret2+"\n"+token2+"\n", "channel", "rotate", "--id", added["id"], "--secret", "-", "--token", "-")
	if r3.code != 0 || !strings.Contains(r3.stdout, "channel secret and access token") {
		t.Errorf("rotate: %+v", r3)
	}
	if r := runCLI(ctx, env, "", "channel", "rotate", "--id", added["id"]); r.code != 2 {
		t.Errorf("rotate with nothing to rotate: %+v", r)
	}
	if r := runCLI(ctx, env, "", "channel", "rotate", "--id", "nosuchchannel", "--token", "t"); r.code == 0 {
		t.Errorf("rotate of an unknown channel succeeded: %+v", r)
	}
	for _, out := range []string{r3.stdout, r3.stderr} {
		if strings.Contains(out, secret2) || strings.Contains(out, token2) {
			t.Errorf("a rotated secret was printed: %q", out)
		}
	}
	for _, f := range []string{db, db + "-wal"} {
		raw, _ := os.ReadFile(f)
		if bytes.Contains(raw, []byte(secret2)) || bytes.Contains(raw, []byte(token2)) {
			t.Errorf("a rotated secret is stored in plain text in %s", filepath.Base(f))
		}
	}
	if r := runCLI(ctx, env, "", "channel", "remove", "--id", added["id"]); r.code == 0 {
		t.Errorf("remove without --yes succeeded")
	}
	if r := runCLI(ctx, env, "", "channel", "remove", "--id", added["id"], "--yes"); r.code != 0 {
		t.Errorf("remove: %+v", r)
	}
	if r := runCLI(ctx, env, "", "channel", "list", "--json"); strings.Contains(r.stdout, added["id"]) {
		t.Errorf("removed channel still listed: %s", r.stdout)
	}
}

func TestServeStopsCleanlyOnSignal(t *testing.T) {
	db := filepath.Join(t.TempDir(), "serve.db")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan runResult, 1)
	go func() {
		done <- runCLI(ctx, map[string]string{"LINESTEP_MASTER_KEY": testKey}, "", "serve", "--addr", addr, "--db", db)
	}()
	var res *http.Response
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if res, err = http.Get("http://" + addr + "/readyz"); err == nil {
			break
		}
	}
	if err != nil {
		t.Fatalf("server did not come up: %v", err)
	}
	io.Copy(io.Discard, res.Body)
	res.Body.Close()
	if res.StatusCode != 200 {
		t.Errorf("readyz: %d", res.StatusCode)
	}
	cancel() // what SIGTERM does through signal.NotifyContext
	r := <-done
	if r.code != 0 {
		t.Errorf("serve exit %d: %s", r.code, r.stderr)
	}
	if !strings.Contains(r.stderr, "/login/link/") {
		t.Errorf("a new installation printed no owner sign-in link:\n%s", r.stderr)
	}
	if _, err := os.Stat(db + ".key"); err == nil {
		t.Errorf("a key file was created although LINESTEP_MASTER_KEY was set")
	}
}
