package main

import "testing"

func TestGodebugWithLazyFree(t *testing.T) {
	for _, c := range []struct {
		in, want string
		change   bool
	}{
		{"", "madvdontneed=0", true},
		{"  ", "madvdontneed=0", true},
		{"gctrace=1", "gctrace=1,madvdontneed=0", true},
		{"madvdontneed=1", "madvdontneed=1", false},
		{"gctrace=1, madvdontneed=0", "gctrace=1, madvdontneed=0", false},
		{"xmadvdontneed=1", "xmadvdontneed=1,madvdontneed=0", true},
	} {
		got, change := godebugWithLazyFree(c.in)
		if got != c.want || change != c.change {
			t.Errorf("godebugWithLazyFree(%q) = %q, %v; want %q, %v", c.in, got, change, c.want, c.change)
		}
	}
}
