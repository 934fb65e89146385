package sql_test

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" driver for the helpers

	"github.com/oauthkit/authserver/storage"
	sqlstore "github.com/oauthkit/authserver/storage/sql"
	"github.com/oauthkit/authserver/storage/storagetest"
)

const postgresEnv = "AUTHSERVER_TEST_POSTGRES_DSN"

// postgresDSN returns the DSN of a new, empty schema, dropped when the test
// ends, or skips the test when AUTHSERVER_TEST_POSTGRES_DSN is unset.
func postgresDSN(t *testing.T) string {
	t.Helper()
	dsn := os.Getenv(postgresEnv)
	if dsn == "" {
		t.Skip(postgresEnv + " not set; skipping PostgreSQL tests")
	}
	db := rawPostgres(t, dsn)
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	schema := "t_" + hex.EncodeToString(b)
	if _, err := db.ExecContext(t.Context(), `CREATE SCHEMA `+schema); err != nil {
		t.Fatalf("create schema: %v", err)
	}
	t.Cleanup(func() {
		// t.Context() is already cancelled when cleanups run.
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := db.ExecContext(ctx, `DROP SCHEMA `+schema+` CASCADE`); err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
		}
	})
	return withSearchPath(t, dsn, schema)
}

// withSearchPath sets the search_path runtime parameter, so that every
// connection of the pool works in schema.
func withSearchPath(t *testing.T, dsn, schema string) string {
	if !strings.HasPrefix(dsn, "postgres://") && !strings.HasPrefix(dsn, "postgresql://") {
		return dsn + " search_path=" + schema // key=value form
	}
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatalf("%s: %v", postgresEnv, err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

func rawPostgres(t *testing.T, dsn string) *sql.DB {
	t.Helper()
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

func openPostgres(t *testing.T, dsn string) *sqlstore.Store {
	t.Helper()
	s, err := sqlstore.OpenPostgres(t.Context(), dsn, sqlstore.WithMaxOpenConns(8), sqlstore.WithStatementTimeout(30*time.Second))
	if err != nil {
		t.Fatalf("OpenPostgres: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

func openTempPostgres(t *testing.T) storage.Store { return openPostgres(t, postgresDSN(t)) }

func TestPostgres(t *testing.T) { storagetest.Run(t, openTempPostgres) }

func TestPostgresTransactions(t *testing.T) { storagetest.RunTransactions(t, openTempPostgres) }

func TestPostgresMultiInstance(t *testing.T) {
	storagetest.RunMultiInstance(t, func(t *testing.T) (a, b storage.Store) {
		dsn := postgresDSN(t)
		return openPostgres(t, dsn), openPostgres(t, dsn)
	})
}

func TestPostgresConcurrentOpenMigratesOnce(t *testing.T) {
	dsn := postgresDSN(t)
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() { openPostgres(t, dsn) })
	}
	wg.Wait()
	var n int
	if err := rawPostgres(t, dsn).QueryRow(`SELECT count(*) FROM schema_migrations`).Scan(&n); err != nil || n != migrationCount(t, "postgres") {
		t.Errorf("schema_migrations has %d rows (%v), want one per migration", n, err)
	}
}

func TestPostgresPingFailsWithoutMigrations(t *testing.T) {
	dsn := postgresDSN(t)
	s := openPostgres(t, dsn)
	if err := s.Ping(t.Context()); err != nil {
		t.Fatalf("Ping: %v", err)
	}
	if _, err := rawPostgres(t, dsn).Exec(`DELETE FROM schema_migrations`); err != nil {
		t.Fatal(err)
	}
	if err := s.Ping(t.Context()); err == nil {
		t.Error("Ping succeeded with no migration recorded")
	}
}

func TestPostgresOpenPicksDialect(t *testing.T) {
	s, err := sqlstore.Open(t.Context(), postgresDSN(t))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer s.Close()
	if err := s.Ping(t.Context()); err != nil {
		t.Fatal(err)
	}
	var schema string
	if err := rawPostgres(t, os.Getenv(postgresEnv)).QueryRow(
		`SELECT table_schema FROM information_schema.tables WHERE table_name = 'tokens' AND table_schema LIKE 't\_%' LIMIT 1`).
		Scan(&schema); err != nil {
		t.Errorf("no tokens table in a test schema: %v", err)
	}
}

// storage.LockOrder is PostgreSQL's hashtext, the second key of the
// advisory locks, for values of every length around the hash's 12-byte
// blocks, non-ASCII ones, and the kinds of value the locks hold.
func TestPostgresLockOrderIsHashtext(t *testing.T) {
	dsn := os.Getenv(postgresEnv)
	if dsn == "" {
		t.Skip(postgresEnv + " not set; skipping PostgreSQL tests")
	}
	db := rawPostgres(t, dsn)
	values := []string{"", "é", "grant:ÿ\u00a0\u4e16", "dpop:20518a57e2f2f7092c9238e7d6fbbea1", "u-alice", "admin-console"}
	for n := range 40 {
		b := make([]byte, n)
		_, _ = rand.Read(b)
		// Any valid UTF-8 but NUL, which text cannot hold.
		values = append(values, hex.EncodeToString(b)[:n], strings.ReplaceAll(strings.ToValidUTF8(string(b), "?"), "\x00", "0"))
	}
	for _, v := range values {
		var want int32
		if err := db.QueryRowContext(t.Context(), `SELECT hashtext($1)`, v).Scan(&want); err != nil {
			t.Fatal(err)
		}
		if got := storage.LockOrder(v); got != want {
			t.Errorf("LockOrder(%q) = %d, hashtext = %d", v, got, want)
		}
	}
}

// revokeDuring runs b.RevokeTokens(f) while tx, a transaction of a that
// holds some locks already, is open; once the revocation holds what it can
// and waits, it runs write in tx and commits. Neither may wait for
// PostgreSQL's deadlock check (deadlock_timeout, 1 s).
func revokeDuring(t *testing.T, a, b *sqlstore.Store, tx context.Context, f storage.TokenFilter, write func() error) {
	t.Helper()
	revoked := make(chan error, 1)
	start := time.Now()
	go func() {
		_, err := b.RevokeTokens(t.Context(), f)
		revoked <- err
	}()
	time.Sleep(200 * time.Millisecond)
	if err := write(); err != nil {
		t.Fatalf("the transaction's write: %v (after %v)", err, time.Since(start))
	}
	if err := a.CommitTx(tx); err != nil {
		t.Fatal(err)
	}
	if err := <-revoked; err != nil {
		t.Fatalf("revocation: %v", err)
	}
	if d := time.Since(start); d > 900*time.Millisecond {
		t.Errorf("took %v: a deadlock was broken by PostgreSQL's check", d)
	}
}

// A revocation filtered by subject and client takes one lock, the
// subject's: a transaction writing tokens of several subjects and clients
// (a group commit) that holds the client's lock shared and then wants the
// subject's waits for the revocation instead of deadlocking with it, as it
// did when the revocation took the subject's lock and then the client's.
func TestPostgresRevokeBySubjectAndClientDoesNotDeadlock(t *testing.T) {
	dsn := postgresDSN(t)
	a, b := openPostgres(t, dsn), openPostgres(t, dsn)
	now := time.Now().UTC()
	tok := func(sig, sub, client string) storage.Token {
		return storage.Token{Kind: storage.AccessToken, Signature: sig, RequestID: "g-" + sig, ClientID: client, Subject: sub,
			Active: true, RequestedAt: now, ExpiresAt: now.Add(time.Hour), Payload: []byte("{}")}
	}
	if err := b.CreateToken(t.Context(), tok("old", "s", "c")); err != nil {
		t.Fatal(err)
	}
	tx, err := a.BeginTx(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	// The batch's first token holds client c's lock shared; its second
	// wants subject s's.
	if err := a.CreateToken(tx, tok("t1", "x", "c")); err != nil {
		t.Fatal(err)
	}
	revokeDuring(t, a, b, tx, storage.TokenFilter{Subject: "s", ClientID: "c"}, func() error { return a.CreateToken(tx, tok("t2", "s", "d")) })
	if _, err := b.GetToken(t.Context(), storage.AccessToken, "old"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("the revoked token: %v", err)
	}
	for _, sig := range []string{"t1", "t2"} {
		if _, err := b.GetToken(t.Context(), storage.AccessToken, sig); err != nil {
			t.Errorf("token %s: %v", sig, err)
		}
	}
}

// DeleteToken in a transaction takes the token's locks before its row, as
// a device code's poll does in a group commit before it writes the grant's
// tokens: a revocation of the client then waits for the poll, or the poll
// for the revocation, instead of each waiting for the other (the poll for
// the client's lock, the revocation for the row).
func TestPostgresDeleteTokenThenRevokeClientDoesNotDeadlock(t *testing.T) {
	dsn := postgresDSN(t)
	a, b := openPostgres(t, dsn), openPostgres(t, dsn)
	now := time.Now().UTC()
	if err := b.CreateToken(t.Context(), storage.Token{Kind: storage.DeviceCode, Signature: "dev", RequestID: "dev", ClientID: "c",
		Active: true, RequestedAt: now, ExpiresAt: now.Add(time.Hour), Payload: []byte("{}")}); err != nil {
		t.Fatal(err)
	}
	tx, err := a.BeginTx(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if err := a.DeleteToken(tx, storage.DeviceCode, "dev"); err != nil {
		t.Fatal(err)
	}
	revokeDuring(t, a, b, tx, storage.TokenFilter{ClientID: "c"}, func() error {
		return a.CreateToken(tx, storage.Token{Kind: storage.AccessToken, Signature: "at", RequestID: "g", ClientID: "c", Subject: "s",
			Active: true, RequestedAt: now, ExpiresAt: now.Add(time.Hour), Payload: []byte("{}")})
	})
}
