package authserver

import (
	"math"
	"runtime"
	"runtime/debug"
	"testing"
)

func gcPercent() int {
	p := debug.SetGCPercent(100)
	debug.SetGCPercent(p)
	return p
}

// restoreGC puts the collector's target and memory limit back after a test.
func restoreGC(t *testing.T) {
	p, l := gcPercent(), debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetGCPercent(p); debug.SetMemoryLimit(l) })
}

// With a memory limit, the pacer's collections are off while any hash runs,
// every hash's end collects once, and the previous target is back when the
// last hash ends.
func TestHashGCCollectsAfterEachHash(t *testing.T) {
	restoreGC(t)
	debug.SetGCPercent(150)
	debug.SetMemoryLimit(96 << 20)
	g := newHashGC(false)
	collected := 0
	g.collect = func() { collected++ }
	g.enter()
	if p := gcPercent(); p != -1 {
		t.Fatalf("GC percent while hashing: %d, want -1 (off)", p)
	}
	g.enter()
	g.exit()
	if p := gcPercent(); p != -1 || collected != 1 {
		t.Fatalf("after the first of two hashes: GC percent %d, %d collections; want -1, 1", p, collected)
	}
	g.exit()
	if p := gcPercent(); p != 150 || collected != 2 {
		t.Fatalf("after hashing: GC percent %d, %d collections; want the previous 150, 2", p, collected)
	}
}

// Without a memory limit nothing would bound the heap with the pacer off,
// so the target stays; the hash's garbage is still collected at its end.
func TestHashGCWithoutMemoryLimitKeepsTheTarget(t *testing.T) {
	restoreGC(t)
	debug.SetGCPercent(100)
	debug.SetMemoryLimit(math.MaxInt64)
	g := newHashGC(false)
	collected := 0
	g.collect = func() { collected++ }
	g.enter()
	if p := gcPercent(); p != 100 {
		t.Fatalf("GC percent while hashing without a memory limit: %d, want 100", p)
	}
	g.exit()
	if collected != 1 {
		t.Fatalf("%d collections after a hash, want 1", collected)
	}
}

// GOGC=off is left alone: no forced collection, the target stays off.
// NoHashGC turns the tuning off.
func TestHashGCOff(t *testing.T) {
	restoreGC(t)
	debug.SetMemoryLimit(96 << 20)
	debug.SetGCPercent(-1)
	g := newHashGC(false)
	collected := 0
	g.collect = func() { collected++ }
	g.enter()
	g.exit()
	if p := gcPercent(); p != -1 || collected != 0 {
		t.Errorf("with GOGC=off: GC percent %d, %d collections; want -1, 0", p, collected)
	}
	if newHashGC(true) != nil {
		t.Error("NoHashGC: tuning on")
	}
}

// A password grant runs its hash under the tuning: a collection follows
// the hash, and the target is back to the previous one afterwards.
func TestPasswordGrantCollectsAndRestoresTheGCTarget(t *testing.T) {
	restoreGC(t)
	debug.SetMemoryLimit(96 << 20)
	debug.SetGCPercent(100)
	before := gcPercent()
	env := newTestEnv(t, openMemory(t))
	if env.as.hashGC == nil {
		t.Fatal("the server does not tune the collector while hashing")
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	n := ms.NumForcedGC
	env.passwordToken("alice@example.com", alicePW)
	runtime.ReadMemStats(&ms)
	if ms.NumForcedGC == n {
		t.Fatal("no collection ran at the end of the grant's hash")
	}
	if p := gcPercent(); p != before {
		t.Fatalf("GC percent after a password grant: %d, want %d", p, before)
	}
}
