package argon2

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"

	xargon2 "golang.org/x/crypto/argon2"
)

type params struct {
	password, salt []byte
	time, memory   uint32
	threads        uint8
	keyLen         uint32
}

func (p params) String() string {
	return fmt.Sprintf("t=%d m=%d p=%d keyLen=%d len(password)=%d len(salt)=%d",
		p.time, p.memory, p.threads, p.keyLen, len(p.password), len(p.salt))
}

// blocksFor returns the number of blocks deriveKey uses for p.
func (p params) blocksFor() uint32 {
	q := syncPoints * uint32(p.threads)
	m := p.memory / q * q
	return max(m, 2*q)
}

func (p params) xcrypto() []byte {
	return xargon2.IDKey(p.password, p.salt, p.time, p.memory, p.threads, p.keyLen)
}

// diffCases returns a shuffled table of parameters: time 1..3, threads 1..4,
// memory from below the minimum (8*threads KiB) up to 4 MiB, including sizes
// that are not multiples of 4*threads, key lengths 4, 16, 32, 64 and 100, and
// passwords and salts of various lengths including empty ones.
func diffCases(seed uint64) []params {
	rng := rand.New(rand.NewPCG(seed, 0x9106))
	randBytes := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return b
	}
	passwords := [][]byte{nil, {}, []byte("p"), []byte("password"), randBytes(33), randBytes(200)}
	salts := [][]byte{nil, []byte("somesalt"), randBytes(16), randBytes(64)}
	keyLens := []uint32{4, 16, 32, 64, 100}

	var cases []params
	i := 0
	for threads := uint8(1); threads <= 4; threads++ {
		p := uint32(threads)
		mems := []uint32{0, 8*p - 1, 8 * p, 8*p + 3, 64, 100, 257, 1024, 2049, 4096}
		for time := uint32(1); time <= 3; time++ {
			for _, m := range mems {
				cases = append(cases, params{
					password: passwords[i%len(passwords)],
					salt:     salts[(i/len(passwords))%len(salts)],
					time:     time,
					memory:   m,
					threads:  threads,
					keyLen:   keyLens[i%len(keyLens)],
				})
				i++
			}
		}
	}
	rng.Shuffle(len(cases), func(i, j int) { cases[i], cases[j] = cases[j], cases[i] })
	return cases
}

// TestDifferential compares Hasher.IDKey with x/crypto's IDKey, calling the
// same Hasher for all parameter sets in a shuffled order, so that its buffer
// is dirty and sometimes larger, sometimes smaller than needed. It also checks
// that the buffer is grown only when needed and reused otherwise.
func TestDifferential(t *testing.T) {
	var h Hasher
	var largest uint32
	for _, p := range diffCases(1) {
		want := p.xcrypto()
		got := h.IDKey(p.password, p.salt, p.time, p.memory, p.threads, p.keyLen)
		if !bytes.Equal(got, want) {
			t.Errorf("%v: got %x, want %x", p, got, want)
		}
		var before *block
		if cap(h.buf) > 0 {
			before = &h.buf[:1][0]
		}
		largest = max(largest, p.blocksFor())
		if cap(h.buf) != int(largest) {
			t.Fatalf("%v: buffer holds %d blocks, want %d (the largest call so far)", p, cap(h.buf), largest)
		}
		got = h.IDKey(p.password, p.salt, p.time, p.memory, p.threads, p.keyLen)
		if !bytes.Equal(got, want) {
			t.Errorf("%v, repeated: got %x, want %x", p, got, want)
		}
		if &h.buf[:1][0] != before {
			t.Fatalf("%v: buffer reallocated by a call of the same size", p)
		}
	}
}

// fillGarbage fills the whole capacity of h's buffer with pseudo-random data.
func fillGarbage(h *Hasher, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 42))
	buf := h.buf[:cap(h.buf)]
	for i := range buf {
		for j := range buf[i] {
			buf[i][j] = rng.Uint64()
		}
	}
}

// TestDirtyBuffer checks that the result does not depend on what the buffer
// held before the call: each call is made on a buffer filled with random data
// (all ones, for the first), larger than needed.
func TestDirtyBuffer(t *testing.T) {
	h := Hasher{buf: make([]block, 4096)}
	for i := range h.buf {
		for j := range h.buf[i] {
			h.buf[i][j] = ^uint64(0)
		}
	}
	for i, p := range diffCases(2)[:40] {
		if i > 0 {
			fillGarbage(&h, uint64(i))
		}
		want := p.xcrypto()
		if got := h.IDKey(p.password, p.salt, p.time, p.memory, p.threads, p.keyLen); !bytes.Equal(got, want) {
			t.Errorf("%v: got %x, want %x", p, got, want)
		}
	}
}

// TestPoolConcurrent uses one Pool (and the package-level IDKey) from several
// goroutines at once and compares with x/crypto. Run it with -race.
func TestPoolConcurrent(t *testing.T) {
	cases := diffCases(3)
	pool := NewPool(2)
	const goroutines = 6
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for i := g; i < len(cases); i += goroutines {
				p := cases[i]
				want := p.xcrypto()
				idKey, name := pool.IDKey, "Pool.IDKey"
				if i%3 == 0 {
					idKey, name = IDKey, "IDKey"
				}
				if got := idKey(p.password, p.salt, p.time, p.memory, p.threads, p.keyLen); !bytes.Equal(got, want) {
					t.Errorf("%s %v: got %x, want %x", name, p, got, want)
				}
			}
		})
	}
	wg.Wait()
	pool.mu.Lock()
	defer pool.mu.Unlock()
	if len(pool.free) > 2 {
		t.Errorf("pool keeps %d Hashers, want at most 2", len(pool.free))
	}
}

