package authserver

import (
	"errors"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/oauthkit/authserver/internal/password"
	"github.com/oauthkit/authserver/storage"
)

func trustLoopback(c *Config) {
	c.Throttle.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}
}

func (env *testEnv) login(email, pw, ip string) (int, map[string]any, http.Header) {
	env.t.Helper()
	resp := env.post("/token", url.Values{"grant_type": {"password"}, "username": {email}, "password": {pw}, "client_id": {"demo"}}, "", "", "X-Forwarded-For", ip)
	return resp.StatusCode, decode(env.t, resp), resp.Header
}

func TestThrottleWrongPasswords(t *testing.T) {
	env := newTestEnv(t, openMemory(t), trustLoopback)
	var throttled int
	for i := 0; i < 20; i++ {
		status, m, h := env.login("alice@example.com", "wrong-"+strconv.Itoa(i), "203.0.113.7")
		switch status {
		case http.StatusBadRequest:
			if m["error"] != "invalid_grant" {
				t.Fatalf("attempt %d: %v", i, m)
			}
		case http.StatusTooManyRequests:
			throttled++
			if ra, err := strconv.Atoi(h.Get("Retry-After")); err != nil || ra < 1 {
				t.Fatalf("Retry-After = %q", h.Get("Retry-After"))
			}
			if h.Get("Cache-Control") != "no-store" {
				t.Error("429 without Cache-Control: no-store")
			}
		default:
			t.Fatalf("attempt %d: %d %v", i, status, m)
		}
	}
	if throttled < 14 {
		t.Fatalf("only %d of 20 wrong attempts were throttled", throttled)
	}
	// The correct password from the attacker's address is throttled too
	// (announced, not silently refused).
	if status, _, _ := env.login("alice@example.com", alicePW, "203.0.113.7"); status != http.StatusTooManyRequests {
		t.Fatalf("correct password from the throttled address: %d", status)
	}
	// Another user from another address is unaffected; so is alice herself
	// from her own address (no lockout weapon).
	if status, m, _ := env.login("bob@example.com", bobPW, "198.51.100.1"); status != 200 {
		t.Fatalf("bob: %d %v", status, m)
	}
	if status, m, _ := env.login("alice@example.com", alicePW, "198.51.100.2"); status != 200 {
		t.Fatalf("alice from her own address: %d %v", status, m)
	}
}

func TestThrottleParallelAttemptsDoNotExceedLimit(t *testing.T) {
	env := newTestEnv(t, openMemory(t), trustLoopback)
	var mu sync.Mutex
	counts := map[int]int{}
	var wg sync.WaitGroup
	for i := 0; i < 100; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			status, _, _ := env.login("alice@example.com", "wrong", "203.0.113.9")
			mu.Lock()
			counts[status]++
			mu.Unlock()
		}()
	}
	wg.Wait()
	free := env.as.cfg.Throttle.AccountIP.Free
	if counts[400] > free || counts[400]+counts[429] != 100 {
		t.Fatalf("statuses %v: more than %d attempts were checked", counts, free)
	}
}

func TestThrottleClientSecrets(t *testing.T) {
	env := newTestEnv(t, openMemory(t), trustLoopback)
	var got []int
	for i := 0; i < 15; i++ {
		resp := env.post("/token", url.Values{"grant_type": {"client_credentials"}}, "svc", "wrong-wrong-wrong-wrong-wrong-wrong-"+strconv.Itoa(i), "X-Forwarded-For", "203.0.113.10")
		got = append(got, resp.StatusCode)
		resp.Body.Close()
	}
	if !slices.Contains(got, http.StatusTooManyRequests) {
		t.Fatalf("no throttling of client secret guessing: %v", got)
	}
	// Introspection shares the protection.
	resp := env.post("/introspect", url.Values{"token": {"x"}}, "svc", "wrong-wrong-wrong-wrong-wrong-wrong", "X-Forwarded-For", "203.0.113.10")
	resp.Body.Close()
	if resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("introspection with a throttled client: %d", resp.StatusCode)
	}
}

