// Package emulator is a stand-in for the LINE platform, for the demo, the tests and the
// benchmarks: it serves the Messaging API endpoints linestep calls (with LINE's
// validation, error bodies, rate limits and retry-key semantics, plus optional faults),
// and it plays LINE users who follow, block, chat and tap buttons, delivered as signed
// webhooks. It records what every user received.
//
// It deliberately shares no code with the server apart from the official SDK's types: a
// bug in linestep's LINE client cannot be hidden by the same bug here.
package emulator

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"net/http"
	"regexp"
	"sync"
	"time"
)

// Config configures an Emulator. Zero values take the documented defaults.
type Config struct {
	Logger *slog.Logger
	// Now is the emulated clock (retry-key memory, reply-token expiry, rate windows,
	// event timestamps). Default time.Now.
	Now func() time.Time
	// NoRateLimit turns the per-endpoint rate limits off.
	NoRateLimit bool
	// Limits overrides DefaultLimits per endpoint name.
	Limits map[string]Limit
	Faults Faults
	// ReplyTokenTTL is how long a reply token stays usable; default one minute.
	ReplyTokenTTL time.Duration
	// HTTPClient delivers webhooks; default a client with a 10 s timeout.
	HTTPClient *http.Client
	// Seed makes fault injection repeatable; 0 picks a random seed.
	Seed uint64
}

// Faults injects failures into Messaging API requests, each with the given share (0-1).
type Faults struct {
	// ErrorRate: answer 500 without doing anything.
	ErrorRate float64
	// SlowRate: do the work, then wait SlowDelay before answering (a client that times
	// out must retry with the same retry key).
	SlowRate  float64
	SlowDelay time.Duration // default 2 s
	// DropRate: do the work (the messages are delivered), then drop the connection
	// without an answer.
	DropRate float64
	// Endpoints limits the faults to these endpoint names (see DefaultLimits); empty
	// means every Messaging API endpoint.
	Endpoints []string
}

// Limit is a rate limit: at most Requests per Per, per channel and endpoint.
type Limit struct {
	Requests int
	Per      time.Duration
}

// DefaultLimits are LINE's published per-channel limits, keyed by endpoint name.
var DefaultLimits = map[string]Limit{
	"reply":               {2000, time.Second},
	"push":                {2000, time.Second},
	"multicast":           {200, time.Second},
	"broadcast":           {60, time.Hour},
	"narrowcast":          {60, time.Hour},
	"narrowcast_progress": {2000, time.Second},
	"profile":             {2000, time.Second},
	"followers":           {2000, time.Second},
	"richmenu_link":       {2000, time.Second},
	"richmenu_unlink":     {2000, time.Second},
	"quota":               {2000, time.Second},
	"content":             {2000, time.Second},
}

// Channel is an emulated LINE channel (a LINE Official Account's Messaging API channel).
type Channel struct {
	ID          string
	Secret      string // signs webhooks
	AccessToken string // authenticates API calls
	BotUserID   string // the "destination" of webhooks
	WebhookURL  string
	// Quota is the monthly message limit (0: unlimited). Pushes, multicasts,
	// broadcasts and narrowcasts count one per recipient; replies are free.
	Quota int64
}

// User is a simulated LINE user.
type User struct {
	ID            string // "U" and 32 hex digits; NewUserID makes one
	DisplayName   string
	PictureURL    string
	StatusMessage string
	Language      string
}

// Received is one API request's messages as a user received them.
type Received struct {
	At        time.Time         `json:"at"`
	Via       string            `json:"via"` // reply, push, multicast, broadcast, narrowcast
	RequestID string            `json:"requestId"`
	RetryKey  string            `json:"retryKey,omitempty"`
	Messages  []json.RawMessage `json:"messages"`
}

// Status of a user towards a channel.
const (
	StatusNone      = "none" // never followed
	StatusFollowing = "following"
	StatusBlocked   = "blocked"
)

var (
	ErrUnknownChannel = errors.New("emulator: unknown channel")
	ErrUnknownUser    = errors.New("emulator: unknown user")
	ErrNotFollowing   = errors.New("emulator: the user does not follow the channel")
	ErrFollowing      = errors.New("emulator: the user already follows the channel")
	ErrNoWebhookURL   = errors.New("emulator: the channel has no webhook URL")
	ErrInvalid        = errors.New("emulator: invalid")
)

