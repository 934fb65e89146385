package argon2

import (
	"sync/atomic"
	"testing"
	"time"
)

func (p *Pool) kept() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.free)
}

func TestPoolRelease(t *testing.T) {
	pw, salt := []byte("password"), []byte("somesalt")
	p := NewPool(2)
	p.IDKey(pw, salt, 1, 64, 1, 32)
	if p.kept() != 1 {
		t.Fatalf("kept %d Hashers, want 1", p.kept())
	}
	p.Release()
	if p.kept() != 0 {
		t.Fatalf("Release kept %d Hashers", p.kept())
	}
	// A Hasher in use during Release comes back as usual.
	h := p.get()
	p.Release()
	h.IDKey(pw, salt, 1, 64, 1, 32)
	p.put(h)
	if p.kept() != 1 {
		t.Fatalf("kept %d Hashers after a call spanning Release, want 1", p.kept())
	}
}

func TestPoolIdleRelease(t *testing.T) {
	pw, salt := []byte("password"), []byte("somesalt")
	p := NewPool(2)
	var afters atomic.Int32
	p.SetIdleRelease(50*time.Millisecond, func() { afters.Add(1) })

	// Calls more often than the idle period keep the Hashers.
	for range 6 {
		p.IDKey(pw, salt, 1, 64, 1, 32)
		time.Sleep(20 * time.Millisecond)
		if p.kept() != 1 {
			t.Fatalf("Hasher released while in regular use")
		}
	}
	// A Hasher held across the period is not released under it, and the
	// pool is not released while it is out.
	h := p.get()
	time.Sleep(120 * time.Millisecond)
	if p.kept() != 0 {
		t.Fatalf("kept %d, want 0 while the only Hasher is out", p.kept())
	}
	p.put(h)
	if p.kept() != 1 {
		t.Fatalf("kept %d after put, want 1", p.kept())
	}
	deadline := time.Now().Add(5 * time.Second)
	for p.kept() != 0 {
		if time.Now().After(deadline) {
			t.Fatal("Hashers not released after the idle period")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if n := afters.Load(); n != 1 {
		t.Fatalf("after called %d times, want 1", n)
	}
	// And the pool works afterwards.
	p.IDKey(pw, salt, 1, 64, 1, 32)
	if p.kept() != 1 {
		t.Fatalf("kept %d after release and a new call, want 1", p.kept())
	}
}
