package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/linestep/linestep/internal/api"
	"github.com/linestep/linestep/internal/channel"
	"github.com/linestep/linestep/internal/clock"
	"github.com/linestep/linestep/internal/server"
	"github.com/linestep/linestep/internal/staff"
	"github.com/linestep/linestep/internal/store"
)

const tokenUsage = `Usage: linestep token create|list|revoke [flags]

Manages the tokens that other programs use to call linestep's JSON API (/api/v1).
  create  make a token; it is shown once, so copy it then
  list    list the tokens (the tokens themselves are never shown again)
  revoke  stop a token from working, for good

The API is described at /api/openapi.yaml on a running server.

JSON API(/api/v1)を外部のプログラムから使うためのトークンを作成・一覧・無効化します。
トークンは作成時に一度だけ表示されます。`

func runToken(ctx context.Context, env *environment, args []string) error {
	return runVerbs(ctx, env, "token", tokenUsage, []verb{
		{"create", tokenCreate},
		{"list", tokenList},
		{"revoke", tokenRevoke},
	}, args)
}

func openTokens(ctx context.Context, env *environment, dsn string) (*api.Tokens, *channel.Service, func(), error) {
	d, keys, err := server.Open(ctx, dsn, env.getenv, newLogger(env, slog.LevelWarn))
	if err != nil {
		return nil, nil, nil, err
	}
	return api.NewTokens(d, clock.Real), channel.NewService(d, keys, clock.Real), func() { d.Close() }, nil
}

func tokenCreate(ctx context.Context, env *environment, args []string) error {
	fs := newFlagSet(env, "token create", `
Makes a token for the JSON API and prints it once: copy it into the program that will
use it, which sends it as "Authorization: Bearer <token>". linestep keeps only a hash
of it, so a lost token cannot be shown again: revoke it and make a new one.

The role says what the token may do:
  analyst   read only
  operator  read and change friends' tags and fields, save, start and stop scenarios
  admin     everything, including deleting scenarios and defining fields
  owner     everything
With --channel the token works on that channel only.

JSON API 用のトークンを作成し、一度だけ表示します。linestep はトークンのハッシュしか
保存しないため、再表示はできません。権限(role)は analyst(閲覧のみ)、operator
(タグ・項目の変更とシナリオの保存・開始・停止)、admin と owner(すべて)から選びます。
--channel を付けると、そのチャネルだけを操作できるトークンになります。`)
	name := fs.String("name", "", "a name saying who uses the token, e.g. \"booking system\" (required)")
	role := fs.String("role", string(staff.Analyst), "what the token may do: analyst, operator, admin, owner or a custom role made in the console")
	ch := fs.String("channel", "", "limit the token to this channel ID (default: every channel)")
	db := dbFlag(fs, env)
	asJSON := fs.Bool("json", false, `print {"id","name","role","channel_id","token"} as one JSON object`)
	if err := parse(fs, args); err != nil {
		return err
	}
	if strings.TrimSpace(*name) == "" {
		fmt.Fprintln(env.stderr, "--name is required")
		fs.Usage()
		return errUsage
	}
	tokens, channels, done, err := openTokens(ctx, env, *db)
	if err != nil {
		return err
	}
	defer done()
	if *ch != "" {
		list, err := channels.List(ctx)
		if err != nil {
			return err
		}
		if !slices.ContainsFunc(list, func(c channel.Channel) bool { return c.ID == *ch }) {
			return fmt.Errorf("no channel %s: see linestep channel list", *ch)
		}
	}
	tok, secret, err := tokens.Create(ctx, *name, staff.Role(*role), *ch)
	if err != nil {
		return err
	}
	if *asJSON {
		return json.NewEncoder(env.stdout).Encode(map[string]any{
			"id": tok.ID, "name": tok.Name, "role": tok.Role, "channel_id": tok.ChannelID, "token": secret,
		})
	}
	scope := "every channel"
	if tok.ChannelID != "" {
		scope = "channel " + tok.ChannelID
	}
	fmt.Fprintf(env.stdout, "token %d (%s) created: role %s, %s\n\n  %s\n\nCopy it now: it is not shown again. (今だけ表示されます。控えてください)\n",
		tok.ID, tok.Name, tok.Role, scope, secret)
	return nil
}

func tokenList(ctx context.Context, env *environment, args []string) error {
	fs := newFlagSet(env, "token list", `
Lists the API tokens: ID, name, role, channel, when made, last used and revoked. The
tokens themselves are never shown (linestep does not keep them).

API トークンを一覧表示します(トークン自体は表示しません)。`)
	db := dbFlag(fs, env)
	asJSON := fs.Bool("json", false, "print a JSON array")
	if err := parse(fs, args); err != nil {
		return err
	}
	tokens, _, done, err := openTokens(ctx, env, *db)
	if err != nil {
		return err
	}
	defer done()
	list, err := tokens.List(ctx)
	if err != nil {
		return err
	}
	if *asJSON {
		out := make([]map[string]any, 0, len(list))
		for _, t := range list {
			out = append(out, map[string]any{"id": t.ID, "name": t.Name, "role": t.Role, "channel_id": t.ChannelID,
				"created_at": jsonTime(t.CreatedAt), "last_used_at": jsonTime(t.LastUsedAt), "revoked_at": jsonTime(t.RevokedAt)})
		}
		return json.NewEncoder(env.stdout).Encode(out)
	}
	if len(list) == 0 {
		fmt.Fprintln(env.stdout, "no tokens yet: make one with linestep token create")
		return nil
	}
	tw := tabwriter.NewWriter(env.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tNAME\tROLE\tCHANNEL\tCREATED\tLAST USED\tREVOKED")
	for _, t := range list {
		ch := t.ChannelID
		if ch == "" {
			ch = "(all)"
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\n", t.ID, t.Name, t.Role, ch, when(t.CreatedAt), when(t.LastUsedAt), when(t.RevokedAt))
	}
	return tw.Flush()
}

func tokenRevoke(ctx context.Context, env *environment, args []string) error {
	fs := newFlagSet(env, "token revoke", `
Revokes a token by its ID (see linestep token list): from now on the API answers it
with 401. This cannot be undone; make a new token if it is needed again.

Usage: linestep token revoke [flags] ID

トークンを無効にします(元に戻せません)。ID は linestep token list で確認できます。`)
	db := dbFlag(fs, env)
	// The ID may come before or after the flags.
	var idArg string
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		idArg, args = args[0], args[1:]
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return errUsage
	}
	if idArg == "" && fs.NArg() == 1 {
		idArg = fs.Arg(0)
	} else if fs.NArg() > 0 {
		fmt.Fprintf(env.stderr, "unexpected arguments: %s\n", strings.Join(fs.Args(), " "))
		return errUsage
	}
	id, err := strconv.ParseInt(idArg, 10, 64)
	if err != nil || id <= 0 {
		fmt.Fprintln(env.stderr, "give the token's ID: linestep token revoke ID")
		fs.Usage()
		return errUsage
	}
	tokens, _, done, err := openTokens(ctx, env, *db)
	if err != nil {
		return err
	}
	defer done()
	if err := tokens.Revoke(ctx, id); errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("no token %d: see linestep token list", id)
	} else if err != nil {
		return err
	}
	fmt.Fprintf(env.stdout, "token %d revoked\n", id)
	return nil
}

func when(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.Local().Format("2006-01-02 15:04")
}

func jsonTime(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UTC()
}
