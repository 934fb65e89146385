package resource

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// BenchmarkStatusListCheck runs the middleware on a token without a status
// claim and on one with a status claim whose list is cached, alternately in
// one loop (so both see the same machine load), and reports the throughput
// with the check as a percentage of without.
//
//	go test -run '^$' -bench StatusListCheck -benchtime 2s ./resource/
func BenchmarkStatusListCheck(b *testing.B) {
	for _, k := range []*testKey{newRSAKey("rsa-1", 0), newECKey("ec-1")} {
		b.Run(string(k.alg), func(b *testing.B) {
			is := newTestIssuer(b, k)
			is.clock = &fakeClock{t: time.Now()}
			ss := newStatusServer(b, is)
			a := newAuth(b, is, func(c *Config) {
				c.Now = time.Now
				c.StatusList.SkipSameOriginCheck = true
			})
			ok := 0
			h := a.Middleware(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { ok++ }))
			req := func(tok string) *http.Request {
				r := httptest.NewRequestWithContext(context.Background(), http.MethodGet, "/api/me", nil)
				r.Header.Set("Authorization", "Bearer "+tok)
				return r
			}
			plain := req(is.mint(b))
			withStatus := req(is.mint(b, func(c map[string]any) {
				c["status"] = map[string]any{"status_list": map[string]any{"idx": 5, "uri": ss.uri()}}
			}))
			w := &discardWriter{h: http.Header{}}
			h.ServeHTTP(w, withStatus) // fetch the list
			h.ServeHTTP(w, plain)
			if ok != 2 {
				b.Fatalf("warm-up refused: %d", w.status)
			}
			var plainTime, statusTime time.Duration
			n := 0
			for b.Loop() {
				first, second := plain, withStatus // alternate the order
				if n%2 == 1 {
					first, second = withStatus, plain
				}
				t0 := time.Now()
				h.ServeHTTP(w, first)
				t1 := time.Now()
				h.ServeHTTP(w, second)
				d1, d2 := t1.Sub(t0), time.Since(t1)
				if n%2 == 1 {
					d1, d2 = d2, d1
				}
				plainTime, statusTime = plainTime+d1, statusTime+d2
				n++
			}
			if ok != 2+2*n {
				b.Fatalf("%d of %d requests accepted", ok-2, 2*n)
			}
			b.ReportMetric(float64(plainTime.Nanoseconds())/float64(n), "without-ns/op")
			b.ReportMetric(float64(statusTime.Nanoseconds())/float64(n), "with-status-ns/op")
			b.ReportMetric(100*float64(plainTime)/float64(statusTime), "%throughput")
			b.ReportMetric(float64(ss.gets.Load()), "list-fetches")
		})
	}
}
