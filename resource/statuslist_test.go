package resource

import (
	"bytes"
	"compress/zlib"
	"context"
	"errors"
	"math"
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
		sub := s.uri()
		if s.sub != "" {
			sub = s.sub
		}
		now := is.clock.Now()
		tok := mintWith(t, is.signer, map[string]any{"typ": "statuslist+jwt"}, map[string]any{
			"sub": sub, "iat": now.Unix(), "exp": now.Add(time.Hour).Unix(), "ttl": 5,
			"status_list": map[string]any{"bits": 1, "lst": b64(deflated(s.bits))},
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

// TestStatusListExpiredTokenIsNotRevivedBy304: a Status List Token's exp
// bounds how long it may be relied on (draft-ietf-oauth-status-list §5.1).
// An issuer (or a cache on the path) that keeps answering 304 to the ETag
// of an expired list must not make an Authenticator that cached it accept
// it longer than a fresh Authenticator would: the expired copy is dropped
// and the list fetched unconditionally.
func TestStatusListExpiredTokenIsNotRevivedBy304(t *testing.T) {
	is := newTestIssuer(t)
	lst := deflated(make([]byte, 16))
	var (
		listTok     atomic.Value // string
		conditional atomic.Int64
		onCondition atomic.Value // func(), run before a 304
	)
	onCondition.Store(func() {})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// The same ETag whatever the token: authserver.currentStatus
		// serves the previous token when a rebuild fails.
		w.Header().Set("ETag", `"v1"`)
		if r.Header.Get("If-None-Match") == `"v1"` {
			conditional.Add(1)
			onCondition.Load().(func())()
			w.WriteHeader(http.StatusNotModified)
			return
		}
		_, _ = w.Write([]byte(listTok.Load().(string)))
	}))
	t.Cleanup(srv.Close)
	uri := srv.URL + "/statuslists/1"
	signList := func(exp time.Time) {
		listTok.Store(mintWith(t, is.signer, map[string]any{"typ": "statuslist+jwt"}, map[string]any{
			"sub": uri, "iat": is.clock.Now().Unix(), "exp": exp.Unix(),
			"status_list": map[string]any{"bits": 1, "lst": b64(lst)},
		}))
	}
	now := is.clock.Now()
	signList(now.Add(time.Hour))
	tok := is.mint(t, func(c map[string]any) {
		c["exp"] = now.Add(10 * time.Hour).Unix()
		c["status"] = map[string]any{"status_list": map[string]any{"idx": 3, "uri": uri}}
	})
	cfg := func(c *Config) {
		c.StatusList = StatusListConfig{Refresh: 5 * time.Second, MaxStaleness: time.Minute, SkipSameOriginCheck: true}
	}
	cached := newAuth(t, is, cfg).Middleware(okHandler)
	if w := serve(cached, "Bearer "+tok); w.Code != http.StatusOK {
		t.Fatalf("list still valid: %d %s", w.Code, w.Body)
	}
	is.clock.Advance(2 * time.Hour) // the list token expired an hour ago

	fresh := newAuth(t, is, cfg).Middleware(okHandler)
	if w := serve(fresh, "Bearer "+tok); w.Code != http.StatusServiceUnavailable {
		t.Fatalf("fresh authenticator with an expired list: %d, want 503", w.Code)
	}
	if w := serve(cached, "Bearer "+tok); w.Code != http.StatusServiceUnavailable {
		t.Fatalf("authenticator that cached the list: %d, want 503 like a fresh one: "+
			"a 304 revived a Status List Token whose exp passed an hour ago", w.Code)
	}
	if n := conditional.Load(); n != 0 {
		t.Fatalf("%d conditional requests for an expired copy, want none", n)
	}

	// The issuer signs a new token but keeps the stale ETag: the
	// unconditional request gets it.
	signList(is.clock.Now().Add(time.Hour))
	if w := serve(cached, "Bearer "+tok); w.Code != http.StatusOK {
		t.Fatalf("a new list token behind the same ETag: %d, want 200", w.Code)
	}

	// The copy expires while a conditional request is on its way: the 304
	// does not count, and the unconditional retry decides.
	is.clock.Advance(59*time.Minute + 50*time.Second) // 10s (leeway 5s) before exp
	onCondition.Store(func() { is.clock.Advance(time.Minute) })
	if w := serve(cached, "Bearer "+tok); w.Code != http.StatusServiceUnavailable {
		t.Fatalf("a 304 answered after the copy expired: %d, want 503", w.Code)
	}
	if n := conditional.Load(); n != 1 {
		t.Fatalf("%d conditional requests, want 1", n)
	}
}

