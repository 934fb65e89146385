package storagetest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/oauthkit/authserver/storage"
)

// RunTransactions runs the BeginTx, CommitTx and RollbackTx conformance
// tests. open has the same contract as for Run.
func RunTransactions(t *testing.T, open func(t *testing.T) storage.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s storage.Store)
	}{
		{"CommitPersistsEveryWrite", testCommit},
		{"RollbackUndoesCreates", testRollbackCreates},
		{"RollbackUndoesDeletes", testRollbackDeletes},
		{"RollbackUndoesDeactivations", testRollbackDeactivations},
		{"RollbackUndoesUpdates", testRollbackUpdates},
		{"WritesAreVisibleInsideButNotOutsideBeforeCommit", testTxVisibility},
		{"NestedBeginTxFails", testNestedTx},
		{"CommitOrRollbackWithoutTransactionFails", testNoTx},
		{"TransactionEndsOnce", testTxEndsOnce},
		{"DerivedContextCarriesTheTransaction", testDerivedContext},
		{"UpdaterErrorInsideTransactionKeepsItUsable", testUpdaterErrorInTx},
		{"CreateTokenIfAbsentOfATakenKeyKeepsTheTransactionUsable", testCreateTokenIfAbsentInTx},
		{"LazyTransactionCommitsRollsBackAndEndsOnce", testLazyTx},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, open(t)) })
	}
}

// fixture is the committed state the rollback tests start from.
func fixture(t *testing.T, s storage.Store) {
	t.Helper()
	ctx := t.Context()
	must(t, "CreateUser", s.CreateUser(ctx, newUser("u1", "a@example.com")))
	must(t, "CreateClient", s.CreateClient(ctx, newClient("c1")))
	for _, tok := range []storage.Token{
		newToken(storage.AccessToken, "a1", "req-1", "c1", "u1"),
		newToken(storage.RefreshToken, "r1", "req-1", "c1", "u1"),
		newToken(storage.AccessToken, "a2", "req-2", "c1", "u2"),
		newToken(storage.RefreshToken, "r2", "req-2", "c1", "u2"),
	} {
		must(t, "CreateToken", s.CreateToken(ctx, tok))
	}
	_, err := s.UpdateKeys(ctx, func(ks storage.KeySet) (storage.KeySet, error) {
		ks.Keys = []storage.SigningKey{{ID: "k1", State: storage.KeyActive}}
		return ks, nil
	})
	must(t, "UpdateKeys", err)
	_, err = s.UpdateAttempts(ctx, "k", func(a storage.Attempts) (storage.Attempts, error) {
		a.Failures, a.Last = 1, at(0)
		return a, nil
	})
	must(t, "UpdateAttempts", err)
}

// checkFixture fails unless the store holds exactly what fixture wrote.
func checkFixture(t *testing.T, s storage.Store) {
	t.Helper()
	ctx := t.Context()
	u, err := s.GetUser(ctx, "u1")
	must(t, "GetUser", err)
	checkUser(t, u, newUser("u1", "a@example.com"))
	if _, err := s.GetUserByEmail(ctx, "a@example.com"); err != nil {
		t.Errorf("GetUserByEmail: %v", err)
	}
	users, err := s.ListUsers(ctx)
	must(t, "ListUsers", err)
	checkStrings(t, "users", ids(users, func(u storage.User) string { return u.ID }), []string{"u1"})
	c, err := s.GetClient(ctx, "c1")
	must(t, "GetClient", err)
	checkClient(t, c, newClient("c1"))
	clients, err := s.ListClients(ctx)
	must(t, "ListClients", err)
	checkStrings(t, "clients", ids(clients, func(c storage.Client) string { return c.ID }), []string{"c1"})
	for _, want := range []storage.Token{
		newToken(storage.AccessToken, "a1", "req-1", "c1", "u1"),
		newToken(storage.RefreshToken, "r1", "req-1", "c1", "u1"),
		newToken(storage.AccessToken, "a2", "req-2", "c1", "u2"),
		newToken(storage.RefreshToken, "r2", "req-2", "c1", "u2"),
	} {
		got, ok := tokenExists(t, s, want.Kind, want.Signature)
		if !ok {
			t.Errorf("token %s %s is gone", want.Kind, want.Signature)
			continue
		}
		checkToken(t, got, want)
	}
	if _, ok := tokenExists(t, s, storage.AccessToken, "new"); ok {
		t.Error("a token created in a rolled-back transaction exists")
	}
	ks, err := s.GetKeys(ctx)
	must(t, "GetKeys", err)
	if ks.Version != 1 || len(ks.Keys) != 1 || ks.Keys[0].ID != "k1" {
		t.Errorf("key set = %+v, want version 1 with k1", ks)
	}
	if a := peekAttempts(t, s, "k"); a.Failures != 1 {
		t.Errorf("attempts = %d, want 1", a.Failures)
	}
	if a := peekAttempts(t, s, "k2"); a.Failures != 0 {
		t.Errorf("attempts k2 = %d, want 0", a.Failures)
	}
}

