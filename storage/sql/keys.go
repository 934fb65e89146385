package sql

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"

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
