package sql_test

import (
	"context"
	"testing"
	"time"

	"github.com/oauthkit/authserver/storage"
	sqlstore "github.com/oauthkit/authserver/storage/sql"
)

// checkLazySetting begins a lazy transaction, checks that query reads lazy
// in it and durable outside it (before, after a commit, after a rollback
// and after a cancelled transaction), and that it gives its connection
// back.
func checkLazySetting(t *testing.T, s *sqlstore.Store, query, durable, lazy string) {
	t.Helper()
	ctx := t.Context()
	setting := func(ctx context.Context, want, when string) {
		t.Helper()
		got, err := sqlstore.WriterSetting(ctx, s, query)
		if err != nil {
			t.Fatalf("%s %s: %v", query, when, err)
		}
		if got != want {
			t.Errorf("%s %s = %q, want %q", query, when, got, want)
		}
	}
	setting(ctx, durable, "before any lazy transaction")
	for _, end := range []string{"commit", "rollback", "cancel"} {
		cctx, cancel := context.WithCancel(ctx)
		tx, err := s.BeginLazyTx(cctx)
		if err != nil {
			t.Fatalf("BeginLazyTx: %v", err)
		}
		setting(tx, lazy, "inside a lazy transaction")
		if _, err := s.UpdateAttempts(tx, "lazy-"+end, func(a storage.Attempts) (storage.Attempts, error) { a.Failures = 3; return a, nil }); err != nil {
			t.Fatalf("UpdateAttempts: %v", err)
		}
		switch end {
		case "commit":
			err = s.CommitTx(tx)
		case "rollback":
			err = s.RollbackTx(tx)
		case "cancel":
			cancel()
			_ = s.CommitTx(tx)
		}
		cancel()
		if err != nil {
			t.Fatalf("%s: %v", end, err)
		}
		// A cancelled transaction is rolled back by database/sql in the
		// background: give it a moment.
		for i := 0; i < 100 && sqlstore.WriterInUse(s) != 0; i++ {
			time.Sleep(10 * time.Millisecond)
		}
		if n := sqlstore.WriterInUse(s); n != 0 {
			t.Fatalf("after a lazy transaction's %s, %d write connections are still in use", end, n)
		}
		setting(ctx, durable, "after a lazy transaction's "+end)
		// A transaction of its own (not lazy) sees the durable setting too.
		tx, err = s.BeginTx(ctx)
		if err != nil {
			t.Fatalf("BeginTx: %v", err)
		}
		setting(tx, durable, "in a transaction after a lazy transaction's "+end)
		if err := s.RollbackTx(tx); err != nil {
			t.Fatal(err)
		}
	}
}

// An updater that panics inside a lazy transaction of its own does not
// keep SQLite's only write connection (nor its lazy setting).
func TestSQLiteLazyTransactionGivesItsConnectionBackOnPanic(t *testing.T) {
	s := openSQLite(t, tempDB(t))
	func() {
		defer func() { _ = recover() }()
		_, _ = s.UpdateAttempts(t.Context(), "k", func(storage.Attempts) (storage.Attempts, error) { panic("boom") })
	}()
	if n := sqlstore.WriterInUse(s); n != 0 {
		t.Fatalf("%d write connections in use after a panic", n)
	}
	if got, err := sqlstore.WriterSetting(t.Context(), s, `PRAGMA synchronous`); err != nil || got != "2" {
		t.Fatalf("PRAGMA synchronous after a panic = %q, %v; want 2", got, err)
	}
}

func TestSQLiteLazyTransactionsSkipOnlyTheirOwnSync(t *testing.T) {
	// synchronous: 1 is NORMAL (the log is synced at checkpoints), 2 FULL.
	checkLazySetting(t, openSQLite(t, tempDB(t)), `PRAGMA synchronous`, "2", "1")
}

func TestPostgresLazyTransactionsSkipOnlyTheirOwnSync(t *testing.T) {
	s := openPostgres(t, postgresDSN(t))
	checkLazySetting(t, s, `SHOW synchronous_commit`, "on", "off")
}
