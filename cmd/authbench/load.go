package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	hdr "github.com/HdrHistogram/hdrhistogram-go"
)

// op performs one request (or one unit of work) and returns its HTTP status,
// 0 when there is none, and an error for transport or protocol failures.
type op func(ctx context.Context) (status int, err error)

// opFactory prepares the op of one worker (a refresh chain's first token,
// for example). Every worker calls it concurrently before the clock starts.
type opFactory func(ctx context.Context, worker int) (op, error)

// errDone is returned by an op whose worker has nothing left to do (a
// consumed token pool). The worker stops; the run ends when all have.
var errDone = errors.New("authbench: worker done")

// Histogram bounds: latencies are recorded in microseconds, from 1 µs to
// 100 s, with three significant digits.
const (
	histMin     = 1
	histMax     = 100_000_000
	histSigFigs = 3
)

// loadConfig configures one closed-loop run.
type loadConfig struct {
	// Concurrency is the number of workers; each has one request in flight.
	Concurrency int
	// Warmup runs before the measured window; its requests are not counted.
	Warmup time.Duration
	// Duration is the measured window.
	Duration time.Duration
	// OK reports whether a status is a success for this scenario (default:
	// 200). Other statuses and every error count as errors.
	OK func(status int) bool
	// Grace bounds how long in-flight requests may run past the window
	// before they are cancelled (default 30 s).
	Grace time.Duration
	// OnStart, when set, runs once every worker is prepared, just before the
	// warm-up; OnWindowStart and OnWindowEnd run when the measured window
	// opens and closes (server memory and CPU sampling).
	OnStart, OnWindowStart, OnWindowEnd func()
}

// loadResult is what a run measured inside its window.
type loadResult struct {
	// Elapsed is the measured window: Duration, or less when every worker
	// stopped early with errDone.
	Elapsed  time.Duration
	Requests int64
	OK       int64
	Status   map[int]int64
	Errors   map[string]int64
	Hist     *hdr.Histogram
	// ClientCPU is the CPU time this process used during the window, and
	// MachineCPU the busy time of the whole machine (every process).
	ClientCPU  time.Duration
	MachineCPU time.Duration
}

// otherCores is the CPU other processes used during the window, in cores.
func (r *loadResult) otherCores() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return max(0, (r.MachineCPU-r.ClientCPU).Seconds()/r.Elapsed.Seconds())
}

// shard is one lock-protected slice of the recording state. Workers are
// spread over a few shards so that a thousand workers do not need a thousand
// histograms, and sixty-four busy workers do not contend on one lock.
type shard struct {
	mu     sync.Mutex
	hist   *hdr.Histogram
	ok     int64
	status map[int]int64
	errs   map[string]int64
}

// maxErrorKinds caps the distinct error strings kept per shard.
const maxErrorKinds = 16

func (s *shard) record(d time.Duration, status int, err error, ok bool) {
	us := max(d.Microseconds(), histMin)
	s.mu.Lock()
	defer s.mu.Unlock()
	_ = s.hist.RecordValue(min(us, histMax)) // clamped: never out of range
	if status != 0 {
		s.status[status]++
	}
	switch {
	case err != nil:
		k := classify(err)
		if _, seen := s.errs[k]; !seen && len(s.errs) >= maxErrorKinds {
			k = "other"
		}
		s.errs[k]++
	case ok:
		s.ok++
	default:
		s.errs[fmt.Sprintf("status %d", status)]++
	}
}

