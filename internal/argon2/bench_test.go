package argon2

import (
	"runtime"
	"runtime/debug"
	"testing"

	xargon2 "golang.org/x/crypto/argon2"
)

// The server's parameters (OWASP): m=19456 KiB, t=2, p=1.
const (
	benchTime    = 2
	benchMemory  = 19456
	benchThreads = 1
	benchKeyLen  = 32
)

// BenchmarkIDKey compares x/crypto's IDKey with a Pool (configured like the
// package-level one), hashing from GOMAXPROCS goroutines.
func BenchmarkIDKey(b *testing.B) {
	benchIDKeys(b)
}

// BenchmarkIDKeyMemLimit is BenchmarkIDKey under the server's 96 MiB soft
// memory limit.
func BenchmarkIDKeyMemLimit(b *testing.B) {
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(96 << 20))
	benchIDKeys(b)
}

func benchIDKeys(b *testing.B) {
	b.Run("xcrypto", func(b *testing.B) {
		benchParallel(b, xargon2.IDKey)
	})
	// The Pool is shared by all rounds of the sub-benchmark, so only the
	// first rounds allocate its Hashers' buffers, as in a running server.
	pool := NewPool(runtime.GOMAXPROCS(0))
	b.Run("pool", func(b *testing.B) {
		benchParallel(b, pool.IDKey)
	})
}

// benchParallel runs idKey with b.RunParallel and also reports the garbage
// collections and (where available) minor page faults per hash.
func benchParallel(b *testing.B, idKey func(password, salt []byte, time, memory uint32, threads uint8, keyLen uint32) []byte) {
	password := []byte("password")
	salt := []byte("0123456789abcdef")
	b.ReportAllocs()
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	faults, faultsOK := minorFaults()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			idKey(password, salt, benchTime, benchMemory, benchThreads, benchKeyLen)
		}
	})
	b.StopTimer()
	runtime.ReadMemStats(&after)
	b.ReportMetric(float64(after.NumGC-before.NumGC)/float64(b.N), "GCs/op")
	if f, ok := minorFaults(); ok && faultsOK {
		b.ReportMetric(float64(f-faults)/float64(b.N), "minflt/op")
	}
}