func testCommit(t *testing.T, s storage.Store) {
	ctx := t.Context()
	fixture(t, s)
	tx, err := s.BeginTx(ctx)
	must(t, "BeginTx", err)
	must(t, "CreateUser", s.CreateUser(tx, newUser("u2", "b@example.com")))
	must(t, "CreateClient", s.CreateClient(tx, newClient("c2")))
	must(t, "CreateToken", s.CreateToken(tx, newToken(storage.AccessToken, "new", "req-3", "c2", "u2")))
	must(t, "DeleteToken", s.DeleteToken(tx, storage.AccessToken, "a1"))
	must(t, "DeactivateToken", s.DeactivateToken(tx, storage.RefreshToken, "r1"))
	_, err = s.DeleteTokens(tx, storage.AccessToken, "req-2")
	must(t, "DeleteTokens", err)
	_, err = s.UpdateUser(tx, "u1", func(u storage.User) (storage.User, error) { u.Name = "changed"; return u, nil })
	must(t, "UpdateUser", err)
	_, err = s.UpdateKeys(tx, func(ks storage.KeySet) (storage.KeySet, error) { ks.Keys = nil; return ks, nil })
	must(t, "UpdateKeys", err)
	_, err = s.UpdateAttempts(tx, "k", func(a storage.Attempts) (storage.Attempts, error) { a.Failures = 7; return a, nil })
	must(t, "UpdateAttempts", err)
	must(t, "CommitTx", s.CommitTx(tx))

	if _, err := s.GetUser(ctx, "u2"); err != nil {
		t.Errorf("user created in the transaction: %v", err)
	}
	if _, err := s.GetClient(ctx, "c2"); err != nil {
		t.Errorf("client created in the transaction: %v", err)
	}
	if _, ok := tokenExists(t, s, storage.AccessToken, "new"); !ok {
		t.Error("token created in the transaction is missing")
	}
	if _, ok := tokenExists(t, s, storage.AccessToken, "a1"); ok {
		t.Error("token deleted in the transaction exists")
	}
	if _, ok := tokenExists(t, s, storage.AccessToken, "a2"); ok {
		t.Error("token deleted by request ID in the transaction exists")
	}
	if tok, _ := tokenExists(t, s, storage.RefreshToken, "r1"); tok.Active {
		t.Error("token deactivated in the transaction is active")
	}
	if u, _ := s.GetUser(ctx, "u1"); u.Name != "changed" {
		t.Errorf("user name = %q, want the update made in the transaction", u.Name)
	}
	if ks, _ := s.GetKeys(ctx); ks.Version != 2 || len(ks.Keys) != 0 {
		t.Errorf("key set = %+v, want the update made in the transaction", ks)
	}
	if a := peekAttempts(t, s, "k"); a.Failures != 7 {
		t.Errorf("attempts = %d, want 7", a.Failures)
	}
}

