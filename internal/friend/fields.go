package friend

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/linestep/linestep/internal/store"
)

// FieldType is the kind of value a custom field holds.
type FieldType string

const (
	TextField   FieldType = "text"
	NumberField FieldType = "number"
	DateField   FieldType = "date" // YYYY-MM-DD
	ChoiceField FieldType = "choice"
)

// Sensitivity says how carefully a field must be handled. Special care-required data
// (要配慮個人情報: health, medical history, ...) needs the friend's consent under APPI.
type Sensitivity string

const (
	// Attribute is not personal on its own (a plan, an area, a membership level): staff
	// see it unmasked, and segments use it freely.
	Attribute Sensitivity = "attribute"
	// Normal personal data (a phone number, a birthday): masked for staff who may not
	// read personal data.
	Normal  Sensitivity = "normal"
	Special Sensitivity = "special"
)

// Personal reports whether values of a field with this sensitivity are personal data.
func (s Sensitivity) Personal() bool { return s != Attribute }

// Field is a custom field definition. Purpose, sensitivity and retention are part of the
// definition from the start: nothing is collected without saying why and for how long.
type Field struct {
	ID            int64
	ChannelID     string
	Key           string // used in templates and files: [a-z][a-z0-9_]*
	Label         string
	Type          FieldType
	Choices       []string
	Purpose       string
	Sensitivity   Sensitivity
	RetentionDays int // 0: kept while the friend is
	CreatedAt     time.Time
}

var fieldKey = regexp.MustCompile(`^[a-z][a-z0-9_]{0,62}$`)

func (f Field) validate() error {
	if !fieldKey.MatchString(f.Key) {
		return fmt.Errorf("%w: field key %q must be lower-case letters, digits and _, starting with a letter", ErrInvalid, f.Key)
	}
	if _, err := checkName("field label", f.Label, 100); err != nil {
		return err
	}
	switch f.Type {
	case TextField, NumberField, DateField:
		if len(f.Choices) > 0 {
			return fmt.Errorf("%w: only choice fields have choices", ErrInvalid)
		}
	case ChoiceField:
		if len(f.Choices) == 0 || len(f.Choices) > 100 {
			return fmt.Errorf("%w: a choice field needs 1 to 100 choices", ErrInvalid)
		}
	default:
		return fmt.Errorf("%w: field type %q is not one of text, number, date, choice", ErrInvalid, f.Type)
	}
	switch f.Sensitivity {
	case Attribute, Normal, Special:
	default:
		return fmt.Errorf("%w: sensitivity %q is not attribute, normal or special", ErrInvalid, f.Sensitivity)
	}
	if strings.TrimSpace(f.Purpose) == "" {
		return fmt.Errorf("%w: field %q needs a purpose: why it is collected", ErrInvalid, f.Key)
	}
	if f.RetentionDays < 0 {
		return fmt.Errorf("%w: retention cannot be negative", ErrInvalid)
	}
	return nil
}

// DefineField creates a custom field, or updates the definition of an existing key.
func (s *Service) DefineField(ctx context.Context, q store.Querier, f Field) (Field, error) {
	if f.Sensitivity == "" {
		f.Sensitivity = Normal
	}
	if err := f.validate(); err != nil {
		return Field{}, err
	}
	choices := ""
	if len(f.Choices) > 0 {
		b, _ := json.Marshal(f.Choices)
		choices = string(b)
	}
	var retention any
	if f.RetentionDays > 0 {
		retention = f.RetentionDays
	}
	_, err := q.ExecContext(ctx, `INSERT INTO fields (channel_id, key, label, type, choices, purpose, sensitivity, retention_days, created_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (channel_id, key) DO UPDATE SET label = excluded.label, type = excluded.type, choices = excluded.choices,
			purpose = excluded.purpose, sensitivity = excluded.sensitivity, retention_days = excluded.retention_days`,
		f.ChannelID, f.Key, f.Label, string(f.Type), choices, f.Purpose, string(f.Sensitivity), retention, store.Millis(s.clock.Now()))
	if err != nil {
		return Field{}, fmt.Errorf("friend: define field: %w", err)
	}
	return s.FieldByKey(ctx, q, f.ChannelID, f.Key)
}

const fieldColumns = "id, channel_id, key, label, type, choices, purpose, sensitivity, retention_days, created_at"

func scanField(row interface{ Scan(...any) error }) (Field, error) {
	var f Field
	var typ, choices, sens string
	var retention sql.NullInt64
	var created int64
	if err := row.Scan(&f.ID, &f.ChannelID, &f.Key, &f.Label, &typ, &choices, &f.Purpose, &sens, &retention, &created); err != nil {
		return Field{}, err
	}
	f.Type, f.Sensitivity, f.CreatedAt = FieldType(typ), Sensitivity(sens), store.Time(created)
	f.RetentionDays = int(retention.Int64)
	if choices != "" {
		if err := json.Unmarshal([]byte(choices), &f.Choices); err != nil {
			return Field{}, fmt.Errorf("field %s: choices: %w", f.Key, err)
		}
	}
	return f, nil
}

