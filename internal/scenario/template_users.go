package scenario

import (
	"context"
	"fmt"
	"slices"

	"github.com/linestep/linestep/internal/store"
	"github.com/linestep/linestep/internal/template"
)

// TemplateUsers returns the keys of the channel's scenarios whose steps send the
// template: what template.Delete must refuse to leave without messages.
func (s *Service) TemplateUsers(ctx context.Context, q store.Querier, channelID, key string) ([]string, error) {
	if !template.ValidKey(key) {
		return nil, nil // no step can name it
	}
	// LIKE only narrows the rows to decode (keys hold no quote, so JSON writes them as
	// they are; "_" matching any one character is harmless); the steps decide.
	scs, err := s.query(ctx, q, "WHERE channel_id = ? AND definition LIKE ? ORDER BY key", channelID, `%"template":"`+key+`"%`)
	if err != nil {
		return nil, fmt.Errorf("scenario: template users: %w", err)
	}
	var out []string
	for _, sc := range scs {
		if slices.ContainsFunc(sc.Definition.Steps, func(st Step) bool { return st.Template == key }) {
			out = append(out, sc.Key)
		}
	}
	return out, nil
}
