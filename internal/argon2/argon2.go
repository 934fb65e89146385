// Copyright 2017 The Go Authors. All rights reserved.
// Use of this source code is governed by a BSD-style
// license that can be found in the LICENSE file.

// Package argon2 implements the Argon2id key derivation function (Argon2
// version 1.3, RFC 9106) with working memory that is reused between calls.
//
// # Origin
//
// This package is a fork of golang.org/x/crypto/argon2 at golang.org/x/crypto
// v0.59.0, under the BSD license in the LICENSE file of this directory (a copy
// of the x/crypto one). Its output is bit-identical to x/crypto's
// argon2.IDKey for every parameter set (see change 2 below for why); the
// tests compare it with x/crypto directly.
//
// # Why
//
// x/crypto's argon2.IDKey allocates a fresh memory*1 KiB []block on every call
// (19 MiB for m=19456). The Go runtime has to zero that memory, and under a
// soft memory limit the scavenger keeps returning it to the OS, so every hash
// also page-faults it back in: in a CPU profile of the server under password
// load runtime.memclrNoHeapPointers took 35% of CPU next to 52% for argon2
// itself. This fork keeps the working memory between calls and does not need
// it to be zeroed.
//
// # Changes from x/crypto v0.59.0
//
//  1. Argon2id only. Key (Argon2i), the argon2d and argon2i modes and the
//     loong64 files (blamka_loong64.go, blamka_loong64.s) are removed;
//     processSegment is specialised to Argon2id (the mode value 2 is still
//     hashed into H0 and into the address blocks exactly as before). The
//     build constraint of blamka_ref.go is now "!amd64 || purego || !gc", so
//     every platform other than amd64 (and purego or non-gc builds) uses the
//     generic Go code. blamka_generic.go lost the loong64-only useLSX
//     variable and gained a doc comment on useSSE4. blamka_amd64.s (generated
//     code), blamka_amd64.go and blake2b.go are unchanged.
//  2. In pass 0 every block is computed with the overwriting processBlock
//     instead of processBlockXOR, as the Argon2 v1.3 reference implementation
//     does. x/crypto XORs into a freshly zeroed block there, which gives the
//     same value; overwriting means the memory need not be zero beforehand,
//     because blocks 0 and 1 of each lane are written by initBlocks and every
//     block at index >= 2 of each lane is written in pass 0 before it is read.
//     Passes >= 1 still XOR into the previous contents, as Argon2 v1.3
//     requires.
//  3. The working memory comes from a Hasher's reusable buffer instead of a
//     make per call: initBlocks takes the block slice instead of allocating
//     it. A Hasher grows its buffer when a call needs more memory than it
//     holds and otherwise uses a prefix of it. Pool keeps a bounded free list
//     of Hashers, and the package-level IDKey uses a Pool of
//     runtime.GOMAXPROCS(0) Hashers.
//  4. With threads == 1 the four segments of each pass are processed inline
//     instead of in one goroutine each; with threads > 1 each segment still
//     runs in its own goroutine. processSegment is a plain function rather
//     than a closure.
//
// The panics for time < 1 and threads < 1 are unchanged. The final block is
// extracted exactly as in x/crypto (the lanes' last blocks are XORed into the
// last block of the working memory, which is then hashed through a stack
// array). As with x/crypto the working memory holds password-derived data
// after a call; here it stays in the Hasher's buffer until the next call
// overwrites it or the Hasher is garbage collected, where x/crypto leaves it
// to the garbage collector.
package argon2

import (
	"encoding/binary"
	"runtime"
	"sync"
	"time"

	"golang.org/x/crypto/blake2b"
)

// Version is the Argon2 version implemented by this package (1.3).
const Version = 0x13

// argon2id is the Argon2 type value of Argon2id (x/crypto's argon2d = 0,
// argon2i = 1, argon2id = 2), hashed into H0 and into the address blocks.
const argon2id = 2

// Hasher computes Argon2id keys, reusing its working memory between calls.
// A Hasher is not safe for concurrent use; keep one per worker or use a Pool.
//
// The zero value is ready to use. A Hasher keeps a buffer as large as the
// largest memory parameter it has been called with until it is garbage
// collected.
type Hasher struct {
	buf []block
}

// IDKey derives a key of keyLen bytes from the password, salt and cost
// parameters using Argon2id, exactly like golang.org/x/crypto/argon2.IDKey,
// but computes it in the Hasher's buffer: the buffer is grown when the call
// needs more memory than it holds, otherwise a prefix of it is used.
//
// The time parameter is the number of passes over the memory, memory is the
// memory size in KiB, and threads is the degree of parallelism (number of
// lanes). IDKey panics if time or threads is zero.
func (h *Hasher) IDKey(password, salt []byte, time, memory uint32, threads uint8, keyLen uint32) []byte {
	return h.deriveKey(password, salt, nil, nil, time, memory, threads, keyLen)
}

