package resource

import (
	"bytes"
	"compress/zlib"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// statusServer serves one Status List Token signed by the issuer's key.
type statusServer struct {
	srv     *httptest.Server
	is      *testIssuer
	mu      sync.Mutex
	bits    []byte
	sub     string // overrides the sub claim when set
	down    bool
	gets    atomic.Int64
	not304  atomic.Int64
	version int
}

func newStatusServer(t testing.TB, is *testIssuer) *statusServer {
	s := &statusServer{is: is, bits: make([]byte, 16)}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.gets.Add(1)
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.down {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		etag := `"v` + strconv.Itoa(s.version) + `"`
		w.Header().Set("ETag", etag)
		if r.Header.Get("If-None-Match") == etag {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		s.not304.Add(1)
		var z bytes.Buffer
		zw := zlib.NewWriter(&z)
		_, _ = zw.Write(s.bits)
		_ = zw.Close()
		sub := s.uri()
		if s.sub != "" {
			sub = s.sub
		}
		now := is.clock.Now()
		tok := mintWith(t, is.signer, map[string]any{"typ": "statuslist+jwt"}, map[string]any{
			"sub": sub, "iat": now.Unix(), "exp": now.Add(time.Hour).Unix(), "ttl": 5,
			"status_list": map[string]any{"bits": 1, "lst": b64(z.Bytes())},
		})
		w.Header().Set("Content-Type", "application/statuslist+jwt")
		_, _ = w.Write([]byte(tok))
	}))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *statusServer) uri() string { return s.srv.URL + "/statuslists/1" }

func (s *statusServer) revoke(idx int) {
	s.mu.Lock()
	s.bits[idx/8] |= 1 << (idx % 8)
	s.version++
	s.mu.Unlock()
}

func (s *statusServer) token(t testing.TB, idx int) string {
	return s.is.mint(t, func(c map[string]any) {
		c["status"] = map[string]any{"status_list": map[string]any{"idx": idx, "uri": s.uri()}}
	})
}

func statusAuth(t *testing.T, is *testIssuer) *Authenticator {
	return newAuth(t, is, func(c *Config) {
		c.StatusList = StatusListConfig{Refresh: 5 * time.Second, MaxStaleness: time.Minute, SkipSameOriginCheck: true}
	})
}

// waitFor polls cond for up to a second (background refreshes run on their
// own goroutine).
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for range 100 {
		if cond() {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("condition not reached")
}

func TestStatusListRevokedTokenIsRefusedAfterOneRefresh(t *testing.T) {
	is := newTestIssuer(t)
	ss := newStatusServer(t, is)
	h := statusAuth(t, is).Middleware(okHandler)
	tok, other := ss.token(t, 3), ss.token(t, 77)
	if w := serve(h, "Bearer "+tok); w.Code != http.StatusOK {
		t.Fatalf("valid token: %d %s", w.Code, w.Body)
	}
	// Steady state: no network call per request.
	for range 50 {
		serve(h, "Bearer "+tok)
	}
	if n := ss.gets.Load(); n != 1 {
		t.Fatalf("%d list fetches for 51 requests within the refresh interval, want 1", n)
	}
	ss.revoke(3)
	if w := serve(h, "Bearer "+tok); w.Code != http.StatusOK {
		t.Fatalf("before the refresh interval the cached list answers: %d", w.Code)
	}
	is.clock.Advance(5 * time.Second)
	serve(h, "Bearer "+tok) // starts the background refresh; answered from the cache
	waitFor(t, func() bool { return serve(h, "Bearer "+tok).Code == http.StatusUnauthorized })
	if w := serve(h, "Bearer "+other); w.Code != http.StatusOK {
		t.Fatalf("another token of the list: %d", w.Code)
	}
	// The next refresh is conditional and answered 304.
	is.clock.Advance(5 * time.Second)
	serve(h, "Bearer "+other)
	waitFor(t, func() bool { return ss.gets.Load() == 3 })
	if n := ss.not304.Load(); n != 2 {
		t.Fatalf("%d full list responses, want 2 (the third fetch is a 304)", n)
	}
	if w := serve(h, "Bearer "+tok); w.Code != http.StatusUnauthorized {
		t.Fatalf("revoked token after a 304: %d", w.Code)
	}
}

func TestStatusListFailsClosedAfterMaxStaleness(t *testing.T) {
	is := newTestIssuer(t)
	ss := newStatusServer(t, is)
	h := statusAuth(t, is).Middleware(okHandler)
	tok := ss.token(t, 1)
	if w := serve(h, "Bearer "+tok); w.Code != http.StatusOK {
		t.Fatalf("valid token: %d", w.Code)
	}
	ss.mu.Lock()
	ss.down = true
	ss.mu.Unlock()
	is.clock.Advance(30 * time.Second)
	if w := serve(h, "Bearer "+tok); w.Code != http.StatusOK {
		t.Fatalf("within the staleness bound: %d", w.Code)
	}
	is.clock.Advance(31 * time.Second)
	if w := serve(h, "Bearer "+tok); w.Code != http.StatusServiceUnavailable {
		t.Fatalf("past the staleness bound with the list unreachable: %d, want 503", w.Code)
	}
}

func TestStatusListTokenIsVerified(t *testing.T) {
	is := newTestIssuer(t)
	ss := newStatusServer(t, is)
	ss.sub = "https://elsewhere.example/statuslists/1"
	h := statusAuth(t, is).Middleware(okHandler)
	if w := serve(h, "Bearer "+ss.token(t, 1)); w.Code != http.StatusServiceUnavailable {
		t.Fatalf("list whose sub is not its URI: %d, want 503", w.Code)
	}
	// Signed by a key outside the issuer's key set.
	is2 := newTestIssuer(t, newECKey("stranger"))
	ss2 := newStatusServer(t, is2)
	tok := is.mint(t, func(c map[string]any) {
		c["status"] = map[string]any{"status_list": map[string]any{"idx": 1, "uri": ss2.uri()}}
	})
	if w := serve(h, "Bearer "+tok); w.Code != http.StatusServiceUnavailable {
		t.Fatalf("list signed by an unknown key: %d, want 503", w.Code)
	}
	// By default a list must live under the issuer.
	strict := newAuth(t, is, nil).Middleware(okHandler)
	if w := serve(strict, "Bearer "+ss.token(t, 1)); w.Code != http.StatusUnauthorized {
		t.Fatalf("list outside the issuer: %d, want 401", w.Code)
	}
	// An index beyond the list.
	ss.sub = ""
	if w := serve(h, "Bearer "+ss.token(t, 1000)); w.Code != http.StatusUnauthorized {
		t.Fatalf("index outside the list: %d, want 401", w.Code)
	}
}

func TestStatusListFirstFetchIsSingleFlight(t *testing.T) {
	is := newTestIssuer(t)
	ss := newStatusServer(t, is)
	h := statusAuth(t, is).Middleware(okHandler)
	tok := ss.token(t, 2)
	var wg sync.WaitGroup
	for range 32 {
		wg.Go(func() {
			if w := serve(h, "Bearer "+tok); w.Code != http.StatusOK {
				t.Errorf("concurrent first request: %d", w.Code)
			}
		})
	}
	wg.Wait()
	if n := ss.gets.Load(); n > 2 {
		t.Fatalf("%d fetches for 32 concurrent first requests, want 1 (2 at most)", n)
	}
}
