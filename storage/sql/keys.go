package sql

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"time"

	"github.com/oauthkit/authserver/storage"
)

func scanKeySet(row scanner) (storage.KeySet, error) {
	var ks storage.KeySet
	var keys string
	if err := row.Scan(&ks.Version, &keys); err != nil {
		return ks, err
	}
	if err := json.Unmarshal([]byte(keys), &ks.Keys); err != nil {
		return ks, fmt.Errorf("decode key set: %w", err)
	}
	if len(ks.Keys) == 0 {
		ks.Keys = nil
	}
	for i := range ks.Keys {
		k := &ks.Keys[i]
		k.CreatedAt, k.ActivateAt, k.RetiredAt, k.DeleteAt = k.CreatedAt.UTC(), k.ActivateAt.UTC(), k.RetiredAt.UTC(), k.DeleteAt.UTC()
	}
	return ks, nil
}

// GetKeys returns the key set (version 0 and no keys until the first update).
func (s *Store) GetKeys(ctx context.Context) (storage.KeySet, error) {
	ks, err := scanKeySet(s.reader(ctx).QueryRowContext(ctx, `SELECT version, keys FROM keyset WHERE id = 1`))
	return ks, s.wrap("get keys", err)
}

// UpdateKeys applies fn to the key set in a transaction that holds the row
// locked (the caller's, or one of its own) and increments the version. An
// error from fn is returned unchanged. fn must not use the store.
func (s *Store) UpdateKeys(ctx context.Context, fn func(storage.KeySet) (storage.KeySet, error)) (storage.KeySet, error) {
	var next storage.KeySet
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		cur, err := scanKeySet(tx.QueryRowContext(ctx, `SELECT version, keys FROM keyset WHERE id = 1`+s.d.forUpdate))
		if err != nil {
			return s.wrap("update keys", err)
		}
		if next, err = fn(cur); err != nil {
			return err
		}
		next.Version = cur.Version + 1
		keys := []storage.SigningKey{}
		if next.Keys != nil {
			keys = next.Keys
		}
		b, err := json.Marshal(keys)
		if err != nil {
			return fmt.Errorf("sql: update keys: encode: %w", err)
		}
		// Re-read what is stored, so the result is exactly what GetKeys
		// will return (times in UTC, copies of every slice).
		if next, err = scanKeySet(tx.QueryRowContext(ctx,
			`UPDATE keyset SET version = $1, keys = $2 WHERE id = 1 RETURNING version, keys`, next.Version, string(b))); err != nil {
			return s.wrap("update keys", err)
		}
		return nil
	})
	if err != nil {
		return storage.KeySet{}, err
	}
	return next, nil
}

// UpdateAttempts applies fn to the counter for key in a transaction that
// holds the row locked (the caller's, or one of its own). A missing counter
// is inserted first, so that concurrent callers queue on its lock; fn must
// not use the store.
func (s *Store) UpdateAttempts(ctx context.Context, key string, fn func(storage.Attempts) (storage.Attempts, error)) (storage.Attempts, error) {
	const op = "update attempts"
	var next storage.Attempts
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		inserted, err := s.execCount(ctx, tx, op,
			`INSERT INTO attempts (throttle_key, failures, last_at) VALUES ($1, 0, $2) ON CONFLICT (throttle_key) DO NOTHING`,
			key, s.d.timeArg(time.Time{}))
		if err != nil {
			return err
		}
		cur := storage.Attempts{Key: key}
		if err := tx.QueryRowContext(ctx, `SELECT failures, last_at FROM attempts WHERE throttle_key = $1`+s.d.forUpdate, key).
			Scan(&cur.Failures, timeCol{&cur.Last}); err != nil {
			return s.wrap(op, err)
		}
		if next, err = fn(cur); err != nil {
			if inserted == 1 {
				// Inside the caller's transaction, which may still commit,
				// leave no placeholder behind.
				_, _ = tx.ExecContext(ctx, `DELETE FROM attempts WHERE throttle_key = $1`, key)
			}
			return err
		}
		next.Key, next.Last = key, stored(next.Last)
		_, err = tx.ExecContext(ctx, `UPDATE attempts SET failures = $2, last_at = $3 WHERE throttle_key = $1`,
			key, next.Failures, s.d.timeArg(next.Last))
		return s.wrap(op, err)
	})
	if err != nil {
		return storage.Attempts{}, err
	}
	return next, nil
}

// DeleteAttempts removes the counter for key; a missing counter is not an
// error.
func (s *Store) DeleteAttempts(ctx context.Context, key string) error {
	_, err := s.writer(ctx).ExecContext(ctx, `DELETE FROM attempts WHERE throttle_key = $1`, key)
	return s.wrap("delete attempts", err)
}

// gcBatch is the most rows one garbage-collection statement deletes; it must
// match the LIMIT in dialect.gcBatch.
const gcBatch = 1000

// GarbageCollect deletes expired tokens and old counters, at most gcBatch
// rows per statement, each statement its own transaction. On PostgreSQL the
// batches skip rows other transactions hold locked, so several instances can
// collect at once without waiting on each other or on requests.
func (s *Store) GarbageCollect(ctx context.Context, now time.Time, attemptsTTL time.Duration) (storage.GCResult, error) {
	var res storage.GCResult
	var err error
	res.Tokens, err = s.deleteBatches(ctx, "garbage collect tokens",
		`DELETE FROM tokens WHERE (kind, signature) IN (SELECT kind, signature FROM tokens WHERE expires_at < $1`+s.d.gcBatch+`)`,
		s.d.timeArg(now))
	if err != nil {
		return res, err
	}
	res.Attempts, err = s.deleteBatches(ctx, "garbage collect attempts",
		`DELETE FROM attempts WHERE throttle_key IN (SELECT throttle_key FROM attempts WHERE last_at < $1`+s.d.gcBatch+`)`,
		s.d.timeArg(now.Add(-attemptsTTL)))
	return res, err
}

func (s *Store) deleteBatches(ctx context.Context, op, query string, args ...any) (int64, error) {
	var total int64
	for {
		n, err := s.execCount(ctx, s.writer(ctx), op, query, args...)
		total += n
		if err != nil || n < gcBatch {
			return total, err
		}
	}
}
