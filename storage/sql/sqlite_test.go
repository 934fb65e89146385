package sql_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/oauthkit/authserver/storage"
	sqlstore "github.com/oauthkit/authserver/storage/sql"
	"github.com/oauthkit/authserver/storage/storagetest"
)

// openSQLite opens path and closes it when the test ends.
func openSQLite(t *testing.T, path string) *sqlstore.Store {
	t.Helper()
	s, err := sqlstore.OpenSQLite(t.Context(), path)
	if err != nil {
		t.Fatalf("OpenSQLite: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

func tempDB(t *testing.T) string { return filepath.Join(t.TempDir(), "auth.db") }

func openTempSQLite(t *testing.T) storage.Store { return openSQLite(t, tempDB(t)) }

func TestSQLite(t *testing.T) { storagetest.Run(t, openTempSQLite) }

func TestSQLiteTransactions(t *testing.T) { storagetest.RunTransactions(t, openTempSQLite) }

func TestSQLiteMultiInstance(t *testing.T) {
	storagetest.RunMultiInstance(t, func(t *testing.T) (a, b storage.Store) {
		path := tempDB(t)
		return openSQLite(t, path), openSQLite(t, path)
	})
}

func TestSQLiteSurvivesRestart(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "nested", "dir", "auth.db") // parents are created
	s, err := sqlstore.OpenSQLite(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	when := time.Date(2030, 1, 2, 3, 4, 5, 6000, time.UTC)
	steps := []error{
		s.CreateUser(ctx, storage.User{ID: "u1", Email: "A@example.com", Roles: []string{"admin"}, CreatedAt: when}),
		s.CreateClient(ctx, storage.Client{ID: "c1", SecretHashes: []string{"h"}, UpdatedAt: when}),
		s.CreateToken(ctx, storage.Token{Kind: storage.RefreshToken, Signature: "rt", RequestID: "r", Active: true,
			ExpiresAt: when, Payload: []byte{0, 1, 2}}),
	}
	_, err = s.UpdateKeys(ctx, func(ks storage.KeySet) (storage.KeySet, error) {
		ks.Keys = []storage.SigningKey{{ID: "k1", Private: []byte("p"), CreatedAt: when}}
		return ks, nil
	})
	steps = append(steps, err)
	_, err = s.UpdateAttempts(ctx, "k", func(a storage.Attempts) (storage.Attempts, error) {
		a.Failures, a.Last = 3, when
		return a, nil
	})
	steps = append(steps, err, s.Close())
	if err := errors.Join(steps...); err != nil {
		t.Fatal(err)
	}

	s = openSQLite(t, path)
	u, err := s.GetUserByEmail(ctx, "a@EXAMPLE.com")
	if err != nil || u.ID != "u1" || len(u.Roles) != 1 || !u.CreatedAt.Equal(when) {
		t.Errorf("user after restart: %+v, %v", u, err)
	}
	if c, err := s.GetClient(ctx, "c1"); err != nil || len(c.SecretHashes) != 1 || !c.UpdatedAt.Equal(when) {
		t.Errorf("client after restart: %+v, %v", c, err)
	}
	if tok, err := s.GetToken(ctx, storage.RefreshToken, "rt"); err != nil || !tok.Active || string(tok.Payload) != "\x00\x01\x02" || !tok.ExpiresAt.Equal(when) {
		t.Errorf("token after restart: %+v, %v", tok, err)
	}
	if ks, err := s.GetKeys(ctx); err != nil || ks.Version != 1 || len(ks.Keys) != 1 || string(ks.Keys[0].Private) != "p" {
		t.Errorf("keys after restart: %+v, %v", ks, err)
	}
	a, err := s.UpdateAttempts(ctx, "k", func(a storage.Attempts) (storage.Attempts, error) { return a, nil })
	if err != nil || a.Failures != 3 || !a.Last.Equal(when) {
		t.Errorf("attempts after restart: %+v, %v", a, err)
	}
	if err := s.Ping(ctx); err != nil {
		t.Errorf("Ping after restart: %v", err)
	}
}

func TestSQLiteOpenPicksDialect(t *testing.T) {
	path := tempDB(t)
	s, err := sqlstore.Open(t.Context(), path)
	if err != nil {
		t.Fatalf("Open(%q): %v", path, err)
	}
	defer s.Close()
	if err := s.Ping(t.Context()); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"", ":memory:", "file:x.db", filepath.Join(t.TempDir(), "x.db?mode=ro")} {
		if s, err := sqlstore.OpenSQLite(t.Context(), bad); err == nil {
			s.Close()
			t.Errorf("OpenSQLite(%q) succeeded", bad)
		}
	}
}

func TestSQLiteConcurrentOpenMigratesOnce(t *testing.T) {
	path := tempDB(t)
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() { openSQLite(t, path) })
	}
	wg.Wait()
	db := rawSQLite(t, path)
	var n int
	if err := db.QueryRow(`SELECT count(*) FROM schema_migrations`).Scan(&n); err != nil || n != migrationCount(t, "sqlite") {
		t.Errorf("schema_migrations has %d rows (%v), want one per migration", n, err)
	}
}

func TestSQLitePingFailsWithoutMigrations(t *testing.T) {
	path := tempDB(t)
	s := openSQLite(t, path)
	db := rawSQLite(t, path)
	if _, err := db.Exec(`DELETE FROM schema_migrations`); err != nil {
		t.Fatal(err)
	}
	if err := s.Ping(t.Context()); err == nil {
		t.Error("Ping succeeded with no migration recorded")
	}
}