func TestThrottleCountersSharedByInstances(t *testing.T) {
	store := openMemory(t)
	a := newTestEnv(t, store, trustLoopback)
	// A second server on the same store, as a second instance.
	b := &testEnv{t: t, store: store, issuer: a.issuer}
	b.srv = a.srv
	as2, err := New(a.as.cfg, store, a.km)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = as2.Close() })
	srv2 := newHTTPTestServer(t, as2.Handler())
	var statuses []int
	for i := 0; i < 12; i++ {
		target := a.srv.URL
		if i%2 == 1 {
			target = srv2
		}
		req, _ := http.NewRequest("POST", target+"/token", stringsReader(url.Values{"grant_type": {"password"}, "username": {"alice@example.com"}, "password": {"wrong"}, "client_id": {"demo"}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("X-Forwarded-For", "203.0.113.11")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		statuses = append(statuses, resp.StatusCode)
	}
	n400 := 0
	for _, s := range statuses {
		if s == 400 {
			n400++
		}
	}
	if n400 > a.as.cfg.Throttle.AccountIP.Free {
		t.Fatalf("two instances admitted %d attempts: %v", n400, statuses)
	}
}

// Unknown user and wrong password take the same time (one hash either way).
func TestLoginTimingDoesNotRevealUsers(t *testing.T) {
	if testing.Short() {
		t.Skip("timing test skipped under -short")
	}
	env := newTestEnv(t, openMemory(t), func(c *Config) {
		c.Throttle.Disabled = true
		c.PasswordParams = password.DefaultParams
	})
	// alice's hash must use the same parameters as the dummy hash.
	h, _ := password.Hash(alicePW, password.DefaultParams)
	if _, err := env.store.UpdateUser(t.Context(), env.alice.ID, func(u storage.User) (storage.User, error) {
		u.PasswordHash = h
		return u, nil
	}); err != nil {
		t.Fatal(err)
	}
	measure := func(email string) time.Duration {
		start := time.Now()
		status, _, _ := env.login(email, "wrong-password", "")
		if status != 400 {
			t.Fatalf("status %d", status)
		}
		return time.Since(start)
	}
	var known, unknown []time.Duration
	for i := 0; i < 40; i++ {
		// Alternate the order so that neither path always runs first.
		if i%2 == 0 {
			known = append(known, measure("alice@example.com"))
			unknown = append(unknown, measure("nobody@example.com"))
		} else {
			unknown = append(unknown, measure("nobody@example.com"))
			known = append(known, measure("alice@example.com"))
		}
	}
	median := func(d []time.Duration) time.Duration {
		sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
		return d[len(d)/2]
	}
	// Paired differences cancel the drift of a shared, noisy machine.
	var rel []time.Duration
	for i := range known {
		rel = append(rel, time.Duration(float64(known[i]-unknown[i])/float64(unknown[i])*1e6))
	}
	mk, mu := median(known), median(unknown)
	diff := float64(median(rel)) / 1e6
	if diff < 0 {
		diff = -diff
	}
	t.Logf("median wrong password %v, unknown user %v; median paired difference %.1f%%", mk, mu, diff*100)
	// A leak (no hash for unknown users) moves both figures by far more
	// than 10%; noise on a loaded machine has moved one of them past it
	// while the other stayed within 1%, so both must show the difference.
	ratio := float64(mk-mu) / float64(mu)
	if ratio < 0 {
		ratio = -ratio
	}
	if diff > 0.10 && ratio > 0.10 {
		t.Fatalf("wrong password and unknown user differ by %.1f%% (paired) and %.1f%% (medians), > 10%%", diff*100, ratio*100)
	}
}

// Many concurrent sign-ins of different users from one address (a NAT, a
// proxy) are not throttled: the address counts failures, not attempts.
func TestThrottleManyUsersBehindOneAddress(t *testing.T) {
	env := newTestEnv(t, openMemory(t), trustLoopback)
	const n = 80
	h, _ := password.Hash("a long enough passphrase", password.TestParams)
	for i := 0; i < n; i++ {
		if err := env.store.CreateUser(t.Context(), storage.User{ID: "nat-" + strconv.Itoa(i), Email: "nat" + strconv.Itoa(i) + "@example.com", PasswordHash: h}); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	counts := map[int]int{}
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			status, _, _ := env.login("nat"+strconv.Itoa(i)+"@example.com", "a long enough passphrase", "203.0.113.50")
			mu.Lock()
			counts[status]++
			mu.Unlock()
		}()
	}
	wg.Wait()
	if counts[200] != n {
		t.Fatalf("statuses %v: sign-ins behind one address were throttled", counts)
	}
}

// concurrently runs fn n times at once and counts the statuses it returns.
func concurrently(n int, fn func(i int) int) map[int]int {
	var wg sync.WaitGroup
	var mu sync.Mutex
	counts := map[int]int{}
	start := make(chan struct{})
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			status := fn(i)
			mu.Lock()
			counts[status]++
			mu.Unlock()
		}()
	}
	close(start)
	wg.Wait()
	return counts
}