func TestPoolLimits(t *testing.T) {
	if maxPooledBlocks*blockLength*8 != 256<<20 {
		t.Fatalf("maxPooledBlocks = %d blocks, want 256 MiB", maxPooledBlocks)
	}
	pw, salt := []byte("password"), []byte("somesalt")

	p := NewPool(2)
	hs := []*Hasher{p.get(), p.get(), p.get()}
	for _, h := range hs {
		h.IDKey(pw, salt, 1, 64, 1, 32)
		p.put(h)
	}
	if len(p.free) != 2 {
		t.Errorf("NewPool(2) keeps %d Hashers, want 2", len(p.free))
	}
	// Reuse: the next call takes a kept Hasher and keeps using its buffer.
	h := p.free[len(p.free)-1]
	buf := &h.buf[0]
	p.IDKey(pw, salt, 1, 32, 1, 32)
	if p.free[len(p.free)-1] != h || &h.buf[0] != buf || cap(h.buf) != 64 {
		t.Errorf("Pool did not reuse its Hasher and buffer")
	}

	p = NewPool(0)
	p.IDKey(pw, salt, 1, 64, 1, 32)
	if len(p.free) != 0 {
		t.Errorf("NewPool(0) keeps %d Hashers, want 0", len(p.free))
	}

	// Hashers with buffers above the limit are dropped (lowered here from
	// 256 MiB to 64 blocks to keep the test cheap).
	p = NewPool(4)
	p.maxBlocks = 64
	p.IDKey(pw, salt, 1, 64, 1, 32)
	if len(p.free) != 1 {
		t.Fatalf("Hasher with a 64-block buffer not kept")
	}
	want := xargon2.IDKey(pw, salt, 1, 128, 2, 32)
	if got := p.IDKey(pw, salt, 1, 128, 2, 32); !bytes.Equal(got, want) {
		t.Errorf("got %x, want %x", got, want)
	}
	if len(p.free) != 0 {
		t.Errorf("Hasher with a 128-block buffer kept by a Pool limited to 64 blocks")
	}

	if defaultPool.max < 1 {
		t.Errorf("defaultPool.max = %d", defaultPool.max)
	}
}

func TestPanics(t *testing.T) {
	catch := func(f func()) (v any) {
		defer func() { v = recover() }()
		f()
		return nil
	}
	pw, salt := []byte("password"), []byte("somesalt")
	var h Hasher
	p := NewPool(1)
	for _, c := range []struct {
		time    uint32
		threads uint8
	}{{0, 1}, {1, 0}, {0, 0}} {
		want := catch(func() { xargon2.IDKey(pw, salt, c.time, 64, c.threads, 32) })
		if want == nil {
			t.Fatalf("x/crypto did not panic for time=%d threads=%d", c.time, c.threads)
		}
		for name, f := range map[string]func(){
			"Hasher": func() { h.IDKey(pw, salt, c.time, 64, c.threads, 32) },
			"Pool":   func() { p.IDKey(pw, salt, c.time, 64, c.threads, 32) },
			"IDKey":  func() { IDKey(pw, salt, c.time, 64, c.threads, 32) },
		} {
			if got := catch(f); got != want {
				t.Errorf("%s(time=%d, threads=%d) panicked with %v, want %v", name, c.time, c.threads, got, want)
			}
		}
	}
}

var fuzzHasher Hasher

// FuzzIDKey compares one shared Hasher with x/crypto. The parameters are
// bounded to cheap values: time 1..3, memory 0..256 KiB, threads 1..4; the key
// length (4..128) is taken from the bits of time not used for time.
func FuzzIDKey(f *testing.F) {
	f.Add([]byte("password"), []byte("somesalt"), uint8(0), uint16(64), uint8(0))
	f.Add([]byte{}, []byte{}, uint8(1), uint16(0), uint8(3))
	f.Add([]byte("correct horse battery staple"), []byte("0123456789abcdef"), uint8(200), uint16(256), uint8(1))
	f.Add(bytes.Repeat([]byte{0xff}, 300), []byte("s"), uint8(5), uint16(255), uint8(2))
	f.Fuzz(func(t *testing.T, password, salt []byte, time uint8, memKiB uint16, threads uint8) {
		tm := 1 + uint32(time)%3
		keyLen := 4 + uint32(time/3)%125
		m := uint32(memKiB) % 257
		p := 1 + threads%4
		want := xargon2.IDKey(password, salt, tm, m, p, keyLen)
		got := fuzzHasher.IDKey(password, salt, tm, m, p, keyLen)
		if !bytes.Equal(got, want) {
			t.Fatalf("t=%d m=%d p=%d keyLen=%d password=%s salt=%s: got %x, want %x",
				tm, m, p, keyLen, hex.EncodeToString(password), hex.EncodeToString(salt), got, want)
		}
	})
}