// rollback runs fn in a transaction, rolls it back and checks the fixture.
func rollback(t *testing.T, s storage.Store, fn func(tx context.Context)) {
	t.Helper()
	fixture(t, s)
	tx, err := s.BeginTx(t.Context())
	must(t, "BeginTx", err)
	fn(tx)
	must(t, "RollbackTx", s.RollbackTx(tx))
	checkFixture(t, s)
}

func testRollbackCreates(t *testing.T, s storage.Store) {
	rollback(t, s, func(tx context.Context) {
		must(t, "CreateUser", s.CreateUser(tx, newUser("u2", "b@example.com")))
		must(t, "CreateClient", s.CreateClient(tx, newClient("c2")))
		must(t, "CreateToken", s.CreateToken(tx, newToken(storage.AccessToken, "new", "req-1", "c1", "u1")))
		_, err := s.UpdateAttempts(tx, "k2", func(a storage.Attempts) (storage.Attempts, error) {
			a.Failures = 1
			return a, nil
		})
		must(t, "UpdateAttempts of a new key", err)
	})
}

func testRollbackDeletes(t *testing.T, s storage.Store) {
	rollback(t, s, func(tx context.Context) {
		must(t, "DeleteUser", s.DeleteUser(tx, "u1"))
		must(t, "DeleteClient", s.DeleteClient(tx, "c1"))
		must(t, "DeleteToken", s.DeleteToken(tx, storage.AccessToken, "a1"))
		n, err := s.DeleteTokens(tx, storage.RefreshToken, "req-1")
		must(t, "DeleteTokens", err)
		if n != 1 {
			t.Errorf("DeleteTokens = %d, want 1", n)
		}
		n, err = s.RevokeTokens(tx, storage.TokenFilter{Subject: "u2"})
		must(t, "RevokeTokens", err)
		if n != 2 {
			t.Errorf("RevokeTokens = %d, want 2", n)
		}
		must(t, "DeleteAttempts", s.DeleteAttempts(tx, "k"))
		if _, err := s.GetUser(tx, "u1"); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("GetUser inside the transaction after DeleteUser: %v, want ErrNotFound", err)
		}
	})
}

func testRollbackDeactivations(t *testing.T, s storage.Store) {
	rollback(t, s, func(tx context.Context) {
		must(t, "DeactivateToken", s.DeactivateToken(tx, storage.RefreshToken, "r1"))
		wantErr(t, "DeactivateToken twice inside the transaction",
			s.DeactivateToken(tx, storage.RefreshToken, "r1"), storage.ErrNotFound)
		n, err := s.DeactivateTokens(tx, storage.RefreshToken, "req-2")
		must(t, "DeactivateTokens", err)
		if n != 1 {
			t.Errorf("DeactivateTokens = %d, want 1", n)
		}
	})
}

func testRollbackUpdates(t *testing.T, s storage.Store) {
	rollback(t, s, func(tx context.Context) {
		_, err := s.UpdateUser(tx, "u1", func(u storage.User) (storage.User, error) {
			u.Email, u.Name, u.Roles = "z@example.com", "changed", nil
			return u, nil
		})
		must(t, "UpdateUser", err)
		_, err = s.UpdateClient(tx, "c1", func(c storage.Client) (storage.Client, error) {
			c.SecretHashes, c.Public = nil, true
			return c, nil
		})
		must(t, "UpdateClient", err)
		_, err = s.UpdateKeys(tx, func(ks storage.KeySet) (storage.KeySet, error) {
			ks.Keys = append(ks.Keys, storage.SigningKey{ID: "k2"})
			return ks, nil
		})
		must(t, "UpdateKeys", err)
		_, err = s.UpdateAttempts(tx, "k", func(a storage.Attempts) (storage.Attempts, error) {
			a.Failures = 99
			return a, nil
		})
		must(t, "UpdateAttempts", err)
	})
}

