package autoreply

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"golang.org/x/text/unicode/norm"

	"github.com/linestep/linestep/internal/keyword"
	"github.com/linestep/linestep/internal/store"
)

// compilePattern compiles a regex keyword as matching applies it: NFKC-normalised like
// the text, so a full-width pattern finds what the friend typed in either width, and
// case-insensitive, since the text is folded. RE2 matches in linear time, so no pattern
// can stall the event transaction.
func compilePattern(p string) (*regexp.Regexp, error) {
	return regexp.Compile("(?i)" + norm.NFKC.String(p))
}

// Match returns the rule that answers text sent at now: the enabled rule of highest
// priority (then lowest ID) that matches and whose window is open.
func (s *Service) Match(ctx context.Context, channelID, text string, now time.Time) (Rule, bool, error) {
	return s.match(ctx, s.db, channelID, text, now)
}

// candidate is what matching needs of a rule; the winner is then read in full.
type candidate struct {
	id       int64
	key      string
	kind     string
	keywords []string
	window   *Window
}

func (s *Service) match(ctx context.Context, q store.Querier, channelID, text string, now time.Time) (Rule, bool, error) {
	cands, err := s.candidates(ctx, q, channelID)
	if err != nil {
		return Rule{}, false, err
	}
	if len(cands) == 0 {
		return Rule{}, false, nil
	}
	normText := keyword.Normalize(text)
	var loc *time.Location // read once, and only if a rule has a window
	for _, c := range cands {
		if c.window != nil {
			if loc == nil {
				if loc, err = s.location(ctx, q, channelID); err != nil {
					return Rule{}, false, err
				}
			}
			if !c.window.Open(now.In(loc)) {
				continue
			}
		}
		ok, err := s.matches(c, normText)
		if err != nil {
			// Validated when saved, so only a change of Go's regexp syntax gets here:
			// skip the rule rather than fail every message. The error names the
			// pattern, never the text.
			s.logger.Warn("autoreply: rule skipped", "channel", channelID, "rule", c.key, "err", err)
			continue
		}
		if ok {
			r, err := s.get(ctx, q, "id = ?", c.id)
			if err != nil {
				return Rule{}, false, err
			}
			return r, true, nil
		}
	}
	return Rule{}, false, nil
}

func (s *Service) candidates(ctx context.Context, q store.Querier, channelID string) ([]candidate, error) {
	rows, err := q.QueryContext(ctx, `SELECT id, key, match_kind, keywords, window_days, window_from, window_to
		FROM autoreplies WHERE channel_id = ? AND enabled = 1 ORDER BY priority DESC, id`, channelID)
	if err != nil {
		return nil, fmt.Errorf("autoreply: read rules: %w", err)
	}
	defer rows.Close()
	var out []candidate
	for rows.Next() {
		var c candidate
		var keywords, days, from, to string
		if err := rows.Scan(&c.id, &c.key, &c.kind, &keywords, &days, &from, &to); err != nil {
			return nil, fmt.Errorf("autoreply: read rules: %w", err)
		}
		if err := json.Unmarshal([]byte(keywords), &c.keywords); err != nil {
			return nil, fmt.Errorf("autoreply: rule %s: keywords: %w", c.key, err)
		}
		c.window = windowOf(days, from, to)
		out = append(out, c)
	}
	return out, rows.Err()
}

// matches reports whether any keyword of c matches text, which is already normalised.
func (s *Service) matches(c candidate, text string) (bool, error) {
	for _, k := range c.keywords {
		switch c.kind {
		case MatchExact:
			if text == keyword.Normalize(k) {
				return true, nil
			}
		case MatchContains:
			if n := keyword.Normalize(k); n != "" && strings.Contains(text, n) {
				return true, nil
			}
		case MatchRegex:
			re, err := s.patterns.get(k)
			if err != nil {
				return false, err
			}
			if re.MatchString(text) {
				return true, nil
			}
		default:
			return false, fmt.Errorf("unknown match kind %q", c.kind)
		}
	}
	return false, nil
}

// location returns the channel's time zone; Japan when the channel or its zone is
// unknown, as the column's default says.
func (s *Service) location(ctx context.Context, q store.Querier, channelID string) (*time.Location, error) {
	var tz string
	err := q.QueryRowContext(ctx, "SELECT time_zone FROM channels WHERE id = ?", channelID).Scan(&tz)
	if errors.Is(err, sql.ErrNoRows) || tz == "" {
		tz = "Asia/Tokyo"
	} else if err != nil {
		return nil, fmt.Errorf("autoreply: channel time zone: %w", err)
	}
	if loc, ok := s.locations.Load(tz); ok {
		return loc.(*time.Location), nil
	}
	// LoadLocation reads the zone database on every call: keep what it found.
	loc, err := time.LoadLocation(tz)
	if err != nil {
		loc = tokyo
	}
	s.locations.Store(tz, loc)
	return loc, nil
}

var tokyo = func() *time.Location {
	loc, err := time.LoadLocation("Asia/Tokyo")
	if err != nil {
		return time.FixedZone("JST", 9*60*60) // no zone database on this system
	}
	return loc
}()

var weekdays = map[string]time.Weekday{
	"sun": time.Sunday, "mon": time.Monday, "tue": time.Tuesday, "wed": time.Wednesday,
	"thu": time.Thursday, "fri": time.Friday, "sat": time.Saturday,
}

// Open reports whether the window is open at t, which must be in the channel's time
// zone. A window that does not parse (Validate refuses it) is never open.
func (w Window) Open(t time.Time) bool {
	from, ok1 := parseClock(w.From)
	to, ok2 := parseClock(w.To)
	if !ok1 || !ok2 || from == to {
		return false
	}
	now := t.Hour()*60 + t.Minute()
	day := t.Weekday()
	switch {
	case from < to:
		return from <= now && now < to && w.onDay(day)
	case now >= from:
		return w.onDay(day)
	case now < to:
		return w.onDay((day + 6) % 7) // after midnight: the window began the day before
	}
	return false
}

func (w Window) onDay(d time.Weekday) bool {
	if len(w.Days) == 0 {
		return true
	}
	for _, s := range w.Days {
		if wd, ok := weekdays[s]; ok && wd == d {
			return true
		}
	}
	return false
}

// parseClock reads HH:MM (00:00 to 23:59) as minutes after midnight.
func parseClock(s string) (int, bool) {
	if len(s) != 5 || s[2] != ':' {
		return 0, false
	}
	digit := func(b byte) (int, bool) { return int(b - '0'), b >= '0' && b <= '9' }
	h1, a := digit(s[0])
	h2, b := digit(s[1])
	m1, c := digit(s[3])
	m2, d := digit(s[4])
	h, m := h1*10+h2, m1*10+m2
	if !a || !b || !c || !d || h > 23 || m > 59 {
		return 0, false
	}
	return h*60 + m, true
}
