package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// clockTicks is USER_HZ, the unit of the CPU times in /proc/<pid>/stat. The
// kernel reports 100 on every Linux architecture Go supports.
const clockTicks = 100

// serverUsage is the server process's resource use during a measured
// window, from /proc (Linux only).
type serverUsage struct {
	PID int `json:"pid"`
	// CPUSeconds is user+system CPU time spent in the window; CPUCores is
	// that divided by the window (2.0 = two cores busy throughout).
	CPUSeconds float64 `json:"cpu_s"`
	CPUCores   float64 `json:"cpu_cores"`
	// PeakRSSMB is VmHWM at the end of the run. When HWMReset is true the
	// peak was reset (clear_refs) when the load started (after the token
	// pools were issued), so it is this run's peak; otherwise it is the peak
	// since the server started.
	PeakRSSMB float64 `json:"peak_rss_mb"`
	HWMReset  bool    `json:"hwm_reset"`
	// SampledPeakRSSMB is the largest VmRSS seen by sampling every 50 ms.
	SampledPeakRSSMB float64 `json:"sampled_peak_rss_mb"`
	// RSSMB is VmRSS at the end of the window.
	RSSMB float64 `json:"rss_mb"`
	// DiskWriteMB is what the process caused to be written to storage
	// during the window (write_bytes of /proc/<pid>/io; 0 where unreadable),
	// in MB of 10^6 bytes: on SQLite, the log and checkpoint pages its
	// commits wrote.
	DiskWriteMB float64 `json:"disk_write_mb,omitempty"`
}

// procMonitor samples a process's CPU and memory around a measured window.
type procMonitor struct {
	pid      int
	hwmReset bool

	mu         sync.Mutex
	cpuStart   float64
	cpuEnd     float64
	ioStart    int64 // write_bytes; -1 when unreadable
	ioEnd      int64
	startTime  time.Time
	endTime    time.Time
	sampledRSS int64 // KiB
	stop       context.CancelFunc
	done       chan struct{}
}

// startProcMonitor checks that the process exists and starts sampling its
// RSS. Call begin when the load starts, then windowStart, windowEnd and
// finish.
func startProcMonitor(pid int) (*procMonitor, error) {
	if _, err := readCPUSeconds(pid); err != nil {
		return nil, err
	}
	m := &procMonitor{pid: pid, done: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	m.stop = cancel
	go m.sample(ctx)
	return m, nil
}

// begin resets the process's peak RSS where the kernel allows it (writing 5
// to /proc/<pid>/clear_refs needs the same user) and the sampled peak, so
// that both are the peak from now on. Memory the process already holds
// counts: the kernel resets the peak to the current RSS.
func (m *procMonitor) begin() {
	ok := os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", m.pid), []byte("5"), 0) == nil
	m.mu.Lock()
	m.hwmReset, m.sampledRSS = ok, 0
	m.mu.Unlock()
}

func (m *procMonitor) sample(ctx context.Context) {
	defer close(m.done)
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for {
		if st, err := readStatus(m.pid); err == nil {
			m.mu.Lock()
			m.sampledRSS = max(m.sampledRSS, st["VmRSS"])
			m.mu.Unlock()
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// windowStart records the CPU time at the start of the measured window.
func (m *procMonitor) windowStart() {
	cpu, _ := readCPUSeconds(m.pid)
	io := readWriteBytes(m.pid)
	m.mu.Lock()
	m.cpuStart, m.ioStart, m.startTime = cpu, io, time.Now()
	m.mu.Unlock()
}

// windowEnd records the CPU time at the end of the measured window.
func (m *procMonitor) windowEnd() {
	cpu, _ := readCPUSeconds(m.pid)
	io := readWriteBytes(m.pid)
	m.mu.Lock()
	m.cpuEnd, m.ioEnd, m.endTime = cpu, io, time.Now()
	m.mu.Unlock()
}

// finish stops sampling and returns the usage.
func (m *procMonitor) finish() (*serverUsage, error) {
	st, err := readStatus(m.pid)
	m.stop()
	<-m.done
	if err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	u := &serverUsage{
		PID:              m.pid,
		PeakRSSMB:        kibToMB(st["VmHWM"]),
		HWMReset:         m.hwmReset,
		SampledPeakRSSMB: kibToMB(max(m.sampledRSS, st["VmRSS"])),
		RSSMB:            kibToMB(st["VmRSS"]),
	}
	if !m.endTime.IsZero() && m.endTime.After(m.startTime) {
		u.CPUSeconds = m.cpuEnd - m.cpuStart
		u.CPUCores = u.CPUSeconds / m.endTime.Sub(m.startTime).Seconds()
		if m.ioStart >= 0 && m.ioEnd >= m.ioStart {
			u.DiskWriteMB = float64(m.ioEnd-m.ioStart) / 1e6
		}
	}
	return u, nil
}

// readWriteBytes reads write_bytes from /proc/<pid>/io, or -1.
func readWriteBytes(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/io", pid))
	if err != nil {
		return -1
	}
	return parseWriteBytes(b)
}

// parseWriteBytes extracts the write_bytes line of /proc/<pid>/io, or -1.
func parseWriteBytes(b []byte) int64 {
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "write_bytes:"); ok {
			if n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64); err == nil {
				return n
			}
		}
	}
	return -1
}

func kibToMB(kib int64) float64 { return float64(kib) / 1024 }

// readCPUSeconds reads utime+stime of a process from /proc/<pid>/stat.
func readCPUSeconds(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("server process: %w", err)
	}
	return parseStatCPU(b)
}

// parseStatCPU extracts utime (field 14) and stime (field 15) in seconds.
// The command name (field 2) may hold spaces and parentheses, so fields are
// counted from the last ')'.
func parseStatCPU(b []byte) (float64, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("malformed /proc stat %q", b)
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state); utime is field 14, stime field 15.
	if len(f) < 13 {
		return 0, fmt.Errorf("malformed /proc stat %q", b)
	}
	ut, err1 := strconv.ParseUint(f[11], 10, 64)
	stime, err2 := strconv.ParseUint(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("malformed /proc stat times %q %q", f[11], f[12])
	}
	return float64(ut+stime) / clockTicks, nil
}

// readStatus reads the kB fields of /proc/<pid>/status (VmRSS, VmHWM, …).
func readStatus(pid int) (map[string]int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return nil, fmt.Errorf("server process: %w", err)
	}
	return parseStatus(b), nil
}

// parseStatus parses the "Name:   123 kB" lines of /proc/<pid>/status.
func parseStatus(b []byte) map[string]int64 {
	out := map[string]int64{}
	for line := range strings.SplitSeq(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		v, found := strings.CutSuffix(strings.TrimSpace(v), " kB")
		if !found {
			continue
		}
		if n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64); err == nil {
			out[k] = n
		}
	}
	return out
}

// machineCPU is the CPU time all processes have spent busy (everything but
// idle and iowait), from the first line of /proc/stat; 0 if unreadable.
func machineCPU() time.Duration {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	return parseMachineCPU(b)
}

// parseMachineCPU parses the "cpu" line of /proc/stat.
func parseMachineCPU(b []byte) time.Duration {
	line, _, _ := bytes.Cut(b, []byte("\n"))
	f := strings.Fields(string(line))
	if len(f) < 5 || f[0] != "cpu" {
		return 0
	}
	var busy uint64
	// user nice system idle iowait irq softirq steal (guest time is
	// already included in user).
	for i, v := range f[1:min(len(f), 9)] {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return 0
		}
		if i == 3 || i == 4 {
			continue
		}
		busy += n
	}
	return time.Duration(busy) * time.Second / clockTicks
}
