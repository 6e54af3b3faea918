// Package servertest starts a whole linestep, with the LINE emulator, over real loopback
// HTTP: for the tests of every package that needs the real thing end to end.
package servertest

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/linestep/linestep/internal/clock"
	"github.com/linestep/linestep/internal/emulator"
	"github.com/linestep/linestep/internal/friend"
	"github.com/linestep/linestep/internal/server"
	"github.com/linestep/linestep/internal/store"
)

// Harness is linestep and the emulator talking over real loopback HTTP, with one channel.
type Harness struct {
	t    testing.TB
	Srv  *server.Server
	Emu  *emulator.Emulator
	Clk  *clock.Fake // the server's clock
	Base string      // the server's URL
	// EmulatorURL is where the emulator serves LINE's API.
	EmulatorURL string
	Ch          string // the channel's ID
	Logs        *LockedBuffer
}

// LockedBuffer collects the server's log.
type LockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *LockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *LockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// MasterKey is the test master key.
const MasterKey = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"

// Start runs linestep on dsn (SQLite path or postgres URL) with a fake clock and the
// emulator as LINE, until the test ends.
func Start(t testing.TB, dsn string) *Harness {
	t.Helper()
	return StartWith(t, dsn, nil)
}

// StartWith is Start with a chance to change the server's configuration first.
func StartWith(t testing.TB, dsn string, configure func(*server.Config)) *Harness {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	emu := emulator.New(emulator.Config{})
	api := httptest.NewServer(emu.Handler())
	t.Cleanup(api.Close)

	logs := &LockedBuffer{}
	clk := clock.NewFake(time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC))
	cfg := server.Config{
		DB: dsn, LineAPIURL: api.URL, LineDataAPIURL: api.URL, Clock: clk,
		Getenv: func(k string) string {
			if k == "LINESTEP_MASTER_KEY" {
				return MasterKey
			}
			return ""
		},
		Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		// One attempt per call: retries then come from the workers, on the fake clock.
		LineMaxAttempts: 1,
	}
	if configure != nil {
		configure(&cfg)
	}
	srv, err := server.New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
		srv.Close()
	})
	h := &Harness{t: t, Srv: srv, Emu: emu, Clk: clk, Base: "http://" + ln.Addr().String(), EmulatorURL: api.URL, Logs: logs}
	c, err := srv.Channels.Add(ctx, "Test shop", "channel-secret", "channel-token")
	if err != nil {
		t.Fatal(err)
	}
	h.Ch = c.ID
	if err := emu.AddChannel(emulator.Channel{ID: c.ID, Secret: "channel-secret", AccessToken: "channel-token",
		WebhookURL: h.Base + c.WebhookPath()}); err != nil {
		t.Fatal(err)
	}
	return h
}

// User adds a simulated LINE user (not yet following).
func (h *Harness) User(name string) string {
	h.t.Helper()
	id := emulator.NewUserID()
	if err := h.Emu.AddUser(h.Ch, emulator.User{ID: id, DisplayName: name, Language: "ja", PictureURL: "https://profile.line-scdn.net/x"}); err != nil {
		h.t.Fatal(err)
	}
	return id
}

// OK fails the test unless the webhook was delivered and answered 200.
func (h *Harness) OK(res emulator.WebhookResult, err error) emulator.WebhookResult {
	h.t.Helper()
	if err != nil || res.Status != http.StatusOK {
		h.t.Fatalf("webhook: %+v %v", res, err)
	}
	return res
}

// Eventually polls cond until it holds or 10 s pass: the processing is asynchronous.
func (h *Harness) Eventually(what string, cond func() bool) {
	h.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			h.t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Friend returns the friend of a LINE user ID (zero when unknown yet).
func (h *Harness) Friend(userID string) friend.Friend {
	f, err := h.Srv.Friends.ByLineUserID(context.Background(), h.Ch, userID)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		h.t.Fatal(err)
	}
	return f
}

// Conversation returns the friend's conversation log.
func (h *Harness) Conversation(userID string) []friend.Message {
	f := h.Friend(userID)
	if f.ID == 0 {
		return nil
	}
	msgs, err := h.Srv.Friends.Conversation(context.Background(), h.Ch, f.ID, 100)
	if err != nil {
		h.t.Fatal(err)
	}
	return msgs
}
