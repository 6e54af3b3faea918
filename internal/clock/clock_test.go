package clock_test

import (
	"context"
	"testing"
	"time"

	"github.com/linestep/linestep/internal/clock"
)

func TestFakeSleepWakesOnAdvance(t *testing.T) {
	t.Parallel()
	f := clock.NewFake(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	done := make(chan error, 1)
	go func() { done <- f.Sleep(context.Background(), time.Hour) }()
	for f.Sleepers() == 0 {
		time.Sleep(time.Millisecond)
	}
	f.Advance(59 * time.Minute)
	select {
	case <-done:
		t.Fatal("woke before its deadline")
	case <-time.After(20 * time.Millisecond):
	}
	f.Advance(time.Minute)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if f.Sleepers() != 0 {
		t.Fatal("sleeper not removed")
	}
}

func TestFakeSleepCancel(t *testing.T) {
	t.Parallel()
	f := clock.NewFake(time.Now())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.Sleep(ctx, time.Hour) }()
	for f.Sleepers() == 0 {
		time.Sleep(time.Millisecond)
	}
	cancel()
	if err := <-done; err != context.Canceled {
		t.Fatalf("Sleep = %v, want Canceled", err)
	}
	if f.Sleepers() != 0 {
		t.Fatal("cancelled sleeper still counted")
	}
}

func TestWait(t *testing.T) {
	t.Parallel()
	f := clock.NewFake(time.Now())
	wake := make(chan struct{}, 1)
	wake <- struct{}{}
	if woken, err := clock.Wait(context.Background(), f, time.Hour, wake); !woken || err != nil {
		t.Fatalf("pending wake: %v %v", woken, err)
	}
	res := make(chan bool, 1)
	go func() {
		woken, _ := clock.Wait(context.Background(), f, time.Hour, wake)
		res <- woken
	}()
	for f.Sleepers() == 0 {
		time.Sleep(time.Millisecond)
	}
	f.Advance(time.Hour)
	if <-res {
		t.Fatal("timer expiry reported as a wake")
	}
	go func() {
		woken, _ := clock.Wait(context.Background(), f, time.Hour, wake)
		res <- woken
	}()
	for f.Sleepers() == 0 {
		time.Sleep(time.Millisecond)
	}
	wake <- struct{}{}
	if !<-res {
		t.Fatal("wake not reported")
	}
}

func TestBackoff(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		attempt      int
		first, limit time.Duration
		want         time.Duration
	}{
		{1, time.Second, 5 * time.Minute, time.Second},
		{2, time.Second, 5 * time.Minute, 2 * time.Second},
		{9, time.Second, 5 * time.Minute, 256 * time.Second},
		{10, time.Second, 5 * time.Minute, 5 * time.Minute},
		{1000, time.Second, 5 * time.Minute, 5 * time.Minute}, // no overflow however many
		{11, 30 * time.Second, 6 * time.Hour, 6 * time.Hour},
		{10, 30 * time.Second, 6 * time.Hour, 30 * 512 * time.Second},
		{10, time.Second, 512 * time.Second, 512 * time.Second},
	} {
		if got := clock.Backoff(c.attempt, c.first, c.limit); got != c.want {
			t.Errorf("clock.Backoff(%d, %v, %v) = %v, want %v", c.attempt, c.first, c.limit, got, c.want)
		}
	}
}

// Every runs a round at once and one more each interval, and returns when ctx is done.
func TestEvery(t *testing.T) {
	t.Parallel()
	f := clock.NewFake(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	ctx, cancel := context.WithCancel(context.Background())
	rounds := make(chan time.Time, 10)
	done := make(chan struct{})
	go func() {
		clock.Every(ctx, f, time.Hour, func(context.Context) { rounds <- f.Now() })
		close(done)
	}()
	start := f.Now()
	if got := <-rounds; !got.Equal(start) {
		t.Fatalf("first round at %v, want at once", got)
	}
	for want := 1; want <= 2; want++ {
		for f.Sleepers() == 0 {
			time.Sleep(time.Millisecond)
		}
		f.Advance(time.Hour)
		if got := <-rounds; !got.Equal(start.Add(time.Duration(want) * time.Hour)) {
			t.Fatalf("round %d at %v", want+1, got)
		}
	}
	cancel()
	<-done
	if len(rounds) != 0 {
		t.Fatalf("%d rounds after cancel", len(rounds))
	}
}
