package authserver

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/oauthkit/authserver/internal/password"
	"github.com/oauthkit/authserver/storage"
	sqlstore "github.com/oauthkit/authserver/storage/sql"
	"github.com/oauthkit/authserver/storage/storagetrace"
)

// clientCredentialsStatus asks h for a client_credentials token as id with
// secret and returns the status.
func clientCredentialsStatus(t testing.TB, h http.Handler, id, secret string) int {
	t.Helper()
	req := httptest.NewRequest(http.MethodPost, "/token", strings.NewReader(url.Values{"grant_type": {"client_credentials"}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(id, secret)
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	return w.Code
}

// spanCounter counts storage calls by name.
type spanCounter struct{ exp *tracetest.InMemoryExporter }

func newSpanCounter(t testing.TB) (*spanCounter, *sdktrace.TracerProvider) {
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	return &spanCounter{exp: exp}, tp
}

func (c *spanCounter) count(name string) int {
	n := 0
	for _, s := range c.exp.GetSpans() {
		if s.Name == "storage."+name {
			n++
		}
	}
	return n
}

// untilStatus calls f until it returns want and reports how long that took;
// it fails the test after limit.
func untilStatus(t *testing.T, what string, want int, limit time.Duration, f func() int) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		got := f()
		if got == want {
			return time.Since(start)
		}
		if time.Since(start) > limit {
			t.Fatalf("%s: still %d after %v, want %d", what, got, limit, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Two instances on one SQLite file (two handles, as two processes would
// have): a client whose secret is rotated, or that is deleted, through
// storage (as the CLI does) stops authenticating at the other instance
// within ClientChangeMaxDelay, although that instance answered it from its
// cache with no GetClient in between; the new secret works there at once.
func TestClientChangeReachesOtherInstanceSQLite(t *testing.T) {
	const maxDelay = 300 * time.Millisecond
	path := t.TempDir() + "/auth.db"
	open := func() storage.Store {
		st, err := sqlstore.OpenSQLite(t.Context(), path)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		return st
	}
	storeA := open()
	a := newTestEnv(t, storeA, func(c *Config) { c.ClientChangeMaxDelay = maxDelay })
	calls, tp := newSpanCounter(t)
	cfgB := a.as.cfg
	b, err := New(cfgB, storagetrace.Wrap(open(), tp), a.km)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	hb := b.Handler()

	// Cache hits, spread over several times the delay: one GetClient.
	for range 8 {
		if st := clientCredentialsStatus(t, hb, "svc", svcSecret); st != http.StatusOK {
			t.Fatalf("client_credentials at B: %d", st)
		}
		time.Sleep(maxDelay / 2)
	}
	if n := calls.count("GetClient"); n != 1 {
		t.Fatalf("8 requests over %v made %d GetClient calls at B, want 1 (then cache hits)", 4*maxDelay, n)
	}
	if calls.count("ListClientChanges") == 0 {
		t.Fatal("B never read the client change feed")
	}

	// Rotated through storage, on A's handle.
	rotateSVC(t, storeA)
	took := untilStatus(t, "old secret at B after rotation", http.StatusUnauthorized, 5*time.Second,
		func() int { return clientCredentialsStatus(t, hb, "svc", svcSecret) })
	if took > maxDelay+200*time.Millisecond {
		t.Errorf("the rotated secret kept working at B for %v, want at most the max delay %v (+ scheduling slack)", took, maxDelay)
	}
	t.Logf("rotated secret refused at B after %v (max delay %v)", took, maxDelay)
	if st := clientCredentialsStatus(t, hb, "svc", svcRotated); st != http.StatusOK {
		t.Fatalf("new secret at B: %d", st)
	}

	// Deleted through storage.
	if st := clientCredentialsStatus(t, hb, "app", appSecret); st != http.StatusOK {
		t.Fatalf("app at B: %d", st)
	}
	if err := storeA.DeleteClient(t.Context(), "app"); err != nil {
		t.Fatal(err)
	}
	took = untilStatus(t, "deleted client at B", http.StatusUnauthorized, 5*time.Second,
		func() int { return clientCredentialsStatus(t, hb, "app", appSecret) })
	if took > maxDelay+200*time.Millisecond {
		t.Errorf("the deleted client kept working at B for %v, want at most %v (+ slack)", took, maxDelay)
	}
	t.Logf("deleted client refused at B after %v", took)
}

// The instance that changes a client forgets it at once: ForgetClient (the
// admin API) and registration management (RFC 7592) leave no window.
func TestClientChangeIsLocalAtOnce(t *testing.T) {
	env := newTestEnv(t, openMemory(t), func(c *Config) { c.ClientChangeMaxDelay = time.Minute })
	h := env.as.Handler()
	if st := clientCredentialsStatus(t, h, "svc", svcSecret); st != http.StatusOK {
		t.Fatalf("client_credentials: %d", st)
	}
	rotateSVC(t, env.store)
	env.as.ForgetClient("svc")
	if st := clientCredentialsStatus(t, h, "svc", svcSecret); st != http.StatusUnauthorized {
		t.Fatalf("old secret right after ForgetClient: %d, want 401", st)
	}
}

// flakyFeed is a real store whose client change feed can be made to fail.
type flakyFeed struct {
	storage.Store
	fail atomic.Bool
}

func (f *flakyFeed) ListClientChanges(ctx context.Context, after int64, limit int) ([]storage.ClientChange, error) {
	if f.fail.Load() {
		return nil, errors.New("feed unavailable")
	}
	return f.Store.ListClientChanges(ctx, after, limit)
}

// While the feed cannot be read, cached registrations are trusted for at
// most ClientChangeMaxDelay: then every request reads the client from
// storage, so a rotation is seen at once; when the feed is back, cache hits
// cost nothing again.
func TestClientCacheFallsBackWhenFeedFails(t *testing.T) {
	const maxDelay = 100 * time.Millisecond
	calls, tp := newSpanCounter(t)
	feed := &flakyFeed{Store: storagetrace.Wrap(openMemory(t), tp)}
	env := newTestEnv(t, feed, func(c *Config) { c.ClientChangeMaxDelay = maxDelay })
	h := env.as.Handler()
	ok := func(what string) {
		t.Helper()
		if st := clientCredentialsStatus(t, h, "svc", svcSecret); st != http.StatusOK {
			t.Fatalf("%s: %d", what, st)
		}
	}
	ok("first request")
	time.Sleep(3 * maxDelay)
	ok("cache hit")
	if n := calls.count("GetClient"); n != 1 {
		t.Fatalf("GetClient calls with a readable feed = %d, want 1", n)
	}

	feed.fail.Store(true)
	time.Sleep(3 * maxDelay)
	ok("feed down")
	if n := calls.count("GetClient"); n != 2 {
		t.Fatalf("GetClient calls after the feed failed for 3× the delay = %d, want 2 (read from storage)", n)
	}
	time.Sleep(maxDelay + 20*time.Millisecond) // that read's own trust ends
	ok("feed down, later")
	if n := calls.count("GetClient"); n != 3 {
		t.Fatalf("GetClient calls once the read is older than the delay = %d, want 3", n)
	}
	rotateSVC(t, env.store)
	time.Sleep(maxDelay + 20*time.Millisecond) // the last read's own trust ends
	if st := clientCredentialsStatus(t, h, "svc", svcSecret); st != http.StatusUnauthorized {
		t.Fatalf("rotated secret with the feed down: %d, want 401", st)
	}

	feed.fail.Store(false)
	if _, err := env.store.UpdateClient(t.Context(), "svc", func(c storage.Client) (storage.Client, error) {
		c.SecretHashes = []string{password.HashSecret(svcSecret)}
		return c, nil
	}); err != nil {
		t.Fatal(err)
	}
	ok("feed back")
	// The first poll after the outage reads the changes made during it,
	// and may forget what that request cached.
	time.Sleep(3 * maxDelay)
	ok("feed back, settled")
	before := calls.count("GetClient")
	time.Sleep(3 * maxDelay)
	ok("feed back, cache hit")
	if n := calls.count("GetClient") - before; n != 0 {
		t.Fatalf("GetClient calls on a cache hit with the feed back = %d, want 0", n)
	}
}

// A storage read of a client that overlaps a change to it is not cached:
// the read may have returned the registration the change replaced.
func TestClientCacheDropsReadsOverlappingAForget(t *testing.T) {
	cc := newClientCache([]byte("k"), time.Hour, time.Minute)
	now := time.Now()
	rd := cc.begin("c1")
	cc.forget("c1")
	cc.put("c1", "s", storage.Client{ID: "c1"}, now, rd)
	if _, ok := cc.get("c1", "s", now); ok {
		t.Fatal("a read overlapping a forget was cached")
	}
	rd = cc.begin("c1")
	cc.put("c1", "s", storage.Client{ID: "c1"}, now, rd)
	if _, ok := cc.get("c1", "s", now); !ok {
		t.Fatal("a read after the forget was not cached")
	}
	if _, ok := cc.get("c1", "other", now); ok {
		t.Fatal("another secret hit the cache")
	}
	cc.forget("c1")
	if _, ok := cc.get("c1", "s", now); ok || !cc.empty() {
		t.Fatal("forget left an entry")
	}
}

// BenchmarkClientCacheHit is the client authentication of a cache hit: the
// keyed hash of the credentials, the lookup and the freshness check.
func BenchmarkClientCacheHit(b *testing.B) {
	cc := newClientCache([]byte("k"), time.Hour, time.Hour)
	now := time.Now()
	cc.put("svc", svcSecret, storage.Client{ID: "svc"}, now, cc.begin("svc"))
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, ok := cc.get("svc", svcSecret, now); !ok {
				b.Fatal("miss")
			}
		}
	})
}

// gappyFeed is a client change feed with a hole at seq 1: the change that
// took it may still commit, or never will.
type gappyFeed struct{}

func (gappyFeed) ListClientChanges(_ context.Context, after int64, _ int) ([]storage.ClientChange, error) {
	if after >= 2 {
		return nil, nil
	}
	return []storage.ClientChange{{Seq: 2, ClientID: "other"}}, nil
}

// A gap the poller gives up on drops every cached registration (a change
// committing in it later would never be read); while the gap is still
// waited for, the entries of clients the feed did not name stay.
func TestClientFeedGivingUpAGapClearsTheCache(t *testing.T) {
	for _, tc := range []struct {
		maxGaps int64
		kept    bool
	}{{clientChangeMaxGaps, true}, {0, false}} {
		cc := newClientCache([]byte("k"), time.Hour, time.Hour)
		now := time.Now()
		cc.put("c1", "s", storage.Client{ID: "c1"}, now, cc.begin("c1"))
		f := newClientFeed(gappyFeed{}, cc, slog.New(slog.DiscardHandler), time.Now)
		f.cursor.maxGaps = tc.maxGaps
		// A read in flight across the poll, of a client whose forget
		// counter is not the one of "other", which the feed names (the
		// counters are shared by hash, and a shared one drops the read).
		c2 := "c2"
		for i := 0; cc.gen(c2) == cc.gen("other"); i++ {
			c2 = "c2-" + strconv.Itoa(i)
		}
		rd := cc.begin(c2)
		if err := f.poll(t.Context()); err != nil {
			t.Fatal(err)
		}
		cc.put(c2, "s", storage.Client{ID: c2}, now, rd)
		if _, ok := cc.get("c1", "s", now); ok != tc.kept {
			t.Errorf("maxGaps %d: c1 cached = %v, want %v", tc.maxGaps, ok, tc.kept)
		}
		if _, ok := cc.get(c2, "s", now); ok != tc.kept {
			t.Errorf("maxGaps %d: the read in flight cached = %v, want %v", tc.maxGaps, ok, tc.kept)
		}
	}
}

// svcRotated is the secret rotateSVC gives svc.
const svcRotated = "svc-rotated-0123456789-0123456789-abcdef"

// rotateSVC replaces svc's secrets with svcRotated through storage, as
// another instance or the CLI would.
func rotateSVC(t *testing.T, st storage.Store) {
	t.Helper()
	if _, err := st.UpdateClient(t.Context(), "svc", func(c storage.Client) (storage.Client, error) {
		c.SecretHashes = []string{password.HashSecret(svcRotated)}
		return c, nil
	}); err != nil {
		t.Fatal(err)
	}
}

// A registration entry (a polling public client's, an assertion client's)
// proves no secret: get never returns it, whatever secret is presented,
// the empty one included; a proven secret's entry is not a registration.
func TestClientCacheRegistrationsProveNoSecret(t *testing.T) {
	cc := newClientCache([]byte("k"), time.Minute, time.Hour)
	now := time.Now()
	c := storage.Client{ID: "pk", TokenEndpointAuthMethod: AuthMethodPrivateKey}
	cc.putRegistration("pk", c, now, 0, cc.begin("pk"))
	for _, secret := range []string{"", "x"} {
		if _, ok := cc.get("pk", secret, now); ok {
			t.Fatalf("get(pk, %q) returned a registration entry", secret)
		}
	}
	if got, ok := cc.registration("pk", now); !ok || got.ID != "pk" {
		t.Fatalf("registration(pk) = %v, %v", got.ID, ok)
	}
	cc.put("svc", "s3cret", storage.Client{ID: "svc"}, now, cc.begin("svc"))
	if _, ok := cc.registration("svc", now); ok {
		t.Fatal("a proven secret's entry was returned as a registration")
	}
	if _, ok := cc.get("svc", "s3cret", now); !ok {
		t.Fatal("the proven secret's entry is missing")
	}
}

// Registrations, which /authorize caches for any client ID it is given,
// never clear a full cache: past the bound they are not kept, and the
// verified credentials stay.
func TestClientCacheRegistrationsNeverClearIt(t *testing.T) {
	cc := newClientCache([]byte("k"), time.Minute, time.Hour)
	now := time.Now()
	cc.put("svc", "s3cret", storage.Client{ID: "svc"}, now, cc.begin("svc"))
	for i := range maxCachedClients + 10 {
		id := "web-" + strconv.Itoa(i)
		cc.putRegistration(id, storage.Client{ID: id}, now, 0, cc.begin(id))
	}
	if _, ok := cc.get("svc", "s3cret", now); !ok {
		t.Fatal("registrations cleared a verified credential")
	}
	if _, ok := cc.registration("web-0", now); !ok {
		t.Fatal("a registration cached before the bound is missing")
	}
	last := "web-" + strconv.Itoa(maxCachedClients+9)
	if _, ok := cc.registration(last, now); ok {
		t.Fatal("a registration past the bound was kept")
	}
	// A verified credential that finds the cache full still clears it.
	cc.put("app", "s3cret2", storage.Client{ID: "app"}, now, cc.begin("app"))
	if _, ok := cc.get("app", "s3cret2", now); !ok {
		t.Fatal("a verified credential was not cached in a full cache")
	}
}