// deriveKey is x/crypto's deriveKey for Argon2id, with the working memory taken
// from h. secret and data are only used by the tests (RFC 9106 test vector).
func (h *Hasher) deriveKey(password, salt, secret, data []byte, time, memory uint32, threads uint8, keyLen uint32) []byte {
	if time < 1 {
		panic("argon2: number of rounds too small")
	}
	if threads < 1 {
		panic("argon2: parallelism degree too low")
	}
	h0 := initHash(password, salt, secret, data, time, memory, uint32(threads), keyLen, argon2id)

	memory = memory / (syncPoints * uint32(threads)) * (syncPoints * uint32(threads))
	if memory < 2*syncPoints*uint32(threads) {
		memory = 2 * syncPoints * uint32(threads)
	}
	B := h.blocks(memory)
	initBlocks(&h0, B, uint32(threads))
	processBlocks(B, time, memory, uint32(threads))
	return extractKey(B, memory, uint32(threads), keyLen)
}

// blocks returns n blocks of working memory, growing h.buf if it holds fewer.
// The returned blocks are not zeroed; see the package documentation.
func (h *Hasher) blocks(n uint32) []block {
	if uint64(cap(h.buf)) < uint64(n) {
		h.buf = nil // let the old buffer be collected during the allocation
		h.buf = make([]block, n)
	}
	return h.buf[:n]
}

// maxPooledBlocks is the largest buffer (in blocks: 256 MiB) a Hasher may have
// to be kept by a Pool, so that a one-off huge hash does not pin its memory.
const maxPooledBlocks = 256 << 20 / (blockLength * 8)

// Pool hands out Hashers; at most max of them are kept for reuse (extra ones
// are dropped to the GC).
//
// Pool.IDKey takes a Hasher from the pool (or creates one if none is free),
// computes the key and gives the Hasher back. It does not limit the number of
// concurrent calls: if more than max run at once, the extra Hashers are
// created for the call and then dropped. Hashers whose buffer is larger than
// 256 MiB are dropped rather than kept. Unlike a sync.Pool, a Pool does not
// drop its Hashers at garbage collection, so their buffers stay allocated.
//
// A Pool is safe for concurrent use. Create Pools with NewPool.
type Pool struct {
	mu        sync.Mutex
	free      []*Hasher
	max       int    // maximum len(free)
	maxBlocks uint64 // Hashers with a larger buffer are dropped

	idle    time.Duration // see SetIdleRelease
	after   func()        // called after an idle release (see SetIdleRelease)
	busy    int           // Hashers handed out and not yet returned
	last    time.Time     // when a Hasher was last given back
	pending bool          // a release timer is armed
}

// SetIdleRelease makes the pool drop its Hashers (and so their working
// memory, to the garbage collector) once no call has used it for d, and then
// call after, if not nil, outside the pool's lock: a server that saw a burst
// of sign-ins can pass debug.FreeOSMemory to go back to its idle footprint
// (the runtime otherwise keeps freed memory until its next collection, which
// an idle process may not run). Zero d (the default) keeps the Hashers for
// ever.
func (p *Pool) SetIdleRelease(d time.Duration, after func()) {
	p.mu.Lock()
	p.idle, p.after = d, after
	p.mu.Unlock()
}

// Release drops every Hasher the pool keeps; calls in progress keep theirs
// and return them as usual.
func (p *Pool) Release() {
	p.mu.Lock()
	clear(p.free)
	p.free = p.free[:0]
	p.mu.Unlock()
}

// armLocked starts a release timer if the pool is idle, keeps Hashers and
// has none armed. p.mu must be held.
func (p *Pool) armLocked(delay time.Duration) {
	if p.idle <= 0 || p.pending || p.busy > 0 || len(p.free) == 0 {
		return
	}
	p.pending = true
	time.AfterFunc(delay, p.idleCheck)
}

// idleCheck releases the Hashers if the pool has been idle for p.idle, or
// checks again when it will have been.
func (p *Pool) idleCheck() {
	p.mu.Lock()
	p.pending = false
	if p.busy != 0 {
		p.mu.Unlock()
		return // the put that ends the call arms a new check
	}
	if left := p.idle - time.Since(p.last); left > 0 {
		p.armLocked(left)
		p.mu.Unlock()
		return
	}
	clear(p.free)
	p.free = p.free[:0]
	after := p.after
	p.mu.Unlock()
	if after != nil {
		after()
	}
}

// NewPool returns a Pool that keeps at most max Hashers for reuse. With
// max <= 0 no Hasher is kept and every call allocates its working memory.
func NewPool(max int) *Pool {
	return &Pool{max: max, maxBlocks: maxPooledBlocks}
}

