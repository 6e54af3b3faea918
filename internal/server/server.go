// Package server assembles linestep from its parts: it opens the database, loads the
// master key, builds the services, serves HTTP and runs the background workers. The
// command line, the demo, the tests and the benchmarks all start linestep through it.
package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/linestep/linestep/internal/access"
	"github.com/linestep/linestep/internal/api"
	"github.com/linestep/linestep/internal/audit"
	"github.com/linestep/linestep/internal/autoreply"
	"github.com/linestep/linestep/internal/broadcast"
	"github.com/linestep/linestep/internal/channel"
	"github.com/linestep/linestep/internal/clock"
	"github.com/linestep/linestep/internal/coupon"
	"github.com/linestep/linestep/internal/delivery"
	"github.com/linestep/linestep/internal/friend"
	"github.com/linestep/linestep/internal/inbox"
	"github.com/linestep/linestep/internal/ingest"
	"github.com/linestep/linestep/internal/keyring"
	"github.com/linestep/linestep/internal/line"
	"github.com/linestep/linestep/internal/metrics"
	"github.com/linestep/linestep/internal/richmenu"
	"github.com/linestep/linestep/internal/scenario"
	"github.com/linestep/linestep/internal/staff"
	"github.com/linestep/linestep/internal/store"
	"github.com/linestep/linestep/internal/web"
)

// Config is what a server needs to start. Zero values take the documented defaults.
type Config struct {
	Addr           string // default 127.0.0.1:8080
	DB             string // SQLite path or postgres:// URL; default linestep.db
	LineAPIURL     string // default https://api.line.me
	LineDataAPIURL string // default https://api-data.line.me
	// Getenv reads the environment (the master key); default os.Getenv.
	Getenv func(string) string
	Clock  clock.Clock
	Logger *slog.Logger
	// LineHTTPClient calls LINE; default a client with a 10 s timeout.
	LineHTTPClient *http.Client
	// LineLimits overrides LINE's published rate limits (tests, an emulator with others).
	LineLimits map[line.Endpoint]line.Limit
	// LineMaxAttempts bounds the attempts of one LINE call on 5xx and no answer; default
	// the client's (5). The background workers retry later in any case.
	LineMaxAttempts int
	// Delivery tunes the dispatcher (lease, workers); zero values take its defaults.
	Delivery delivery.Config
	// Scenarios tunes the step runner; zero values take its defaults.
	Scenarios scenario.Config
	// Broadcasts tunes broadcast expansion; zero values take its defaults.
	Broadcasts broadcast.Config
	// MaxWebhookBody bounds a webhook body; default ingest.DefaultMaxBody.
	MaxWebhookBody int64
}

// Server is a running linestep.
type Server struct {
	cfg        Config
	DB         *store.DB
	Keys       *keyring.Keyring
	Metrics    *metrics.Metrics
	Channels   *channel.Service
	Friends    *friend.Service
	Processor  *ingest.Processor
	Committer  *ingest.Committer
	Lines      *linePool
	Staff      *staff.Service
	Access     *access.Service
	Delivery   *delivery.Service
	Scenarios  *scenario.Service
	RichMenus  *richmenu.Service
	Replies    *autoreply.Service
	Broadcasts *broadcast.Service
	Coupons    *coupon.Service
	Inbox      *inbox.Service
	Audit      *audit.Log
	// The console and the API, kept for the tests that walk their routes.
	Console *web.Console
	API     *api.API

	handler http.Handler
	ready   atomic.Bool // serving: what /readyz reports
}

