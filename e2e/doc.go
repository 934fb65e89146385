// Package e2e holds end-to-end tests that run the authserver binary as real
// processes: durability under SIGKILL on SQLite, and several instances on one
// PostgreSQL database. It has no non-test code.
package e2e