var userIDForm = regexp.MustCompile(`^U[0-9a-f]{32}$`)

// Emulator is the emulated platform. Its methods are safe for concurrent use.
type Emulator struct {
	cfg    Config
	logger *slog.Logger
	client *http.Client

	mu       sync.Mutex
	channels map[string]*channel
	byToken  map[string]*channel
	faults   Faults
	rnd      *mrand.Rand
	stats    stats
}

type channel struct {
	Channel
	standby     bool
	users       map[string]*user
	order       []string // user IDs in the order they first followed
	retryKeys   map[string]acceptedKey
	replyTokens map[string]replyToken
	windows     map[string]*window
	narrowcasts map[string]*narrowcast
	content     map[string]content
	events      map[string][]byte // sent webhook events by ID, for redelivery
	eventOrder  []string
	usage       int64

	delivered, messagesDelivered int       // (user, request) deliveries and their messages, for Stats
	lastSweep                    time.Time // when forgetExpired last walked the maps
}

type user struct {
	User
	status     string
	followedAt time.Time
	richMenu   string
	received   []Received
}

type content struct {
	data        []byte
	contentType string
}

type stats struct {
	requests map[string]map[int]int // endpoint -> status -> count
	webhooks map[int]int            // status (0: no answer) -> count
	faults   map[string]int
}

