// Package line talks to the LINE platform: the Messaging API client (built on the
// official SDK) with rate limiting, retries and retry keys, and the verification and
// parsing of LINE's webhooks. It knows nothing of linestep's database.
package line

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/line/line-bot-sdk-go/v8/linebot/messaging_api"
	"golang.org/x/time/rate"

	"github.com/linestep/linestep/internal/clock"
)

// Endpoint names one rate-limited Messaging API endpoint.
type Endpoint string

const (
	EndpointReply          Endpoint = "reply"
	EndpointPush           Endpoint = "push"
	EndpointMulticast      Endpoint = "multicast"
	EndpointBroadcast      Endpoint = "broadcast"
	EndpointNarrowcast     Endpoint = "narrowcast"
	EndpointProgress       Endpoint = "narrowcast_progress"
	EndpointProfile        Endpoint = "profile"
	EndpointFollowers      Endpoint = "followers"
	EndpointRichMenuLink   Endpoint = "richmenu_link"
	EndpointRichMenuUnlink Endpoint = "richmenu_unlink"
	EndpointQuota          Endpoint = "quota"
	EndpointContent        Endpoint = "content"
)

// Limit is a published rate limit: Requests per Per.
type Limit struct {
	Requests int
	Per      time.Duration
}

// DefaultLimits are LINE's published limits per channel.
var DefaultLimits = map[Endpoint]Limit{
	EndpointReply:          {2000, time.Second},
	EndpointPush:           {2000, time.Second},
	EndpointMulticast:      {200, time.Second},
	EndpointBroadcast:      {60, time.Hour},
	EndpointNarrowcast:     {60, time.Hour},
	EndpointProgress:       {2000, time.Second},
	EndpointProfile:        {2000, time.Second},
	EndpointFollowers:      {2000, time.Second},
	EndpointRichMenuLink:   {2000, time.Second},
	EndpointRichMenuUnlink: {2000, time.Second},
	EndpointQuota:          {2000, time.Second},
	EndpointContent:        {2000, time.Second},
}

// Config configures a Client. Zero values take the documented defaults.
type Config struct {
	APIURL      string // default https://api.line.me
	DataAPIURL  string // default https://api-data.line.me
	AccessToken string
	ChannelID   string // ours, for metrics and errors only
	HTTPClient  *http.Client
	Clock       clock.Clock
	Limits      map[Endpoint]Limit // overrides of DefaultLimits
	MaxAttempts int                // for 5xx and transport failures; default 5
	// AttemptTimeout bounds one attempt; default 10 s.
	AttemptTimeout time.Duration
	// Observe is called after every attempt (status 0: no answer). May be nil.
	Observe func(endpoint Endpoint, status int, d time.Duration)
}

// Client calls the Messaging API for one channel. It is safe for concurrent use; keep
// one per channel, since it holds that channel's rate limiters.
type Client struct {
	cfg      Config
	api      *messaging_api.MessagingApiAPI
	blob     *messaging_api.MessagingApiBlobAPI
	limiters map[Endpoint]*rate.Limiter
	mu       sync.Mutex // guards rnd
	rnd      *rand.Rand
}

// New returns a client.
func New(cfg Config) (*Client, error) {
	if cfg.AccessToken == "" {
		return nil, errors.New("line: no access token")
	}
	if cfg.APIURL == "" {
		cfg.APIURL = "https://api.line.me"
	}
	if cfg.DataAPIURL == "" {
		cfg.DataAPIURL = "https://api-data.line.me"
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = DefaultHTTPClient()
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.Real
	}
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = 5
	}
	if cfg.AttemptTimeout <= 0 {
		cfg.AttemptTimeout = 10 * time.Second
	}
	api, err := messaging_api.NewMessagingApiAPI(cfg.AccessToken,
		messaging_api.WithEndpoint(cfg.APIURL), messaging_api.WithHTTPClient(cfg.HTTPClient))
	if err != nil {
		return nil, fmt.Errorf("line: API URL: %w", err)
	}
	blob, err := messaging_api.NewMessagingApiBlobAPI(cfg.AccessToken,
		messaging_api.WithBlobEndpoint(cfg.DataAPIURL), messaging_api.WithBlobHTTPClient(cfg.HTTPClient))
	if err != nil {
		return nil, fmt.Errorf("line: data API URL: %w", err)
	}
	c := &Client{cfg: cfg, api: api, blob: blob, limiters: map[Endpoint]*rate.Limiter{}, rnd: rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))}
	for ep, l := range DefaultLimits {
		if o, ok := cfg.Limits[ep]; ok {
			l = o
		}
		c.limiters[ep] = newLimiter(l)
	}
	return c, nil
}

// DefaultHTTPClient keeps enough idle connections for thousands of requests a second
// (Go's default keeps two per host, which would reconnect constantly).
func DefaultHTTPClient() *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConns = 1024
	t.MaxIdleConnsPerHost = 512
	t.IdleConnTimeout = 90 * time.Second
	return &http.Client{Transport: t, Timeout: 30 * time.Second}
}

// newLimiter holds an endpoint under its published limit. LINE counts requests in a
// window; a token bucket of rate r and burst b admits at most b + r·T in any window T.
// The requests reach LINE a little later than they leave, and not all equally late: a
// window at LINE can see those of a window jitter longer here. So b + r·(Per + jitter)
// must not exceed the limit: with b = 1% of it and jitter 20 ms, a steady sender gets
// 97% of a per-second limit (first measured: 5% burst and 95% rate left the personalised
// broadcast at 0.94 of LINE's push limit once start-up is counted).
func newLimiter(l Limit) *rate.Limiter {
	if l.Requests <= 0 || l.Per <= 0 {
		return rate.NewLimiter(rate.Inf, 1)
	}
	const jitter = 20 * time.Millisecond
	burst := max(1, l.Requests/100)
	r := rate.Limit(float64(l.Requests-burst) / (l.Per + jitter).Seconds())
	return rate.NewLimiter(r, burst)
}

