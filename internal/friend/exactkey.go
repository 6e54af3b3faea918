package friend

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/linestep/linestep/internal/store"
)

// Exact search finds a friend by a value someone already knows (SearchFilter.Exact)
// through a keyed hash of each field value: HMAC-SHA256 of the channel and the value's
// NormalizeExact form, under a key derived from the master key (SearchKeyPurpose). The
// index over it holds no value in the clear, the same value in two channels hashes
// differently, and a copy of the database without the master key cannot test guesses.

// SearchKeyPurpose names the exact-search key among those derived from the master key.
const SearchKeyPurpose = "friend exact search"

// exactKeysFilled is the meta entry that says every field value has its key.
const exactKeysFilled = "friend_exact_keys"

// exactKey is the blind index entry of a value in a channel.
func (s *Service) exactKey(channelID, value string) string {
	m := hmac.New(sha256.New, s.searchKey)
	m.Write([]byte(channelID))
	m.Write([]byte{0})
	m.Write([]byte(NormalizeExact(value)))
	return hex.EncodeToString(m.Sum(nil)[:16])
}

// exactKeys returns the function that gives a value's entry, or nil while values written
// before the index existed are not all keyed yet: searches then normalise in SQL.
func (s *Service) exactKeys(ctx context.Context) (func(channelID, value string) string, error) {
	if !s.exactReady.Load() {
		var v string
		err := s.db.QueryRowContext(ctx, "SELECT value FROM meta WHERE key = ?", exactKeysFilled).Scan(&v)
		if errors.Is(err, sql.ErrNoRows) {
			return nil, nil
		}
		if err != nil {
			return nil, fmt.Errorf("friend: exact keys: %w", err)
		}
		s.exactReady.Store(true)
	}
	return s.exactKey, nil
}

// RunFillExactKeys runs FillExactKeys, again a minute after a failure, until it has
// succeeded or ctx is done.
func (s *Service) RunFillExactKeys(ctx context.Context) {
	for {
		n, err := s.FillExactKeys(ctx)
		if err == nil {
			if n > 0 {
				s.logger.Info("friend: field values keyed for exact search", "values", n)
			}
			return
		}
		if ctx.Err() != nil {
			return
		}
		s.logger.Error("friend: keying field values for exact search failed; searching without the index meanwhile", "err", err)
		if s.clock.Sleep(ctx, time.Minute) != nil {
			return
		}
	}
}

// fillChunk bounds the values one transaction of FillExactKeys keys.
const fillChunk = 1000

// FillExactKeys keys (and normalises, for the partial search) the field values written
// before the blind index existed, a chunk per transaction, then records that all are:
// the server runs it when it starts. It returns how many values it keyed.
func (s *Service) FillExactKeys(ctx context.Context) (int, error) {
	total := 0
	for {
		n, err := s.fillExactChunk(ctx)
		total += n
		if err != nil {
			return total, fmt.Errorf("friend: fill exact keys: %w", err)
		}
		if n == 0 {
			break
		}
	}
	_, err := s.db.ExecContext(ctx, "INSERT INTO meta (key, value) VALUES (?, 'filled') ON CONFLICT (key) DO NOTHING", exactKeysFilled)
	if err != nil {
		return total, fmt.Errorf("friend: fill exact keys: %w", err)
	}
	s.exactReady.Store(true)
	return total, nil
}

func (s *Service) fillExactChunk(ctx context.Context) (int, error) {
	var n int
	err := s.db.WriteTx(ctx, func(tx *store.Tx) error {
		type unkeyed struct {
			friendID, fieldID int64
			value, channelID  string
		}
		lock := ""
		if tx.Dialect() == store.Postgres {
			// Instances starting together wait for each other's chunks rather than skip
			// them: one that skipped could record all keyed before the other commits.
			lock = " FOR UPDATE OF ff"
		}
		rows, err := tx.QueryContext(ctx, `SELECT ff.friend_id, ff.field_id, ff.value, f.channel_id
			FROM friend_fields ff JOIN friends f ON f.id = ff.friend_id WHERE ff.exact_key IS NULL LIMIT ?`+lock, fillChunk)
		if err != nil {
			return err
		}
		var todo []unkeyed
		for rows.Next() {
			var u unkeyed
			if err := rows.Scan(&u.friendID, &u.fieldID, &u.value, &u.channelID); err != nil {
				rows.Close()
				return err
			}
			todo = append(todo, u)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		n = len(todo)
		friends, fields, keys, norms := make([]int64, n), make([]int64, n), make([]string, n), make([]string, n)
		for i, u := range todo {
			friends[i], fields[i], keys[i], norms[i] = u.friendID, u.fieldID, s.exactKey(u.channelID, u.value), NormalizeExact(u.value)
		}
		if tx.Dialect() == store.Postgres {
			_, err := tx.ExecContext(ctx, `UPDATE friend_fields ff SET exact_key = u.k, norm_value = u.norm
				FROM unnest(?::bigint[], ?::bigint[], ?::text[], ?::text[]) AS u(friend, field, k, norm)
				WHERE ff.friend_id = u.friend AND ff.field_id = u.field`, friends, fields, keys, norms)
			return err
		}
		for start := 0; start < n; start += 500 {
			end := min(start+500, n)
			args := make([]any, 0, 4*(end-start))
			for i := start; i < end; i++ {
				args = append(args, friends[i], fields[i], keys[i], norms[i])
			}
			if _, err := tx.ExecContext(ctx, `UPDATE friend_fields SET exact_key = v.column3, norm_value = v.column4
				FROM (VALUES `+store.Placeholders(end-start, 4)+`) AS v
				WHERE friend_fields.friend_id = v.column1 AND friend_fields.field_id = v.column2`, args...); err != nil {
				return err
			}
		}
		return nil
	})
	return n, err
}