// IDKey is Hasher.IDKey computed with a Hasher from the pool. It is safe for
// concurrent use.
func (p *Pool) IDKey(password, salt []byte, time, memory uint32, threads uint8, keyLen uint32) []byte {
	h := p.get()
	defer p.put(h)
	return h.IDKey(password, salt, time, memory, threads, keyLen)
}

func (p *Pool) get() *Hasher {
	p.mu.Lock()
	p.busy++
	if n := len(p.free); n > 0 {
		h := p.free[n-1]
		p.free[n-1] = nil
		p.free = p.free[:n-1]
		p.mu.Unlock()
		return h
	}
	p.mu.Unlock()
	return new(Hasher)
}

func (p *Pool) put(h *Hasher) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.busy--
	p.last = time.Now()
	if uint64(cap(h.buf)) <= p.maxBlocks && len(p.free) < p.max {
		p.free = append(p.free, h)
	}
	p.armLocked(p.idle)
}

// defaultPool is the Pool used by IDKey. It lets go of its Hashers after a
// minute without calls.
var defaultPool = func() *Pool {
	p := NewPool(runtime.GOMAXPROCS(0))
	p.SetIdleRelease(time.Minute, nil)
	return p
}()

// SetIdleRelease sets the idle release of the package-level pool used by
// IDKey (by default a minute, with no after function); see
// Pool.SetIdleRelease.
func SetIdleRelease(d time.Duration, after func()) { defaultPool.SetIdleRelease(d, after) }

// Release drops the Hashers kept by the package-level pool used by IDKey,
// for a process that knows it will not hash again soon (after start-up
// seeding, say). They are also dropped after a minute without calls.
func Release() { defaultPool.Release() }

// IDKey is a drop-in replacement for x/crypto/argon2.IDKey that uses a
// package-level Pool.
//
// It derives a key of keyLen bytes from the password, salt and cost
// parameters using Argon2id; the result is identical to
// golang.org/x/crypto/argon2.IDKey. The package-level Pool keeps up to
// runtime.GOMAXPROCS(0) (as of package initialisation) Hashers, so their
// working memory stays allocated between calls, until a minute passes without
// a call (or Release is called). IDKey panics if time or
// threads is zero. It is safe for concurrent use.
func IDKey(password, salt []byte, time, memory uint32, threads uint8, keyLen uint32) []byte {
	return defaultPool.IDKey(password, salt, time, memory, threads, keyLen)
}

const (
	blockLength = 128
	syncPoints  = 4
)

type block [blockLength]uint64

func initHash(password, salt, key, data []byte, time, memory, threads, keyLen uint32, mode int) [blake2b.Size + 8]byte {
	var (
		h0     [blake2b.Size + 8]byte
		params [24]byte
		tmp    [4]byte
	)

	b2, _ := blake2b.New512(nil)
	binary.LittleEndian.PutUint32(params[0:4], threads)
	binary.LittleEndian.PutUint32(params[4:8], keyLen)
	binary.LittleEndian.PutUint32(params[8:12], memory)
	binary.LittleEndian.PutUint32(params[12:16], time)
	binary.LittleEndian.PutUint32(params[16:20], uint32(Version))
	binary.LittleEndian.PutUint32(params[20:24], uint32(mode))
	b2.Write(params[:])
	binary.LittleEndian.PutUint32(tmp[:], uint32(len(password)))
	b2.Write(tmp[:])
	b2.Write(password)
	binary.LittleEndian.PutUint32(tmp[:], uint32(len(salt)))
	b2.Write(tmp[:])
	b2.Write(salt)
	binary.LittleEndian.PutUint32(tmp[:], uint32(len(key)))
	b2.Write(tmp[:])
	b2.Write(key)
	binary.LittleEndian.PutUint32(tmp[:], uint32(len(data)))
	b2.Write(tmp[:])
	b2.Write(data)
	b2.Sum(h0[:0])
	return h0
}

// initBlocks writes the first two blocks of each lane of B. Changed from
// x/crypto: B is passed in instead of allocated here.
func initBlocks(h0 *[blake2b.Size + 8]byte, B []block, threads uint32) {
	var block0 [1024]byte
	memory := uint32(len(B))
	for lane := uint32(0); lane < threads; lane++ {
		j := lane * (memory / threads)
		binary.LittleEndian.PutUint32(h0[blake2b.Size+4:], lane)

		binary.LittleEndian.PutUint32(h0[blake2b.Size:], 0)
		blake2bHash(block0[:], h0[:])
		for i := range B[j+0] {
			B[j+0][i] = binary.LittleEndian.Uint64(block0[i*8:])
		}

		binary.LittleEndian.PutUint32(h0[blake2b.Size:], 1)
		blake2bHash(block0[:], h0[:])
		for i := range B[j+1] {
			B[j+1][i] = binary.LittleEndian.Uint64(block0[i*8:])
		}
	}
}

