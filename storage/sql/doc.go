// Package sql implements storage.Store on SQLite (modernc.org/sqlite, pure
// Go, so CGO_ENABLED=0 builds keep it) and on PostgreSQL (pgx v5 through
// database/sql). Both dialects share one Store type and, where they agree,
// one set of SQL statements; a small dialect value holds the differences.
//
// # Opening and migrations
//
// Open picks the dialect from the DSN; OpenSQLite and OpenPostgres take
// Options (pool size, connection lifetime, PostgreSQL statement timeout,
// SQLite busy timeout). Each applies the embedded, numbered, per-dialect
// migrations (migrations/<dialect>/NNNN_name.sql) in one transaction,
// recording them in schema_migrations; on PostgreSQL under an advisory lock
// keyed by the current schema, so instances starting together do not race.
// Store.Migrate runs them on demand, and Ping fails until all are applied.
//
// # Schema
//
// Times are stored in UTC with microsecond precision: INTEGER Unix
// microseconds on SQLite, timestamptz on PostgreSQL; they read back in UTC.
// Email uniqueness is a unique index on a lower-cased copy of the email.
// Tokens of both kinds share one table keyed by (kind, signature) and indexed
// by request_id, subject, client_id and expires_at. String lists are JSON
// text; payloads are BLOB/bytea. The key set is one row (version, JSON keys);
// attempt counters are one row per key.
//
// # Transactions and concurrency
//
// BeginTx puts a *sql.Tx in the returned context; every method uses it when
// present. UpdateUser, UpdateClient, UpdateKeys and UpdateAttempts read the
// row with SELECT ... FOR UPDATE (PostgreSQL) or under BEGIN IMMEDIATE
// (SQLite), in the caller's transaction or a short one of their own that is
// retried on ErrConflict. DeactivateToken is a single conditional UPDATE.
//
// SQLite serialises writers: one write connection per Store, and BEGIN
// IMMEDIATE (plus busy_timeout) between processes. PostgreSQL runs at READ
// COMMITTED, where a DELETE does not see rows that a concurrent transaction
// inserts and commits after the DELETE began. A revocation (DeleteTokens of
// both kinds in one transaction, or RevokeTokens) racing a refresh rotation
// (DeactivateToken of the old refresh token, then CreateToken of the new
// pair, in one transaction) could therefore leave the new pair alive. To
// prevent that, the store takes transaction-scoped advisory locks
// (pg_advisory_xact_lock, keyed by hashtext of the value) before it writes:
//
//   - Every write to a grant's tokens first takes the grant's lock
//     (request_id) exclusively, then the lock of its subject and of its
//     client shared, in that order: CreateToken (and CreateTokenIfAbsent)
//     in the same statement as its INSERT; DeleteTokens and DeactivateTokens in a statement of their own in
//     the same transaction (their own if the caller has none);
//     DeactivateToken, when inside a transaction, by looking the token up.
//   - RevokeTokens takes one lock exclusively, then deletes: the subject's
//     when the filter names one, else the client's; with a grant (RequestID)
//     in the filter that grant's lock instead, as a grant's writes do. Every
//     writer of a matching token takes that lock too, and a single
//     exclusive lock cannot close a cycle with a transaction that holds
//     several subjects' and clients' locks shared.
//
// Rotation and revocation of one grant are thus serialised: the later one
// sees everything the earlier one committed, so either the rotation finds its
// refresh token gone (ErrNotFound) or the revocation deletes the new pair.
// Shared locks never wait for each other, so token issuance for one client or
// subject is not serialised. DeactivateToken outside a transaction, DeleteToken
// and GarbageCollect insert nothing and need no lock. Hash collisions only
// make unrelated grants wait for each other. A caller that writes several
// grants in one transaction (the authorization server's group commit) takes
// their locks in storage.LockOrder order, which is hashtext computed in Go,
// so that two such transactions cannot deadlock on them.
//
// # What it does not do
//
// It does not retry the caller's transactions (ErrConflict is returned for
// them to retry), does not run garbage collection on its own, does not
// support SQLite in-memory databases (the read and write pools would see
// different databases), and does not roll back migrations.
package sql