func testTxVisibility(t *testing.T, s storage.Store) {
	ctx := t.Context()
	fixture(t, s)
	tx, err := s.BeginTx(ctx)
	must(t, "BeginTx", err)
	defer func() { _ = s.RollbackTx(tx) }()

	must(t, "CreateToken", s.CreateToken(tx, newToken(storage.AccessToken, "new", "req-1", "c1", "u1")))
	must(t, "DeactivateToken", s.DeactivateToken(tx, storage.RefreshToken, "r1"))
	_, err = s.UpdateUser(tx, "u1", func(u storage.User) (storage.User, error) {
		u.Email = "New@example.com"
		return u, nil
	})
	must(t, "UpdateUser", err)
	must(t, "CreateUser", s.CreateUser(tx, newUser("u2", "b@example.com")))
	ks, err := s.UpdateKeys(tx, func(ks storage.KeySet) (storage.KeySet, error) { return ks, nil })
	must(t, "UpdateKeys", err)

	// Inside: every write is visible.
	if _, err := s.GetToken(tx, storage.AccessToken, "new"); err != nil {
		t.Errorf("GetToken inside the transaction: %v", err)
	}
	if tok, err := s.GetToken(tx, storage.RefreshToken, "r1"); err != nil || tok.Active {
		t.Errorf("GetToken inside the transaction: active=%v err=%v, want inactive", tok.Active, err)
	}
	if u, err := s.GetUserByEmail(tx, "new@example.com"); err != nil || u.ID != "u1" {
		t.Errorf("GetUserByEmail inside the transaction: %q %v, want u1", u.ID, err)
	}
	if users, err := s.ListUsers(tx); err != nil || len(users) != 2 {
		t.Errorf("ListUsers inside the transaction: %d users (%v), want 2", len(users), err)
	}
	if got, err := s.GetKeys(tx); err != nil || got.Version != ks.Version {
		t.Errorf("GetKeys inside the transaction: version %d (%v), want %d", got.Version, err, ks.Version)
	}

	// Outside: nothing is, until commit.
	if _, ok := tokenExists(t, s, storage.AccessToken, "new"); ok {
		t.Error("an uncommitted token is visible outside the transaction")
	}
	if tok, _ := tokenExists(t, s, storage.RefreshToken, "r1"); !tok.Active {
		t.Error("an uncommitted deactivation is visible outside the transaction")
	}
	if _, err := s.GetUserByEmail(ctx, "new@example.com"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("an uncommitted email change is visible outside the transaction (err %v)", err)
	}
	if got, err := s.GetKeys(ctx); err != nil || got.Version != 1 {
		t.Errorf("GetKeys outside the transaction: version %d (%v), want 1", got.Version, err)
	}

	must(t, "CommitTx", s.CommitTx(tx))
	if _, ok := tokenExists(t, s, storage.AccessToken, "new"); !ok {
		t.Error("the committed token is not visible")
	}
}

func testNestedTx(t *testing.T, s storage.Store) {
	ctx := t.Context()
	tx, err := s.BeginTx(ctx)
	must(t, "BeginTx", err)
	if _, err := s.BeginTx(tx); err == nil {
		t.Error("BeginTx on a context that carries a transaction did not fail")
	}
	// The outer transaction is unaffected.
	must(t, "CreateToken", s.CreateToken(tx, newToken(storage.AccessToken, "a", "req", "c1", "u1")))
	must(t, "CommitTx", s.CommitTx(tx))
	if _, ok := tokenExists(t, s, storage.AccessToken, "a"); !ok {
		t.Error("the outer transaction's write is missing after commit")
	}
}

func testNoTx(t *testing.T, s storage.Store) {
	if err := s.CommitTx(t.Context()); err == nil {
		t.Error("CommitTx without a transaction did not fail")
	}
	if err := s.RollbackTx(t.Context()); err == nil {
		t.Error("RollbackTx without a transaction did not fail")
	}
}

