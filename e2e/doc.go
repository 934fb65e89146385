// Package e2e holds end-to-end tests that run the authserver binary as real
// processes: durability under SIGKILL on SQLite, and several instances on one
// PostgreSQL database (tokens, refresh rotation, key rotation, the
// authorization code race and browser sessions shared by instances). It has
// no non-test code.
package e2e
