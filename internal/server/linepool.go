package server

import (
	"context"
	"encoding/json"
	"net/http"
	"sync"
	"time"

	"github.com/linestep/linestep/internal/channel"
	"github.com/linestep/linestep/internal/clock"
	"github.com/linestep/linestep/internal/line"
	"github.com/linestep/linestep/internal/metrics"
)

// linePool keeps one LINE API client per channel. Each client holds its channel's rate
// limiters, so there must be exactly one per channel in the process.
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
	clients map[string]*line.Client
}

// Client returns the API client of a channel.
func (p *linePool) Client(ctx context.Context, channelID string) (*line.Client, error) {
	p.mu.Lock()
	c, ok := p.clients[channelID]
	p.mu.Unlock()
	if ok {
		return c, nil
	}
	ch, err := p.channels.Get(ctx, channelID)
	if err != nil {
		return nil, err
	}
	c, err = line.New(line.Config{
		APIURL:      p.apiURL,
		DataAPIURL:  p.dataAPIURL,
		AccessToken: ch.Credentials.AccessToken,
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
	if existing, ok := p.clients[channelID]; ok {
		return existing, nil // another goroutine won the race: keep one limiter per channel
	}
	p.clients[channelID] = c
	return c, nil
}

// Profile implements friend.ProfileSource.
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
