package resource

import (
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/oauthkit/authserver/internal/dpop"
	"github.com/oauthkit/authserver/internal/dpop/dpoptest"
)

func introspectAuth(t *testing.T, is *testIssuer, mode Mode, ttl time.Duration) *Authenticator {
	t.Helper()
	return newAuth(t, is, func(c *Config) {
		c.Mode = mode
		c.JWKSURL = "" // discover both endpoints
		c.Introspection.CacheTTL = ttl
	})
}

func TestIntrospectionActiveAndInactive(t *testing.T) {
	is := newTestIssuer(t)
	a := introspectAuth(t, is, ModeIntrospect, 0)
	tok := is.mint(t)
	c, err := a.Verify(t.Context(), tok)
	if err != nil {
		t.Fatal(err)
	}
	if c.Subject != "user-42" || !c.HasScope("read:items") || !c.HasRole("editor") || c.ClientID != "web-app" {
		t.Errorf("claims = %+v", c)
	}
	if got, _ := is.lastIntroTok.Load().(string); got != tok {
		t.Error("the endpoint did not receive the token")
	}
	is.set(func(is *testIssuer) { is.revoked[c.ID] = true })
	_, err = a.Verify(t.Context(), tok)
	if !errors.Is(err, ErrTokenInactive) || !errors.Is(err, ErrInvalidToken) {
		t.Fatalf("revoked: err = %v, want ErrTokenInactive", err)
	}
	w := serve(a.Middleware(okHandler), "Bearer "+tok)
	if w.Code != 401 || !strings.Contains(w.Header().Get("WWW-Authenticate"), `error="invalid_token"`) {
		t.Errorf("revoked: status %d, challenge %q", w.Code, w.Header().Get("WWW-Authenticate"))
	}
	// Opaque tokens are what this mode is for.
	is.set(func(is *testIssuer) {
		is.introResp = func() map[string]any {
			m := is.claims()
			m["active"], m["token_type"], m["aud"] = true, "Bearer", is.audience() // aud as a string
			return m
		}
	})
	if _, err := a.Verify(t.Context(), "opaque-token.abc"); err != nil {
		t.Fatalf("opaque: %v", err)
	}
}

func TestIntrospectionChecksTheAnswer(t *testing.T) {
	is := newTestIssuer(t)
	a := introspectAuth(t, is, ModeIntrospect, time.Minute)
	cases := map[string]func(m map[string]any){
		"RefreshToken": func(m map[string]any) { m["token_type"] = "refresh_token" },
		"OtherType":    func(m map[string]any) { m["token_type"] = "mac" },
		// RFC 9449 §6.2: a DPoP token names the key it is bound to.
		"DPoPWithoutCnf": func(m map[string]any) { m["token_type"] = "DPoP" },
		"OtherAudience":  func(m map[string]any) { m["aud"] = []string{"https://other.example"} },
		"OtherIssuer":    func(m map[string]any) { m["iss"] = "https://evil.example" },
		"Expired":        func(m map[string]any) { m["exp"] = is.clock.Now().Unix() - 60 },
		"NoExpiry":       func(m map[string]any) { delete(m, "exp") },
	}
	for name, edit := range cases {
		t.Run(name, func(t *testing.T) {
			is.set(func(is *testIssuer) {
				is.introResp = func() map[string]any {
					m := is.claims()
					m["active"], m["token_type"] = true, "Bearer"
					edit(m)
					return m
				}
			})
			if _, err := a.Verify(t.Context(), "opaque-"+name); !errors.Is(err, ErrInvalidToken) {
				t.Fatalf("err = %v, want ErrInvalidToken", err)
			}
		})
	}
}

