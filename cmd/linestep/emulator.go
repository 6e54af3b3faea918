package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/linestep/linestep/internal/emulator"
)

func runEmulator(ctx context.Context, env *environment, args []string) error {
	fs := newFlagSet(env, "emulator", `
Runs the LINE platform emulator on its own: the Messaging API endpoints linestep calls
(with LINE's validation, rate limits, retry keys and error bodies), simulated users who
follow, block, chat and tap buttons (delivered as signed webhooks), and a record of what
each user received. Point "linestep serve --line-api-url" at it. Its control API (under
/_emulator/) creates channels and users and plays their acts; see
internal/emulator/README.md.

LINE プラットフォームのエミュレーターを単独で起動します(テスト・検証用)。`)
	addr := fs.String("addr", "127.0.0.1:8081", "address to listen on")
	chID := fs.String("channel-id", "", "create a channel with this ID at start (with --secret, --token, --webhook-url)")
	secret := fs.String("secret", "", "that channel's secret")
	token := fs.String("token", "", "that channel's access token")
	webhookURL := fs.String("webhook-url", "", "where that channel's webhooks go, e.g. http://127.0.0.1:8080/webhook/<id>")
	noLimit := fs.Bool("no-rate-limit", false, "do not enforce LINE's rate limits")
	errRate := fs.Float64("fault-error-rate", 0, "share of API requests answered 500 (0-1)")
	dropRate := fs.Float64("fault-drop-rate", 0, "share of API requests accepted, then the connection dropped (0-1)")
	slowRate := fs.Float64("fault-slow-rate", 0, "share of API requests answered slowly (0-1)")
	slowDelay := fs.Duration("fault-slow-delay", 2*time.Second, "how slow a slow answer is")
	if err := parse(fs, args); err != nil {
		return err
	}
	logger := newLogger(env, slog.LevelInfo)
	emu := emulator.New(emulator.Config{
		NoRateLimit: *noLimit,
		Faults:      emulator.Faults{ErrorRate: *errRate, DropRate: *dropRate, SlowRate: *slowRate, SlowDelay: *slowDelay},
		Logger:      logger,
	})
	if *chID != "" {
		if *secret == "" || *token == "" {
			return errors.New("--channel-id needs --secret and --token")
		}
		err := emu.AddChannel(emulator.Channel{ID: *chID, Secret: *secret, AccessToken: *token,
			BotUserID: emulator.NewUserID(), WebhookURL: *webhookURL})
		if err != nil {
			return err
		}
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: emu.Handler(), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		shut, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(shut)
	}()
	fmt.Fprintf(env.stdout, "LINE emulator listening on http://%s (control API under /_emulator/)\n", ln.Addr())
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
