package setup

import (
	"fmt"
	"io"
)

// Kinds of entries, named as the file's top-level keys, in the order they are applied.
const (
	KindFields      = "fields"
	KindTags        = "tags"
	KindTemplates   = "templates"
	KindSegments    = "segments"
	KindCoupons     = "coupons"
	KindScenarios   = "scenarios"
	KindAutoReplies = "autoreplies"
)

var kinds = []string{KindFields, KindTags, KindTemplates, KindSegments, KindCoupons, KindScenarios, KindAutoReplies}

// Action is what applying did to one entry.
type Action string

const (
	Created   Action = "created"
	Updated   Action = "updated"
	Unchanged Action = "unchanged"
	Deleted   Action = "deleted" // with Options.Prune only
)

// Change is what happened to one entry.
type Change struct {
	Kind   string
	Key    string // a tag's name for tags
	Action Action
}

// Counts is how many entries of a kind had each action.
type Counts struct{ Created, Updated, Unchanged, Deleted int }

// Summary is what Apply did (or, on a dry run, would do).
type Summary struct {
	Changes []Change // in the order they were made
	DryRun  bool
}

func (s *Summary) note(kind, key string, a Action) {
	s.Changes = append(s.Changes, Change{Kind: kind, Key: key, Action: a})
}

// Count returns the counts of one kind.
func (s Summary) Count(kind string) Counts {
	var c Counts
	for _, ch := range s.Changes {
		if ch.Kind != kind {
			continue
		}
		switch ch.Action {
		case Created:
			c.Created++
		case Updated:
			c.Updated++
		case Unchanged:
			c.Unchanged++
		case Deleted:
			c.Deleted++
		}
	}
	return c
}

// Changed reports whether anything was (or would be) created, updated or deleted.
func (s Summary) Changed() bool {
	for _, ch := range s.Changes {
		if ch.Action != Unchanged {
			return true
		}
	}
	return false
}

// Write prints the entries that change, one a line, then the counts of every kind.
func (s Summary) Write(w io.Writer) error {
	for _, ch := range s.Changes {
		if ch.Action != Unchanged {
			if _, err := fmt.Fprintf(w, "%-9s %s %s\n", ch.Action, ch.Kind, ch.Key); err != nil {
				return err
			}
		}
	}
	for _, k := range kinds {
		c := s.Count(k)
		if _, err := fmt.Fprintf(w, "%-12s %d created, %d updated, %d unchanged, %d deleted\n",
			k+":", c.Created, c.Updated, c.Unchanged, c.Deleted); err != nil {
			return err
		}
	}
	if s.DryRun {
		_, err := fmt.Fprintln(w, "dry run: nothing was changed (変更は保存していません)")
		return err
	}
	return nil
}
