// Package memory is an in-memory implementation of storage.Store for tests and
// local development.
//
// Every method is safe for concurrent use. Values are copied on the way in and
// on the way out, so callers may modify what they pass or receive. A
// transaction started with BeginTx works on a private copy of the data, which
// CommitTx publishes and RollbackTx discards; while it is open, writers outside
// it wait, and readers outside it see the last committed state. Times are
// converted to UTC and kept with full nanosecond precision.
//
// The package does not persist anything, is not shared between processes, and
// favours simplicity over speed: lookups by request ID, subject or client scan
// every token, and each transaction copies the top-level maps. Use storage/sql
// for anything that must survive a restart or serve several instances.
package memory
