package friend

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/linestep/linestep/internal/message"
	"github.com/linestep/linestep/internal/store"
)

// Vars returns what a message template may say about a friend: display_name, and each
// custom field as field.<key>. A value the friend has not given is absent, so the
// template's fallback applies. The values are the friend's own words: message.Render
// keeps them from changing the message's structure.
func (s *Service) Vars(ctx context.Context, q store.Querier, friendID int64) (message.MapVars, error) {
	all, err := s.VarsOf(ctx, q, []int64{friendID})
	if err != nil {
		return nil, err
	}
	vars, ok := all[friendID]
	if !ok {
		return nil, fmt.Errorf("friend %d: %w", friendID, store.ErrNotFound)
	}
	return vars, nil
}

// VarsOf is Vars for many friends at once, two statements per 500 of them: rendering a
// page of a personalised broadcast one friend at a time was most of its time. Friends
// that do not exist are absent from the map.
func (s *Service) VarsOf(ctx context.Context, q store.Querier, ids []int64) (map[int64]message.MapVars, error) {
	out := make(map[int64]message.MapVars, len(ids))
	err := inChunks(ids, func(in string, args []any) error {
		err := eachRow(ctx, q, "SELECT id, display_name FROM friends WHERE id IN "+in, args, func(rows *sql.Rows) error {
			var id int64
			var name string
			if err := rows.Scan(&id, &name); err != nil {
				return err
			}
			out[id] = message.MapVars{}
			if name != "" {
				out[id]["display_name"] = name
			}
			return nil
		})
		if err != nil {
			return err
		}
		values := map[int64]map[string]string{}
		if err := fieldValuesOf(ctx, q, in, args, values); err != nil {
			return err
		}
		for id, vals := range values {
			if vars, ok := out[id]; ok {
				for k, v := range vals {
					vars["field."+k] = v
				}
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("friend: vars: %w", err)
	}
	return out, nil
}