// Concurrent correct password grants for one account from one address (a
// pool of workers sharing a service account) are all answered: throttling
// counts failures, not correct attempts in flight.
// throttleStores runs a throttling test on the memory store and on SQLite,
// whose counters are written in lazy transactions (reservations, and the
// releases of a sign-in, which has no group commit).
func throttleStores(t *testing.T, f func(t *testing.T, store storage.Store)) {
	for _, s := range []struct {
		name string
		open func(testing.TB) storage.Store
	}{{"memory", openMemory}, {"sqlite", openSQLite}} {
		t.Run(s.name, func(t *testing.T) { f(t, s.open(t)) })
	}
}

func TestThrottleConcurrentCorrectPasswordGrants(t *testing.T) {
	throttleStores(t, testConcurrentCorrectPasswordGrants)
}

func testConcurrentCorrectPasswordGrants(t *testing.T, store storage.Store) {
	env := newTestEnv(t, store, trustLoopback, slowHashes)
	slowUsers(t, env)
	counts := concurrently(16, func(int) int {
		status, _, _ := env.login("alice@example.com", alicePW, "203.0.113.20")
		return status
	})
	if counts[200] != 16 {
		t.Fatalf("statuses %v: correct passwords were refused because of other correct ones", counts)
	}
	if got := counterValue(t, env.as.metrics.loginFailures); got != 0 {
		t.Fatalf("%v login failures recorded for correct passwords", got)
	}
	// The protection is intact afterwards: wrong passwords are still limited.
	counts = concurrently(20, func(int) int {
		status, _, _ := env.login("alice@example.com", "wrong", "203.0.113.20")
		return status
	})
	if free := env.as.cfg.Throttle.AccountIP.Free; counts[400] > free || counts[400]+counts[429] != 20 {
		t.Fatalf("statuses %v after the correct burst: more than %d wrong passwords were checked", counts, free)
	}
}

// 100 parallel wrong passwords get no more verifications than the limit
// allows, counted on the server (hashes compared), while another account
// signing in from the same address at the same time is unaffected.
func TestThrottleParallelWrongPasswordsCountedOnServer(t *testing.T) {
	throttleStores(t, testParallelWrongPasswordsCountedOnServer)
}

func testParallelWrongPasswordsCountedOnServer(t *testing.T, store storage.Store) {
	env := newTestEnv(t, store, trustLoopback, slowHashes)
	slowUsers(t, env)
	var bob [4]int
	counts := concurrently(104, func(i int) int {
		if i%26 == 0 {
			status, _, _ := env.login("bob@example.com", bobPW, "203.0.113.21")
			bob[i/26] = status
			return -status
		}
		status, _, _ := env.login("alice@example.com", "wrong", "203.0.113.21")
		return status
	})
	free := env.as.cfg.Throttle.AccountIP.Free
	if counts[400] > free || counts[400]+counts[429] != 100 {
		t.Fatalf("statuses %v: more than %d wrong passwords were answered", counts, free)
	}
	if got := counterValue(t, env.as.metrics.loginFailures); got > float64(free) {
		t.Fatalf("%v wrong passwords verified, limit %d", got, free)
	}
	if bob != [4]int{200, 200, 200, 200} {
		t.Fatalf("bob from the same address during the flood: %v", bob)
	}
}

// The sign-in form shares the throttle: several tabs signing in at once with
// the right password all get in; parallel wrong passwords stay limited.
func TestThrottleLoginFormConcurrentSignIns(t *testing.T) {
	throttleStores(t, testLoginFormConcurrentSignIns)
}