// Defaults fills the zero fields of cfg.
func (cfg *Config) defaults() {
	if cfg.Addr == "" {
		cfg.Addr = "127.0.0.1:8080"
	}
	if cfg.DB == "" {
		cfg.DB = "linestep.db"
	}
	if cfg.LineAPIURL == "" {
		cfg.LineAPIURL = "https://api.line.me"
	}
	if cfg.LineDataAPIURL == "" {
		cfg.LineDataAPIURL = "https://api-data.line.me"
	}
	if cfg.Getenv == nil {
		cfg.Getenv = os.Getenv
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.Real
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
}

// Open connects to the database, applies migrations and loads the master key: what every
// subcommand that touches data needs.
func Open(ctx context.Context, dsn string, getenv func(string) string, logger *slog.Logger) (*store.DB, *keyring.Keyring, error) {
	db, err := store.Open(ctx, dsn)
	if err != nil {
		return nil, nil, err
	}
	applied, err := db.Migrate(ctx)
	if err != nil {
		db.Close()
		return nil, nil, err
	}
	if len(applied) > 0 {
		logger.Info("database migrated", "dialect", db.Dialect(), "applied", applied)
	}
	keyFile := ""
	if db.Dialect() == store.SQLite {
		keyFile = db.Path() + ".key"
	}
	keys, src, err := keyring.Load(getenv, keyFile)
	if err != nil {
		db.Close()
		return nil, nil, err
	}
	if err := keys.Bind(ctx, db); err != nil {
		db.Close()
		return nil, nil, err
	}
	switch src {
	case keyring.CreatedFile:
		logger.Warn("created a new master key file beside the database; back it up separately from the database, or set "+keyring.EnvVar, "key_file", keyFile, "key_id", keys.ID())
	default:
		logger.Info("master key loaded", "from", string(src), "key_id", keys.ID())
	}
	return db, keys, nil
}

// New builds a server on a database: migrated, with the master key loaded and checked.
func New(ctx context.Context, cfg Config) (*Server, error) {
	cfg.defaults()
	db, keys, err := Open(ctx, cfg.DB, cfg.Getenv, cfg.Logger)
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, DB: db, Keys: keys, Metrics: metrics.New()}
	s.Channels = channel.NewService(db, keys, cfg.Clock)
	s.Lines = &linePool{
		channels: s.Channels, apiURL: cfg.LineAPIURL, dataAPIURL: cfg.LineDataAPIURL,
		httpClient: cfg.LineHTTPClient, clock: cfg.Clock, metrics: s.Metrics, limits: cfg.LineLimits, maxAttempts: cfg.LineMaxAttempts,
		clients: map[string]pooledClient{},
	}
	s.Processor = ingest.NewProcessor(db, cfg.Clock, s.Metrics, cfg.Logger)
	s.Committer = ingest.NewCommitter(db, s.Metrics, cfg.Logger, s.Processor.Notify)
	// Answering LINE in time comes first: processing steps aside while webhooks arrive
	// (SQLite has one writer; PostgreSQL's commits compete for the same CPUs and disk).
	s.Processor.Yield = s.Committer.Busy
	s.Friends = friend.NewService(db, cfg.Clock, s.Lines, cfg.Logger, keys.Derive(friend.SearchKeyPurpose))
	s.Friends.Register(s.Processor)
	s.Delivery = delivery.New(db, cfg.Clock, s.Lines, cfg.Logger, cfg.Delivery)
	s.Delivery.Register(s.Processor) // after friends: it reads the status they set
	s.Coupons = coupon.New(db, cfg.Clock, cfg.Logger)
	s.Coupons.Register(s.Processor) // after friends: it looks up the friend who tapped
	s.Scenarios = scenario.New(db, cfg.Clock, s.Friends, s.Delivery, cfg.Logger, cfg.Scenarios)
	s.Scenarios.ExtraVars, s.Scenarios.CheckVars = s.Coupons.Vars, s.Coupons.ValidateReferences
	s.Scenarios.Register(s.Processor)
	s.RichMenus = richmenu.New(db, cfg.Clock, s.Lines, cfg.Logger, richmenu.Config{})
	s.RichMenus.Register(s.Processor) // after friends: it reads the status they set
	s.Scenarios.RichMenus = s.RichMenus
	s.Replies = autoreply.New(db, cfg.Clock, s.Friends, s.Delivery, cfg.Logger)
	s.Replies.ExtraVars, s.Replies.CheckVars = s.Coupons.Vars, s.Coupons.ValidateReferences
	s.Replies.Register(s.Processor)
	s.Inbox = inbox.New(db, cfg.Clock, s.Delivery, cfg.Logger)
	s.Inbox.Register(s.Processor) // after friends: it reads the message they log
	s.Broadcasts = broadcast.New(db, cfg.Clock, s.Friends, s.Delivery, cfg.Logger, cfg.Broadcasts)
	s.Broadcasts.ExtraVars, s.Broadcasts.CheckVars = s.Coupons.Vars, s.Coupons.ValidateReferences
	s.Staff = staff.NewService(db, cfg.Clock)
	s.Access = access.New(db, cfg.Clock)
	s.Audit = audit.NewLog(db, cfg.Clock)
	s.Staff.Keys, s.Staff.Logger = keys, cfg.Logger
	s.Staff.RequireTOTP = func(r staff.Role) bool { return s.Access.RequireTOTP(context.Background(), string(r)) }
	// Every sign-in outcome goes to the audit log too, in the transaction that records it.
	s.Staff.Audit = func(ctx context.Context, tx *store.Tx, rec audit.Record) error {
		_, err := s.Audit.Append(ctx, tx, rec)
		return err
	}
	s.Friends.SetAudit(s.Staff.Audit) // field values and conversations deleted after their retention
	s.Friends.SetConversationExpiry(s.Inbox.ForgetPreviews)
	// Erasing a friend also deletes what was sent to them and forgets them in the
	// webhook events kept for deduplication. The writers of deliveries that do not lock
	// the friend's row (a broadcast's chunk, a runner's batch) finish first.
	s.Friends.OnErase(func(ctx context.Context, tx *store.Tx, f friend.Friend) error {
		if err := s.Broadcasts.HoldExpansion(ctx, tx, f.ChannelID); err != nil {
			return err
		}
		if err := s.Scenarios.HoldRuns(ctx, tx, f.ID); err != nil {
			return err
		}
		if err := s.Delivery.EraseFriend(ctx, tx, f.ID, f.LineUserID); err != nil {
			return err
		}
		return ingest.ForgetUser(ctx, tx, f.ChannelID, f.LineUserID)
	})
	// What was sent, deleted after the channel's retention; broadcasts keep their counts.
	s.Delivery.SetRetention(s.Staff.Audit, s.Broadcasts.AddExpired)
	s.RichMenus.SetRetention(s.Staff.Audit) // the links made, kept as long as what was sent
	// Suspicious sign-ins are shown in the console; they can also go to a webhook (a chat
	// room, an on-call tool) and to a LINE user (the owner's phone) through a channel.
	var notify staff.Notifiers
	if u := cfg.Getenv("LINESTEP_SECURITY_WEBHOOK"); u != "" {
		notify = append(notify, &staff.WebhookNotifier{URL: u})
	}
	if v := cfg.Getenv("LINESTEP_SECURITY_LINE"); v != "" {
		channelID, userID, ok := strings.Cut(v, ":")
		if !ok || channelID == "" || userID == "" {
			db.Close()
			return nil, errors.New("LINESTEP_SECURITY_LINE must be CHANNEL_ID:LINE_USER_ID")
		}
		notify = append(notify, &staff.LineNotifier{To: userID, RetryKey: line.RetryKey,
			Push: func(ctx context.Context, to, text, retryKey string) error {
				msg, _ := json.Marshal(map[string]string{"type": "text", "text": text})
				_, err := s.Lines.Push(ctx, channelID, to, []json.RawMessage{msg}, retryKey)
				return err
			}})
	}
	if len(notify) > 0 {
		s.Staff.Notifier = notify
	}
	if s.handler, err = s.routes(); err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}

