package authserver

import (
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/oauthkit/authserver/internal/password"
	"github.com/oauthkit/authserver/keys"
	"github.com/oauthkit/authserver/storage"
)

// secondInstance starts another server on env's store and issuer, as a
// second replica behind a load balancer would be; it returns its base URL.
func secondInstance(t *testing.T, env *testEnv, mods ...func(*Config)) (string, *Server) {
	t.Helper()
	km, err := keys.New(t.Context(), env.store, keys.Config{Algorithm: "ES256", Secret: testSecret, TokenLifetime: time.Hour, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{Issuer: env.issuer, Secret: testSecret, PasswordParams: password.TestParams,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	for _, m := range mods {
		m(&cfg)
	}
	as, err := New(cfg, env.store, km)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = as.Close() })
	srv := httptest.NewServer(as.Handler())
	t.Cleanup(srv.Close)
	return srv.URL, as
}

// introspectAt introspects token at the instance at base.
func introspectAt(t *testing.T, base, token string) map[string]any {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, base+"/introspect", strings.NewReader(url.Values{"token": {token}}.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth("rs", rsSecret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("introspection: %d", resp.StatusCode)
	}
	return decode(t, resp)
}

func (env *testEnv) revoke(token string) {
	env.t.Helper()
	resp := env.post("/revoke", url.Values{"token": {token}, "client_id": {"demo"}}, "", "")
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		env.t.Fatalf("revocation: %d", resp.StatusCode)
	}
}

func TestIntrospectionCacheRevocationIsImmediateOnTheSameInstance(t *testing.T) {
	for name, open := range map[string]func(testing.TB) storage.Store{"memory": openMemory, "sqlite": openSQLite} {
		t.Run(name, func(t *testing.T) {
			// A long delay: only the synchronous read after the local
			// revocation can make the answer inactive in time.
			env := newTestEnv(t, open(t), func(c *Config) { c.RevocationMaxDelay = time.Hour })
			at, _ := env.passwordToken("alice@example.com", alicePW)
			for range 3 {
				if m := env.introspect(at); m["active"] != true {
					t.Fatalf("fresh token: %v", m)
				}
			}
			if n := env.as.introCache.len(); n != 1 {
				t.Fatalf("cache holds %d entries after introspecting one token, want 1", n)
			}
			env.revoke(at)
			if m := env.introspect(at); m["active"] != false {
				t.Fatalf("revoked token on the revoking instance: %v, want inactive at once", m)
			}
		})
	}
}

func TestIntrospectionCacheRevocationReachesOtherInstancesWithinTheDelay(t *testing.T) {
	const delay = 400 * time.Millisecond
	env := newTestEnv(t, openSQLite(t), func(c *Config) { c.RevocationMaxDelay = delay })
	other, otherSrv := secondInstance(t, env, func(c *Config) { c.RevocationMaxDelay = delay })
	at, rt := env.passwordToken("alice@example.com", alicePW)
	for range 2 { // the second answer comes from the cache and reads the feed
		if m := introspectAt(t, other, at); m["active"] != true {
			t.Fatalf("fresh token on the other instance: %v", m)
		}
	}
	if otherSrv.introCache.len() != 1 {
		t.Fatal("the other instance did not cache the token")
	}
	env.revoke(rt)
	revoked := time.Now()
	for {
		m := introspectAt(t, other, at)
		if m["active"] == false {
			break
		}
		if time.Since(revoked) > delay {
			t.Fatalf("the other instance still reads the revoked token active after %v (max delay %v)", time.Since(revoked), delay)
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Logf("inactive on the other instance after %v", time.Since(revoked))
}

func TestIntrospectionCacheRefreshEndsTheOldAccessTokenWithinTheDelay(t *testing.T) {
	const delay = 400 * time.Millisecond
	env := newTestEnv(t, openMemory(t), func(c *Config) { c.RevocationMaxDelay = delay })
	at, rt := env.passwordToken("alice@example.com", alicePW)
	if m := env.introspect(at); m["active"] != true {
		t.Fatalf("fresh token: %v", m)
	}
	resp := env.post("/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}, "client_id": {"demo"}}, "", "")
	if m := decode(t, resp); m["access_token"] == nil {
		t.Fatalf("refresh: %v", m)
	}
	time.Sleep(delay + 50*time.Millisecond)
	if m := env.introspect(at); m["active"] != false {
		t.Fatalf("the access token replaced by a refresh reads %v after the delay", m)
	}
}

func TestIntrospectionCacheIsBounded(t *testing.T) {
	env := newTestEnv(t, openMemory(t), func(c *Config) { c.IntrospectionCacheSize = 2 })
	for range 5 {
		at, _ := env.passwordToken("alice@example.com", alicePW)
		if m := env.introspect(at); m["active"] != true {
			t.Fatalf("fresh token: %v", m)
		}
		if n := env.as.introCache.len(); n > 2 {
			t.Fatalf("cache holds %d entries, bound 2", n)
		}
	}
}

func TestIntrospectionCacheDisabled(t *testing.T) {
	env := newTestEnv(t, openMemory(t), func(c *Config) { c.IntrospectionCacheSize = -1 })
	at, _ := env.passwordToken("alice@example.com", alicePW)
	if m := env.introspect(at); m["active"] != true {
		t.Fatalf("fresh token: %v", m)
	}
	// Deleting the record behind the server's back shows at once: nothing
	// is cached.
	if _, err := env.store.RevokeTokens(t.Context(), storage.TokenFilter{Subject: env.alice.ID}); err != nil {
		t.Fatal(err)
	}
	if m := env.introspect(at); m["active"] != false {
		t.Fatalf("uncached revoked token: %v", m)
	}
}

func TestRevocationSetGivesUpGapsAfterTheWait(t *testing.T) {
	r := newRevocationSet(nil, time.Second)
	now := time.Now()
	c := &r.cursor
	c.add(1)
	c.add(3)
	if n := c.advance(now, 3); c.pos != 1 || n != 0 {
		t.Fatalf("cursor %d, want 1: seq 2 may still commit", c.pos)
	}
	c.advance(now.Add(revocationGapWait/2), 3)
	if c.pos != 1 {
		t.Fatalf("cursor %d before the gap wait, want 1", c.pos)
	}
	if c.add(3) {
		t.Fatal("seq 3 read again counted as new")
	}
	if n := c.advance(now.Add(revocationGapWait), 3); n != 1 {
		t.Fatalf("gave up %d gaps, want 1", n)
	}
	if c.pos != 3 || len(c.gaps) != 0 || len(c.seen) != 0 {
		t.Fatalf("after the wait: cursor %d gaps %v seen %v, want 3 and none", c.pos, c.gaps, c.seen)
	}
	// At most maxGaps numbers below the highest read are waited for.
	c.maxGaps = 10
	c.add(100)
	if n := c.advance(now.Add(revocationGapWait), 100); n != 87 {
		t.Fatalf("far above the cursor: gave up %d gaps, want 87 (4..90)", n)
	}
	if c.pos != 90 || len(c.gaps) != 9 {
		t.Fatalf("far above the cursor: cursor %d, %d gaps; want 90 and 9", c.pos, len(c.gaps))
	}
}

// The cache's memory per entry, measured on the heap with claims shaped like
// a password-grant token's, bounds the cache at its default size (the figure
// in BENCHMARKS.md comes from this test's log).
func TestIntrospectionCacheMemoryPerEntry(t *testing.T) {
	const n = 10000
	c := newIntroCache(n)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for i := range n {
		var key [32]byte
		binary.BigEndian.PutUint64(key[:], uint64(i))
		res := &introspection{Active: true, Scope: strings.Clone("openid profile read write"), ClientID: strings.Clone("demo-client"),
			Username: fmt.Sprintf("user-%06d@example.com", i), TokenType: "Bearer", Expiry: 1e9, IssuedAt: 1e9, NotBefore: 1e9,
			Subject: fmt.Sprintf("u-%032d", i), Audience: []string{strings.Clone("https://auth.example.com/api")},
			Issuer: strings.Clone("https://auth.example.com"), JTI: fmt.Sprintf("%036d", i), Roles: []string{strings.Clone("user")}}
		c.put(key, cachedIntrospection{res: res, verified: verified{sig: revocationKeyOf(fmt.Sprint(i)), kid: strings.Clone("key-2026-12-05")}})
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	per := float64(after.HeapAlloc-before.HeapAlloc) / n
	t.Logf("%d entries: %.0f bytes each, %.1f MiB in all", c.len(), per, per*n/(1<<20))
	if per > 2048 {
		t.Errorf("%.0f bytes per entry; the documented bound assumes under 2 KiB", per)
	}
	runtime.KeepAlive(c)
}
