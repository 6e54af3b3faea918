package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/linestep/linestep/internal/autoreply"
	"github.com/linestep/linestep/internal/clock"
	"github.com/linestep/linestep/internal/coupon"
	"github.com/linestep/linestep/internal/delivery"
	"github.com/linestep/linestep/internal/friend"
	"github.com/linestep/linestep/internal/message"
	"github.com/linestep/linestep/internal/scenario"
	"github.com/linestep/linestep/internal/server"
	"github.com/linestep/linestep/internal/setup"
	"github.com/linestep/linestep/internal/store"
)

// maxSetupFile bounds what apply reads: a setup file is written by people.
const maxSetupFile = 8 << 20

func runApply(ctx context.Context, env *environment, args []string) error {
	fs := newFlagSet(env, "apply", `
Sets up a channel from a setup file: tags, custom fields, message templates, segments,
scenarios and auto-replies, written in YAML (docs/setup-files.md). What the file names
is created or updated by its key; nothing else is touched unless --prune is given.
The whole file is checked first: if anything is wrong, every problem is printed with
where it is in the file, and nothing is changed. The channel is chosen here, not in the
file, so the same file can set up another account.

設定ファイル(YAML)の内容をチャネルに反映します。タグ・項目・テンプレート・セグメント・
シナリオ・自動応答を、キーごとに作成または更新します。ファイル全体を先に検査し、
問題があれば場所とともにすべて表示して、何も変更しません。--dry-run で変更内容だけを
確認できます。--prune を付けると、ファイルにないシナリオ・自動応答・セグメント・
テンプレートを削除します(タグと項目は友だちのデータを持つため削除しません)。

Example / 例:
  linestep apply -f shop.yaml --channel <channel-id> --dry-run`)
	file := fs.String("f", "", "the setup file to apply (required; - reads standard input)")
	ch := fs.String("channel", "", "the channel ID to set up (required; see linestep channel list)")
	dryRun := fs.Bool("dry-run", false, "check the file and print what would change, without changing anything")
	prune := fs.Bool("prune", false, "also delete the scenarios, auto-replies, segments and templates the file does not name")
	db := dbFlag(fs, env)
	if err := parse(fs, args); err != nil {
		return err
	}
	if *file == "" || *ch == "" {
		fmt.Fprintln(env.stderr, "-f and --channel are required")
		fs.Usage()
		return errUsage
	}
	data, err := readSetupFile(env, *file)
	if err != nil {
		return err
	}
	f, err := setup.Parse(data)
	if err != nil {
		return printProblems(env, err)
	}
	d, svc, err := openSetup(ctx, env, *db)
	if err != nil {
		return err
	}
	defer d.Close()
	sum, err := setup.Apply(ctx, d, svc, *ch, f, setup.Options{Prune: *prune, DryRun: *dryRun})
	if err != nil {
		return printProblems(env, err)
	}
	return sum.Write(env.stdout)
}

func runExport(ctx context.Context, env *environment, args []string) error {
	fs := newFlagSet(env, "export", `
Writes what a channel is set up with (tags, custom fields, message templates, segments,
scenarios and auto-replies) as a setup file, the format "linestep apply" reads. Keys are
sorted, so the output is stable and suits version control; applying it to another
channel sets that channel up the same. Friends, their data and coupon codes are not
exported.

チャネルの設定(タグ・項目・テンプレート・セグメント・シナリオ・自動応答)を設定
ファイル(YAML)として書き出します。linestep apply でそのまま別のチャネルに反映できます。
友だちとそのデータは含みません。

Example / 例:
  linestep export --channel <channel-id> -o shop.yaml`)
	ch := fs.String("channel", "", "the channel ID to export (required; see linestep channel list)")
	out := fs.String("o", "", "write to this file instead of standard output")
	db := dbFlag(fs, env)
	if err := parse(fs, args); err != nil {
		return err
	}
	if *ch == "" {
		fmt.Fprintln(env.stderr, "--channel is required")
		fs.Usage()
		return errUsage
	}
	d, svc, err := openSetup(ctx, env, *db)
	if err != nil {
		return err
	}
	defer d.Close()
	f, err := setup.Export(ctx, d, svc, *ch)
	if err != nil {
		return err
	}
	data, err := f.Marshal()
	if err != nil {
		return err
	}
	if *out == "" {
		_, err = env.stdout.Write(data)
		return err
	}
	return os.WriteFile(*out, data, 0o644)
}

func readSetupFile(env *environment, name string) ([]byte, error) {
	var r io.Reader = env.stdin
	if name != "-" {
		fh, err := os.Open(name)
		if err != nil {
			return nil, err
		}
		defer fh.Close()
		r = fh
	}
	data, err := io.ReadAll(io.LimitReader(r, maxSetupFile+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	if len(data) > maxSetupFile {
		return nil, fmt.Errorf("%s is larger than %d MB", name, maxSetupFile>>20)
	}
	return data, nil
}

// printProblems prints a file's problems one a line, with where they are, in both
// languages; other errors are returned as they are.
func printProblems(env *environment, err error) error {
	var ps message.Problems
	if !errors.As(err, &ps) {
		return err
	}
	for _, p := range ps {
		path := p.Path
		if path == "" {
			path = "(file)"
		}
		fmt.Fprintf(env.stderr, "%s: %s / %s\n", path, p.JA, p.EN)
	}
	return fmt.Errorf("the file has %d problem(s); nothing was changed (問題が%d件あります。何も変更していません)", len(ps), len(ps))
}

// openSetup opens the database and the services a setup file is applied through. No
// worker runs: a running server picks up the changes from the database.
func openSetup(ctx context.Context, env *environment, dsn string) (*store.DB, setup.Services, error) {
	logger := newLogger(env, slog.LevelWarn)
	d, keys, err := server.Open(ctx, dsn, env.getenv, logger)
	if err != nil {
		return nil, setup.Services{}, err
	}
	friends := friend.NewService(d, clock.Real, nil, logger, keys.Derive(friend.SearchKeyPurpose))
	deliveries := delivery.New(d, clock.Real, nil, logger, delivery.Config{})
	return d, setup.Services{
		Friends:     friends,
		Scenarios:   scenario.New(d, clock.Real, friends, deliveries, logger, scenario.Config{}),
		AutoReplies: autoreply.New(d, clock.Real, friends, deliveries, logger),
		Coupons:     coupon.New(d, clock.Real, logger),
	}, nil
}
