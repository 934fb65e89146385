package sql

import (
	"context"
	"database/sql"
	"time"

	"github.com/oauthkit/authserver/storage"
)

// UpdateAttempts applies fn to the counter for key in a transaction that
// holds the row locked (the caller's, or one of its own, which commits
// lazily: see BeginLazyTx). A missing counter is inserted first, so that
// concurrent callers queue on its lock; fn must not use the store.
func (s *Store) UpdateAttempts(ctx context.Context, key string, fn func(storage.Attempts) (storage.Attempts, error)) (storage.Attempts, error) {
	const op = "update attempts"
	var next storage.Attempts
	err := s.inLazyTx(ctx, func(tx *sql.Tx) error {
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
// error. Outside the caller's transaction it commits lazily (BeginLazyTx).
func (s *Store) DeleteAttempts(ctx context.Context, key string) error {
	return s.inLazyTx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `DELETE FROM attempts WHERE throttle_key = $1`, key)
		return s.wrap("delete attempts", err)
	})
}
