package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/linestep/linestep/internal/testutil"
)

const shopFile = `
tags: [vip]
fields:
  - {key: next_visit, label: 次回来店日, type: date, purpose: 来店前日のリマインド}
scenarios:
  welcome:
    trigger: {type: follow}
    steps:
      - key: greet
        messages: [{type: text, text: "{{display_name|お客様}}さん、ようこそ"}]
  visit:
    trigger: {type: field, field: next_visit}
    steps:
      - key: eve
        timing: {field: next_visit, days: -1, at: "10:00"}
        messages: [{type: text, text: 明日お待ちしています}]
autoreplies:
  hours:
    keywords: [営業時間]
    messages: [{type: text, text: 9時から18時までです}]
`

func TestApplyAndExport(t *testing.T) {
	testutil.EachDSN(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		dir := t.TempDir()
		env := map[string]string{"LINESTEP_DB": dsn, "LINESTEP_MASTER_KEY": testKey}
		addChannel := func(name string) string {
			t.Helper()
			r := runCLI(ctx, env, "secret\ntoken\n", "channel", "add", "--name", name, "--secret", "-", "--token", "-", "--json")
			var out map[string]string
			if r.code != 0 || json.Unmarshal([]byte(r.stdout), &out) != nil {
				t.Fatalf("channel add: %+v", r)
			}
			return out["id"]
		}
		ch1, ch2 := addChannel("渋谷店"), addChannel("梅田店")
		file := filepath.Join(dir, "shop.yaml")
		if err := os.WriteFile(file, []byte(shopFile), 0o600); err != nil {
			t.Fatal(err)
		}

		r := runCLI(ctx, env, "", "apply", "-f", file, "--channel", ch1, "--dry-run")
		if r.code != 0 || !strings.Contains(r.stdout, "scenarios:   2 created") || !strings.Contains(r.stdout, "dry run") {
			t.Fatalf("dry run: %+v", r)
		}
		if r := runCLI(ctx, env, "", "export", "--channel", ch1); r.code != 0 || r.stdout != "{}\n" {
			t.Fatalf("the dry run changed the channel: %+v", r)
		}
		r = runCLI(ctx, env, "", "apply", "-f", file, "--channel", ch1)
		if r.code != 0 || !strings.Contains(r.stdout, "created   scenarios welcome") || !strings.Contains(r.stdout, "autoreplies: 1 created") {
			t.Fatalf("apply: %+v", r)
		}
		r = runCLI(ctx, env, "", "apply", "-f", file, "--channel", ch1)
		if r.code != 0 || !strings.Contains(r.stdout, "scenarios:   0 created, 0 updated, 2 unchanged") {
			t.Errorf("second apply: %+v", r)
		}

		out := filepath.Join(dir, "export.yaml")
		if r := runCLI(ctx, env, "", "export", "--channel", ch1, "-o", out); r.code != 0 {
			t.Fatalf("export: %+v", r)
		}
		exported, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		// Standard input, into the other channel; exported from there it is the same file.
		if r := runCLI(ctx, env, string(exported), "apply", "-f", "-", "--channel", ch2); r.code != 0 {
			t.Fatalf("apply from stdin: %+v", r)
		}
		if r := runCLI(ctx, env, "", "export", "--channel", ch2); r.code != 0 || r.stdout != string(exported) {
			t.Errorf("export of the second channel differs:\n%s\n---\n%s", exported, r.stdout)
		}

		// --prune with a file of one scenario deletes the other and the auto-reply.
		r = runCLI(ctx, env, "scenarios:\n  welcome:\n    trigger: {type: follow}\n    steps: [{key: greet, messages: [{type: text, text: やあ}]}]\n",
			"apply", "-f", "-", "--channel", ch2, "--prune")
		if r.code != 0 || !strings.Contains(r.stdout, "deleted   scenarios visit") || !strings.Contains(r.stdout, "deleted   autoreplies hours") ||
			!strings.Contains(r.stdout, "updated   scenarios welcome") {
			t.Errorf("prune: %+v", r)
		}

		if r := runCLI(ctx, env, shopFile, "apply", "-f", "-", "--channel", "no-such-channel"); r.code != 1 || !strings.Contains(r.stderr, "not found") {
			t.Errorf("unknown channel: %+v", r)
		}
	})
}

func TestApplyPrintsEveryProblem(t *testing.T) {
	ctx := context.Background()
	env := map[string]string{"LINESTEP_DB": filepath.Join(t.TempDir(), "cli.db"), "LINESTEP_MASTER_KEY": testKey}
	r := runCLI(ctx, env, "secret\ntoken\n", "channel", "add", "--name", "店", "--secret", "-", "--token", "-", "--json")
	var ch map[string]string
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &ch) != nil {
		t.Fatalf("channel add: %+v", r)
	}
	bad := strings.NewReplacer("type: date", "type: day", `text: 9時から18時までです`, `text: ""`).Replace(shopFile)
	r = runCLI(ctx, env, bad, "apply", "-f", "-", "--channel", ch["id"])
	if r.code != 1 {
		t.Fatalf("invalid file: exit %d\n%s", r.code, r.stderr)
	}
	for _, want := range []string{
		"fields[0].type: 種類（type）は", "/ type must be text, number, date or choice",
		"autoreplies.hours.messages[0].text: ", "text is empty",
		"nothing was changed",
	} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, r.stderr)
		}
	}
	if r := runCLI(ctx, env, "", "export", "--channel", ch["id"]); r.stdout != "{}\n" {
		t.Errorf("an invalid file changed the channel: %s", r.stdout)
	}
	r = runCLI(ctx, env, "scenarios:\n  a:\n    trigers: {}\n", "apply", "-f", "-", "--channel", ch["id"])
	if r.code != 1 || !strings.Contains(r.stderr, `unknown field "trigers"`) || !strings.Contains(r.stderr, "ファイルを読めません") {
		t.Errorf("unknown key: %+v", r)
	}
	for _, args := range [][]string{{"apply", "--channel", ch["id"]}, {"apply", "-f", "x.yaml"}, {"export"}} {
		if r := runCLI(ctx, env, "", args...); r.code != 2 {
			t.Errorf("%v: exit %d, want 2 (usage)", args, r.code)
		}
	}
	if r := runCLI(ctx, env, "", "apply", "-f", filepath.Join(t.TempDir(), "missing.yaml"), "--channel", ch["id"]); r.code != 1 {
		t.Errorf("missing file: %+v", r)
	}
}