// wait takes a token for ep, sleeping on the client's clock until one is free.
func (c *Client) wait(ctx context.Context, ep Endpoint) error {
	lim := c.limiters[ep]
	now := c.cfg.Clock.Now()
	r := lim.ReserveN(now, 1)
	if !r.OK() {
		return fmt.Errorf("line: %s: rate limiter refused", ep)
	}
	if d := r.DelayFrom(now); d > 0 {
		if err := c.cfg.Clock.Sleep(ctx, d); err != nil {
			r.CancelAt(c.cfg.Clock.Now())
			return err
		}
	}
	return nil
}

// retryPolicy says which failures an endpoint may retry.
type retryPolicy int

const (
	// retryAll: idempotent calls, and sends carrying a retry key (LINE recognises the
	// retry and answers 409).
	retryAll retryPolicy = iota
	// retrySafeOnly: replies, which have no retry key: only failures where the request
	// certainly did not reach LINE (429, a refused connection) are retried.
	retrySafeOnly
)

// attemptFunc makes one SDK call on an API copy bound to the attempt's context.
type attemptFunc func(api *messaging_api.MessagingApiAPI) (*http.Response, error)

// outcome is what call learned.
type outcome struct {
	res      *http.Response // the successful (or 409) answer; its body may be consumed
	attempts int
	accepted bool // 409: the retry key had already been accepted
}

// call runs f with rate limiting, per-attempt timeouts and retries.
func (c *Client) call(ctx context.Context, ep Endpoint, policy retryPolicy, f attemptFunc) (outcome, error) {
	var lastErr error
	failures, throttled := 0, 0
	for attempt := 1; ; attempt++ {
		if err := c.wait(ctx, ep); err != nil {
			return outcome{attempts: attempt - 1}, errors.Join(lastErr, err)
		}
		actx, cancel := context.WithTimeout(ctx, c.cfg.AttemptTimeout)
		api := *c.api // WithContext mutates: each attempt works on its own copy
		api.WithContext(actx)
		start := c.cfg.Clock.Now()
		res, err := f(&api)
		status := 0
		if res != nil {
			status = res.StatusCode
		}
		if c.cfg.Observe != nil {
			c.cfg.Observe(ep, status, c.cfg.Clock.Now().Sub(start))
		}
		switch {
		case res != nil && status/100 == 2:
			// The SDK may fail to decode an empty body on a success (202 narrowcast):
			// the status is what counts.
			cancel()
			return outcome{res: res, attempts: attempt}, nil
		case res != nil && status == http.StatusConflict && isSend(ep):
			cancel()
			drain(res)
			return outcome{res: res, attempts: attempt, accepted: true}, nil
		case res != nil:
			apiErr := readAPIError(ep, res)
			cancel()
			lastErr = apiErr
			switch {
			case status == http.StatusTooManyRequests:
				throttled++
				if throttled >= 20 {
					return outcome{attempts: attempt}, apiErr
				}
				if err := c.backoff(ctx, throttled, time.Second); err != nil {
					return outcome{attempts: attempt}, errors.Join(apiErr, err)
				}
				continue
			case status >= 500 && policy == retryAll:
				failures++
			case status >= 500:
				return outcome{attempts: attempt}, fmt.Errorf("%w: %w", ErrReplyOutcomeUnknown, apiErr)
			default:
				return outcome{attempts: attempt}, apiErr
			}
		default:
			cancel()
			if ctx.Err() != nil {
				return outcome{attempts: attempt}, ctx.Err()
			}
			terr := &TransportError{Endpoint: ep, Err: err}
			lastErr = terr
			if policy != retryAll && !isDialError(err) {
				return outcome{attempts: attempt}, fmt.Errorf("%w: %w", ErrReplyOutcomeUnknown, terr)
			}
			failures++
		}
		if failures >= c.cfg.MaxAttempts {
			return outcome{attempts: attempt}, lastErr
		}
		if err := c.backoff(ctx, failures, 200*time.Millisecond); err != nil {
			return outcome{attempts: attempt}, errors.Join(lastErr, err)
		}
	}
}

// backoff sleeps base·2^(n-1), capped at 10 s, with jitter so that many senders failing
// together do not come back together.
func (c *Client) backoff(ctx context.Context, n int, base time.Duration) error {
	d := min(base<<min(n-1, 10), 10*time.Second)
	c.mu.Lock()
	j := time.Duration(c.rnd.Int64N(int64(d)/2 + 1))
	c.mu.Unlock()
	return c.cfg.Clock.Sleep(ctx, d/2+j)
}

func isSend(ep Endpoint) bool {
	return ep == EndpointPush || ep == EndpointMulticast || ep == EndpointBroadcast || ep == EndpointNarrowcast
}

// isDialError reports a failure to connect at all: the request was never sent.
func isDialError(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

func drain(res *http.Response) {
	io.Copy(io.Discard, io.LimitReader(res.Body, 64<<10))
	res.Body.Close()
}

// readAPIError turns a non-2xx answer into an APIError and closes its body.
func readAPIError(ep Endpoint, res *http.Response) *APIError {
	defer res.Body.Close()
	e := &APIError{Endpoint: ep, Status: res.StatusCode, RequestID: res.Header.Get("x-line-request-id")}
	var body struct {
		Message string        `json:"message"`
		Details []ErrorDetail `json:"details"`
	}
	if json.NewDecoder(io.LimitReader(res.Body, 64<<10)).Decode(&body) == nil {
		e.Message, e.Details = body.Message, body.Details
	}
	return e
}
