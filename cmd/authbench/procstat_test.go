package main

import (
	"os"
	"testing"
	"time"
)

func TestParseStatCPU(t *testing.T) {
	// The command name may contain spaces and parentheses.
	line := "1234 (auth server (x)) S 1 1234 1234 0 -1 4194560 2253 0 0 0 250 50 0 0 20 0 9 0 123 2176820 14724 18446744073709551615\n"
	got, err := parseStatCPU([]byte(line))
	if err != nil {
		t.Fatal(err)
	}
	if got != 3.0 {
		t.Errorf("cpu = %v s, want 3 (250+50 ticks)", got)
	}
	if _, err := parseStatCPU([]byte("garbage")); err == nil {
		t.Error("garbage parsed")
	}
}

func TestParseStatus(t *testing.T) {
	m := parseStatus([]byte("Name:\tauthserver\nVmHWM:\t  152860 kB\nVmRSS:\t   58896 kB\nThreads:\t9\n"))
	if m["VmHWM"] != 152860 || m["VmRSS"] != 58896 || len(m) != 2 {
		t.Errorf("parsed %v", m)
	}
}

func TestParseMachineCPU(t *testing.T) {
	got := parseMachineCPU([]byte("cpu  100 5 50 1000 40 3 2 0 0 0\ncpu0 1 2 3 4\n"))
	if want := 160 * time.Second / clockTicks; got != want {
		t.Errorf("busy = %v, want %v", got, want)
	}
}

func TestProcMonitorOnSelf(t *testing.T) {
	m, err := startProcMonitor(os.Getpid())
	if err != nil {
		t.Skipf("no /proc: %v", err)
	}
	m.begin()
	m.windowStart()
	deadline := time.Now().Add(100 * time.Millisecond)
	for time.Now().Before(deadline) { // burn some CPU
	}
	m.windowEnd()
	u, err := m.finish()
	if err != nil {
		t.Fatal(err)
	}
	if u.PID != os.Getpid() || !u.HWMReset || u.PeakRSSMB <= 0 || u.RSSMB <= 0 || u.SampledPeakRSSMB <= 0 || u.CPUCores <= 0 {
		t.Errorf("usage %+v", u)
	}
	if _, err := startProcMonitor(1 << 30); err == nil {
		t.Error("a missing process was accepted")
	}
}

func TestParseWriteBytes(t *testing.T) {
	io := "rchar: 1\nwchar: 577971492\nsyscr: 3\nsyscw: 248057\nread_bytes: 0\nwrite_bytes: 486051840\ncancelled_write_bytes: 0\n"
	if got := parseWriteBytes([]byte(io)); got != 486051840 {
		t.Errorf("write_bytes = %d", got)
	}
	if got := parseWriteBytes([]byte("rchar: 1\n")); got != -1 {
		t.Errorf("missing write_bytes = %d, want -1", got)
	}
}
