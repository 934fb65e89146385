package sql

import "context"

// WriterSetting reads one setting (a PRAGMA or SHOW statement) in the
// transaction ctx carries, or on the write pool.
func WriterSetting(ctx context.Context, s *Store, query string) (string, error) {
	var v string
	err := s.writer(ctx).QueryRowContext(ctx, query).Scan(&v)
	return v, err
}

// WriterInUse is the number of write connections in use.
func WriterInUse(s *Store) int { return s.w.Stats().InUse }