// TestIntrospectionAcceptsDPoPTokenType: our authorization server answers
// introspection of a DPoP-bound token with token_type "DPoP" and cnf.jkt
// (RFC 9449 §5, §6.2; authserver/introspect.go). With a correct proof the
// request passes in both introspecting modes, whatever the case of the
// token type (RFC 6749 §5.1).
func TestIntrospectionAcceptsDPoPTokenType(t *testing.T) {
	is := newTestIssuer(t, newECKey("ec-1"))
	client := dpoptest.NewKey(t)
	for _, mode := range []Mode{ModeIntrospect, ModeLocalThenIntrospect} {
		for _, typ := range []string{"DPoP", "dpop"} {
			t.Run(mode.String()+"/"+typ, func(t *testing.T) {
				is.set(func(is *testIssuer) {
					is.introResp = func() map[string]any {
						m := is.claims()
						m["active"], m["token_type"] = true, typ
						m["cnf"] = map[string]any{"jkt": client.Signer.JKT()}
						return m
					}
				})
				a := newAuth(t, is, func(c *Config) { c.Mode = mode })
				token := "opaque-dpop-bound-token"
				if mode == ModeLocalThenIntrospect {
					token = is.mint(t, func(c map[string]any) { c["cnf"] = map[string]any{"jkt": client.Signer.JKT()} })
				}
				p := client.Proof(dpop.ProofClaims{Method: "GET", URL: dpopTestURL, AccessToken: token, IssuedAt: is.clock.Now()})
				if w := serveDPoP(a.Middleware(okHandler), "DPoP "+token, p); w.Code != http.StatusOK {
					_, err := a.Verify(t.Context(), token)
					t.Fatalf("DPoP-bound token with a valid proof, introspected as token_type %s: %d %q; Verify: %v",
						typ, w.Code, w.Header().Get("WWW-Authenticate"), err)
				}
			})
		}
	}
}

func TestIntrospectionCacheIsBoundedByTTLAndExpiry(t *testing.T) {
	is := newTestIssuer(t)
	a := introspectAuth(t, is, ModeIntrospect, 30*time.Second)
	long := is.mint(t)
	for range 5 {
		if _, err := a.Verify(t.Context(), long); err != nil {
			t.Fatal(err)
		}
	}
	if n := is.introCalls.Load(); n != 1 {
		t.Fatalf("%d introspection calls within the TTL, want 1", n)
	}
	// Revoked at the issuer: still accepted from the cache until the TTL ends.
	c, _ := a.Verify(t.Context(), long)
	is.set(func(is *testIssuer) { is.revoked[c.ID] = true })
	is.clock.Advance(29 * time.Second)
	if _, err := a.Verify(t.Context(), long); err != nil {
		t.Fatalf("within the TTL: %v", err)
	}
	is.clock.Advance(2 * time.Second)
	if _, err := a.Verify(t.Context(), long); !errors.Is(err, ErrTokenInactive) {
		t.Fatalf("after the TTL: err = %v, want ErrTokenInactive", err)
	}

	// A token expiring in 10 s is cached for 10 s, not 30.
	short := is.mint(t, func(m map[string]any) { m["exp"] = is.clock.Now().Add(10 * time.Second).Unix() })
	if _, err := a.Verify(t.Context(), short); err != nil {
		t.Fatal(err)
	}
	calls := is.introCalls.Load()
	is.clock.Advance(11 * time.Second)
	if _, err := a.Verify(t.Context(), short); !errors.Is(err, ErrInvalidToken) {
		t.Fatalf("after exp: err = %v", err)
	}
	if is.introCalls.Load() != calls+1 {
		t.Error("the entry outlived the token's exp")
	}
	// Inactive answers are not cached.
	calls = is.introCalls.Load()
	_, _ = a.Verify(t.Context(), long)
	_, _ = a.Verify(t.Context(), long)
	if n := is.introCalls.Load() - calls; n != 2 {
		t.Errorf("%d calls for two inactive lookups, want 2", n)
	}
}

func TestIntrospectionCacheIsBoundedInSize(t *testing.T) {
	is := newTestIssuer(t)
	a := newAuth(t, is, func(c *Config) {
		c.Mode = ModeIntrospect
		c.Introspection.CacheTTL = time.Hour
		c.Introspection.MaxCacheEntries = 10
	})
	for range 50 {
		if _, err := a.Verify(t.Context(), is.mint(t)); err != nil {
			t.Fatal(err)
		}
	}
	a.introspector.mu.Lock()
	n := len(a.introspector.cache)
	a.introspector.mu.Unlock()
	if n > 10 {
		t.Errorf("cache holds %d entries, limit 10", n)
	}
}

