// Package clock gives every part of linestep one source of time, so that tests can move
// time forward instead of waiting: a three-day scenario runs in milliseconds.
package clock

import (
	"context"
	"sort"
	"sync"
	"time"
)

// Clock tells the time and waits. Production code never calls time.Now or time.Sleep
// directly; it asks a Clock.
type Clock interface {
	Now() time.Time
	// Sleep waits for d or until ctx is done, whichever comes first, and returns ctx.Err()
	// in the second case.
	Sleep(ctx context.Context, d time.Duration) error
}

// Real is the wall clock.
var Real Clock = realClock{}

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

func (realClock) Sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Fake is a clock that only moves when told to. Sleepers wake when Advance or Set moves
// the time past their deadline.
type Fake struct {
	mu       sync.Mutex
	now      time.Time
	sleepers []sleeper
}

type sleeper struct {
	until time.Time
	wake  chan struct{}
}

// NewFake returns a fake clock set to start.
func NewFake(start time.Time) *Fake { return &Fake{now: start} }

func (f *Fake) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

func (f *Fake) Sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	f.mu.Lock()
	s := sleeper{until: f.now.Add(d), wake: make(chan struct{})}
	f.sleepers = append(f.sleepers, s)
	f.mu.Unlock()
	select {
	case <-s.wake:
		return nil
	case <-ctx.Done():
		f.forget(s.wake)
		return ctx.Err()
	}
}

func (f *Fake) forget(wake chan struct{}) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, s := range f.sleepers {
		if s.wake == wake {
			f.sleepers = append(f.sleepers[:i], f.sleepers[i+1:]...)
			return
		}
	}
}

// Advance moves the clock forward by d and wakes every sleeper whose deadline has passed.
func (f *Fake) Advance(d time.Duration) { f.Set(f.Now().Add(d)) }

// Set moves the clock to t (never backwards) and wakes every sleeper whose deadline has passed.
func (f *Fake) Set(t time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if t.Before(f.now) {
		return
	}
	f.now = t
	sort.Slice(f.sleepers, func(i, j int) bool { return f.sleepers[i].until.Before(f.sleepers[j].until) })
	kept := f.sleepers[:0]
	for _, s := range f.sleepers {
		if !s.until.After(t) {
			close(s.wake)
			continue
		}
		kept = append(kept, s)
	}
	f.sleepers = kept
}

// Sleepers reports how many goroutines are waiting on the clock; tests use it to know that
// a worker has reached its wait before they advance time.
func (f *Fake) Sleepers() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.sleepers)
}

// Wait sleeps on clk for d, or until wake receives, or until ctx is done. It reports
// whether wake cut the wait short. Workers use it to poll on a timer while staying
// responsive to a nudge from whoever just wrote new work.
func Wait(ctx context.Context, clk Clock, d time.Duration, wake <-chan struct{}) (woken bool, err error) {
	select {
	case <-wake:
		return true, nil
	default:
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan struct{})
	go func() {
		defer close(done)
		select {
		case <-wake:
			woken = true
			cancel()
		case <-wctx.Done():
		}
	}()
	err = clk.Sleep(wctx, d)
	cancel()
	<-done
	if woken {
		return true, nil
	}
	return false, ctx.Err()
}

// Every runs round at once, then every interval on clk, until ctx is done: the
// retention jobs' hourly rounds. A round reports its own failures.
func Every(ctx context.Context, clk Clock, interval time.Duration, round func(context.Context)) {
	for {
		round(ctx)
		if clk.Sleep(ctx, interval) != nil {
			return
		}
	}
}

// Backoff is how long to wait before retry number attempt (1 for the first retry):
// first, doubled with each attempt, at most limit. Every worker that retries a failed
// call or event uses it, each with its own bounds.
func Backoff(attempt int, first, limit time.Duration) time.Duration {
	d := first
	for i := 1; i < attempt && d < limit; i++ {
		d *= 2
	}
	return min(d, limit)
}
