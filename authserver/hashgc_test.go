package authserver

import (
	"math"
	"runtime"
	"runtime/debug"
	"testing"
	"time"
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

// newTestHashGC is a hashGC with 19 MiB buffers whose collections are
// counted and whose live heap is *live.
func newTestHashGC(live *uint64) (*hashGC, *int) {
	g := newHashGC(false, 19456)
	n := new(int)
	g.collect = func() { *n++ }
	g.live = func() uint64 { return *live }
	return g, n
}

// With a memory limit and a small live heap, the pacer's collections are
// off while any hash runs, every hash's end collects once, and the
// previous target is back when the last hash ends.
func TestHashGCCollectsAfterEachHash(t *testing.T) {
	restoreGC(t)
	debug.SetGCPercent(150)
	debug.SetMemoryLimit(96 << 20)
	live := uint64(45 << 20)
	g, collected := newTestHashGC(&live)
	g.enter()
	if p := gcPercent(); p != -1 {
		t.Fatalf("GC percent while hashing: %d, want -1 (off)", p)
	}
	g.enter()
	g.exit()
	if p := gcPercent(); p != -1 || *collected != 1 {
		t.Fatalf("after the first of two hashes: GC percent %d, %d collections; want -1, 1", p, *collected)
	}
	g.exit()
	if p := gcPercent(); p != 150 || *collected != 2 {
		t.Fatalf("after hashing: GC percent %d, %d collections; want the previous 150, 2", p, *collected)
	}
}

// Over a live heap of more than liveFactor buffers, or without a memory
// limit, the pacer runs at lowGCPercent and nothing is forced; a heap that
// grows past the line under a steady load switches the mode.
func TestHashGCLargeHeapOrNoLimitUsesThePacer(t *testing.T) {
	restoreGC(t)
	debug.SetGCPercent(100)
	debug.SetMemoryLimit(math.MaxInt64)
	live := uint64(10 << 20)
	g, collected := newTestHashGC(&live)
	g.enter()
	if p := gcPercent(); p != lowGCPercent {
		t.Fatalf("GC percent while hashing without a memory limit: %d, want %d", p, lowGCPercent)
	}
	g.exit()
	if p := gcPercent(); p != 100 || *collected != 0 {
		t.Fatalf("after hashing without a memory limit: GC percent %d, %d collections; want 100, 0", p, *collected)
	}

	debug.SetMemoryLimit(96 << 20)
	g.enter()
	g.enter()
	if p := gcPercent(); p != -1 {
		t.Fatalf("GC percent with a small heap: %d, want -1", p)
	}
	live = 5 * 19456 << 10 // the heap grew past liveFactor buffers
	g.exit()
	if p := gcPercent(); p != lowGCPercent || *collected != 1 {
		t.Fatalf("after the heap grew: GC percent %d, %d collections; want %d, 1", p, *collected, lowGCPercent)
	}
	g.exit()
	if p := gcPercent(); p != 100 || *collected != 1 {
		t.Fatalf("after hashing: GC percent %d, %d collections; want 100, 1", p, *collected)
	}
}

// GOGC=off is left alone: no forced collection, the target stays off.
// NoHashGC turns the tuning off.
func TestHashGCOff(t *testing.T) {
	restoreGC(t)
	debug.SetMemoryLimit(96 << 20)
	debug.SetGCPercent(-1)
	live := uint64(0)
	g, collected := newTestHashGC(&live)
	g.enter()
	g.exit()
	if p := gcPercent(); p != -1 || *collected != 0 {
		t.Errorf("with GOGC=off: GC percent %d, %d collections; want -1, 0", p, *collected)
	}
	if newHashGC(true, 19456) != nil {
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
	// The tests' argon2 memory is tiny next to the test binary's heap,
	// which would choose the pacer; a live heap of nothing chooses the
	// forced collection that the default parameters get.
	env.as.hashGC.live = func() uint64 { return 0 }
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	n := ms.NumForcedGC
	env.passwordToken("alice@example.com", alicePW)
	// The slot is given back, after the collection, in the background.
	for i := 0; i < 500 && len(env.as.hashSem) > 0; i++ {
		time.Sleep(10 * time.Millisecond)
	}
	if len(env.as.hashSem) > 0 {
		t.Fatal("the hashing slot was not given back")
	}
	runtime.ReadMemStats(&ms)
	if ms.NumForcedGC == n {
		t.Fatal("no collection ran at the end of the grant's hash")
	}
	if p := gcPercent(); p != before {
		t.Fatalf("GC percent after a password grant: %d, want %d", p, before)
	}
}

// A hash's slot is given back only after its collection, but the request
// does not wait for that: release returns while the collection runs.
func TestHashSlotGivenBackAfterTheCollectionWithoutWaiting(t *testing.T) {
	restoreGC(t)
	debug.SetMemoryLimit(96 << 20)
	debug.SetGCPercent(100)
	env := newTestEnv(t, openMemory(t))
	g := env.as.hashGC
	if g == nil {
		t.Fatal("the server does not tune the collector while hashing")
	}
	g.live = func() uint64 { return 0 } // the forced mode, as in production
	started, unblock := make(chan struct{}), make(chan struct{})
	g.collect = func() { close(started); <-unblock }
	release, err := env.as.hashSlot(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	returned := make(chan struct{})
	go func() { release(); close(returned) }()
	select {
	case <-returned:
	case <-time.After(3 * time.Second):
		close(unblock)
		t.Fatal("release waited for the collection")
	}
	<-started
	if len(env.as.hashSem) != 1 {
		t.Fatal("the slot was given back before the collection ran")
	}
	close(unblock)
	for i := 0; i < 500 && len(env.as.hashSem) > 0; i++ {
		time.Sleep(10 * time.Millisecond)
	}
	if len(env.as.hashSem) > 0 {
		t.Fatal("the slot was not given back after the collection")
	}
}
