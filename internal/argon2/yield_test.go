package argon2

import (
	"bytes"
	"runtime"
	"testing"

	xargon2 "golang.org/x/crypto/argon2"
)

// A single-lane hash yields the processor after every segment, so other
// goroutines wait at most a segment for a core, not the runtime's 10 ms
// preemption tick; the output is unchanged.
func TestIDKeyYieldsBetweenSegments(t *testing.T) {
	calls := 0
	yield = func() { calls++ }
	defer func() { yield = runtime.Gosched }()
	const time, memory = 3, 64
	want := xargon2.IDKey([]byte("password"), []byte("somesalt"), time, memory, 1, 32)
	var h Hasher
	got := h.IDKey([]byte("password"), []byte("somesalt"), time, memory, 1, 32)
	if !bytes.Equal(got, want) {
		t.Fatalf("IDKey = %x, want %x", got, want)
	}
	if calls != time*syncPoints {
		t.Fatalf("yielded %d times, want %d (once per segment)", calls, time*syncPoints)
	}
}
