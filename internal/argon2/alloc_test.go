package argon2

import (
	"runtime"
	"testing"

	xargon2 "golang.org/x/crypto/argon2"
)

// bytesPerCall returns the bytes allocated per call of f (TotalAlloc delta)
// over runs calls.
func bytesPerCall(runs int, f func()) uint64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range runs {
		f()
	}
	runtime.ReadMemStats(&after)
	return (after.TotalAlloc - before.TotalAlloc) / uint64(runs)
}

// TestReuseAllocs checks that once a Hasher (or a Pool's Hasher) has its
// buffer, further calls of the same size (the server's m=19456 KiB, t=2, p=1)
// allocate nothing near the memory size: less than 64 KiB per call.
func TestReuseAllocs(t *testing.T) {
	const (
		time, memory = 2, 19456
		threads      = 1
		keyLen       = 32
		limit        = 64 << 10
		runs         = 3
	)
	pw, salt := []byte("password"), []byte("0123456789abcdef")

	var h Hasher
	pool := NewPool(1)
	for _, c := range []struct {
		name string
		fn   func()
	}{
		{"Hasher", func() { h.IDKey(pw, salt, time, memory, threads, keyLen) }},
		{"Pool", func() { pool.IDKey(pw, salt, time, memory, threads, keyLen) }},
	} {
		c.fn() // the first call allocates the buffer
		allocs := testing.AllocsPerRun(runs, c.fn)
		perCall := bytesPerCall(runs, c.fn)
		t.Logf("%s: %.0f allocations, %d bytes per call", c.name, allocs, perCall)
		if perCall >= limit {
			t.Errorf("%s: second and later calls allocate %d bytes per call, want < %d", c.name, perCall, limit)
		}
	}
	if !testing.Short() {
		perCall := bytesPerCall(1, func() { xargon2.IDKey(pw, salt, time, memory, threads, keyLen) })
		t.Logf("x/crypto: %d bytes per call", perCall)
	}
}
