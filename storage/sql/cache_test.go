package sql

import (
	"path/filepath"
	"testing"
)

// The SQLite writer gets the page cache of WithSQLiteCache (8 MiB without
// it) and each reader an eighth of it, at least 512 KiB.
func TestSQLitePageCacheSizes(t *testing.T) {
	for _, tc := range []struct {
		opts           []Option
		writer, reader int
	}{
		{nil, -8192, -1024},
		{[]Option{WithSQLiteCache(32 << 10)}, -32768, -4096},
		{[]Option{WithSQLiteCache(1024)}, -1024, -512},
	} {
		s, err := OpenSQLite(t.Context(), filepath.Join(t.TempDir(), "c.db"), tc.opts...)
		if err != nil {
			t.Fatal(err)
		}
		var w, r int
		if err := s.w.QueryRowContext(t.Context(), "PRAGMA cache_size").Scan(&w); err != nil {
			t.Fatal(err)
		}
		if err := s.r.QueryRowContext(t.Context(), "PRAGMA cache_size").Scan(&r); err != nil {
			t.Fatal(err)
		}
		if w != tc.writer || r != tc.reader {
			t.Errorf("cache_size writer %d, reader %d; want %d and %d", w, r, tc.writer, tc.reader)
		}
		_ = s.Close()
	}
	if _, err := OpenSQLite(t.Context(), filepath.Join(t.TempDir(), "c.db"), WithSQLiteCache(0)); err == nil {
		t.Error("a page cache of 0 KiB was accepted")
	}
}
