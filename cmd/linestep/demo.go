package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/linestep/linestep/internal/emulator"
	"github.com/linestep/linestep/internal/server"
)

func runDemo(ctx context.Context, env *environment, args []string) error {
	fs := newFlagSet(env, "demo", `
Runs linestep together with the built-in LINE platform emulator, on a fresh SQLite
database in a temporary directory, with one channel and a few dozen simulated friends
who follow, chat, send stickers and tap buttons (a few block the account). Prints the
console address and a one-time owner sign-in link. Nothing leaves this machine.
Stop it with Ctrl-C.

LINE のエミュレーターと模擬の友だちで linestep を試せます。Ctrl-C で停止します。`)
	addr := fs.String("addr", envDefault(env, "LINESTEP_ADDR", "127.0.0.1:8080"), "console and webhook address")
	emuAddr := fs.String("emulator-addr", "127.0.0.1:0", "LINE emulator address (port 0: any free port)")
	db := fs.String("db", "", "database (default: a new SQLite file in a temporary directory)")
	friends := fs.Int("friends", 36, "how many simulated friends")
	verbose := fs.Bool("v", false, "show the server's log")
	if err := parse(fs, args); err != nil {
		return err
	}
	level := slog.LevelWarn
	if *verbose {
		level = slog.LevelInfo
	}
	logger := newLogger(env, level)

	dsn := *db
	if dsn == "" {
		dir, err := os.MkdirTemp("", "linestep-demo-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		dsn = filepath.Join(dir, "linestep.db")
	}

	emuLn, err := net.Listen("tcp", *emuAddr)
	if err != nil {
		return fmt.Errorf("emulator: %w", err)
	}
	emu := emulator.New(emulator.Config{Logger: logger})
	emuSrv := &http.Server{Handler: emu.Handler(), ReadHeaderTimeout: 10 * time.Second}
	go emuSrv.Serve(emuLn)
	defer emuSrv.Close()
	emuURL := "http://" + emuLn.Addr().String()

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return fmt.Errorf("%w (is another linestep running? choose another port with --addr 127.0.0.1:8090)", err)
	}
	getenv := env.getenv
	if *db == "" {
		// A throwaway database gets a throwaway master key, held in memory only.
		demoKey := randomHex(32)
		getenv = func(name string) string {
			if name == "LINESTEP_MASTER_KEY" {
				return demoKey
			}
			return env.getenv(name)
		}
	}
	srv, err := server.New(ctx, server.Config{
		DB: dsn, LineAPIURL: emuURL, LineDataAPIURL: emuURL, Getenv: getenv, Logger: logger,
	})
	if err != nil {
		ln.Close()
		return err
	}
	defer srv.Close()

	secret, token := randomHex(16), randomHex(32)
	ch, err := srv.Channels.Add(ctx, "デモ カフェ (Demo Cafe)", secret, token)
	if err != nil {
		ln.Close()
		return err
	}
	base := "http://" + ln.Addr().String()
	if err := emu.AddChannel(emulator.Channel{
		ID: ch.ID, Secret: secret, AccessToken: token, BotUserID: emulator.NewUserID(),
		WebhookURL: base + ch.WebhookPath(),
	}); err != nil {
		ln.Close()
		return err
	}
	if err := setupDemoAutomation(ctx, srv, ch.ID); err != nil {
		ln.Close()
		return err
	}
	link, err := srv.OwnerLoginLink(ctx, 24*time.Hour)
	if err != nil {
		ln.Close()
		return err
	}
	staffLogin, staffPassword, err := setupDemoOperator(ctx, srv, ch.ID)
	if err != nil {
		ln.Close()
		return err
	}

	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ctx, ln) }()

	fmt.Fprintf(env.stdout, `
  linestep demo is running / デモを起動しました

  Console / 管理画面:        %s/console/
  Owner sign-in (once) / オーナー用ログイン(一回限り):
                             %s%s
      (choose a password, then set up two-step sign-in with an authenticator app /
       パスワードを決め、認証アプリで2段階認証を設定します)
  Staff (operator, personal data masked) / スタッフ(個人情報はマスク表示):
                             login %s  password %s
  LINE emulator / LINE エミュレーター: %s
  Channel / チャネル:        %s (%s)
  Privacy notice for friends / 友だち向けの個人情報の取り扱い:
                             %s/privacy/%s

  %d simulated friends are following and chatting. Each new friend is greeted by
  reply and gets two more steps within a minute; "営業" or "open" gets an auto-reply.
  Press Ctrl-C to stop.
  %d人の模擬の友だちが友だち追加し、メッセージを送っています。友だち追加のあいさつ
  (応答メッセージ)と1分以内の2通のステップ配信、「営業」への自動応答が動きます。
  Ctrl-C で停止します。

`, base, base, link, staffLogin, staffPassword, emuURL, ch.ID, ch.Name, base, ch.ID, *friends, *friends)

	sim := &simulation{emu: emu, channelID: ch.ID, logger: logger}
	if err := sim.populate(ctx, *friends); err != nil && ctx.Err() == nil {
		logger.Warn("demo: simulation", "err", err)
	}
	go sim.keepChatting(ctx)

	select {
	case <-ctx.Done():
		fmt.Fprintln(env.stdout, "\nstopping / 停止しています…")
		return <-serveErr
	case err := <-serveErr:
		return err
	}
}

