package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

func TestRunLoadCountsOnlyTheWindow(t *testing.T) {
	var calls atomic.Int64
	res, err := runLoad(t.Context(), loadConfig{Concurrency: 4, Warmup: 100 * time.Millisecond, Duration: 300 * time.Millisecond},
		func(context.Context, int) (op, error) {
			return func(context.Context) (int, error) {
				n := calls.Add(1)
				time.Sleep(2 * time.Millisecond)
				switch n % 10 {
				case 0:
					return 503, nil
				case 5:
					return 0, &net.OpError{Op: "dial", Err: syscall.ECONNREFUSED}
				}
				return 200, nil
			}, nil
		})
	if err != nil {
		t.Fatal(err)
	}
	if res.Elapsed != 300*time.Millisecond {
		t.Errorf("elapsed %v", res.Elapsed)
	}
	// Four workers, 2 ms each, for 300 ms: about 600 requests counted, and
	// fewer than all calls (the warm-up is not counted).
	if res.Requests < 300 || res.Requests > 700 || res.Requests >= calls.Load() {
		t.Errorf("requests %d of %d calls", res.Requests, calls.Load())
	}
	if res.OK+res.Errors["status 503"]+res.Errors["connection refused"] != res.Requests {
		t.Errorf("ok %d + errors %v != requests %d", res.OK, res.Errors, res.Requests)
	}
	if res.Errors["status 503"] == 0 || res.Errors["connection refused"] == 0 || res.Status[503] != res.Errors["status 503"] {
		t.Errorf("errors %v status %v", res.Errors, res.Status)
	}
	if p50 := res.Hist.ValueAtQuantile(50); p50 < 2000 || p50 > 20000 {
		t.Errorf("p50 %d µs, want about 2000", p50)
	}
}

func TestRunLoadStopsWhenEveryWorkerIsDone(t *testing.T) {
	var left atomic.Int64
	left.Store(100)
	start := time.Now()
	res, err := runLoad(t.Context(), loadConfig{Concurrency: 3, Duration: 10 * time.Second},
		func(context.Context, int) (op, error) {
			return func(context.Context) (int, error) {
				if left.Add(-1) < 0 {
					return 0, errDone
				}
				time.Sleep(time.Millisecond)
				return 200, nil
			}, nil
		})
	if err != nil {
		t.Fatal(err)
	}
	if res.OK != 100 || res.Elapsed >= time.Second || time.Since(start) > 5*time.Second {
		t.Errorf("ok %d in %v (window %v)", res.OK, time.Since(start), res.Elapsed)
	}
}

func TestRunLoadPropagatesPreparationErrors(t *testing.T) {
	boom := errors.New("boom")
	_, err := runLoad(t.Context(), loadConfig{Concurrency: 8, Duration: time.Second},
		func(_ context.Context, i int) (op, error) {
			if i == 5 {
				return nil, boom
			}
			return func(context.Context) (int, error) { return 200, nil }, nil
		})
	if !errors.Is(err, boom) {
		t.Fatalf("err = %v, want boom", err)
	}
}

func TestRunLoadManyWorkersShareShards(t *testing.T) {
	res, err := runLoad(t.Context(), loadConfig{Concurrency: 1000, Duration: 200 * time.Millisecond, OK: func(s int) bool { return s == 429 }},
		func(context.Context, int) (op, error) {
			return func(context.Context) (int, error) { time.Sleep(5 * time.Millisecond); return 429, nil }, nil
		})
	if err != nil {
		t.Fatal(err)
	}
	if res.OK == 0 || res.OK != res.Requests || res.Status[429] != res.OK {
		t.Errorf("ok %d requests %d status %v", res.OK, res.Requests, res.Status)
	}
}

func TestClassify(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{context.DeadlineExceeded, "canceled (window closed)"},
		{&net.OpError{Op: "read", Err: os.NewSyscallError("read", syscall.ECONNRESET)}, "connection reset"},
		{fmt.Errorf("Post: %w", io.ErrUnexpectedEOF), "EOF"},
		{&protocolError{"inactive token"}, "inactive token"},
		{errors.New("something new"), "other"},
	} {
		if got := classify(tc.err); got != tc.want {
			t.Errorf("classify(%v) = %q, want %q", tc.err, got, tc.want)
		}
	}
}
