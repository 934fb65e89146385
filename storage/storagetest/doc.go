// Package storagetest is the conformance suite every storage.Store backend
// runs, in the manner of net/http/httptest: a test-helper package imported by
// the backends' own tests.
//
// Run covers the single-handle contract (CRUD, sentinel errors, case-insensitive
// email lookup, UTC time round trips with at least microsecond precision,
// byte-exact payloads, copies on the way in and out, compare-and-swap
// deactivation, bulk revocation, keys, attempt counters, garbage collection and
// Ping). RunTransactions covers BeginTx, CommitTx and RollbackTx.
// RunMultiInstance races two handles on one database, as two server instances
// sharing one PostgreSQL would, and checks that nothing is lost and that no
// token outlives a revocation.
//
// Every subtest calls open itself and relies on open to register the store's
// cleanup with t.Cleanup. Beyond storage.go, the suite pins these contracts:
// DeleteUser, DeleteClient and DeleteToken return ErrNotFound for a missing
// record; DeleteAttempts does not; UpdateUser and UpdateClient return
// ErrNotFound for a missing record and an error when fn changes the ID;
// ListUsers and ListClients order by ID; RevokeTokens with an empty filter
// fails; DeactivateTokens counts only the records it changed; CommitTx
// and RollbackTx fail on a context without a transaction, and a second
// CommitTx fails. Timestamps need only survive to the microsecond.
//
// The package imports only the standard library and storage; it knows nothing
// of fosite or of any backend.
package storagetest
