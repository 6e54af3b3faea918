package emulator

import "time"

// retryKeyTTL is how long LINE remembers an accepted X-Line-Retry-Key.
const retryKeyTTL = 24 * time.Hour

type acceptedKey struct {
	requestID string
	at        time.Time
}

type replyToken struct {
	userID  string
	expires time.Time
}

type narrowcast struct {
	accepted  time.Time
	completed time.Time
	target    int
	success   int
}

// window is a sliding-window rate limiter: it remembers the times of the last Requests
// accepted calls and admits a new one only if the oldest is more than Per ago. Unlike a
// token bucket it never lets a burst exceed the published limit in any window, which is
// how a client that is merely "about right" gets caught.
type window struct {
	limit Limit
	times []time.Time // ring buffer
	next  int
	full  bool
}

func newWindow(l Limit) *window {
	return &window{limit: l, times: make([]time.Time, l.Requests)}
}

// allow records a call at now and reports whether it is within the limit; a refused call
// is not recorded. retryAfter is when the next call would be admitted.
func (w *window) allow(now time.Time) (ok bool, retryAfter time.Duration) {
	if w.limit.Requests <= 0 {
		return true, 0
	}
	if w.full {
		oldest := w.times[w.next]
		if d := oldest.Add(w.limit.Per).Sub(now); d > 0 {
			return false, d
		}
	}
	w.times[w.next] = now
	w.next = (w.next + 1) % len(w.times)
	if w.next == 0 {
		w.full = true
	}
	return true, 0
}

// limitFor returns the channel's window for an endpoint, or nil when limits are off.
func (e *Emulator) limitFor(ch *channel, endpoint string) *window {
	if e.cfg.NoRateLimit {
		return nil
	}
	w, ok := ch.windows[endpoint]
	if !ok {
		l, ok := e.cfg.Limits[endpoint]
		if !ok {
			l = DefaultLimits[endpoint]
		}
		w = newWindow(l)
		ch.windows[endpoint] = w
	}
	return w
}

// forgetExpired drops retry keys and reply tokens past their lifetime, so long runs do
// not grow without bound. Called with e.mu held, on every API call; it walks the maps at
// most once a minute (walking 20,000 retry keys on every call made the emulator, not
// the client, the bottleneck of a 20,000-push benchmark). A key is still refused for
// exactly its 24 hours: a lookup checks the key's age, not only its presence.
func (ch *channel) forgetExpired(now time.Time) {
	if now.Sub(ch.lastSweep) < time.Minute && !now.Before(ch.lastSweep) {
		return
	}
	ch.lastSweep = now
	if len(ch.retryKeys) > 10000 {
		for k, a := range ch.retryKeys {
			if now.Sub(a.at) > retryKeyTTL {
				delete(ch.retryKeys, k)
			}
		}
	}
	if len(ch.replyTokens) > 10000 {
		for k, t := range ch.replyTokens {
			if now.After(t.expires) {
				delete(ch.replyTokens, k)
			}
		}
	}
}
