package friend

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/linestep/linestep/internal/clock"
	"github.com/linestep/linestep/internal/line"
	"github.com/linestep/linestep/internal/store"
)

// Profile fetching happens apart from event processing because it calls LINE: the event
// handlers only mark a profile as owed (profile_due_at), and this worker pays the debt,
// retrying with backoff when LINE fails. A follow is therefore recorded even when the
// profile call fails; the profile arrives later.

const (
	profileBatch       = 50
	profileConcurrency = 8
	// profileLease keeps a claimed friend from being claimed again (by this or another
	// instance) while its fetch is in flight; a crash leaves it due again after the lease.
	profileLease       = 2 * time.Minute
	profileMaxAttempts = 20
	// profilePause is the first pause after a round whose every call failed, doubling
	// up to profileMaxPause while rounds keep failing.
	profilePause    = 5 * time.Second
	profileMaxPause = 5 * time.Minute
)

func (s *Service) wakeProfiles() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// RunProfileFetcher fetches owed profiles until ctx is done. When every call of a round
// failed (LINE is down, or the token was revoked), it pauses before the next round, and
// longer after each such round, rather than going on at once with the friends due next:
// each friend waits on its own after a failure, but a thousand owed profiles would
// otherwise mean a thousand failing calls in a row. Follows arriving meanwhile do not cut
// the pause short.
func (s *Service) RunProfileFetcher(ctx context.Context) error {
	failedRounds := 0
	for {
		r, err := s.fetchDueProfiles(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			s.logger.Error("friend: profile fetch round failed", "err", err)
		}
		if r.claimed > 0 && r.failed == r.claimed {
			failedRounds++
			pause := clock.Backoff(failedRounds, profilePause, profileMaxPause)
			s.logger.Warn("friend: every profile call of a round failed; pausing", "calls", r.claimed, "pause", pause)
			if s.clock.Sleep(ctx, pause) != nil {
				return nil
			}
			continue
		}
		failedRounds = 0
		if r.claimed == profileBatch && err == nil {
			continue
		}
		if _, err := clock.Wait(ctx, s.clock, 2*time.Second, s.wake); err != nil {
			return nil
		}
	}
}

type dueProfile struct {
	id        int64
	channelID string
	userID    string
	attempts  int
}

// FetchDueProfiles claims up to a batch of friends whose profile is owed, fetches them and
// records the results. It returns how many it claimed.
func (s *Service) FetchDueProfiles(ctx context.Context) (int, error) {
	r, err := s.fetchDueProfiles(ctx)
	return r.claimed, err
}

// profileRound is what one round of fetching did: friends claimed, and calls that failed
// (a friend who is not one is not a failure).
type profileRound struct{ claimed, failed int }

func (s *Service) fetchDueProfiles(ctx context.Context) (profileRound, error) {
	if s.profiles == nil {
		return profileRound{}, errors.New("friend: no profile source")
	}
	now := s.clock.Now()
	var due []dueProfile
	err := s.db.WriteTx(ctx, func(tx *store.Tx) error {
		due = due[:0]
		q := `SELECT id, channel_id, line_user_id, profile_attempts FROM friends
			WHERE profile_due_at IS NOT NULL AND profile_due_at <= ? ORDER BY profile_due_at LIMIT ?`
		if tx.Dialect() == store.Postgres {
			q += " FOR UPDATE SKIP LOCKED"
		}
		rows, err := tx.QueryContext(ctx, q, store.Millis(now), profileBatch)
		if err != nil {
			return err
		}
		for rows.Next() {
			var d dueProfile
			if err := rows.Scan(&d.id, &d.channelID, &d.userID, &d.attempts); err != nil {
				rows.Close()
				return err
			}
			due = append(due, d)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		for _, d := range due {
			if _, err := tx.ExecContext(ctx, "UPDATE friends SET profile_due_at = ? WHERE id = ?", store.Millis(now.Add(profileLease)), d.id); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return profileRound{}, fmt.Errorf("friend: claim profiles: %w", err)
	}
	var wg sync.WaitGroup
	sem := make(chan struct{}, profileConcurrency)
	errs := make([]error, len(due))
	var failed atomic.Int32
	for i, d := range due {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			var callFailed bool
			if callFailed, errs[i] = s.fetchOne(ctx, d); callFailed {
				failed.Add(1)
			}
		})
	}
	wg.Wait()
	return profileRound{claimed: len(due), failed: int(failed.Load())}, errors.Join(errs...)
}

// fetchOne fetches one friend's profile and records the outcome; callFailed reports that
// LINE's answer was neither a profile nor "not a friend".
func (s *Service) fetchOne(ctx context.Context, d dueProfile) (callFailed bool, err error) {
	p, err := s.profiles.Profile(ctx, d.channelID, d.userID)
	now := s.clock.Now()
	nowMs := store.Millis(now)
	switch {
	case err == nil:
		// A profile answer proves the user is a friend now: an unknown status becomes
		// following. A blocked status stays: only a follow event changes it.
		_, err = s.db.ExecContext(ctx, `UPDATE friends SET display_name = ?, picture_url = ?, language = ?,
				profile_fetched_at = ?, profile_due_at = NULL, profile_attempts = 0,
				status = CASE WHEN status = 'unknown' THEN 'following' ELSE status END, updated_at = ?
			WHERE id = ?`,
			clean(p.DisplayName, 200), clean(p.PictureURL, 2000), clean(p.Language, 35), nowMs, nowMs, d.id)
		if err != nil {
			return false, fmt.Errorf("friend: store profile: %w", err)
		}
		for _, f := range s.profileStored {
			f()
		}
		return false, nil
	case errors.Is(err, line.ErrNotFound):
		// Not a friend (blocked, or never added the account): nothing to fetch.
		_, err = s.db.ExecContext(ctx, "UPDATE friends SET profile_due_at = NULL, profile_attempts = 0 WHERE id = ?", d.id)
		return false, err
	default:
		attempts := d.attempts + 1
		var next any // NULL: give up after too many failures
		if attempts < profileMaxAttempts {
			next = store.Millis(now.Add(clock.Backoff(attempts, 30*time.Second, 6*time.Hour)))
		}
		s.logger.Warn("friend: profile fetch failed", "friend", d.id, "channel", d.channelID, "attempt", attempts, "err", err)
		_, uerr := s.db.ExecContext(ctx, "UPDATE friends SET profile_due_at = ?, profile_attempts = ? WHERE id = ?", next, attempts, d.id)
		return true, uerr
	}
}

// clean bounds a LINE-supplied string: LINE promises limits, but a stored value should not
// depend on that promise.
func clean(s string, max int) string {
	if len(s) <= max {
		return s
	}
	// Cut on a rune boundary.
	for max > 0 && !utf8RuneStart(s[max]) {
		max--
	}
	return s[:max]
}

func utf8RuneStart(b byte) bool { return b&0xC0 != 0x80 }
