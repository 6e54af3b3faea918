package friend

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"unicode"

	"golang.org/x/text/unicode/norm"

	"github.com/linestep/linestep/internal/store"
)

// SearchFilter narrows Search and Count; every condition set must hold. Its zero value
// selects every friend of the channel, newest first.
//
// Who may use which condition is the caller's business (the console lets staff without
// friends:read_pii use Exact and attribute fields only): the filter itself only says what
// to match.
type SearchFilter struct {
	Status Status  // empty: any
	TagIDs []int64 // friends carrying every one of these tags
	Fields []FieldMatch
	// Exact finds a friend by a value someone already knows — a phone number, an email
	// address, a LINE user ID: one of the friend's text field values (or the user ID)
	// equals it once both are passed through NormalizeExact. It finds nobody on a partial
	// value, so it tells nothing about friends whose value the searcher did not know.
	Exact string
	// Partial matches a part of the display name or of any field value (ASCII case
	// ignored, and also after NormalizeExact, so 09012345678 finds 090-1234-5678).
	Partial string
	After   int64 // keyset paging: friends with a smaller ID (0: from the newest)
	// MaxID bounds the IDs (0: no bound): an export fixes it when it starts, so that the
	// rows it writes are the ones it counted.
	MaxID int64
	Limit int // Search: default 50, at most 500
}

// FieldMatch selects friends whose value of a field is Value: compared after
// NormalizeExact for text fields, and in the field's canonical form (CheckValue) for
// numbers, dates and choices.
type FieldMatch struct {
	Field Field
	Value string
}

// NormalizeExact is the form in which Exact and text FieldMatch values are compared:
// NFKC (full-width digits and letters become half-width), lower case, and without the
// spaces, hyphens, dashes, long-vowel marks and brackets people write inside phone
// numbers in many ways ("090-1234-5678", "０９０ １２３４ ５６７８", "(090)1234-5678").
func NormalizeExact(v string) string {
	v = strings.ToLower(norm.NFKC.String(v))
	return strings.Map(func(r rune) rune {
		if unicode.IsSpace(r) || strings.ContainsRune(exactDropped, r) {
			return -1
		}
		return r
	}, v)
}

// exactDropped are the characters NormalizeExact removes, besides spaces. After NFKC
// the full-width hyphen and brackets are these ASCII ones.
const exactDropped = "-‐‑‒–—―−ーｰ()"

// normalizedSQL is the SQL twin of NormalizeExact for a stored value: the same
// characters removed, full-width digits and symbols made half-width, lower case. It
// covers what people type into phone and email fields; the rarer folds of NFKC
// (full-width letters, enclosed characters) are not mirrored.
func normalizedSQL(col string) string {
	expr := col
	for _, r := range " \t\u3000" + exactDropped + "－（）" {
		expr = fmt.Sprintf("REPLACE(%s, '%c', '')", expr, r)
	}
	for i := range 10 {
		expr = fmt.Sprintf("REPLACE(%s, '%c', '%c')", expr, '０'+rune(i), '0'+rune(i))
	}
	for _, p := range [][2]rune{{'＠', '@'}, {'＋', '+'}, {'．', '.'}, {'＿', '_'}} {
		expr = fmt.Sprintf("REPLACE(%s, '%c', '%c')", expr, p[0], p[1])
	}
	return "LOWER(" + expr + ")"
}

var (
	normalizedValue = normalizedSQL("ff.value")
	normalizedUser  = "LOWER(f.line_user_id)"
)