// yield is called between segments (every ~2 ms at the server's parameters).
// A hash is about 20 ms of CPU with no blocking call in it, and the runtime
// preempts such a goroutine only every 10 ms: with every core hashing, the
// short work of other requests (a signature, a commit, writing a response)
// waited up to that long for a core, several times per request. Yielding at
// each segment cut the password grant's p99 at 4 workers on 2 cores from
// 76–82 ms to 47–66 ms. With threads > 1 each segment already runs in a
// goroutine of its own that ends at the sync point. A variable for the test.
var yield = runtime.Gosched

// processBlocks runs the time passes over B. Changed from x/crypto: Argon2id
// only, and with threads == 1 the segments are processed inline.
func processBlocks(B []block, time, memory, threads uint32) {
	lanes := memory / threads
	segments := lanes / syncPoints

	for n := uint32(0); n < time; n++ {
		for slice := uint32(0); slice < syncPoints; slice++ {
			if threads == 1 {
				processSegment(B, time, memory, threads, lanes, segments, n, slice, 0)
				yield()
				continue
			}
			var wg sync.WaitGroup
			for lane := uint32(0); lane < threads; lane++ {
				wg.Go(func() {
					processSegment(B, time, memory, threads, lanes, segments, n, slice, lane)
				})
			}
			wg.Wait()
		}
	}
}

// processSegment computes one segment (slice) of one lane in pass n. Changed
// from x/crypto: Argon2id only, and pass 0 overwrites blocks with processBlock
// instead of XORing into them with processBlockXOR.
func processSegment(B []block, time, memory, threads, lanes, segments, n, slice, lane uint32) {
	var addresses, in, zero block
	// Argon2id uses data-independent addressing for the first half of pass 0.
	dataIndependent := n == 0 && slice < syncPoints/2
	if dataIndependent {
		in[0] = uint64(n)
		in[1] = uint64(lane)
		in[2] = uint64(slice)
		in[3] = uint64(memory)
		in[4] = uint64(time)
		in[5] = uint64(argon2id)
	}

	index := uint32(0)
	if n == 0 && slice == 0 {
		index = 2 // we have already generated the first two blocks
		in[6]++
		processBlock(&addresses, &in, &zero)
		processBlock(&addresses, &addresses, &zero)
	}

	offset := lane*lanes + slice*segments + index
	var random uint64
	for index < segments {
		prev := offset - 1
		if index == 0 && slice == 0 {
			prev += lanes // last block in lane
		}
		if dataIndependent {
			if index%blockLength == 0 {
				in[6]++
				processBlock(&addresses, &in, &zero)
				processBlock(&addresses, &addresses, &zero)
			}
			random = addresses[index%blockLength]
		} else {
			random = B[prev][0]
		}
		newOffset := indexAlpha(random, lanes, segments, threads, n, slice, lane, index)
		if n == 0 {
			// First pass: B[offset] has not been written yet in this call
			// and may hold anything, so overwrite it (x/crypto XORs into a
			// zeroed block, which gives the same result).
			processBlock(&B[offset], &B[prev], &B[newOffset])
		} else {
			processBlockXOR(&B[offset], &B[prev], &B[newOffset])
		}
		index, offset = index+1, offset+1
	}
}

func extractKey(B []block, memory, threads, keyLen uint32) []byte {
	lanes := memory / threads
	for lane := uint32(0); lane < threads-1; lane++ {
		for i, v := range B[(lane*lanes)+lanes-1] {
			B[memory-1][i] ^= v
		}
	}

	var block [1024]byte
	for i, v := range B[memory-1] {
		binary.LittleEndian.PutUint64(block[i*8:], v)
	}
	key := make([]byte, keyLen)
	blake2bHash(key, block[:])
	return key
}

func indexAlpha(rand uint64, lanes, segments, threads, n, slice, lane, index uint32) uint32 {
	refLane := uint32(rand>>32) % threads
	if n == 0 && slice == 0 {
		refLane = lane
	}
	m, s := 3*segments, ((slice+1)%syncPoints)*segments
	if lane == refLane {
		m += index
	}
	if n == 0 {
		m, s = slice*segments, 0
		if slice == 0 || lane == refLane {
			m += index
		}
	}
	if index == 0 || lane == refLane {
		m--
	}
	return phi(rand, uint64(m), uint64(s), refLane, lanes)
}

func phi(rand, m, s uint64, lane, lanes uint32) uint32 {
	p := rand & 0xFFFFFFFF
	p = (p * p) >> 32
	p = (p * m) >> 32
	return lane*lanes + uint32((s+m-(p+1))%uint64(lanes))
}
