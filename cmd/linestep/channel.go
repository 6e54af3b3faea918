package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"text/tabwriter"

	"github.com/linestep/linestep/internal/channel"
	"github.com/linestep/linestep/internal/clock"
	"github.com/linestep/linestep/internal/server"
)

const channelUsage = `Usage: linestep channel add|list|rotate|remove [flags]

Manages the LINE channels (official accounts) linestep serves.
  add     register a channel with its channel secret and access token
  list    list the registered channels and their webhook paths
  rotate  replace a channel's secret or access token after reissuing it
  remove  remove a channel and everything recorded for it

LINE チャネル(公式アカウント)を登録・一覧・更新・削除します。`

func runChannel(ctx context.Context, env *environment, args []string) error {
	return runVerbs(ctx, env, "channel", channelUsage, []verb{
		{"add", channelAdd},
		{"list", channelList},
		{"rotate", channelRotate},
		{"remove", channelRemove},
	}, args)
}

func openChannels(ctx context.Context, env *environment, db string) (*channel.Service, func(), error) {
	d, keys, err := server.Open(ctx, db, env.getenv, newLogger(env, slog.LevelWarn))
	if err != nil {
		return nil, nil, err
	}
	return channel.NewService(d, keys, clock.Real), func() { d.Close() }, nil
}

func channelAdd(ctx context.Context, env *environment, args []string) error {
	fs := newFlagSet(env, "channel add", `
Registers a LINE channel. Take the channel secret (Basic settings) and a long-lived
channel access token (Messaging API tab) from the LINE Developers console. Both are
sealed with the master key and never shown again. Pass "-" as a value to read it from
standard input instead of the command line (kept out of shell history).

Then set the channel's webhook URL in the LINE Developers console to
https://<your host><webhook_path> and turn "Use webhook" on.

LINE チャネルを登録します。チャネルシークレットとアクセストークンは暗号化して保存し、
以後表示しません。`)
	name := fs.String("name", "", "a name for the channel, e.g. the shop's name (required)")
	secret := fs.String("secret", "", "the channel secret (required; - reads standard input)")
	token := fs.String("token", "", "the channel access token (required; - reads standard input)")
	db := dbFlag(fs, env)
	asJSON := fs.Bool("json", false, "print the result as one JSON object")
	if err := parse(fs, args); err != nil {
		return err
	}
	if err := readDashes(env, secret, token); err != nil {
		return err
	}
	if *name == "" || *secret == "" || *token == "" {
		fmt.Fprintln(env.stderr, "--name, --secret and --token are required")
		fs.Usage()
		return errUsage
	}
	svc, done, err := openChannels(ctx, env, *db)
	if err != nil {
		return err
	}
	defer done()
	ch, err := svc.Add(ctx, *name, *secret, *token)
	if err != nil {
		return err
	}
	if *asJSON {
		return json.NewEncoder(env.stdout).Encode(map[string]string{
			"id": ch.ID, "name": ch.Name, "time_zone": ch.TimeZone, "webhook_path": ch.WebhookPath(),
		})
	}
	fmt.Fprintf(env.stdout, "channel %s added (%s)\nwebhook path: %s\n", ch.ID, ch.Name, ch.WebhookPath())
	return nil
}

// readDashes replaces each value given as "-" with the next line of standard input, in
// order: secrets stay out of the command line and the shell's history.
func readDashes(env *environment, values ...*string) error {
	in := bufio.NewScanner(env.stdin)
	in.Buffer(make([]byte, 4096), 64*1024)
	for _, v := range values {
		if *v == "-" {
			if !in.Scan() {
				return errors.New("expected a value on standard input")
			}
			*v = strings.TrimSpace(in.Text())
		}
	}
	return nil
}

func channelRotate(ctx context.Context, env *environment, args []string) error {
	fs := newFlagSet(env, "channel rotate", `
Replaces a channel's channel secret, access token or both, after you reissued them in
the LINE Developers console (the old ones stop working there at once). The new values
are sealed with the master key and never shown; a running linestep uses them within
10 seconds. Pass "-" to read a value from standard input (the secret first).

LINE Developers コンソールで再発行したチャネルシークレットやアクセストークンに
置き換えます。実行中の linestep には10秒以内に反映されます。`)
	id := fs.String("id", "", "the channel ID (required)")
	secret := fs.String("secret", "", "the new channel secret (- reads standard input)")
	token := fs.String("token", "", "the new channel access token (- reads standard input)")
	db := dbFlag(fs, env)
	if err := parse(fs, args); err != nil {
		return err
	}
	if err := readDashes(env, secret, token); err != nil {
		return err
	}
	if *id == "" || (*secret == "" && *token == "") {
		fmt.Fprintln(env.stderr, "--id and at least one of --secret and --token are required")
		fs.Usage()
		return errUsage
	}
	svc, done, err := openChannels(ctx, env, *db)
	if err != nil {
		return err
	}
	defer done()
	if err := svc.SetCredentials(ctx, *id, *secret, *token); err != nil {
		return err
	}
	var what []string
	if *secret != "" {
		what = append(what, "channel secret")
	}
	if *token != "" {
		what = append(what, "access token")
	}
	fmt.Fprintf(env.stdout, "channel %s: new %s stored\n", *id, strings.Join(what, " and "))
	return nil
}

func channelList(ctx context.Context, env *environment, args []string) error {
	fs := newFlagSet(env, "channel list", `
Lists the registered channels with their IDs and webhook paths. Secrets are never shown.

登録済みチャネルを一覧表示します(シークレットは表示しません)。`)
	db := dbFlag(fs, env)
	asJSON := fs.Bool("json", false, "print a JSON array")
	if err := parse(fs, args); err != nil {
		return err
	}
	svc, done, err := openChannels(ctx, env, *db)
	if err != nil {
		return err
	}
	defer done()
	list, err := svc.List(ctx)
	if err != nil {
		return err
	}
	if *asJSON {
		out := make([]map[string]string, 0, len(list))
		for _, c := range list {
			out = append(out, map[string]string{"id": c.ID, "name": c.Name, "time_zone": c.TimeZone, "webhook_path": c.WebhookPath()})
		}
		return json.NewEncoder(env.stdout).Encode(out)
	}
	if len(list) == 0 {
		fmt.Fprintln(env.stdout, "no channels yet: add one with linestep channel add")
		return nil
	}
	tw := tabwriter.NewWriter(env.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tNAME\tTIME ZONE\tWEBHOOK PATH")
	for _, c := range list {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", c.ID, c.Name, c.TimeZone, c.WebhookPath())
	}
	return tw.Flush()
}

func channelRemove(ctx context.Context, env *environment, args []string) error {
	fs := newFlagSet(env, "channel remove", `
Removes a channel and everything recorded for it (friends, conversations, events).
This cannot be undone; --yes confirms it.

チャネルと、その友だち・会話などすべての記録を削除します(元に戻せません)。`)
	id := fs.String("id", "", "the channel ID (required)")
	yes := fs.Bool("yes", false, "confirm the removal")
	db := dbFlag(fs, env)
	if err := parse(fs, args); err != nil {
		return err
	}
	if *id == "" {
		fmt.Fprintln(env.stderr, "--id is required")
		fs.Usage()
		return errUsage
	}
	if !*yes {
		return fmt.Errorf("removing channel %s deletes all its friends and conversations: add --yes to confirm", *id)
	}
	svc, done, err := openChannels(ctx, env, *db)
	if err != nil {
		return err
	}
	defer done()
	if err := svc.Remove(ctx, *id); err != nil {
		return err
	}
	fmt.Fprintf(env.stdout, "channel %s removed\n", *id)
	return nil
}
