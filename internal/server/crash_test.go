package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http/httptest"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/linestep/linestep/internal/broadcast"
	"github.com/linestep/linestep/internal/channel"
	"github.com/linestep/linestep/internal/clock"
	"github.com/linestep/linestep/internal/delivery"
	"github.com/linestep/linestep/internal/emulator"
	"github.com/linestep/linestep/internal/friend"
	"github.com/linestep/linestep/internal/line"
	"github.com/linestep/linestep/internal/message"
	"github.com/linestep/linestep/internal/scenario"
	"github.com/linestep/linestep/internal/server"
	"github.com/linestep/linestep/internal/servertest"
	"github.com/linestep/linestep/internal/store"
	"github.com/linestep/linestep/internal/testutil"
)

// childEnv marks the test binary re-executed as a linestep server: the process the
// crash tests kill.
const childEnv = "LINESTEP_TEST_SERVE_CHILD"

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) == "1" {
		serveChild()
		return
	}
	os.Exit(m.Run())
}

// serveChild runs linestep serve as configured by the environment, with short leases
// so that work a killed instance held is taken over within seconds.
func serveChild() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	srv, err := server.New(ctx, server.Config{
		Addr: "127.0.0.1:0", DB: os.Getenv("LINESTEP_DB"),
		LineAPIURL: os.Getenv("LINESTEP_LINE_API_URL"), LineDataAPIURL: os.Getenv("LINESTEP_LINE_API_URL"),
		Logger:     slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
		Delivery:   delivery.Config{Lease: 2 * time.Second, PollInterval: 100 * time.Millisecond},
		Scenarios:  scenario.Config{PollInterval: 100 * time.Millisecond},
		Broadcasts: broadcast.Config{Chunk: 1000, PollInterval: 100 * time.Millisecond},
		LineLimits: map[line.Endpoint]line.Limit{
			line.EndpointMulticast: {Requests: crashMulticastPerSecond, Per: time.Second},
			line.EndpointPush:      {Requests: crashPushPerSecond, Per: time.Second},
		},
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		os.Exit(2)
	}
	if err := srv.Run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		os.Exit(2)
	}
	srv.Close()
}

// child is one running linestep process.
type child struct {
	cmd    *exec.Cmd
	done   chan struct{}
	stderr *servertest.LockedBuffer
}

func startChild(t *testing.T, dsn, apiURL string) *child {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"=1", "LINESTEP_DB="+dsn, "LINESTEP_LINE_API_URL="+apiURL,
		"LINESTEP_MASTER_KEY="+servertest.MasterKey)
	c := &child{cmd: cmd, done: make(chan struct{}), stderr: &servertest.LockedBuffer{}}
	cmd.Stderr = c.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { cmd.Wait(); close(c.done) }()
	t.Cleanup(func() { c.kill() })
	return c
}

func (c *child) kill() {
	c.cmd.Process.Signal(syscall.SIGKILL)
	<-c.done
}

// crashRig is the emulator (in this process, so it outlives every child) and a
// database prepared with a channel, followers, a broadcast and a running scenario.
type crashRig struct {
	t         *testing.T
	dsn       string
	emu       *emulator.Emulator
	api       string
	ch        string
	followers []string
	enrolled  []string
}

// LINE's limits lowered so that the work spans the kills: the 10,000-recipient
// broadcast takes 20 multicasts, two seconds at 10 per second.
const (
	crashMulticastPerSecond = 10
	crashPushPerSecond      = 400
)

const (
	crashFollowers = 10_000
	crashEnrolled  = 500
	crashBroadcast = "年末セールのお知らせ"
)