// where renders the filter as conditions on friends f. key gives a value's exact-search
// hash; nil while not every value has one (see exactKeys): exact matches then
// normalise the stored values in SQL, a scan of the channel's.
func (fl SearchFilter) where(channelID string, key func(channelID, value string) string) (string, []any, error) {
	q := " WHERE f.channel_id = ?"
	args := []any{channelID}
	if fl.Status != "" {
		q += " AND f.status = ?"
		args = append(args, string(fl.Status))
	}
	for _, id := range fl.TagIDs {
		q += " AND EXISTS (SELECT 1 FROM friend_tags ft WHERE ft.friend_id = f.id AND ft.tag_id = ?)"
		args = append(args, id)
	}
	for _, m := range fl.Fields {
		if m.Field.Type == TextField && key != nil {
			q += " AND f.id IN (SELECT ff.friend_id FROM friend_fields ff WHERE ff.exact_key = ? AND ff.field_id = ?)"
			args = append(args, key(channelID, m.Value), m.Field.ID)
			continue
		}
		if m.Field.Type == TextField {
			q += " AND EXISTS (SELECT 1 FROM friend_fields ff WHERE ff.friend_id = f.id AND ff.field_id = ? AND " + normalizedValue + " = ?)"
			args = append(args, m.Field.ID, NormalizeExact(m.Value))
			continue
		}
		v, err := m.Field.CheckValue(m.Value)
		if err != nil {
			return "", nil, err
		}
		q += " AND EXISTS (SELECT 1 FROM friend_fields ff WHERE ff.friend_id = f.id AND ff.field_id = ? AND ff.value = ?)"
		args = append(args, m.Field.ID, v)
	}
	if fl.Exact != "" {
		v := NormalizeExact(fl.Exact)
		if v == "" {
			return "", nil, fmt.Errorf("%w: an exact search needs a value", ErrInvalid)
		}
		if key == nil {
			q += ` AND (` + normalizedUser + ` = ? OR EXISTS (SELECT 1 FROM friend_fields ff JOIN fields fl ON fl.id = ff.field_id
				WHERE ff.friend_id = f.id AND fl.type = 'text' AND ` + normalizedValue + ` = ?))`
			args = append(args, v, v)
		} else {
			// Both found by index: the user ID by its key, values by their hashes.
			user := v
			if rest, ok := strings.CutPrefix(v, "u"); ok {
				user = "U" + rest // LINE user IDs are U and lower-case hex
			}
			q += ` AND f.id IN (SELECT u.id FROM friends u WHERE u.channel_id = ? AND u.line_user_id = ?
				UNION ALL SELECT ff.friend_id FROM friend_fields ff JOIN fields fl ON fl.id = ff.field_id
				WHERE ff.exact_key = ? AND fl.type = 'text')`
			args = append(args, channelID, user, key(channelID, v))
		}
	}
	if p := strings.TrimSpace(fl.Partial); p != "" {
		like := "%" + store.EscapeLike(strings.ToLower(p)) + "%"
		normLike := like
		if n := NormalizeExact(p); n != "" {
			normLike = "%" + store.EscapeLike(n) + "%"
		}
		norm := normalizedValue
		if key != nil {
			norm = "ff.norm_value" // every value has it: no normalising in SQL
		}
		q += ` AND (LOWER(f.display_name) LIKE ? ESCAPE '\' OR EXISTS (SELECT 1 FROM friend_fields ff WHERE ff.friend_id = f.id
			AND (LOWER(ff.value) LIKE ? ESCAPE '\' OR ` + norm + ` LIKE ? ESCAPE '\')))`
		args = append(args, like, like, normLike)
	}
	if fl.After > 0 {
		q += " AND f.id < ?"
		args = append(args, fl.After)
	}
	if fl.MaxID > 0 {
		q += " AND f.id <= ?"
		args = append(args, fl.MaxID)
	}
	return q, args, nil
}

// where renders fl for the channel, through the exact-search index once every value has
// its key.
func (s *Service) where(ctx context.Context, channelID string, fl SearchFilter) (string, []any, error) {
	key, err := s.exactKeys(ctx)
	if err != nil {
		return "", nil, err
	}
	return fl.where(channelID, key)
}

// Search returns the friends of a channel that match the filter, newest first, a page at
// a time (pass the last ID as After for the next).
func (s *Service) Search(ctx context.Context, channelID string, fl SearchFilter) ([]Friend, error) {
	where, args, err := s.where(ctx, channelID, fl)
	if err != nil {
		return nil, err
	}
	limit := fl.Limit
	if limit <= 0 {
		limit = 50
	}
	args = append(args, min(limit, 500))
	rows, err := s.db.QueryContext(ctx, "SELECT "+prefixed("f", friendColumns)+" FROM friends f"+where+" ORDER BY f.id DESC LIMIT ?", args...)
	if err != nil {
		return nil, fmt.Errorf("friend: search: %w", err)
	}
	defer rows.Close()
	var out []Friend
	for rows.Next() {
		fr, err := scanFriend(rows)
		if err != nil {
			return nil, fmt.Errorf("friend: search: %w", err)
		}
		out = append(out, fr)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("friend: search: %w", err)
	}
	return out, nil
}