func TestIntrospectionFailures(t *testing.T) {
	is := newTestIssuer(t)
	wrongSecret := newAuth(t, is, func(c *Config) {
		c.Mode = ModeIntrospect
		c.Introspection.ClientSecret = "wrong"
	})
	w := serve(wrongSecret.Middleware(okHandler), "Bearer "+is.mint(t))
	if w.Code != http.StatusServiceUnavailable {
		t.Errorf("refused client credentials: status %d, want 503", w.Code)
	}
	down := newAuth(t, is, func(c *Config) {
		c.Mode = ModeIntrospect
		c.Introspection.URL = "http://127.0.0.1:1/introspect"
	})
	if _, err := down.Verify(t.Context(), is.mint(t)); !errors.Is(err, ErrUnavailable) {
		t.Errorf("unreachable endpoint: err = %v, want ErrUnavailable", err)
	}
}

func TestLocalThenIntrospect(t *testing.T) {
	is := newTestIssuer(t)
	a := introspectAuth(t, is, ModeLocalThenIntrospect, 0)
	tok := is.mint(t)
	c, err := a.Verify(t.Context(), tok)
	if err != nil {
		t.Fatal(err)
	}
	if n := is.introCalls.Load(); n != 1 {
		t.Fatalf("%d introspection calls, want 1", n)
	}
	// Forged and expired tokens are refused locally, without a call.
	forged := mintWith(t, newECKey("ec-1"), map[string]any{"typ": "at+jwt"}, is.claims())
	expired := is.mint(t, func(m map[string]any) { m["exp"] = is.clock.Now().Unix() - 60 })
	for _, bad := range []string{forged, expired, "opaque"} {
		if _, err := a.Verify(t.Context(), bad); !errors.Is(err, ErrInvalidToken) {
			t.Errorf("err = %v", err)
		}
	}
	if n := is.introCalls.Load(); n != 1 {
		t.Errorf("bad tokens reached the introspection endpoint: %d calls", n)
	}
	// A revoked token is refused at once.
	is.set(func(is *testIssuer) { is.revoked[c.ID] = true })
	if _, err := a.Verify(t.Context(), tok); !errors.Is(err, ErrTokenInactive) {
		t.Errorf("revoked: err = %v, want ErrTokenInactive", err)
	}
}

func TestLocalModeNeverIntrospects(t *testing.T) {
	is := newTestIssuer(t)
	a := introspectAuth(t, is, ModeLocal, 0)
	c, err := a.Verify(t.Context(), is.mint(t))
	if err != nil {
		t.Fatal(err)
	}
	is.set(func(is *testIssuer) { is.revoked[c.ID] = true })
	if _, err := a.Verify(t.Context(), is.mint(t, func(m map[string]any) { m["jti"] = c.ID })); err != nil {
		t.Errorf("local mode consulted revocation: %v", err)
	}
	if n := is.introCalls.Load(); n != 0 {
		t.Errorf("%d introspection calls in local mode", n)
	}
}

func TestDiscovery(t *testing.T) {
	is := newTestIssuer(t)
	a := newAuth(t, is, func(c *Config) { c.JWKSURL = "" })
	if _, err := a.Verify(t.Context(), is.mint(t)); err != nil {
		t.Fatal(err)
	}
	if n := is.metaFetches.Load(); n != 1 {
		t.Errorf("%d metadata fetches", n)
	}
	// The metadata's issuer must match exactly (RFC 8414 §3.3).
	_, err := New(t.Context(), Config{Issuer: is.URL() + "/", Audience: "a", Logger: discardLogger()})
	if err == nil || !strings.Contains(err.Error(), "names issuer") {
		t.Errorf("issuer mismatch: err = %v", err)
	}
}