func newCrashRig(t *testing.T, dsn string, faults emulator.Faults) *crashRig {
	t.Helper()
	ctx := context.Background()
	emu := emulator.New(emulator.Config{Faults: faults, Seed: 7, Limits: map[string]emulator.Limit{
		"multicast": {Requests: crashMulticastPerSecond, Per: time.Second},
		"push":      {Requests: crashPushPerSecond, Per: time.Second},
	}})
	api := httptest.NewServer(emu.Handler())
	t.Cleanup(api.Close)
	r := &crashRig{t: t, dsn: dsn, emu: emu, api: api.URL}

	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	getenv := func(k string) string {
		if k == "LINESTEP_MASTER_KEY" {
			return servertest.MasterKey
		}
		return ""
	}
	db, keys, err := server.Open(ctx, dsn, getenv, logger)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ch, err := channel.NewService(db, keys, clock.Real).Add(ctx, "Crash shop", "secret", "token")
	if err != nil {
		t.Fatal(err)
	}
	r.ch = ch.ID
	if err := emu.AddChannel(emulator.Channel{ID: ch.ID, Secret: "secret", AccessToken: "token"}); err != nil {
		t.Fatal(err)
	}
	if r.followers, err = emu.AddFollowers(ch.ID, crashFollowers); err != nil {
		t.Fatal(err)
	}
	friends := friend.NewService(db, clock.Real, nil, logger, testutil.SearchKey)
	deliveries := delivery.New(db, clock.Real, nil, logger, delivery.Config{})
	scenarios := scenario.New(db, clock.Real, friends, deliveries, logger, scenario.Config{})
	broadcasts := broadcast.New(db, clock.Real, friends, deliveries, logger, broadcast.Config{})
	def, err := scenario.ParseDefinition([]byte(`
trigger: {type: manual}
steps:
  - {key: one, messages: [{type: text, text: "{{display_name}}さん、ステップ1"}]}
  - {key: two, timing: {after: 2s}, messages: [{type: text, text: ステップ2}]}
  - {key: three, timing: {after: 2s}, messages: [{type: text, text: "{{display_name}}さん、ステップ3"}]}
`))
	if err != nil {
		t.Fatal(err)
	}
	err = db.WriteTx(ctx, func(tx *store.Tx) error {
		for i, u := range r.followers {
			var id int64
			if err := tx.QueryRowContext(ctx, `INSERT INTO friends (channel_id, line_user_id, status, status_at, display_name, created_at, updated_at)
				VALUES (?, ?, 'following', 0, ?, 0, 0) RETURNING id`, ch.ID, u, fmt.Sprintf("客%d", i)).Scan(&id); err != nil {
				return err
			}
			_ = id
		}
		if _, err := scenarios.Save(ctx, tx, scenario.Scenario{ChannelID: ch.ID, Key: "course", Definition: def, Enabled: true}); err != nil {
			return err
		}
		_, err := broadcasts.Create(ctx, tx, broadcast.Broadcast{ChannelID: ch.ID,
			Template: message.Template{Messages: []message.Message{{Type: "text", Text: crashBroadcast}}}})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	// Half the enrolled friends start now, half while the children are being killed.
	r.enrolled = r.followers[:crashEnrolled]
	r.start(db, r.enrolled[:crashEnrolled/2])
	return r
}

// start enrols friends in the scenario.
func (r *crashRig) start(db *store.DB, users []string) {
	ctx := context.Background()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	friends := friend.NewService(db, clock.Real, nil, logger, testutil.SearchKey)
	scenarios := scenario.New(db, clock.Real, friends, delivery.New(db, clock.Real, nil, logger, delivery.Config{}), logger, scenario.Config{})
	err := db.WriteTx(ctx, func(tx *store.Tx) error {
		for _, u := range users {
			var id int64
			if err := tx.QueryRowContext(ctx, "SELECT id FROM friends WHERE channel_id = ? AND line_user_id = ?", r.ch, u).Scan(&id); err != nil {
				return err
			}
			if ok, err := scenarios.Start(ctx, tx, r.ch, id, "course"); err != nil || !ok {
				return fmt.Errorf("start: %v %v", ok, err)
			}
		}
		return nil
	})
	if err != nil {
		r.t.Fatal(err)
	}
}

// finished reports whether all the work is done, as the database says.
func (r *crashRig) finished(db *store.DB) bool {
	ctx := context.Background()
	var open int
	err := db.QueryRowContext(ctx, `SELECT (SELECT COUNT(*) FROM deliveries d LEFT JOIN batches b ON b.id = d.batch_id
			WHERE `+delivery.StateSQL("d", "b")+` IN ('pending', 'sending'))
		+ (SELECT COUNT(*) FROM enrollments WHERE state = 'active') + (SELECT COUNT(*) FROM broadcasts WHERE state <> 'done')`).Scan(&open)
	if err != nil {
		r.t.Fatal(err)
	}
	return open == 0
}

// progress says how far the work got, as the emulator saw it.
func (r *crashRig) progress() string {
	st := r.emu.Stats().Requests
	return fmt.Sprintf("multicast %v, push %v", st["multicast"], st["push"])
}

// check verifies, by the emulator's record, that every follower got the broadcast once
// and every enrolled friend each step once.
func (r *crashRig) check() {
	t := r.t
	dups, err := r.emu.Duplicates(r.ch)
	if err != nil {
		t.Fatal(err)
	}
	if len(dups) > 0 {
		t.Fatalf("%d users received the same content more than once, e.g. %+v", len(dups), dups[0])
	}
	enrolled := map[string]bool{}
	for _, u := range r.enrolled {
		enrolled[u] = true
	}
	for i, u := range r.followers {
		rs, err := r.emu.ReceivedBy(r.ch, u)
		if err != nil {
			t.Fatal(err)
		}
		var texts []string
		for _, rec := range rs {
			for _, m := range rec.Messages {
				var msg struct{ Text string }
				json.Unmarshal(m, &msg)
				texts = append(texts, msg.Text)
			}
		}
		want := []string{crashBroadcast}
		if enrolled[u] {
			want = append(want, fmt.Sprintf("客%dさん、ステップ1", i), "ステップ2", fmt.Sprintf("客%dさん、ステップ3", i))
		}
		if len(texts) != len(want) {
			t.Fatalf("user %d received %q, want each of %q once", i, texts, want)
		}
		for _, w := range want {
			n := 0
			for _, g := range texts {
				if g == w {
					n++
				}
			}
			if n != 1 {
				t.Fatalf("user %d received %q %d times (all: %q)", i, w, n, texts)
			}
		}
	}
}

// runCrashes kills linestep at random moments while it sends a 10,000-recipient
// broadcast and runs a scenario, restarts it each time, then lets it finish.
func runCrashes(t *testing.T, dsn string, faults emulator.Faults, kills int) {
	r := newCrashRig(t, dsn, faults)
	rng := rand.New(rand.NewPCG(1, 2))
	ctx := context.Background()
	for i := range kills {
		c := startChild(t, dsn, r.api)
		time.Sleep(time.Duration(300+rng.IntN(1200)) * time.Millisecond)
		c.kill()
		t.Logf("killed #%d: %s", i+1, r.progress())
		if i == kills/2 {
			db, err := store.Open(ctx, dsn)
			if err != nil {
				t.Fatal(err)
			}
			r.start(db, r.enrolled[crashEnrolled/2:])
			db.Close()
		}
	}
	c := startChild(t, dsn, r.api)
	db, err := store.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	deadline := time.Now().Add(90 * time.Second)
	for !r.finished(db) {
		if time.Now().After(deadline) {
			t.Fatalf("not finished after the last restart; child log:\n%s", tail(c.stderr.String()))
		}
		time.Sleep(200 * time.Millisecond)
	}
	c.kill()
	var failed int
	if err := db.QueryRowContext(ctx, "SELECT COUNT(*) FROM deliveries d LEFT JOIN batches b ON b.id = d.batch_id WHERE "+
		delivery.StateSQL("d", "b")+" <> 'sent'").Scan(&failed); err != nil || failed != 0 {
		t.Fatalf("%d deliveries not sent (%v)", failed, err)
	}
	r.check()
	t.Logf("emulator: %+v", r.emu.Stats().Requests)
}

func tail(s string) string {
	lines := strings.Split(s, "\n")
	if len(lines) > 30 {
		lines = lines[len(lines)-30:]
	}
	return strings.Join(lines, "\n")
}

// Exactly once across crashes: the process is killed (SIGKILL, no goodbye) at random
// points of a 10,000-recipient broadcast and a running scenario, and restarted.
func TestExactlyOnceAcrossProcessKills(t *testing.T) {
	if testing.Short() {
		t.Skip("kills and restarts linestep processes for a while")
	}
	testutil.EachDSN(t, func(t *testing.T, dsn string) {
		runCrashes(t, dsn, emulator.Faults{}, 5)
	})
}

// The same with LINE failing: 500s, and connections dropped after LINE accepted the
// call (the sender cannot know; only the retry key saves it from sending twice).
func TestExactlyOnceAcrossKillsWithLineFaults(t *testing.T) {
	if testing.Short() {
		t.Skip("kills and restarts linestep processes for a while")
	}
	testutil.EachDSN(t, func(t *testing.T, dsn string) {
		runCrashes(t, dsn, emulator.Faults{ErrorRate: 0.2, DropRate: 0.2, Endpoints: []string{"push", "multicast"}}, 4)
	})
}

// Two instances on one PostgreSQL share the work with no duplicates, and one can die
// midway.
func TestTwoInstancesShareWork(t *testing.T) {
	if testing.Short() {
		t.Skip("runs two linestep processes")
	}
	dsn := testutil.PostgresURL(t)
	r := newCrashRig(t, dsn, emulator.Faults{})
	a := startChild(t, dsn, r.api)
	b := startChild(t, dsn, r.api)
	time.Sleep(time.Second)
	a.kill()
	ctx := context.Background()
	db, err := store.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	r.start(db, r.enrolled[crashEnrolled/2:])
	deadline := time.Now().Add(90 * time.Second)
	for !r.finished(db) {
		if time.Now().After(deadline) {
			t.Fatalf("not finished by the surviving instance; its log:\n%s", tail(b.stderr.String()))
		}
		time.Sleep(200 * time.Millisecond)
	}
	b.kill()
	r.check()
}