// TestStatusListFetchSurvivesACallersCancel: the first fetch of a list is
// shared by every waiting request (single flight); one client hanging up
// must not fail the others with 503, as RemoteKeySet already ensures.
func TestStatusListFetchSurvivesACallersCancel(t *testing.T) {
	is := newTestIssuer(t)
	lst := deflated(make([]byte, 16))
	arrived := make(chan struct{}, 8)
	release := make(chan struct{})
	var uri string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		select {
		case <-release:
		case <-r.Context().Done():
			return
		}
		now := is.clock.Now()
		_, _ = w.Write([]byte(mintWith(t, is.signer, map[string]any{"typ": "statuslist+jwt"}, map[string]any{
			"sub": uri, "iat": now.Unix(), "exp": now.Add(time.Hour).Unix(),
			"status_list": map[string]any{"bits": 1, "lst": b64(lst)},
		})))
	}))
	t.Cleanup(srv.Close)
	var releaseOnce sync.Once
	t.Cleanup(func() { releaseOnce.Do(func() { close(release) }) })
	uri = srv.URL + "/statuslists/1"
	a := newAuth(t, is, func(c *Config) {
		c.StatusList = StatusListConfig{SkipSameOriginCheck: true}
	})
	tok := is.mint(t, func(c map[string]any) {
		c["status"] = map[string]any{"status_list": map[string]any{"idx": 3, "uri": uri}}
	})

	ctxA, cancelA := context.WithCancel(context.Background())
	errA := make(chan error, 1)
	go func() { _, err := a.Verify(ctxA, tok); errA <- err }()
	select {
	case <-arrived:
	case <-time.After(5 * time.Second):
		t.Fatal("the list fetch never started")
	}
	errB := make(chan error, 1)
	go func() { _, err := a.Verify(context.Background(), tok); errB <- err }()
	time.Sleep(300 * time.Millisecond) // B joins A's flight
	cancelA()                          // client A hangs up
	select {
	case err := <-errA:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("request A, canceled while waiting: %v, want context.Canceled", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("request A kept waiting after its context was canceled")
	}
	releaseOnce.Do(func() { close(release) })
	select {
	case err := <-errB:
		if err != nil {
			t.Fatalf("request B, whose client is still there, failed because request A was canceled: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("request B did not finish")
	}
	if n := len(arrived); n != 0 {
		t.Fatalf("%d more list fetches, want the single shared one", n)
	}
}

// TestStatusListIndexOutsideTheList: an index is located by division, so
// no index, however large, overflows into a negative offset (a panic) or
// wraps to a valid entry (2^61 × 8 bits is 0 in int64); and every entry of
// every width is read where draft §4.1 puts it.
func TestStatusListIndexOutsideTheList(t *testing.T) {
	is := newTestIssuer(t)
	now := is.clock.Now()
	sc := newStatusChecker(StatusListConfig{SkipSameOriginCheck: true}, is.URL(), http.DefaultClient, time.Second,
		nil, defaultAlgorithms, 0, is.clock.Now, discardLogger())
	const uri = "https://as.example/statuslists/1"
	e := sc.entry(uri)
	e.attempted.Store(now.UnixNano())
	claims := func(idx int64) *Claims {
		c := &Claims{status: &tokenStatus{}}
		c.status.StatusList = &struct {
			Idx *int64 `json:"idx"`
			URI string `json:"uri"`
		}{Idx: &idx, URI: uri}
		return c
	}
	check := func(t *testing.T, idx int64) (err error) {
		t.Helper()
		defer func() {
			if p := recover(); p != nil {
				t.Fatalf("check panicked on idx %d: %v", idx, p)
			}
		}()
		return sc.check(t.Context(), claims(idx))
	}
	// Two bytes; the last entry of each width is set: bit 15, or the top
	// bits of byte 1.
	raw := []byte{0x00, 0x80}
	for _, bits := range []int{1, 2, 4, 8} {
		t.Run("Bits"+strconv.Itoa(bits), func(t *testing.T) {
			e.snap.Store(&statusSnapshot{raw: raw, bits: bits, fetched: now})
			n := int64(16 / bits)
			if err := check(t, n-2); err != nil {
				t.Fatalf("entry %d is VALID: %v", n-2, err)
			}
			if err := check(t, n-1); !errors.Is(err, ErrTokenRevoked) {
				t.Fatalf("entry %d is set: %v, want ErrTokenRevoked", n-1, err)
			}
			for _, idx := range []int64{n, 1 << 61, 1 << 60, 1 << 62, math.MaxInt64} {
				if err := check(t, idx); !errors.Is(err, ErrInvalidToken) || errors.Is(err, ErrTokenRevoked) {
					t.Fatalf("idx %d of a %d-entry list: err = %v, want ErrInvalidToken (index outside the list)", idx, n, err)
				}
			}
		})
	}
}

// deflated is bits zlib-compressed, as a status list's lst carries them.
func deflated(bits []byte) []byte {
	var z bytes.Buffer
	zw := zlib.NewWriter(&z)
	_, _ = zw.Write(bits)
	_ = zw.Close()
	return z.Bytes()
}
