// Command linestep is a self-hosted automation and CRM server for LINE Official Accounts.
// This package holds the command line only: flags, wiring and subcommands.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
	_ "time/tzdata" // time zones work on machines without a zoneinfo database
)

// command is one subcommand.
type command struct {
	name    string
	summary string
	run     func(ctx context.Context, env *environment, args []string) error
}

// verb is one subcommand of a command that has several (channel add, token create, ...).
type verb struct {
	name string
	run  func(ctx context.Context, env *environment, args []string) error
}

// runVerbs runs the verb args name, printing usage for none or --help, and saying which
// verbs there are for an unknown one.
func runVerbs(ctx context.Context, env *environment, command, usage string, verbs []verb, args []string) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprintln(env.stderr, usage)
		if len(args) == 0 {
			return errUsage
		}
		return nil
	}
	names := make([]string, len(verbs))
	for i, v := range verbs {
		if v.name == args[0] {
			return v.run(ctx, env, args[1:])
		}
		names[i] = v.name
	}
	list := strings.Join(names[:len(names)-1], ", ") + " or " + names[len(names)-1]
	fmt.Fprintf(env.stderr, "linestep %s: unknown subcommand %q (%s)\n", command, args[0], list)
	return errUsage
}

// environment is what subcommands get from the process, replaceable in tests.
type environment struct {
	stdout, stderr io.Writer
	stdin          io.Reader
	getenv         func(string) string
}

var commands = []command{
	{"serve", "run the server: webhooks, workers, console", runServe},
	{"demo", "run linestep with the LINE emulator and simulated friends, on SQLite", runDemo},
	{"emulator", "run the LINE platform emulator on its own", runEmulator},
	{"migrate", "apply database migrations and exit", runMigrate},
	{"channel", "add, list, rotate or remove LINE channels (add|list|rotate|remove)", runChannel},
	{"apply", "set up a channel from a setup file (scenarios, auto-replies, ...)", runApply},
	{"export", "write a channel's setup as a setup file", runExport},
	{"token", "create, list or revoke tokens for the JSON API (create|list|revoke)", runToken},
	{"audit", "check that the audit log is intact, or export it (verify|export)", runAudit},
	{"staff", "list staff accounts, or give one who is locked out a sign-in link (list|recover)", runStaff},
}

func main() {
	env := &environment{stdout: os.Stdout, stderr: os.Stderr, stdin: os.Stdin, getenv: os.Getenv}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, env, os.Args[1:]))
}

func run(ctx context.Context, env *environment, args []string) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(env.stderr)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	for _, c := range commands {
		if c.name == args[0] {
			err := c.run(ctx, env, args[1:])
			if errors.Is(err, flag.ErrHelp) {
				return 0
			}
			if errors.Is(err, errUsage) {
				return 2
			}
			if err != nil {
				fmt.Fprintf(env.stderr, "linestep %s: %v\n", c.name, err)
				return 1
			}
			return 0
		}
	}
	fmt.Fprintf(env.stderr, "linestep: unknown command %q\n\n", args[0])
	usage(env.stderr)
	return 2
}

// errUsage means the flags were wrong; the flag package has already said how.
var errUsage = errors.New("usage")

func usage(w io.Writer) {
	fmt.Fprintln(w, `linestep: automation and CRM for LINE Official Accounts, run on your own machine.
LINE公式アカウントのための、自分のサーバーで動く自動化・顧客管理ツール。

Usage: linestep <command> [flags]

Commands:`)
	for _, c := range commands {
		fmt.Fprintf(w, "  %-9s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, `
Run "linestep <command> --help" for a command's flags.
Start here: "linestep demo" shows everything working with a simulated LINE.`)
}

// newFlagSet makes a flag set whose --help prints the explanation first.
func newFlagSet(env *environment, name, explanation string) *flag.FlagSet {
	fs := flag.NewFlagSet("linestep "+name, flag.ContinueOnError)
	fs.SetOutput(env.stderr)
	fs.Usage = func() {
		fmt.Fprintf(env.stderr, "Usage: linestep %s [flags]\n\n%s\n\nFlags:\n", name, strings.TrimSpace(explanation))
		fs.PrintDefaults()
	}
	return fs
}

// parse parses flags and maps the flag package's errors onto ours.
func parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return flag.ErrHelp
		}
		return errUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(fs.Output(), "unexpected arguments: %s\n", strings.Join(fs.Args(), " "))
		fs.Usage()
		return errUsage
	}
	return nil
}

// envDefault returns the environment variable's value, or def when it is unset.
func envDefault(env *environment, name, def string) string {
	if v := env.getenv(name); v != "" {
		return v
	}
	return def
}

// newLogger logs structured text to stderr. Log lines carry IDs and counts, never
// personal data or secrets.
func newLogger(env *environment, level slog.Level) *slog.Logger {
	return slog.New(slog.NewTextHandler(env.stderr, &slog.HandlerOptions{Level: level}))
}

// sortedKeys is for stable listings.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