// FieldByKey returns a field definition.
func (s *Service) FieldByKey(ctx context.Context, q store.Querier, channelID, key string) (Field, error) {
	f, err := scanField(q.QueryRowContext(ctx, "SELECT "+fieldColumns+" FROM fields WHERE channel_id = ? AND key = ?", channelID, key))
	if errors.Is(err, sql.ErrNoRows) {
		return Field{}, fmt.Errorf("field %q: %w", key, store.ErrNotFound)
	}
	if err != nil {
		return Field{}, fmt.Errorf("friend: field: %w", err)
	}
	return f, nil
}

// Fields lists a channel's field definitions.
func (s *Service) Fields(ctx context.Context, channelID string) ([]Field, error) {
	rows, err := s.db.QueryContext(ctx, "SELECT "+fieldColumns+" FROM fields WHERE channel_id = ? ORDER BY key", channelID)
	if err != nil {
		return nil, fmt.Errorf("friend: fields: %w", err)
	}
	defer rows.Close()
	var out []Field
	for rows.Next() {
		f, err := scanField(rows)
		if err != nil {
			return nil, fmt.Errorf("friend: fields: %w", err)
		}
		out = append(out, f)
	}
	return out, rows.Err()
}

// CheckValue validates a value for a field and returns it in canonical form. The error
// names the field and the rule, not the value (it may be personal data).
func (f Field) CheckValue(v string) (string, error) {
	v = strings.TrimSpace(v)
	if !utf8.ValidString(v) || strings.ContainsRune(v, 0) {
		return "", fmt.Errorf("%w: %s: not valid text", ErrInvalid, f.Key)
	}
	switch f.Type {
	case TextField:
		if utf8.RuneCountInString(v) > 1000 {
			return "", fmt.Errorf("%w: %s: at most 1000 characters", ErrInvalid, f.Key)
		}
	case NumberField:
		n, err := strconv.ParseFloat(v, 64)
		if err != nil || n != n {
			return "", fmt.Errorf("%w: %s: must be a number", ErrInvalid, f.Key)
		}
		v = strconv.FormatFloat(n, 'f', -1, 64)
	case DateField:
		d, err := time.Parse(time.DateOnly, v)
		if err != nil {
			return "", fmt.Errorf("%w: %s: must be a date as YYYY-MM-DD", ErrInvalid, f.Key)
		}
		v = d.Format(time.DateOnly)
	case ChoiceField:
		if !slices.Contains(f.Choices, v) {
			return "", fmt.Errorf("%w: %s: must be one of the field's choices", ErrInvalid, f.Key)
		}
	}
	return v, nil
}

// SetField stores a friend's value for a field, validated against the field's type. It
// reports whether the stored value changed.
func (s *Service) SetField(ctx context.Context, q store.Querier, friendID int64, f Field, value string) (bool, error) {
	v, err := f.CheckValue(value)
	if err != nil {
		return false, err
	}
	if err := s.requireConsent(ctx, q, friendID, f); err != nil {
		return false, err
	}
	var old string
	err = q.QueryRowContext(ctx, "SELECT value FROM friend_fields WHERE friend_id = ? AND field_id = ?", friendID, f.ID).Scan(&old)
	if err == nil && old == v {
		return false, nil
	}
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return false, fmt.Errorf("friend: set field: %w", err)
	}
	_, err = q.ExecContext(ctx, `INSERT INTO friend_fields (friend_id, field_id, value, exact_key, norm_value, updated_at)
		SELECT f.id, ?, ?, ?, ?, ? FROM friends f WHERE f.id = ? AND f.channel_id = ?
		ON CONFLICT (friend_id, field_id) DO UPDATE SET value = excluded.value, exact_key = excluded.exact_key,
			norm_value = excluded.norm_value, updated_at = excluded.updated_at`,
		f.ID, v, s.exactKey(f.ChannelID, v), NormalizeExact(v), store.Millis(s.clock.Now()), friendID, f.ChannelID)
	if err != nil {
		return false, fmt.Errorf("friend: set field: %w", err)
	}
	for _, fn := range s.fieldSet {
		if err := fn(ctx, q, friendID, f, v); err != nil {
			return false, err
		}
	}
	return true, nil
}

// ClearField removes a friend's value for a field.
func (s *Service) ClearField(ctx context.Context, q store.Querier, friendID, fieldID int64) error {
	if _, err := q.ExecContext(ctx, "DELETE FROM friend_fields WHERE friend_id = ? AND field_id = ?", friendID, fieldID); err != nil {
		return fmt.Errorf("friend: clear field: %w", err)
	}
	return nil
}

// FieldValues returns a friend's field values by field key.
func (s *Service) FieldValues(ctx context.Context, q store.Querier, friendID int64) (map[string]string, error) {
	rows, err := q.QueryContext(ctx, `SELECT fl.key, ff.value FROM friend_fields ff JOIN fields fl ON fl.id = ff.field_id WHERE ff.friend_id = ?`, friendID)
	if err != nil {
		return nil, fmt.Errorf("friend: field values: %w", err)
	}
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var k, v string
		if err := rows.Scan(&k, &v); err != nil {
			return nil, fmt.Errorf("friend: field values: %w", err)
		}
		out[k] = v
	}
	return out, rows.Err()
}
