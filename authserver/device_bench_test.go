package authserver

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/oauthkit/authserver/storage/storagetrace"
)

// A pending poll at the interval costs one storage operation, a GetToken
// by primary key, for a public client (identified by client_id) and for a
// confidential one (its secret verified from the client cache): the cached
// registration is kept current by the client change feed (clientfeed.go),
// whose background poll is per instance, not per request. The polls are
// spaced, in real time too, beyond ClientChangeMaxDelay, so that only the
// feed keeps the cached registrations trusted. Counted with
// storage/storagetrace, one span per storage call.
func TestDevicePollCostsOneLookup(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	t.Cleanup(func() { _ = tp.Shutdown(t.Context()) })
	clk := &deviceClock{now: time.Now().UTC()}
	const maxDelay = 40 * time.Millisecond
	env := newDeviceEnvOn(t, storagetrace.Wrap(openMemory(t), tp), func(c *Config) {
		c.Now, c.ClientChangeMaxDelay = clk.Now, maxDelay
	})
	for _, tc := range []struct{ client, secret string }{{"cli", ""}, {"box", appSecret}} {
		form := url.Values{"client_id": {tc.client}}
		user := ""
		if tc.secret != "" {
			form, user = url.Values{}, tc.client
		}
		resp := env.post("/device_authorization", form, user, tc.secret)
		dc := decode(t, resp)["device_code"].(string)
		pollAt := func() string {
			clk.Add(5 * time.Second)
			time.Sleep(2 * maxDelay)
			f := url.Values{"grant_type": {grantDeviceCode}, "device_code": {dc}}
			if tc.secret == "" {
				f.Set("client_id", tc.client)
			}
			resp := env.post("/token", f, user, tc.secret)
			e, _ := decode(t, resp)["error"].(string)
			return e
		}
		pollAt() // the first poll of the client looks it up (and caches it)
		exp.Reset()
		const polls = 10
		for range polls {
			if e := pollAt(); e != errAuthorizationPending {
				t.Fatalf("%s: poll at the interval: %s", tc.client, e)
			}
		}
		var ops []string
		for _, s := range exp.GetSpans() {
			if strings.HasPrefix(s.Name, "storage.") {
				ops = append(ops, s.Name)
			}
		}
		count := map[string]int{}
		for _, o := range ops {
			count[o]++
		}
		gets, clients, feed := count["storage.GetToken"], count["storage.GetClient"], count["storage.ListClientChanges"]
		if gets != polls || clients != 0 || gets+feed != len(ops) {
			t.Fatalf("%s: %d polls made %d storage calls: %v", tc.client, polls, len(ops), ops)
		}
		t.Logf("%s: %d polls, %d GetToken, %d GetClient (and %d background feed reads in %v)", tc.client, polls, gets, clients,
			feed, polls*2*maxDelay)
	}
}

// BenchmarkDevicePollPending measures a pending poll of a public client in
// process on SQLite: client (cached), one GetToken, the payload decode and
// the per-instance interval check. Polls come faster than the interval, so
// they are answered slow_down, which does the same work as
// authorization_pending.
func BenchmarkDevicePollPending(b *testing.B) {
	env := newDeviceEnvOn(b, openSQLite(b))
	dc := deviceAuth(b, env, "cli", nil)["device_code"].(string)
	h := env.as.Handler()
	body := url.Values{"grant_type": {grantDeviceCode}, "device_code": {dc}, "client_id": {"cli"}}.Encode()
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req := httptest.NewRequest(http.MethodPost, "/token", strings.NewReader(body))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			w := httptest.NewRecorder()
			h.ServeHTTP(w, req)
			if w.Code != http.StatusBadRequest || !strings.Contains(w.Body.String(), "slow_down") {
				b.Fatalf("%d %s", w.Code, w.Body)
			}
		}
	})
}