// New returns an emulator with no channels.
func New(cfg Config) *Emulator {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.ReplyTokenTTL <= 0 {
		cfg.ReplyTokenTTL = time.Minute
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	seed := cfg.Seed
	if seed == 0 {
		seed = mrand.Uint64()
	}
	e := &Emulator{
		cfg: cfg, logger: cfg.Logger, client: cfg.HTTPClient,
		channels: map[string]*channel{}, byToken: map[string]*channel{},
		rnd:   mrand.New(mrand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		stats: stats{requests: map[string]map[int]int{}, webhooks: map[int]int{}, faults: map[string]int{}},
	}
	e.SetFaults(cfg.Faults)
	return e
}

// SetFaults replaces the fault injection settings.
func (e *Emulator) SetFaults(f Faults) {
	if f.SlowDelay <= 0 {
		f.SlowDelay = 2 * time.Second
	}
	e.mu.Lock()
	e.faults = f
	e.mu.Unlock()
}

// AddChannel registers a channel. Its ID and access token must be unique.
func (e *Emulator) AddChannel(c Channel) error {
	if c.ID == "" || c.Secret == "" || c.AccessToken == "" {
		return fmt.Errorf("%w channel: id, secret and access token are required", ErrInvalid)
	}
	if c.BotUserID == "" {
		c.BotUserID = NewUserID()
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if _, ok := e.channels[c.ID]; ok {
		return fmt.Errorf("%w channel: %s exists", ErrInvalid, c.ID)
	}
	if _, ok := e.byToken[c.AccessToken]; ok {
		return fmt.Errorf("%w channel: access token already in use", ErrInvalid)
	}
	ch := &channel{
		Channel: c, users: map[string]*user{},
		retryKeys: map[string]acceptedKey{}, replyTokens: map[string]replyToken{},
		windows: map[string]*window{}, narrowcasts: map[string]*narrowcast{},
		content: map[string]content{}, events: map[string][]byte{},
	}
	e.channels[c.ID] = ch
	e.byToken[c.AccessToken] = ch
	return nil
}

// ReissueAccessToken replaces a channel's access token, as reissuing it in the LINE
// Developers console does: calls with the old token are refused from now on.
func (e *Emulator) ReissueAccessToken(channelID, token string) error {
	if token == "" {
		return fmt.Errorf("%w channel: access token is required", ErrInvalid)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	ch, ok := e.channels[channelID]
	if !ok {
		return ErrUnknownChannel
	}
	if _, ok := e.byToken[token]; ok {
		return fmt.Errorf("%w channel: access token already in use", ErrInvalid)
	}
	delete(e.byToken, ch.AccessToken)
	ch.AccessToken = token
	e.byToken[token] = ch
	return nil
}

// SetWebhookURL changes where a channel's webhooks go.
func (e *Emulator) SetWebhookURL(channelID, url string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	ch, ok := e.channels[channelID]
	if !ok {
		return ErrUnknownChannel
	}
	ch.WebhookURL = url
	return nil
}

// SetStandby puts the channel's webhooks in standby mode (another module holds the chat):
// events then carry mode "standby" and no reply token.
func (e *Emulator) SetStandby(channelID string, standby bool) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	ch, ok := e.channels[channelID]
	if !ok {
		return ErrUnknownChannel
	}
	ch.standby = standby
	return nil
}

// AddUser makes a user known to the channel (not yet following).
func (e *Emulator) AddUser(channelID string, u User) error {
	if !userIDForm.MatchString(u.ID) {
		return fmt.Errorf("%w user ID: want U and 32 lower-case hex digits", ErrInvalid)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	ch, ok := e.channels[channelID]
	if !ok {
		return ErrUnknownChannel
	}
	if _, ok := ch.users[u.ID]; ok {
		return fmt.Errorf("%w user: %s exists", ErrInvalid, u.ID)
	}
	ch.users[u.ID] = &user{User: u, status: StatusNone}
	return nil
}

// AddFollowers creates n users who already follow the channel, without sending
// webhooks: a large audience for broadcast and dispatcher benchmarks.
func (e *Emulator) AddFollowers(channelID string, n int) ([]string, error) {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = NewUserID()
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	ch, ok := e.channels[channelID]
	if !ok {
		return nil, ErrUnknownChannel
	}
	now := e.cfg.Now()
	for i, id := range ids {
		ch.users[id] = &user{User: User{ID: id, DisplayName: fmt.Sprintf("Follower %d", i+1), Language: "ja"},
			status: StatusFollowing, followedAt: now}
		ch.order = append(ch.order, id)
	}
	return ids, nil
}

// UserStatus tells whether the user follows, blocked or never followed the channel.
func (e *Emulator) UserStatus(channelID, userID string) (string, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	u, err := e.userLocked(channelID, userID)
	if err != nil {
		return "", err
	}
	return u.status, nil
}

// Users lists the channel's user IDs in the order they were added.
func (e *Emulator) Users(channelID string) ([]User, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	ch, ok := e.channels[channelID]
	if !ok {
		return nil, ErrUnknownChannel
	}
	out := make([]User, 0, len(ch.users))
	for _, u := range ch.users {
		out = append(out, u.User)
	}
	return out, nil
}

// ReceivedBy returns what the user has received from the channel, oldest first.
func (e *Emulator) ReceivedBy(channelID, userID string) ([]Received, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	u, err := e.userLocked(channelID, userID)
	if err != nil {
		return nil, err
	}
	return append([]Received{}, u.received...), nil
}

// RichMenuOf returns the rich menu linked to the user ("" for none).
func (e *Emulator) RichMenuOf(channelID, userID string) (string, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	u, err := e.userLocked(channelID, userID)
	if err != nil {
		return "", err
	}
	return u.richMenu, nil
}

func (e *Emulator) userLocked(channelID, userID string) (*user, error) {
	ch, ok := e.channels[channelID]
	if !ok {
		return nil, ErrUnknownChannel
	}
	u, ok := ch.users[userID]
	if !ok {
		return nil, ErrUnknownUser
	}
	return u, nil
}

// NewUserID returns a random LINE user ID.
func NewUserID() string { return "U" + randomHex(16) }

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// newUUID returns a random UUID (version 4), the form of LINE's request IDs.
func newUUID() string {
	b := make([]byte, 16)
	rand.Read(b)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	x := hex.EncodeToString(b)
	return x[0:8] + "-" + x[8:12] + "-" + x[12:16] + "-" + x[16:20] + "-" + x[20:32]
}

// newEventID returns an ID in the form of LINE's webhookEventId (a ULID: 26 characters
// of Crockford base32, time first).
func newEventID(now time.Time) string {
	const alphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
	var b [26]byte
	ms := uint64(now.UnixMilli())
	for i := 9; i >= 0; i-- {
		b[i] = alphabet[ms&31]
		ms >>= 5
	}
	r := make([]byte, 16)
	rand.Read(r)
	for i := 10; i < 26; i++ {
		b[i] = alphabet[r[i-10]&31]
	}
	return string(b[:])
}

// newMessageID returns a numeric message ID like LINE's.
func newMessageID() string {
	r := make([]byte, 8)
	rand.Read(r)
	var n uint64
	for _, c := range r {
		n = n<<8 | uint64(c)
	}
	return fmt.Sprintf("%d", 100000000000000000+n%800000000000000000)
}
