package storage

import "testing"

// LockOrder against values PostgreSQL 15's hashtext gave (storage/sql's
// TestPostgresLockOrderIsHashtext compares it with a live server).
func TestLockOrderPinned(t *testing.T) {
	for v, want := range map[string]int32{
		"":                                      -1477818771,
		"a":                                     1075015857,
		"abc":                                   -785388649,
		"hello world!":                          1400155871,
		"héllo":                                 -1340490493,
		"dpop:20518a57e2f2f7092c9238e7d6fbbea1": -1555573430,
		"dpop:6e785fdfb123ff8b192f26cf595f74b1": -1555573430,
	} {
		if got := LockOrder(v); got != want {
			t.Errorf("LockOrder(%q) = %d, want %d", v, got, want)
		}
	}
}
