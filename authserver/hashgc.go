package authserver

import (
	"runtime/debug"
	"sync"
)

// defaultHashGCPercent is the collector's target (GOGC) while password
// hashes run.
const defaultHashGCPercent = 25

// hashGC lowers the garbage collector's target while argon2id hashes are
// being computed. golang.org/x/crypto/argon2 allocates its working memory
// (19 MiB at the default parameters) afresh for every hash. At the
// default target the heap grows to twice the buffers in flight before a
// collection, near the soft memory limit, and the runtime returns the freed
// buffers to the OS and faults fresh pages in for the next hash. With a
// low target a collection follows about every hash: it is cheap (the
// buffers hold no pointers, so there is little to mark) and the next hash
// reuses the freed buffer's pages. Outside hashing the previous target
// (GOGC, 100 by default) applies again.
type hashGC struct {
	mu      sync.Mutex
	running int
	base    int // the target outside hashing
	during  int // the target while hashing; not applied when >= base
}

// newHashGC reads the current target; percent <= 0 disables the tuning.
func newHashGC(percent int) *hashGC {
	base := debug.SetGCPercent(100)
	debug.SetGCPercent(base)
	if percent <= 0 || base < 0 || percent >= base {
		return nil // GOGC=off, or already at or below the hashing target
	}
	return &hashGC{base: base, during: percent}
}

// enter is called when a hash starts.
func (g *hashGC) enter() {
	if g == nil {
		return
	}
	g.mu.Lock()
	if g.running == 0 {
		debug.SetGCPercent(g.during)
	}
	g.running++
	g.mu.Unlock()
}

// exit is called when a hash ends.
func (g *hashGC) exit() {
	if g == nil {
		return
	}
	g.mu.Lock()
	g.running--
	if g.running == 0 {
		debug.SetGCPercent(g.base)
	}
	g.mu.Unlock()
}
