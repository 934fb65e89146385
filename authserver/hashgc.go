package authserver

import (
	"math"
	"runtime"
	"runtime/debug"
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
// So the slot's holder runs a collection when its hash ends, before the
// slot is released: the next hash then reuses the freed buffer, the heap
// does not grow and nothing is faulted in. While hashes run, the pacer's
// own collections are switched off (GOGC off), since they would only add a
// second collection per hash; the soft memory limit still bounds the heap.
// Without a memory limit the collector's target is left alone. When the
// last hash ends the previous target applies again.
//
// The state is the process's, shared by every Server in it (the collector
// is): the target outside hashing is read when the first hash starts, so a
// GOGC=off set by the operator is seen and left alone (no forced
// collections either).
type hashGC struct {
	collect func() // runtime.GC; replaced in tests
}

// hashGCState is the process-wide count of hashes running.
var hashGCState struct {
	mu      sync.Mutex
	running int
	base    int  // the target when the first running hash started
	paced   bool // the pacer was switched off by that hash
}

// newHashGC returns nil (no tuning) when off is set.
func newHashGC(off bool) *hashGC {
	if off {
		return nil
	}
	return &hashGC{collect: runtime.GC}
}

// enter is called when a hash starts.
func (g *hashGC) enter() {
	if g == nil {
		return
	}
	st := &hashGCState
	st.mu.Lock()
	if st.running == 0 {
		st.base = debug.SetGCPercent(-1)
		st.paced = st.base >= 0 && debug.SetMemoryLimit(-1) < math.MaxInt64
		if !st.paced {
			debug.SetGCPercent(st.base)
		}
	}
	st.running++
	st.mu.Unlock()
}

// exit is called when a hash ends, before its slot is released: it
// collects the hash's buffer (unless the collector is off), then restores
// the target if no other hash runs.
func (g *hashGC) exit() {
	if g == nil {
		return
	}
	st := &hashGCState
	st.mu.Lock()
	collect := st.base >= 0
	st.mu.Unlock()
	if collect {
		g.collect()
	}
	st.mu.Lock()
	st.running--
	if st.running == 0 && st.paced {
		debug.SetGCPercent(st.base)
	}
	st.mu.Unlock()
}
