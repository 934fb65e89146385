package authserver

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkStatusListIssuance issues client_credentials tokens (SQLite, 32
// concurrent requests) in alternating rounds without and with status list
// entries, on one server, and reports the throughput with them as a
// percentage of without: the same-run ratio BENCHMARKS.md records.
//
//	go test -run '^$' -bench StatusListIssuance -benchtime 20x ./authserver/
func BenchmarkStatusListIssuance(b *testing.B) {
	env, _ := benchEnv(b)
	h := env.as.Handler()
	alloc := env.as.strategy.status
	body := url.Values{"grant_type": {"client_credentials"}}.Encode()
	const perRound, workers = 256, 32
	round := func() time.Duration {
		var next atomic.Int64
		var wg sync.WaitGroup
		start := time.Now()
		for range workers {
			wg.Go(func() {
				for next.Add(1) <= perRound {
					req := httptest.NewRequest(http.MethodPost, "/token", strings.NewReader(body))
					req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
					req.SetBasicAuth("svc", svcSecret)
					w := httptest.NewRecorder()
					h.ServeHTTP(w, req)
					if w.Code != 200 {
						b.Errorf("%d %s", w.Code, w.Body)
						return
					}
				}
			})
		}
		wg.Wait()
		return time.Since(start)
	}
	var with, without time.Duration
	n := 0
	for b.Loop() {
		if n%2 == 0 {
			env.as.strategy.status = nil
			without += round()
			env.as.strategy.status = alloc
			with += round()
		} else {
			env.as.strategy.status = alloc
			with += round()
			env.as.strategy.status = nil
			without += round()
		}
		n++
	}
	env.as.strategy.status = alloc
	b.ReportMetric(float64(without.Nanoseconds())/float64(n*perRound), "without-ns/token")
	b.ReportMetric(float64(with.Nanoseconds())/float64(n*perRound), "with-status-ns/token")
	b.ReportMetric(100*float64(without)/float64(with), "%throughput")
}

// BenchmarkStatusListIndex is the cost of one index from a held block: the
// keyed permutation (four SHA-256 rounds) under the allocator's lock.
func BenchmarkStatusListIndex(b *testing.B) {
	env := newTestEnv(b, openMemory(b))
	a := env.as.strategy.status
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := a.next(b.Context()); err != nil {
			b.Fatal(err)
		}
	}
}
