package authserver

import (
	"runtime/debug"
	"testing"
)

func gcPercent() int {
	p := debug.SetGCPercent(100)
	debug.SetGCPercent(p)
	return p
}

// While any hash runs, the collector's target is the hashing one; when the
// last ends, the previous target is back.
func TestHashGCLowersTheTargetWhileHashing(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	debug.SetGCPercent(150)
	g := newHashGC(25)
	g.enter()
	if p := gcPercent(); p != 25 {
		t.Fatalf("GC percent while hashing: %d, want 25", p)
	}
	g.enter()
	g.exit()
	if p := gcPercent(); p != 25 {
		t.Fatalf("GC percent while a second hash still runs: %d, want 25", p)
	}
	g.exit()
	if p := gcPercent(); p != 150 {
		t.Fatalf("GC percent after hashing: %d, want the previous 150", p)
	}
}

// GOGC=off, a target already as low, or a negative setting leave the
// collector alone.
func TestHashGCLeavesALowerOrDisabledTargetAlone(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	for _, c := range []struct{ base, percent int }{{-1, 25}, {20, 25}, {100, -1}} {
		debug.SetGCPercent(c.base)
		g := newHashGC(c.percent)
		g.enter()
		if p := gcPercent(); p != c.base {
			t.Errorf("base %d, setting %d: GC percent while hashing %d, want %d", c.base, c.percent, p, c.base)
		}
		g.exit()
	}
}

// A password grant runs its hash under the tuning: the target is back to
// the previous one afterwards.
func TestPasswordGrantRestoresTheGCTarget(t *testing.T) {
	before := gcPercent()
	env := newTestEnv(t, openMemory(t))
	if env.as.hashGC == nil && before > defaultHashGCPercent {
		t.Fatal("the server does not tune the collector while hashing")
	}
	env.passwordToken("alice@example.com", alicePW)
	if p := gcPercent(); p != before {
		t.Fatalf("GC percent after a password grant: %d, want %d", p, before)
	}
}
