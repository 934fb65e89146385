package authserver

import (
	"math"
	"runtime"
	"runtime/debug"
	rtmetrics "runtime/metrics"
	"sync"
)

// hashGC collects the garbage of every password hash as soon as the hash
// ends. golang.org/x/crypto/argon2 allocates its working memory (19 MiB at
// the default parameters) afresh for every hash, and that buffer is garbage
// the moment the hash returns. Left to the pacer, the collection that finds
// it dead is started by the next hash's allocation, which therefore grows
// the heap; the runtime then returns about as much memory to the kernel to
// stay near its goal, and the next hash faults those pages in again (with
// MADV_DONTNEED every page is a fault, and argon2 reads each fresh page
// before writing it, so often a second, copy-on-write fault and a TLB
// shootdown). On a 2-core virtual machine that cost 5–19 ms of system time
// per password grant, as much as half of the hash itself (BENCHMARKS.md).
//
// So a collection runs when a hash ends, before its slot is released
// (Server.hashSlot: in a goroutine of its own, while the request goes on):
// the next hash then reuses the freed buffer, the heap does not grow and
// nothing is faulted in. While hashes run, the pacer's
// own collections are switched off (GOGC off), since they would only add a
// second collection per hash; the soft memory limit still bounds the heap.
// When the last hash ends the previous target applies again.
//
// A forced collection marks the whole live heap, so it pays only while that
// heap is small next to the buffers: with a live heap over liveFactor
// buffers (a large in-memory store, a raised memory limit) the pacer at
// lowGCPercent (about one collection per hash or fewer) costs less, and the
// server switches to that instead; so it does without a memory limit, when
// nothing else would bound the heap with the pacer off. The live heap is read at
// every hash's start and end, so a heap that grows under a steady load of
// sign-ins changes the mode as it crosses the line.
//
// The state is the process's, shared by every Server in it (the collector
// is): the target outside hashing is read when the first hash starts, so a
// GOGC=off set by the operator is seen and left alone (no forced
// collections either).
type hashGC struct {
	buf     uint64        // bytes of one hash's working memory
	collect func()        // runtime.GC; replaced in tests
	live    func() uint64 // the live heap after the last collection
}

const (
	// liveFactor is the live heap, in hash buffers, up to which each
	// hash's buffer is collected when it ends.
	liveFactor = 4
	// lowGCPercent is the collector's target while hashes run over a
	// larger live heap.
	lowGCPercent = 25
)

// Modes of hashGCState.
const (
	gcIdle   = iota // no hash runs: the base target applies
	gcForced        // pacer off, a collection after each hash
	gcLow           // pacer at lowGCPercent, no forced collections
	gcAlone         // GOGC=off or no memory limit: nothing changed
)

// hashGCState is the process-wide count of hashes running.
var hashGCState struct {
	mu      sync.Mutex
	running int
	base    int // the target when the first running hash started
	mode    int
}

// newHashGC returns nil (no tuning) when off is set; memKiB is argon2's
// memory parameter.
func newHashGC(off bool, memKiB uint32) *hashGC {
	if off {
		return nil
	}
	return &hashGC{buf: uint64(memKiB) << 10, collect: runtime.GC, live: liveHeap}
}

// liveHeap reads the runtime's live heap (marked at the last collection).
func liveHeap() uint64 {
	s := []rtmetrics.Sample{{Name: "/gc/heap/live:bytes"}}
	rtmetrics.Read(s)
	if s[0].Value.Kind() != rtmetrics.KindUint64 {
		return 0
	}
	return s[0].Value.Uint64()
}

// setMode applies the mode that fits the live heap. st.mu is held and a
// hash runs.
func (g *hashGC) setMode() {
	st := &hashGCState
	want := gcAlone
	switch {
	case st.base < 0:
	case debug.SetMemoryLimit(-1) < math.MaxInt64 && g.live() <= liveFactor*g.buf:
		want = gcForced
	case st.base > lowGCPercent:
		want = gcLow
	}
	if want == st.mode {
		return
	}
	switch want {
	case gcForced:
		debug.SetGCPercent(-1)
	case gcLow:
		debug.SetGCPercent(lowGCPercent)
	default:
		debug.SetGCPercent(st.base)
	}
	st.mode = want
}

// enter is called when a hash starts.
func (g *hashGC) enter() {
	st := &hashGCState
	st.mu.Lock()
	if st.running == 0 {
		st.base = debug.SetGCPercent(100)
		debug.SetGCPercent(st.base)
		st.mode = gcAlone
		if st.base >= 0 {
			st.mode = gcIdle
		}
	}
	st.running++
	g.setMode()
	st.mu.Unlock()
}

// exit is called when a hash ends, before its slot is released: in the
// forced mode it collects the hash's buffer; then it restores the target
// if no other hash runs.
func (g *hashGC) exit() {
	st := &hashGCState
	st.mu.Lock()
	forced := st.mode == gcForced
	st.mu.Unlock()
	if forced {
		g.collect()
	}
	st.mu.Lock()
	st.running--
	if st.running == 0 {
		if st.mode == gcForced || st.mode == gcLow {
			debug.SetGCPercent(st.base)
		}
		st.mode = gcIdle
	} else {
		g.setMode()
	}
	st.mu.Unlock()
}