// Handler is the server's HTTP handler (webhooks, health, metrics, console).
func (s *Server) Handler() http.Handler { return s.handler }

// Run serves HTTP on cfg.Addr and runs the workers until ctx is done, then shuts down
// gracefully: first HTTP (in-flight webhooks finish storing), then the workers.
func (s *Server) Run(ctx context.Context) error {
	ln, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil {
		return fmt.Errorf("server: listen on %s: %w", s.cfg.Addr, err)
	}
	return s.Serve(ctx, ln)
}

// Serve is Run on a listener the caller opened (tests, the demo: port 0).
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	logger := s.cfg.Logger
	workCtx, stopWork := context.WithCancel(context.WithoutCancel(ctx))
	defer stopWork()
	var workers sync.WaitGroup
	workers.Go(func() { s.Committer.Run(workCtx) })
	workers.Go(func() { s.Processor.Run(workCtx) })
	workers.Go(func() { s.Friends.RunProfileFetcher(workCtx) })
	workers.Go(func() { s.Friends.RunRetention(workCtx) })
	workers.Go(func() { s.Friends.RunFillExactKeys(workCtx) })
	workers.Go(func() { s.Delivery.Run(workCtx) })
	workers.Go(func() { s.Delivery.RunRetention(workCtx) })
	workers.Go(func() { s.Scenarios.Run(workCtx) })
	workers.Go(func() { s.RichMenus.Run(workCtx) })
	workers.Go(func() { s.RichMenus.RunRetention(workCtx) })
	workers.Go(func() { s.Broadcasts.Run(workCtx) })

	srv := &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       120 * time.Second,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	s.ready.Store(true)
	logger.Info("linestep serving", "addr", ln.Addr().String(), "db", string(s.DB.Dialect()))

	var err error
	select {
	case <-ctx.Done():
	case err = <-serveErr:
	}
	s.ready.Store(false)
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if serr := srv.Shutdown(shutdownCtx); serr != nil {
		logger.Warn("HTTP shutdown incomplete", "err", serr)
	}
	stopWork()
	workers.Wait()
	s.Staff.WaitNotifications()
	logger.Info("linestep stopped")
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}

// Close releases the database.
func (s *Server) Close() error { return s.DB.Close() }

// OwnerLoginLink makes sure an owner account exists and returns a one-time sign-in path
// for it, valid for ttl: how the first person gets into a new installation.
func (s *Server) OwnerLoginLink(ctx context.Context, ttl time.Duration) (string, error) {
	owner, _, err := s.Staff.EnsureOwner(ctx, "owner", "Owner")
	if err != nil {
		return "", err
	}
	token, err := s.Staff.IssueLoginLink(ctx, owner.ID, ttl)
	if err != nil {
		return "", err
	}
	return "/login/link/" + token, nil
}
