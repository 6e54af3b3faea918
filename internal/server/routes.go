package server

import (
	"context"
	"encoding/json"
	"net/http"
	"time"

	"github.com/linestep/linestep/internal/api"
	"github.com/linestep/linestep/internal/ingest"
	"github.com/linestep/linestep/internal/web"
)

// routes composes every HTTP route in one place.
func (s *Server) routes() (http.Handler, error) {
	mux := http.NewServeMux()
	mux.Handle("POST /webhook/{channelID}", &ingest.Handler{
		Channels: s.Channels, Committer: s.Committer, Metrics: s.Metrics,
		Clock: s.cfg.Clock, Logger: s.cfg.Logger, MaxBody: s.cfg.MaxWebhookBody,
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", s.readyz)
	mux.Handle("GET /metrics", s.Metrics.Handler())
	s.API = api.New(api.Config{
		DB: s.DB, Access: s.Access, Audit: s.Audit, Channels: s.Channels, Friends: s.Friends, Scenarios: s.Scenarios, Delivery: s.Delivery,
		Broadcasts: s.Broadcasts, Coupons: s.Coupons, Clock: s.cfg.Clock, Logger: s.cfg.Logger,
	})
	mux.Handle("/api/", s.API)

	// The console: browser pages, with security headers and cross-origin form posts
	// refused (Sec-Fetch-Site / Origin checks).
	console := http.NewServeMux()
	s.Console = &web.Console{
		DB: s.DB, Staff: s.Staff, Access: s.Access, Channels: s.Channels, Friends: s.Friends,
		Scenarios: s.Scenarios, Broadcasts: s.Broadcasts, Coupons: s.Coupons, Replies: s.Replies,
		Delivery: s.Delivery, Inbox: s.Inbox, Audit: s.Audit, Events: s.Processor, Clock: s.cfg.Clock, Logger: s.cfg.Logger,
	}
	if err := s.Console.Routes(console); err != nil {
		return nil, err
	}
	mux.Handle("/", web.SecurityHeaders(http.NewCrossOriginProtection().Handler(console)))
	return mux, nil
}

// readyz answers 200 only when the server takes webhooks: listening, workers running,
// database answering and fully migrated. A load balancer sends traffic elsewhere otherwise.
func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	checks := map[string]string{"serving": "ok", "database": "ok", "migrations": "ok"}
	ok := true
	if !s.ready.Load() {
		checks["serving"], ok = "starting or stopping", false
	}
	if err := s.DB.Ping(ctx); err != nil {
		checks["database"], ok = "unreachable", false
	} else if have, known, err := s.DB.Version(ctx); err != nil || have < known {
		checks["migrations"], ok = "behind", false
	}
	status := http.StatusOK
	if !ok {
		status = http.StatusServiceUnavailable
	}
	writeJSON(w, status, checks)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}