// runLoad runs a closed loop: cfg.Concurrency workers, each sending its next
// request as soon as the previous one is answered, for cfg.Warmup and then
// cfg.Duration. Only requests that complete inside the measured window are
// counted (their latency, status and errors), so the throughput is the
// completion rate of the steady state.
func runLoad(ctx context.Context, cfg loadConfig, factory opFactory) (*loadResult, error) {
	if cfg.Concurrency < 1 {
		return nil, errors.New("concurrency must be at least 1")
	}
	if cfg.Duration <= 0 {
		return nil, errors.New("duration must be positive")
	}
	if cfg.OK == nil {
		cfg.OK = func(status int) bool { return status == 200 }
	}
	if cfg.Grace <= 0 {
		cfg.Grace = 30 * time.Second
	}

	// Prepare every worker concurrently; the first failure cancels the rest.
	ops := make([]op, cfg.Concurrency)
	prepCtx, cancelPrep := context.WithCancel(ctx)
	var (
		prepWG   sync.WaitGroup
		prepOnce sync.Once
		prepErr  error
	)
	for i := range ops {
		prepWG.Add(1)
		go func() {
			defer prepWG.Done()
			o, err := factory(prepCtx, i)
			if err != nil {
				prepOnce.Do(func() { prepErr = fmt.Errorf("worker %d: %w", i, err); cancelPrep() })
				return
			}
			ops[i] = o
		}()
	}
	prepWG.Wait()
	cancelPrep()
	if prepErr != nil {
		return nil, prepErr
	}

	nShards := min(cfg.Concurrency, 4*runtime.GOMAXPROCS(0))
	shards := make([]*shard, nShards)
	for i := range shards {
		shards[i] = &shard{hist: hdr.New(histMin, histMax, histSigFigs), status: map[int]int64{}, errs: map[string]int64{}}
	}

	if cfg.OnStart != nil {
		cfg.OnStart()
	}
	start := time.Now()
	windowStart := start.Add(cfg.Warmup)
	windowEnd := windowStart.Add(cfg.Duration)
	runCtx, cancelRun := context.WithDeadline(ctx, windowEnd.Add(cfg.Grace))
	defer cancelRun()

	var cpuStart, cpuEnd, machStart, machEnd time.Duration
	var hooks sync.WaitGroup
	hooks.Add(1)
	go func() {
		defer hooks.Done()
		if !sleepUntil(runCtx, windowStart) {
			return
		}
		cpuStart, machStart = processCPU(), machineCPU()
		if cfg.OnWindowStart != nil {
			cfg.OnWindowStart()
		}
	}()

	var (
		wg       sync.WaitGroup
		lastStop atomic.Int64 // UnixNano of the latest early stop
		early    atomic.Int64 // workers that stopped with errDone
	)
	for i, o := range ops {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sh := shards[i%nShards]
			for runCtx.Err() == nil {
				t0 := time.Now()
				if !t0.Before(windowEnd) {
					return
				}
				status, err := o(runCtx)
				t1 := time.Now()
				if errors.Is(err, errDone) {
					early.Add(1)
					for {
						old := lastStop.Load()
						if t1.UnixNano() <= old || lastStop.CompareAndSwap(old, t1.UnixNano()) {
							break
						}
					}
					return
				}
				if t1.Before(windowStart) || t1.After(windowEnd) {
					continue
				}
				sh.record(t1.Sub(t0), status, err, err == nil && cfg.OK(status))
			}
		}()
	}

	// Close the window at windowEnd, or when every worker has stopped.
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	timer := time.NewTimer(time.Until(windowEnd))
	select {
	case <-timer.C:
		cpuEnd, machEnd = processCPU(), machineCPU()
		if cfg.OnWindowEnd != nil {
			cfg.OnWindowEnd()
		}
		<-done
	case <-done:
		timer.Stop()
		cpuEnd, machEnd = processCPU(), machineCPU()
		if cfg.OnWindowEnd != nil {
			cfg.OnWindowEnd()
		}
	}
	cancelRun()
	hooks.Wait()
	if err := ctx.Err(); err != nil {
		return nil, err
	}

	res := &loadResult{Elapsed: cfg.Duration, Status: map[int]int64{}, Errors: map[string]int64{}, Hist: hdr.New(histMin, histMax, histSigFigs)}
	if early.Load() == int64(cfg.Concurrency) {
		stop := time.Unix(0, lastStop.Load())
		if !stop.After(windowStart) {
			return nil, errors.New("every worker finished before the measured window (the token pool is too small for the warmup)")
		}
		res.Elapsed = min(stop.Sub(windowStart), cfg.Duration)
	}
	if cpuStart > 0 {
		res.ClientCPU = cpuEnd - cpuStart
	}
	if machStart > 0 {
		res.MachineCPU = machEnd - machStart
	}
	for _, s := range shards {
		res.Hist.Merge(s.hist)
		res.OK += s.ok
		for k, v := range s.status {
			res.Status[k] += v
		}
		for k, v := range s.errs {
			res.Errors[k] += v
		}
	}
	res.Requests = res.Hist.TotalCount()
	return res, nil
}

// sleepUntil waits for t; it reports false if ctx ended first.
func sleepUntil(ctx context.Context, t time.Time) bool {
	timer := time.NewTimer(time.Until(t))
	defer timer.Stop()
	select {
	case <-timer.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// processCPU is the user and system CPU time used by this process so far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// classify turns a transport error into a short, stable label, so that the
// error counts group by cause rather than by connection.
func classify(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return "canceled (window closed)"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, syscall.ECONNRESET):
		return "connection reset"
	case errors.Is(err, syscall.EPIPE):
		return "broken pipe"
	case errors.Is(err, syscall.EMFILE), errors.Is(err, syscall.ENFILE):
		return "too many open files"
	case errors.Is(err, syscall.EADDRNOTAVAIL):
		return "no free local ports"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "EOF"
	case errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	}
	var pe *protocolError
	if errors.As(err, &pe) {
		return pe.msg
	}
	return "other"
}

// protocolError is a response that had the expected status but not the
// expected content (an inactive introspection result, a missing token).
type protocolError struct{ msg string }

func (e *protocolError) Error() string { return e.msg }
