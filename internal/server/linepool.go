package server

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"sync"
	"time"

	"github.com/linestep/linestep/internal/channel"
	"github.com/linestep/linestep/internal/clock"
	"github.com/linestep/linestep/internal/line"
	"github.com/linestep/linestep/internal/metrics"
	"github.com/linestep/linestep/internal/store"
)

// linePool keeps one LINE API client per channel. Each client holds its channel's rate
// limiters, so there must be exactly one per channel in the process. A client follows its
// channel: a reissued access token makes a new one, a removed channel drops it.
type linePool struct {
	channels    *channel.Service
	apiURL      string
	dataAPIURL  string
	httpClient  *http.Client
	clock       clock.Clock
	metrics     *metrics.Metrics
	limits      map[line.Endpoint]line.Limit
	maxAttempts int

	mu      sync.Mutex
	clients map[string]pooledClient
}

type pooledClient struct {
	client *line.Client
	token  string // the access token it was made with
}

// Client returns the API client of a channel. The channel is looked up on every call
// (the channel service caches it briefly), so that new credentials, set here or on
// another instance, are used within that cache's lifetime.
func (p *linePool) Client(ctx context.Context, channelID string) (*line.Client, error) {
	ch, err := p.channels.Get(ctx, channelID)
	if errors.Is(err, store.ErrNotFound) {
		p.mu.Lock()
		delete(p.clients, channelID)
		p.mu.Unlock()
	}
	if err != nil {
		return nil, err
	}
	token := ch.Credentials.AccessToken
	p.mu.Lock()
	pc, ok := p.clients[channelID]
	p.mu.Unlock()
	if ok && pc.token == token {
		return pc.client, nil
	}
	c, err := line.New(line.Config{
		APIURL:      p.apiURL,
		DataAPIURL:  p.dataAPIURL,
		AccessToken: token,
		ChannelID:   ch.ID,
		HTTPClient:  p.httpClient,
		Clock:       p.clock,
		Limits:      p.limits,
		MaxAttempts: p.maxAttempts,
		Observe: func(endpoint line.Endpoint, status int, d time.Duration) {
			p.metrics.ObserveAPI(string(endpoint), status, d)
		},
	})
	if err != nil {
		return nil, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if existing, ok := p.clients[channelID]; ok && existing.token == token {
		return existing.client, nil // another goroutine won the race: keep one limiter per channel
	}
	p.clients[channelID] = pooledClient{client: c, token: token}
	return c, nil
}

func (p *linePool) Profile(ctx context.Context, channelID, userID string) (line.Profile, error) {
	c, err := p.Client(ctx, channelID)
	if err != nil {
		return line.Profile{}, err
	}
	return c.Profile(ctx, userID)
}

// Reply, Push and Multicast implement delivery.Sender.
func (p *linePool) Reply(ctx context.Context, channelID, replyToken string, msgs []json.RawMessage) (line.SendResult, error) {
	c, err := p.Client(ctx, channelID)
	if err != nil {
		return line.SendResult{}, err
	}
	return c.Reply(ctx, replyToken, line.RawMessages(msgs))
}

func (p *linePool) Push(ctx context.Context, channelID, to string, msgs []json.RawMessage, retryKey string) (line.SendResult, error) {
	c, err := p.Client(ctx, channelID)
	if err != nil {
		return line.SendResult{}, err
	}
	return c.Push(ctx, to, line.RawMessages(msgs), retryKey)
}

func (p *linePool) Multicast(ctx context.Context, channelID string, to []string, msgs []json.RawMessage, retryKey string) (line.SendResult, error) {
	c, err := p.Client(ctx, channelID)
	if err != nil {
		return line.SendResult{}, err
	}
	return c.Multicast(ctx, to, line.RawMessages(msgs), retryKey)
}

// LinkRichMenu and UnlinkRichMenu implement richmenu.Linker.
func (p *linePool) LinkRichMenu(ctx context.Context, channelID, userID, richMenuID string) error {
	c, err := p.Client(ctx, channelID)
	if err != nil {
		return err
	}
	return c.LinkRichMenu(ctx, userID, richMenuID)
}

func (p *linePool) UnlinkRichMenu(ctx context.Context, channelID, userID string) error {
	c, err := p.Client(ctx, channelID)
	if err != nil {
		return err
	}
	return c.UnlinkRichMenu(ctx, userID)
}