func testLoginFormConcurrentSignIns(t *testing.T, store storage.Store) {
	env := newTestEnv(t, store, slowHashes)
	seedCodeClients(t, env)
	slowUsers(t, env)
	_, ch := pkcePair("c")
	pages := make([]*page, 16)
	browsers := make([]*browser, 16)
	for i := range pages {
		browsers[i] = newBrowser(t, env)
		pages[i] = browsers[i].get(authorizeQuery("web", webRedirect, "s", ch))
	}
	counts := concurrently(16, func(i int) int {
		p := browsers[i].signIn(pages[i], "alice@example.com", alicePW)
		if p.status == 200 && !strings.Contains(p.body, `value="allow"`) {
			return -1 // not the consent page
		}
		return p.status
	})
	if counts[200] != 16 {
		t.Fatalf("statuses %v: concurrent correct sign-ins were refused", counts)
	}
	// Each correct sign-in released its reservation: nothing is counted
	// against the account.
	_, kA, _ := passwordKeys("alice@example.com", "")
	errPeek := errors.New("peek")
	if _, err := store.UpdateAttempts(t.Context(), kA, func(a storage.Attempts) (storage.Attempts, error) {
		if a.Failures != 0 {
			t.Errorf("after the correct sign-ins the account counter is %d, want 0", a.Failures)
		}
		return a, errPeek
	}); !errors.Is(err, errPeek) {
		t.Fatal(err)
	}

	for i := range pages {
		browsers[i] = newBrowser(t, env)
		pages[i] = browsers[i].get(authorizeQuery("web", webRedirect, "s", ch))
	}
	before := counterValue(t, env.as.metrics.loginFailures)
	counts = concurrently(16, func(i int) int {
		return browsers[i].signIn(pages[i], "bob@example.com", "wrong").status
	})
	free := env.as.cfg.Throttle.AccountIP.Free
	if counts[http.StatusUnauthorized] > free || counts[http.StatusUnauthorized]+counts[http.StatusTooManyRequests] != 16 {
		t.Fatalf("statuses %v: more than %d wrong passwords were checked", counts, free)
	}
	if got := counterValue(t, env.as.metrics.loginFailures) - before; got > float64(free) {
		t.Fatalf("%v wrong passwords verified, limit %d", got, free)
	}
}

// counterValue reads a Prometheus counter.
func counterValue(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

// slowParams make a hash slow enough (several milliseconds) that concurrent
// attempts overlap, queued behind the hashing semaphore as in production.
var slowParams = password.Params{Memory: 4096, Time: 2, Threads: 1, SaltLen: 16, KeyLen: 32}

// slowHashes also lets queued hashes wait longer than the default 2 s, so
// that a slow machine (or -race) gets no 503 from the hash queue.
func slowHashes(c *Config) {
	c.PasswordParams = slowParams
	c.HashQueueTimeout = time.Minute
}

// slowUsers rehashes alice's and bob's passwords with slowParams.
func slowUsers(t *testing.T, env *testEnv) {
	t.Helper()
	for id, pw := range map[string]string{env.alice.ID: alicePW, env.bob.ID: bobPW} {
		h, err := password.Hash(pw, slowParams)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := env.store.UpdateUser(t.Context(), id, func(u storage.User) (storage.User, error) {
			u.PasswordHash = h
			return u, nil
		}); err != nil {
			t.Fatal(err)
		}
	}
}

// A correct password whose token request then fails (a reset password that
// must be changed, a refused resource) still resets the account's
// counters: it never adds up to a 429 for the correct password.
func TestCorrectPasswordWithAFailedRequestIsNotAFailure(t *testing.T) {
	for _, tc := range []string{"MustChangePassword", "RefusedResource"} {
		t.Run(tc, func(t *testing.T) {
			env := newTestEnv(t, openMemory(t))
			form := passwordForm("demo")
			if tc == "MustChangePassword" {
				if _, err := env.store.UpdateUser(t.Context(), env.alice.ID, func(u storage.User) (storage.User, error) {
					u.MustChangePassword = true
					return u, nil
				}); err != nil {
					t.Fatal(err)
				}
			} else {
				form.Set("resource", "https://not-allowed.example/")
			}
			for i := range 12 {
				resp := env.post("/token", form, "", "")
				m := decode(t, resp)
				if resp.StatusCode != http.StatusBadRequest {
					t.Fatalf("attempt %d: %d %v, want 400 (the request's own error)", i+1, resp.StatusCode, m)
				}
			}
			for _, k := range []string{"acct:alice@example.com"} {
				a, err := env.store.UpdateAttempts(t.Context(), k, func(a storage.Attempts) (storage.Attempts, error) { return a, nil })
				if err != nil || a.Failures != 0 {
					t.Errorf("counter %s after 12 correct passwords: %+v %v", k, a, err)
				}
			}
		})
	}
}