func testTxEndsOnce(t *testing.T, s storage.Store) {
	tx, err := s.BeginTx(t.Context())
	must(t, "BeginTx", err)
	must(t, "CommitTx", s.CommitTx(tx))
	if err := s.CommitTx(tx); err == nil {
		t.Error("a second CommitTx did not fail")
	}
	if err := s.RollbackTx(tx); err == nil {
		t.Error("RollbackTx after CommitTx did not fail")
	}
	// The store remains usable, including for a new transaction.
	tx, err = s.BeginTx(t.Context())
	must(t, "BeginTx after the first ended", err)
	must(t, "RollbackTx", s.RollbackTx(tx))
}

type ctxKey struct{}

func testDerivedContext(t *testing.T, s storage.Store) {
	tx, err := s.BeginTx(t.Context())
	must(t, "BeginTx", err)
	derived, cancel := context.WithTimeout(context.WithValue(tx, ctxKey{}, "v"), time.Minute)
	defer cancel()
	must(t, "CreateToken", s.CreateToken(derived, newToken(storage.AccessToken, "a", "req", "c1", "u1")))
	if _, err := s.GetToken(tx, storage.AccessToken, "a"); err != nil {
		t.Errorf("a write through a derived context is not in the transaction: %v", err)
	}
	must(t, "RollbackTx", s.RollbackTx(tx))
	if _, ok := tokenExists(t, s, storage.AccessToken, "a"); ok {
		t.Error("a write through a derived context survived the rollback")
	}
}

func testUpdaterErrorInTx(t *testing.T, s storage.Store) {
	ctx := t.Context()
	fixture(t, s)
	tx, err := s.BeginTx(ctx)
	must(t, "BeginTx", err)
	errBoom := errors.New("boom")
	_, err = s.UpdateKeys(tx, func(ks storage.KeySet) (storage.KeySet, error) { return ks, errBoom })
	wantErr(t, "UpdateKeys", err, errBoom)
	_, err = s.UpdateUser(tx, "u1", func(u storage.User) (storage.User, error) { return u, errBoom })
	wantErr(t, "UpdateUser", err, errBoom)
	_, err = s.UpdateAttempts(tx, "k2", func(a storage.Attempts) (storage.Attempts, error) { return a, errBoom })
	wantErr(t, "UpdateAttempts", err, errBoom)
	wantErr(t, "DeactivateToken of a missing token", s.DeactivateToken(tx, storage.RefreshToken, "none"), storage.ErrNotFound)
	must(t, "CreateToken after the failures", s.CreateToken(tx, newToken(storage.AccessToken, "after", "req", "c1", "u1")))
	must(t, "CommitTx", s.CommitTx(tx))
	if _, ok := tokenExists(t, s, storage.AccessToken, "after"); !ok {
		t.Error("the write after the updater errors was lost")
	}
	if ks, _ := s.GetKeys(ctx); ks.Version != 1 {
		t.Errorf("key set version %d, want 1", ks.Version)
	}
	if a := peekAttempts(t, s, "k2"); a.Failures != 0 || !a.Last.IsZero() {
		t.Errorf("attempts k2 = %+v, want a missing counter", a)
	}
}

