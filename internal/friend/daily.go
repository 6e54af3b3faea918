package friend

import (
	"context"
	"fmt"
	"time"

	"github.com/linestep/linestep/internal/store"
)

// Day is one calendar day of a channel's follows and blocks.
type Day struct {
	Date    time.Time // midnight of the day, in the zone asked for
	Follows int       // follow events (a re-follow after a block counts again)
	Blocks  int       // unfollow events
}

// slot is the grain the database groups by: a quarter hour fits every time zone in use
// (+05:45 included), so the days can be cut in Go in any zone, across its DST changes.
const slot = 15 * 60 * 1000 // 900000, as written in the query

// Daily counts a channel's follow and unfollow events per day for the days days ending
// with the day of now, in loc, oldest first. It reads the webhook event log, which keeps
// an event's ID and type for its retention period (30 days by default): older days read
// as zero.
func Daily(ctx context.Context, q store.Querier, channelID string, loc *time.Location, now time.Time, days int) ([]Day, error) {
	if days <= 0 {
		return nil, nil
	}
	y, m, d := now.In(loc).Date()
	out := make([]Day, days)
	for i := range out {
		out[i].Date = time.Date(y, m, d-days+1+i, 0, 0, 0, 0, loc)
	}
	from := out[0].Date
	// The grain is written into the statement: PostgreSQL takes "occurred_at / $1" and
	// "occurred_at / $4" for different expressions and would refuse the GROUP BY.
	rows, err := q.QueryContext(ctx, `SELECT type, occurred_at / 900000, COUNT(*) FROM webhook_events
		WHERE channel_id = ? AND type IN ('follow', 'unfollow') AND occurred_at >= ?
		GROUP BY type, occurred_at / 900000`, channelID, store.Millis(from))
	if err != nil {
		return nil, fmt.Errorf("friend: daily: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var typ string
		var s int64
		var n int
		if err := rows.Scan(&typ, &s, &n); err != nil {
			return nil, fmt.Errorf("friend: daily: %w", err)
		}
		at := store.Time(s * slot).In(loc)
		ay, am, ad := at.Date()
		i := int(time.Date(ay, am, ad, 12, 0, 0, 0, time.UTC).Sub(time.Date(from.Year(), from.Month(), from.Day(), 12, 0, 0, 0, time.UTC)).Hours() / 24)
		if i < 0 || i >= days {
			continue // after now: a clock ahead of ours
		}
		if typ == "follow" {
			out[i].Follows += n
		} else {
			out[i].Blocks += n
		}
	}
	return out, rows.Err()
}
