package channel

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/linestep/linestep/internal/message"
	"github.com/linestep/linestep/internal/store"
)

// Settings are what staff may change of a channel in the console. The credentials are
// not among them: they are sealed, and replaced only from the command line.
type Settings struct {
	Name     string
	TimeZone string // an IANA zone name, e.g. Asia/Tokyo
	// QuietHours like "21:00-09:00": scenario steps due inside them wait for their end.
	// Empty: none.
	QuietHours string
	// DeliveryRetentionDays is how long what was sent (deliveries and their calls) is
	// kept, ConversationRetentionDays the conversation log; 0 keeps them.
	DeliveryRetentionDays, ConversationRetentionDays int
}

// Retention bounds: at least a month (the dashboard counts sends over the last week, and
// LINE remembers a call's retry key for a day), at most ten years.
const (
	MinRetentionDays = 30
	MaxRetentionDays = 3650
)

// Settings returns a channel's settings.
func (s *Service) Settings(ctx context.Context, id string) (Settings, error) {
	var st Settings
	err := s.db.QueryRowContext(ctx, `SELECT name, time_zone, quiet_hours, delivery_retention_days, conversation_retention_days
		FROM channels WHERE id = ?`, id).Scan(&st.Name, &st.TimeZone, &st.QuietHours, &st.DeliveryRetentionDays, &st.ConversationRetentionDays)
	if err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return Settings{}, fmt.Errorf("channel %s: %w", id, store.ErrNotFound)
		}
		return Settings{}, fmt.Errorf("channel: settings: %w", err)
	}
	return st, nil
}

// CheckSettings returns what is wrong with settings, in Japanese and English, or nil.
// Quiet hours are normalised to HH:MM-HH:MM.
func CheckSettings(st *Settings) message.Problems {
	var ps message.Problems
	st.Name = strings.TrimSpace(st.Name)
	if st.Name == "" || len(st.Name) > 200 || !utf8.ValidString(st.Name) || strings.ContainsAny(st.Name, "\r\n") {
		ps = append(ps, message.Problem{Path: "name", JA: "名前は1行で入力してください（200バイトまで）",
			EN: "give the name on one line (at most 200 bytes)"})
	}
	st.TimeZone = strings.TrimSpace(st.TimeZone)
	if _, err := time.LoadLocation(st.TimeZone); err != nil || st.TimeZone == "" || st.TimeZone == "Local" {
		ps = append(ps, message.Problem{Path: "time_zone",
			JA: "タイムゾーンは「Asia/Tokyo」のような IANA の名前で入力してください",
			EN: "give the time zone as an IANA name such as Asia/Tokyo"})
	}
	if q := strings.TrimSpace(st.QuietHours); q == "" {
		st.QuietHours = ""
	} else if norm, ok := normQuietHours(q); ok {
		st.QuietHours = norm
	} else {
		ps = append(ps, message.Problem{Path: "quiet_hours",
			JA: "配信停止時間は開始と終了を「21:00」「09:00」のように入力してください（同じ時刻は不可）",
			EN: "give the start and end of the quiet hours as HH:MM, e.g. 21:00 and 09:00 (not the same time)"})
	}
	for _, r := range []struct {
		path string
		days int
	}{{"delivery_retention_days", st.DeliveryRetentionDays}, {"conversation_retention_days", st.ConversationRetentionDays}} {
		if r.days != 0 && (r.days < MinRetentionDays || r.days > MaxRetentionDays) {
			ps = append(ps, message.Problem{Path: r.path,
				JA: fmt.Sprintf("保存期間は%d日から%d日の間で入力してください（0はすべて保存）", MinRetentionDays, MaxRetentionDays),
				EN: fmt.Sprintf("give a retention of %d to %d days (0 keeps everything)", MinRetentionDays, MaxRetentionDays)})
		}
	}
	return ps
}

// SaveSettings checks and stores a channel's settings; invalid ones are refused with
// message.Problems.
func (s *Service) SaveSettings(ctx context.Context, q store.Querier, id string, st Settings) error {
	if ps := CheckSettings(&st); ps != nil {
		return ps
	}
	return s.update(ctx, q, "save settings", id, `name = ?, time_zone = ?, quiet_hours = ?, delivery_retention_days = ?,
		conversation_retention_days = ?`, st.Name, st.TimeZone, st.QuietHours, st.DeliveryRetentionDays, st.ConversationRetentionDays)
}

// normQuietHours reads "21:00-09:00" the way the scenario runner does (which cannot be
// imported from here) and writes it with two-digit hours.
func normQuietHours(s string) (string, bool) {
	a, b, ok := strings.Cut(s, "-")
	if !ok {
		return "", false
	}
	from, ok1 := clockMinutes(strings.TrimSpace(a))
	to, ok2 := clockMinutes(strings.TrimSpace(b))
	if !ok1 || !ok2 || from == to {
		return "", false
	}
	return fmt.Sprintf("%02d:%02d-%02d:%02d", from/60, from%60, to/60, to%60), true
}

func clockMinutes(s string) (int, bool) {
	h, m, ok := strings.Cut(s, ":")
	if !ok || len(h) < 1 || len(h) > 2 || len(m) != 2 {
		return 0, false
	}
	hh, err1 := strconv.Atoi(h)
	mm, err2 := strconv.Atoi(m)
	if err1 != nil || err2 != nil || hh < 0 || hh > 23 || mm < 0 || mm > 59 {
		return 0, false
	}
	return hh*60 + mm, true
}
