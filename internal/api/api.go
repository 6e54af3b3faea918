// Package api serves the JSON API under /api/v1, for the shop's own systems and
// integrations: bearer tokens (only their hash is stored), a role and an optional channel
// per token, and one file per resource over the domain services. It owns the api_tokens
// table and nothing else; the contract is openapi.yaml, served at /api/openapi.yaml.
package api

import (
	"errors"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"

	"github.com/linestep/linestep/internal/access"
	"github.com/linestep/linestep/internal/audit"
	"github.com/linestep/linestep/internal/broadcast"
	"github.com/linestep/linestep/internal/channel"
	"github.com/linestep/linestep/internal/clock"
	"github.com/linestep/linestep/internal/coupon"
	"github.com/linestep/linestep/internal/delivery"
	"github.com/linestep/linestep/internal/friend"
	"github.com/linestep/linestep/internal/scenario"
	"github.com/linestep/linestep/internal/store"
)

// Config is what the API's handlers need.
type Config struct {
	DB        *store.DB
	Access    *access.Service
	Audit     *audit.Log
	Channels  *channel.Service
	Friends   *friend.Service
	Scenarios *scenario.Service
	Delivery  *delivery.Service
	// Broadcasts and Coupons serve /broadcasts and /coupons.
	Broadcasts *broadcast.Service
	Coupons    *coupon.Service
	Clock      clock.Clock
	Logger     *slog.Logger
}

// API is the /api/ handler.
type API struct {
	cfg    Config
	tokens *Tokens
	mux    *http.ServeMux
	routes []route
}

// route is one endpoint. A path with {ch} acts on one channel: the token's scope is
// checked, and the channel must exist.
type route struct {
	method, path string
	perm         access.Permission
	handle       handlerFunc
}

// handlerFunc answers an admitted request. It writes the answer on success; an error it
// returns is answered by the wrapper (a *failure as it is, domain errors mapped).
type handlerFunc func(w http.ResponseWriter, r *http.Request, c *call) error

// call is an admitted request: who calls, and on which channel.
type call struct {
	token   Token
	client  Client           // where the request came from, for the audit trail
	p       access.Principal // the token's role and channels, asked every question
	channel string
}

// New builds the API handler. Each resource file contributes its routes.
func New(cfg Config) *API {
	a := &API{cfg: cfg, tokens: NewTokens(cfg.DB, cfg.Clock), mux: http.NewServeMux()}
	a.tokens.Audit = cfg.Audit
	a.routes = slices.Concat(a.channelRoutes(), a.friendRoutes(), a.tagRoutes(), a.fieldRoutes(),
		a.scenarioRoutes(), a.deliveryRoutes(), a.broadcastRoutes(), a.couponRoutes(), a.segmentRoutes())
	allow := map[string][]string{}
	for _, rt := range a.routes {
		a.mux.Handle(rt.method+" "+rt.path, a.wrap(rt))
		allow[rt.path] = append(allow[rt.path], rt.method)
	}
	// The mux's own 405 and 404 answers are plain text: these answer JSON instead.
	for path, methods := range allow {
		a.mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Allow", strings.Join(methods, ", "))
			writeError(w, apiError(http.StatusMethodNotAllowed, "method_not_allowed",
				"this endpoint takes "+strings.Join(methods, ", "), "このエンドポイントで使えるメソッドは "+strings.Join(methods, ", ")+" です"))
		})
	}
	a.mux.HandleFunc("GET /api/openapi.yaml", serveOpenAPI)
	a.mux.HandleFunc("/api/", func(w http.ResponseWriter, r *http.Request) { writeError(w, errNoRoute) })
	return a
}

// Route is one endpoint and the permission it needs, for the route-by-role tests.
type Route struct {
	Method, Path string
	Perm         access.Permission
}

// Table lists the endpoints.
func (a *API) Table() []Route {
	out := make([]Route, len(a.routes))
	for i, rt := range a.routes {
		out[i] = Route{rt.method, rt.path, rt.perm}
	}
	return out
}

// ServeHTTP serves everything under /api/. No cross-origin protection is needed: a
// bearer token is never sent by a browser on its own, unlike a cookie.
func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) { a.mux.ServeHTTP(w, r) }

func (a *API) wrap(rt route) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sw := &statusWriter{ResponseWriter: w}
		c, err := a.admit(sw, r, rt)
		if err == nil {
			err = rt.handle(sw, r, c)
		}
		if err != nil {
			e, ok := classify(err)
			if !ok {
				a.cfg.Logger.Error("api: request failed", "method", r.Method, "route", rt.path, "err", err)
			}
			writeError(sw, e)
		}
		// An access log: IDs only, never what was read or written.
		a.cfg.Logger.Info("api request", "method", r.Method, "route", rt.path, "channel", c.channel,
			"token_id", c.token.ID, "status", sw.status)
	})
}

// admit authenticates the request and checks, in order: the token's channel, its role,
// that the channel exists, and the body's type and size.
func (a *API) admit(w http.ResponseWriter, r *http.Request, rt route) (*call, error) {
	c := &call{}
	scheme, secret, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	if !strings.EqualFold(scheme, "Bearer") || secret == "" {
		w.Header().Set("WWW-Authenticate", `Bearer realm="linestep"`)
		return c, errUnauthorized
	}
	host, _, _ := net.SplitHostPort(r.RemoteAddr)
	c.client = Client{Addr: host, UserAgent: r.UserAgent()}
	tok, err := a.tokens.Authenticate(r.Context(), strings.TrimSpace(secret), c.client)
	if errors.Is(err, ErrInvalidToken) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="linestep", error="invalid_token"`)
		return c, errUnauthorized
	}
	if err != nil {
		return c, err
	}
	c.token = tok
	if c.p, err = a.cfg.Access.TokenPrincipal(r.Context(), tok.ID, tok.Name, string(tok.Role), tok.ChannelID); err != nil {
		return c, err
	}
	if strings.Contains(rt.path, "{ch}") {
		c.channel = r.PathValue("ch")
		if !c.p.OnChannel(c.channel) {
			return c, errForbiddenChannel
		}
	}
	if !c.p.Can(rt.perm) {
		return c, errForbiddenRole
	}
	if c.channel != "" {
		if _, err := a.cfg.Channels.Get(r.Context(), c.channel); errors.Is(err, store.ErrNotFound) {
			return c, notFound("channel", "チャネル")
		} else if err != nil {
			return c, err
		}
	}
	if r.Method == http.MethodPost || r.Method == http.MethodPut {
		if r.ContentLength > MaxBody {
			return c, errTooLarge
		}
		if r.ContentLength != 0 && !isJSON(r.Header.Get("Content-Type")) {
			return c, errMediaType
		}
		r.Body = http.MaxBytesReader(w, r.Body, MaxBody)
	}
	return c, nil
}

// statusWriter remembers the status, for the access log.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (s *statusWriter) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}