func TestSQLiteUsesWALAndStoresMicroseconds(t *testing.T) {
	path := tempDB(t)
	s := openSQLite(t, path)
	when := time.Date(2030, 1, 2, 3, 4, 5, 123456789, time.UTC)
	if err := s.CreateToken(t.Context(), storage.Token{Kind: storage.AccessToken, Signature: "a", ExpiresAt: when}); err != nil {
		t.Fatal(err)
	}
	db := rawSQLite(t, path)
	var mode string
	var exp int64
	if err := db.QueryRow(`PRAGMA journal_mode`).Scan(&mode); err != nil || mode != "wal" {
		t.Errorf("journal_mode = %q (%v), want wal", mode, err)
	}
	if err := db.QueryRow(`SELECT expires_at FROM tokens`).Scan(&exp); err != nil || exp != when.UnixMicro() {
		t.Errorf("expires_at = %d (%v), want %d", exp, err, when.UnixMicro())
	}
}

// rawSQLite opens the file with the driver alone, bypassing the store.
func rawSQLite(t *testing.T, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", path+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

func BenchmarkSQLiteGetToken(b *testing.B) {
	ctx := context.Background()
	s, err := sqlstore.OpenSQLite(ctx, filepath.Join(b.TempDir(), "auth.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	if err := s.CreateToken(ctx, storage.Token{Kind: storage.AccessToken, Signature: "sig", RequestID: "r",
		ExpiresAt: time.Now().Add(time.Hour), Payload: make([]byte, 1024)}); err != nil {
		b.Fatal(err)
	}
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := s.GetToken(ctx, storage.AccessToken, "sig"); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// migrationCount is the number of embedded migrations of a dialect.
func migrationCount(t *testing.T, dialect string) int {
	t.Helper()
	m, err := filepath.Glob(filepath.Join("migrations", dialect, "*.sql"))
	if err != nil || len(m) == 0 {
		t.Fatalf("no migrations for %s: %v", dialect, err)
	}
	return len(m)
}

// The hot queries use indexes, never a scan of the tokens table (with a
// million stored tokens a scan would cost the introspection and refresh
// throughput). The plans are logged; run with -v to see them.
func TestSQLiteHotQueriesUseIndexes(t *testing.T) {
	path := tempDB(t)
	openSQLite(t, path)
	db := rawSQLite(t, path)
	for name, q := range map[string]string{
		"get token":              `SELECT * FROM tokens WHERE kind = 'access_token' AND signature = 'x'`,
		"rotate refresh token":   `UPDATE tokens SET active = FALSE WHERE kind = 'refresh_token' AND signature = 'x' AND active`,
		"deactivate grant":       `UPDATE tokens SET active = FALSE WHERE kind = 'refresh_token' AND request_id = 'r' AND active = TRUE`,
		"delete grant tokens":    `DELETE FROM tokens WHERE kind = 'access_token' AND request_id = 'r'`,
		"revoke by subject":      `DELETE FROM tokens WHERE subject = 's'`,
		"revoke by client":       `DELETE FROM tokens WHERE client_id = 'c'`,
		"garbage collect tokens": `SELECT rowid FROM tokens WHERE expires_at < 5 LIMIT 1000`,
		"user by email":          `SELECT * FROM users WHERE email_lower = 'a@b'`,
		"client by id":           `SELECT * FROM clients WHERE id = 'c'`,
	} {
		rows, err := db.Query(`EXPLAIN QUERY PLAN ` + q)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		var plan []string
		for rows.Next() {
			var id, parent, notused int
			var detail string
			if err := rows.Scan(&id, &parent, &notused, &detail); err != nil {
				t.Fatal(err)
			}
			plan = append(plan, detail)
		}
		rows.Close()
		t.Logf("%-22s %s", name, strings.Join(plan, "; "))
		for _, p := range plan {
			if strings.HasPrefix(p, "SCAN ") {
				t.Errorf("%s scans a table: %s", name, p)
			}
		}
	}
}

// The log is checkpointed at about 16 MiB, not SQLite's 4 MiB, and does not
// grow past that under sustained writes.
func TestSQLiteCheckpointsTheLogAt16MiB(t *testing.T) {
	path := tempDB(t)
	s := openSQLite(t, path)
	payload := make([]byte, 16<<10)
	now := time.Now()
	maxWAL := int64(0)
	for b := range 60 { // 60 commits of 40 tokens of 16 KiB: about 38 MiB
		ctx, err := s.BeginTx(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		for i := range 40 {
			if err := s.CreateToken(ctx, storage.Token{Kind: storage.AccessToken, Signature: fmt.Sprint(b, "-", i),
				RequestID: fmt.Sprint(b, "-", i), ExpiresAt: now.Add(time.Hour), Payload: payload}); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.CommitTx(ctx); err != nil {
			t.Fatal(err)
		}
		if fi, err := os.Stat(path + "-wal"); err == nil {
			maxWAL = max(maxWAL, fi.Size())
		}
	}
	if maxWAL < 8<<20 {
		t.Errorf("the log peaked at %d bytes: checkpointed before 8 MiB", maxWAL)
	}
	if maxWAL > 24<<20 {
		t.Errorf("the log peaked at %d bytes: more than 24 MiB", maxWAL)
	}
}
