package server_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"testing"

	"github.com/linestep/linestep/internal/line"
	"github.com/linestep/linestep/internal/servertest"
	"github.com/linestep/linestep/internal/store"
	"github.com/linestep/linestep/internal/testutil"
)

// After the access token is reissued at LINE, sends fail until linestep is given the new
// one, then go out with it at once; a removed channel's client is dropped.
func TestReissuedAccessToken(t *testing.T) {
	testutil.EachDSN(t, func(t *testing.T, dsn string) {
		h := servertest.Start(t, dsn)
		ctx := context.Background()
		u := h.User("花子")
		h.OK(h.Emu.Follow(ctx, h.Ch, u))
		msg, _ := json.Marshal(map[string]string{"type": "text", "text": "こんにちは"})
		push := func(key string) error {
			_, err := h.Srv.Lines.Push(ctx, h.Ch, u, []json.RawMessage{msg}, key)
			return err
		}
		if err := push(line.RetryKey("before")); err != nil {
			t.Fatal(err)
		}
		if err := h.Emu.ReissueAccessToken(h.Ch, "reissued-token"); err != nil {
			t.Fatal(err)
		}
		var apiErr *line.APIError
		if err := push(line.RetryKey("old token")); !errors.As(err, &apiErr) || apiErr.Status != http.StatusUnauthorized {
			t.Fatalf("push with the old token: %v, want LINE's 401", err)
		}
		if err := h.Srv.Channels.SetCredentials(ctx, h.Ch, "", "reissued-token"); err != nil {
			t.Fatal(err)
		}
		if err := push(line.RetryKey("new token")); err != nil {
			t.Fatalf("push after the new token was set: %v", err)
		}
		if rs, _ := h.Emu.ReceivedBy(h.Ch, u); len(rs) != 2 {
			t.Fatalf("the friend received %d messages, want 2", len(rs))
		}
		if err := h.Srv.Channels.Remove(ctx, h.Ch); err != nil {
			t.Fatal(err)
		}
		if err := push(line.RetryKey("removed")); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("push for a removed channel: %v, want not found", err)
		}
	})
}