// testCreateTokenIfAbsentInTx: a taken key, committed or written earlier in
// the same transaction, stores nothing and leaves the transaction usable
// (on PostgreSQL a failed INSERT would abort it), so the writes before and
// after it commit.
func testCreateTokenIfAbsentInTx(t *testing.T, s storage.Store) {
	ctx := t.Context()
	must(t, "CreateToken", s.CreateToken(ctx, newToken(storage.UsedJTI, "old", "old", "c1", "")))
	tx, err := s.BeginTx(ctx)
	must(t, "BeginTx", err)
	for _, c := range []struct {
		sig  string
		want bool
	}{{"new", true}, {"old", false}, {"new", false}} {
		created, err := s.CreateTokenIfAbsent(tx, newToken(storage.UsedJTI, c.sig, c.sig, "c1", ""))
		must(t, "CreateTokenIfAbsent "+c.sig, err)
		if created != c.want {
			t.Errorf("CreateTokenIfAbsent %s in the transaction: %v, want %v", c.sig, created, c.want)
		}
	}
	must(t, "CreateToken after a taken key", s.CreateToken(tx, newToken(storage.AccessToken, "at", "req-1", "c1", "u1")))
	must(t, "CommitTx", s.CommitTx(tx))
	for _, k := range []struct {
		kind storage.TokenKind
		sig  string
	}{{storage.UsedJTI, "new"}, {storage.UsedJTI, "old"}, {storage.AccessToken, "at"}} {
		if _, ok := tokenExists(t, s, k.kind, k.sig); !ok {
			t.Errorf("%s %s missing after commit", k.kind, k.sig)
		}
	}
}

// testLazyTx checks that a lazy transaction is a transaction like any
// other: its writes are seen after the commit and not after a rollback, it
// ends once, it does not nest, and the store goes on working after it.
func testLazyTx(t *testing.T, s storage.Store) {
	lb, ok := s.(storage.LazyTransactor)
	if !ok {
		t.Skip("the store has no lazy transactions")
	}
	ctx := t.Context()
	fixture(t, s)
	bump := func(tx context.Context, key string, n int) {
		t.Helper()
		_, err := s.UpdateAttempts(tx, key, func(a storage.Attempts) (storage.Attempts, error) { a.Failures = n; return a, nil })
		must(t, "UpdateAttempts", err)
	}

	tx, err := lb.BeginLazyTx(ctx)
	must(t, "BeginLazyTx", err)
	if _, err := lb.BeginLazyTx(tx); err == nil {
		t.Error("BeginLazyTx on a context that carries a transaction did not fail")
	}
	if _, err := s.BeginTx(tx); err == nil {
		t.Error("BeginTx on a context that carries a lazy transaction did not fail")
	}
	bump(tx, "k", 9)
	must(t, "DeleteAttempts", s.DeleteAttempts(tx, "k2"))
	must(t, "RollbackTx", s.RollbackTx(tx))
	checkFixture(t, s)
	if err := s.CommitTx(tx); err == nil {
		t.Error("CommitTx after RollbackTx did not fail")
	}

	tx, err = lb.BeginLazyTx(ctx)
	must(t, "BeginLazyTx", err)
	bump(tx, "k", 5)
	bump(tx, "k3", 2)
	must(t, "CommitTx", s.CommitTx(tx))
	if err := s.CommitTx(tx); err == nil {
		t.Error("a second CommitTx did not fail")
	}
	if a := peekAttempts(t, s, "k"); a.Failures != 5 {
		t.Errorf("attempts k = %d after the lazy commit, want 5", a.Failures)
	}
	if a := peekAttempts(t, s, "k3"); a.Failures != 2 {
		t.Errorf("attempts k3 = %d after the lazy commit, want 2", a.Failures)
	}

	// A lazy transaction whose context is cancelled leaves the store usable.
	cctx, cancel := context.WithCancel(ctx)
	tx, err = lb.BeginLazyTx(cctx)
	must(t, "BeginLazyTx", err)
	bump(tx, "k", 11)
	cancel()
	_ = s.CommitTx(tx)
	tx, err = s.BeginTx(ctx)
	must(t, "BeginTx after a cancelled lazy transaction", err)
	bump(tx, "k4", 1)
	must(t, "CommitTx", s.CommitTx(tx))
	if a := peekAttempts(t, s, "k4"); a.Failures != 1 {
		t.Errorf("attempts k4 = %d, want 1", a.Failures)
	}
}
