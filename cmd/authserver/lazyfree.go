package main

import "strings"

// reexecAllowed is set by main: only the real process re-executes itself
// (see lazyFree), never a test that runs the command in process.
var reexecAllowed bool

// lazyFreeSetting is the runtime setting serve runs with unless GODEBUG
// already decides it: freed heap pages are returned to the kernel with
// MADV_FREE instead of MADV_DONTNEED.
//
// golang.org/x/crypto/argon2 allocates its working memory (19 MiB at the
// default parameters) afresh for every password hash, so a server that
// verifies passwords frees and reallocates that much memory per hash. The
// runtime's scavenger returns part of every freed buffer to the kernel, and
// with MADV_DONTNEED each page of it costs a page fault (and, where argon2
// reads a fresh page before writing it, a copy-on-write fault with a TLB
// shootdown) when the next hash touches it again: 5–19 ms of system time per
// password grant on a 2-core virtual machine, as much as half the hash
// itself (BENCHMARKS.md). With MADV_FREE the kernel takes the pages back
// only under memory pressure, so the next hash reuses them without faults;
// the cost is that the process's RSS falls only when the machine (or its
// cgroup) needs the memory.
const lazyFreeSetting = "madvdontneed=0"

// godebugWithLazyFree returns the GODEBUG value serve should run with, and
// false when GODEBUG already names madvdontneed (the operator's choice is
// kept).
func godebugWithLazyFree(godebug string) (string, bool) {
	for _, kv := range strings.Split(godebug, ",") {
		if k, _, _ := strings.Cut(strings.TrimSpace(kv), "="); k == "madvdontneed" {
			return godebug, false
		}
	}
	if strings.TrimSpace(godebug) == "" {
		return lazyFreeSetting, true
	}
	return godebug + "," + lazyFreeSetting, true
}
