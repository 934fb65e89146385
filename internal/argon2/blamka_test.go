package argon2

import (
	"math/rand/v2"
	"testing"
)

// TestProcessBlockGeneric compares the generic Go compression function with
// the one this build uses (SSE2/SSE4.1 assembly on amd64, with and without
// SSE4.1), so that the generic code is exercised on every platform, in both
// the overwrite (pass 0) and the XOR (later passes) form.
func TestProcessBlockGeneric(t *testing.T) {
	defer func(sse4 bool) { useSSE4 = sse4 }(useSSE4)
	rng := rand.New(rand.NewPCG(7, 7))
	random := func(b *block) {
		for i := range b {
			b[i] = rng.Uint64()
		}
	}
	for _, sse4 := range []bool{useSSE4, false} {
		useSSE4 = sse4
		for range 100 {
			var in1, in2, out, want, got block
			random(&in1)
			random(&in2)
			random(&out)

			want, got = out, out
			processBlockGeneric(&want, &in1, &in2, false)
			processBlock(&got, &in1, &in2)
			if got != want {
				t.Fatalf("useSSE4=%v: processBlock differs from processBlockGeneric", sse4)
			}

			want, got = out, out
			processBlockGeneric(&want, &in1, &in2, true)
			processBlockXOR(&got, &in1, &in2)
			if got != want {
				t.Fatalf("useSSE4=%v: processBlockXOR differs from processBlockGeneric", sse4)
			}
		}
	}
}
