package sql_test

import (
	"path/filepath"
	"testing"

	"github.com/oauthkit/authserver/storage"
	sqlstore "github.com/oauthkit/authserver/storage/sql"
)

// BenchmarkListClientChangesCaughtUp is what an instance's background poll
// of the client change feed costs on SQLite when nothing changed since the
// cursor (the usual case): one primary-key range read that returns no row.
func BenchmarkListClientChangesCaughtUp(b *testing.B) {
	s, err := sqlstore.OpenSQLite(b.Context(), filepath.Join(b.TempDir(), "auth.db"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	ctx := b.Context()
	c := storage.Client{ID: "c1", GrantTypes: []string{"client_credentials"}}
	if err := s.CreateClient(ctx, c); err != nil {
		b.Fatal(err)
	}
	for range 100 {
		if _, err := s.UpdateClient(ctx, "c1", func(c storage.Client) (storage.Client, error) { return c, nil }); err != nil {
			b.Fatal(err)
		}
	}
	page, err := s.ListClientChanges(ctx, 0, 1000)
	if err != nil || len(page) != 100 {
		b.Fatalf("feed: %d entries, %v", len(page), err)
	}
	cursor := page[len(page)-1].Seq
	for b.Loop() {
		if rest, err := s.ListClientChanges(ctx, cursor, 1000); err != nil || len(rest) != 0 {
			b.Fatalf("caught-up read: %d entries, %v", len(rest), err)
		}
	}
}