// simulation plays LINE users: names are in Japanese, and a few are hostile on purpose,
// so that the console's escaping is visible in the demo.
type simulation struct {
	emu       *emulator.Emulator
	channelID string
	logger    *slog.Logger
	users     []string
}

var (
	familyNames = []string{"佐藤", "鈴木", "高橋", "田中", "伊藤", "渡辺", "山本", "中村", "小林", "加藤", "吉田", "山田"}
	givenNames  = []string{"陽菜", "蓮", "結衣", "湊", "さくら", "大翔", "美咲", "悠真", "葵", "翔太", "凛", "健"}
	hostile     = []string{`<script>alert("xss")</script>`, `"><img src=x onerror=alert(1)>`, `=HYPERLINK("http://evil.example","click")`}
	chatter     = []string{"こんにちは!", "予約できますか?", "明日は営業していますか", "クーポンありますか?", "ありがとうございました", "駐車場はありますか", "Hello, are you open on Sunday?", "<b>bold?</b> & \"quotes\""}
	postbacks   = []string{"action=reserve&menu=cut", "action=coupon&id=spring", "action=menu", "action=contact"}
)

func (s *simulation) populate(ctx context.Context, n int) error {
	for i := range n {
		id := emulator.NewUserID()
		name := familyNames[i%len(familyNames)] + " " + givenNames[(i*7)%len(givenNames)]
		if i%12 == 5 {
			name = hostile[(i/12)%len(hostile)]
		}
		lang := "ja"
		if i%9 == 4 {
			lang = "en"
		}
		if err := s.emu.AddUser(s.channelID, emulator.User{
			ID: id, DisplayName: name, Language: lang,
			PictureURL: "", StatusMessage: chatter[i%len(chatter)],
		}); err != nil {
			return err
		}
		if _, err := s.emu.Follow(ctx, s.channelID, id); err != nil {
			return err
		}
		s.users = append(s.users, id)
		if _, err := s.emu.SendText(ctx, s.channelID, id, chatter[i%len(chatter)]); err != nil {
			return err
		}
		switch i % 5 {
		case 1:
			s.emu.SendSticker(ctx, s.channelID, id, "446", "1988")
		case 2:
			s.emu.Postback(ctx, s.channelID, id, postbacks[i%len(postbacks)])
		case 3:
			s.emu.SendImage(ctx, s.channelID, id, demoPNG, "image/png")
		}
		if i%10 == 9 { // some block the account
			s.emu.Block(ctx, s.channelID, id)
		}
	}
	return nil
}

// keepChatting sends a message from a random friend every few seconds, so the console
// shows a living account.
func (s *simulation) keepChatting(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Duration(2+pick(4)) * time.Second):
		}
		if len(s.users) == 0 {
			continue
		}
		u := s.users[pick(len(s.users))]
		var err error
		switch pick(6) {
		case 0:
			_, err = s.emu.Postback(ctx, s.channelID, u, postbacks[pick(len(postbacks))])
		case 1:
			_, err = s.emu.SendSticker(ctx, s.channelID, u, "446", "1989")
		default:
			_, err = s.emu.SendText(ctx, s.channelID, u, chatter[pick(len(chatter))])
		}
		if err != nil && !errors.Is(err, context.Canceled) {
			s.logger.Warn("demo: simulated message failed", "err", err)
		}
	}
}

func pick(n int) int {
	v, _ := rand.Int(rand.Reader, big.NewInt(int64(n)))
	return int(v.Int64())
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// demoPNG is a 1x1 green pixel, the picture a simulated friend sends.
var demoPNG = []byte{
	0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52,
	0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x02, 0x00, 0x00, 0x00, 0x90, 0x77, 0x53,
	0xde, 0x00, 0x00, 0x00, 0x0c, 0x49, 0x44, 0x41, 0x54, 0x08, 0xd7, 0x63, 0x60, 0xf8, 0xcf, 0x00,
	0x00, 0x02, 0x02, 0x01, 0x00, 0x7b, 0x0d, 0x1e, 0x4e, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45, 0x4e,
	0x44, 0xae, 0x42, 0x60, 0x82,
}