// Count counts the friends that match the filter (After and Limit ignored), and returns
// the highest matching ID, for an export to fix with MaxID.
func (s *Service) Count(ctx context.Context, channelID string, fl SearchFilter) (n int, maxID int64, err error) {
	fl.After = 0
	where, args, err := s.where(ctx, channelID, fl)
	if err != nil {
		return 0, 0, err
	}
	err = s.db.QueryRowContext(ctx, "SELECT COUNT(*), COALESCE(MAX(f.id), 0) FROM friends f"+where, args...).Scan(&n, &maxID)
	if err != nil {
		return 0, 0, fmt.Errorf("friend: count: %w", err)
	}
	return n, maxID, nil
}

func prefixed(alias, columns string) string {
	parts := strings.Split(columns, ",")
	for i, p := range parts {
		parts[i] = alias + "." + strings.TrimSpace(p)
	}
	return strings.Join(parts, ", ")
}

// Lookup is Get inside a transaction (or on any querier): a reveal reads the value it
// shows in the transaction that records the reveal.
func (s *Service) Lookup(ctx context.Context, q store.Querier, channelID string, id int64) (Friend, error) {
	f, err := scanFriend(q.QueryRowContext(ctx, "SELECT "+friendColumns+" FROM friends WHERE channel_id = ? AND id = ?", channelID, id))
	if errors.Is(err, sql.ErrNoRows) {
		return Friend{}, fmt.Errorf("friend %d: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return Friend{}, fmt.Errorf("friend: get: %w", err)
	}
	return f, nil
}

// ValuesOf returns the field values (by field key) and the tag names of many friends at
// once, for a list or an export page.
func (s *Service) ValuesOf(ctx context.Context, q store.Querier, friendIDs []int64) (values map[int64]map[string]string, tags map[int64][]string, err error) {
	values, tags = map[int64]map[string]string{}, map[int64][]string{}
	err = inChunks(friendIDs, func(in string, args []any) error {
		if err := fieldValuesOf(ctx, q, in, args, values); err != nil {
			return fmt.Errorf("friend: values: %w", err)
		}
		err := eachRow(ctx, q, `SELECT ft.friend_id, t.name FROM friend_tags ft JOIN tags t ON t.id = ft.tag_id
			WHERE ft.friend_id IN `+in+` ORDER BY t.name`, args, func(rows *sql.Rows) error {
			var id int64
			var name string
			if err := rows.Scan(&id, &name); err != nil {
				return err
			}
			tags[id] = append(tags[id], name)
			return nil
		})
		if err != nil {
			return fmt.Errorf("friend: tags of friends: %w", err)
		}
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	return values, tags, nil
}

// inChunks calls fn for the friend IDs 500 at a time (well under both databases'
// bound-parameter limits), with their placeholders "(?, ...)" and the IDs as arguments.
func inChunks(ids []int64, fn func(in string, args []any) error) error {
	for len(ids) > 0 {
		chunk := ids[:min(len(ids), 500)]
		ids = ids[len(chunk):]
		args := make([]any, len(chunk))
		for i, id := range chunk {
			args[i] = id
		}
		if err := fn(store.Placeholders(1, len(chunk)), args); err != nil {
			return err
		}
	}
	return nil
}

// fieldValuesOf adds to values the field values (by field key) of the friends whose IDs
// are args, in is their placeholders (see inChunks).
func fieldValuesOf(ctx context.Context, q store.Querier, in string, args []any, values map[int64]map[string]string) error {
	return eachRow(ctx, q, `SELECT ff.friend_id, fl.key, ff.value FROM friend_fields ff JOIN fields fl ON fl.id = ff.field_id
		WHERE ff.friend_id IN `+in, args, func(rows *sql.Rows) error {
		var id int64
		var k, v string
		if err := rows.Scan(&id, &k, &v); err != nil {
			return err
		}
		if values[id] == nil {
			values[id] = map[string]string{}
		}
		values[id][k] = v
		return nil
	})
}

func eachRow(ctx context.Context, q store.Querier, query string, args []any, fn func(*sql.Rows) error) error {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		if err := fn(rows); err != nil {
			return err
		}
	}
	return rows.Err()
}
