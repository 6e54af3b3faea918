package friend

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/linestep/linestep/internal/message"
	"github.com/linestep/linestep/internal/store"
)

// Vars returns what a message template may say about a friend: display_name, and each
// custom field as field.<key>. A value the friend has not given is absent, so the
// template's fallback applies. The values are the friend's own words: message.Render
// keeps them from changing the message's structure.
func (s *Service) Vars(ctx context.Context, q store.Querier, friendID int64) (message.MapVars, error) {
	var name string
	err := q.QueryRowContext(ctx, "SELECT display_name FROM friends WHERE id = ?", friendID).Scan(&name)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("friend %d: %w", friendID, store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("friend: vars: %w", err)
	}
	fields, err := s.FieldValues(ctx, q, friendID)
	if err != nil {
		return nil, err
	}
	vars := make(message.MapVars, len(fields)+1)
	if name != "" {
		vars["display_name"] = name
	}
	for k, v := range fields {
		vars["field."+k] = v
	}
	return vars, nil
}
