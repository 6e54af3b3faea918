package scenario

import (
	"context"
	"fmt"
)

// Census counts a scenario's friends by the state of their run.
type Census struct {
	Active, Completed, Stopped int
}

// Censuses returns the census of each scenario of a channel that has friends, by key.
func (s *Service) Censuses(ctx context.Context, channelID string) (map[string]Census, error) {
	// Through the channel's scenarios and the (scenario_id, friend_id) key: an index
	// holding the state would be rewritten by every run that ends (migration 0017).
	rows, err := s.db.QueryContext(ctx, `SELECT s.key, e.state, COUNT(*) FROM scenarios s JOIN enrollments e ON e.scenario_id = s.id
		WHERE s.channel_id = ? GROUP BY s.key, e.state`, channelID)
	if err != nil {
		return nil, fmt.Errorf("scenario: census: %w", err)
	}
	defer rows.Close()
	out := map[string]Census{}
	for rows.Next() {
		var key, state string
		var n int
		if err := rows.Scan(&key, &state, &n); err != nil {
			return nil, fmt.Errorf("scenario: census: %w", err)
		}
		c := out[key]
		switch state {
		case Active:
			c.Active += n
		case Completed:
			c.Completed += n
		case Stopped:
			c.Stopped += n
		}
		out[key] = c
	}
	return out, rows.Err()
}

// Waiting counts the friends of a scenario whose run waits for each step, by step key.
func (s *Service) Waiting(ctx context.Context, scenarioID int64) (map[string]int, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT next_step, COUNT(*) FROM enrollments WHERE scenario_id = ? AND state = ?
		GROUP BY next_step`, scenarioID, Active)
	if err != nil {
		return nil, fmt.Errorf("scenario: waiting: %w", err)
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var key string
		var n int
		if err := rows.Scan(&key, &n); err != nil {
			return nil, fmt.Errorf("scenario: waiting: %w", err)
		}
		out[key] += n
	}
	return out, rows.Err()
}
