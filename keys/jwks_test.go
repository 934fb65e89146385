package keys

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"

	jose "github.com/go-jose/go-jose/v4"
)

// verifyCompact verifies a compact JWS against m's published JWKS.
func verifyCompact(compact string, m *Manager) error {
	obj, err := jose.ParseSignedCompact(compact, allAlgs)
	if err != nil {
		return err
	}
	body, _ := m.JWKS()
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(body, &set); err != nil {
		return err
	}
	return verifyWithJWKS(obj, &set)
}

// privateMembers are the JWK members that carry private or symmetric key
// material (RFC 7518 §6.2.2, §6.3.2, §6.4.1; RFC 8037 §2).
var privateMembers = []string{"d", "p", "q", "dp", "dq", "qi", "oth", "k"}

func assertPublicMembersOnly(t *testing.T, jwk map[string]any) {
	t.Helper()
	for _, name := range privateMembers {
		if _, ok := jwk[name]; ok {
			t.Errorf("JWK %v has private member %q", jwk["kid"], name)
		}
	}
}

func TestJWKSHasPublicMembersOnly(t *testing.T) {
	for _, tc := range []struct{ alg, kty string }{{RS256, "RSA"}, {ES256, "EC"}, {EdDSA, "OKP"}} {
		t.Run(tc.alg, func(t *testing.T) {
			m := mustNew(t, newFakeStore(), testConfig(newClock(), tc.alg))
			// One key in each published state: retired, active, next.
			for _, immediate := range []bool{true, false} {
				if err := m.Rotate(t.Context(), immediate); err != nil {
					t.Fatal(err)
				}
			}
			body, _ := m.JWKS()
			var raw struct {
				Keys []map[string]any `json:"keys"`
			}
			if err := json.Unmarshal(body, &raw); err != nil {
				t.Fatal(err)
			}
			if len(raw.Keys) != 3 {
				t.Fatalf("%d keys in JWKS, want 3: %s", len(raw.Keys), body)
			}
			for _, k := range raw.Keys {
				assertPublicMembersOnly(t, k)
				kid, _ := k["kid"].(string)
				if _, ok := m.PublicKey(kid); !ok || k["alg"] != tc.alg || k["use"] != "sig" || k["kty"] != tc.kty {
					t.Errorf("JWK kid=%v alg=%v use=%v kty=%v", k["kid"], k["alg"], k["use"], k["kty"])
				}
			}
			for _, name := range []string{`"d"`, `"p"`, `"q"`, `"dp"`, `"dq"`, `"qi"`, `"k"`} {
				if bytes.Contains(body, []byte(name+":")) {
					t.Errorf("raw JWKS contains %s", name)
				}
			}
		})
	}
}

func TestJWKSHandler(t *testing.T) {
	m := mustNew(t, newFakeStore(), testConfig(newClock(), EdDSA))
	h := m.JWKSHandler()
	body, etag := m.JWKS()
	wantCC := fmt.Sprintf("public, max-age=%d", int(m.MaxAge().Seconds()))

	do := func(method string, hdr ...string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(method, "/jwks", nil)
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Add(hdr[i], hdr[i+1])
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec
	}

	t.Run("GetServesBodyAndCachingHeaders", func(t *testing.T) {
		rec := do(http.MethodGet)
		if rec.Code != 200 || !bytes.Equal(rec.Body.Bytes(), body) {
			t.Fatalf("%d %s", rec.Code, rec.Body)
		}
		for name, want := range map[string]string{
			"Content-Type":   "application/json",
			"Cache-Control":  wantCC,
			"ETag":           etag,
			"Content-Length": strconv.Itoa(len(body)),
		} {
			if got := rec.Header().Get(name); got != want {
				t.Errorf("%s = %q, want %q", name, got, want)
			}
		}
		if wantCC != "public, max-age=3600" {
			t.Errorf("Cache-Control %q", wantCC)
		}
	})
	t.Run("MatchingIfNoneMatchIs304", func(t *testing.T) {
		for _, inm := range []string{etag, "W/" + etag, `"other", ` + etag, "*"} {
			rec := do(http.MethodGet, "If-None-Match", inm)
			if rec.Code != http.StatusNotModified || rec.Body.Len() != 0 {
				t.Errorf("If-None-Match %s: %d, %d bytes", inm, rec.Code, rec.Body.Len())
			}
			if rec.Header().Get("ETag") != etag || rec.Header().Get("Cache-Control") != wantCC {
				t.Errorf("304 headers: %v", rec.Header())
			}
		}
	})
	t.Run("StaleIfNoneMatchIs200", func(t *testing.T) {
		rec := do(http.MethodGet, "If-None-Match", `"stale"`)
		if rec.Code != 200 || !bytes.Equal(rec.Body.Bytes(), body) {
			t.Fatalf("%d", rec.Code)
		}
	})
	t.Run("HeadHasHeadersNoBody", func(t *testing.T) {
		rec := do(http.MethodHead)
		if rec.Code != 200 || rec.Body.Len() != 0 || rec.Header().Get("ETag") != etag ||
			rec.Header().Get("Content-Length") != strconv.Itoa(len(body)) {
			t.Fatalf("%d, %d bytes, %v", rec.Code, rec.Body.Len(), rec.Header())
		}
	})
	t.Run("OtherMethodsAre405", func(t *testing.T) {
		for _, method := range []string{http.MethodPost, http.MethodPut, http.MethodDelete} {
			rec := do(method)
			if rec.Code != http.StatusMethodNotAllowed || rec.Header().Get("Allow") != "GET, HEAD" {
				t.Errorf("%s: %d Allow=%q", method, rec.Code, rec.Header().Get("Allow"))
			}
		}
	})
	t.Run("ETagChangesWithTheKeySet", func(t *testing.T) {
		if err := m.Rotate(t.Context(), false); err != nil {
			t.Fatal(err)
		}
		rec := do(http.MethodGet, "If-None-Match", etag)
		if rec.Code != 200 || rec.Header().Get("ETag") == etag {
			t.Fatalf("after rotation: %d, ETag %s", rec.Code, rec.Header().Get("ETag"))
		}
	})
}

func TestJWKSIsPrecomputed(t *testing.T) {
	m := mustNew(t, newFakeStore(), testConfig(newClock(), EdDSA))
	b1, _ := m.JWKS()
	if err := m.Reload(t.Context()); err != nil {
		t.Fatal(err)
	}
	b2, _ := m.JWKS()
	if &b1[0] != &b2[0] {
		t.Fatal("JWKS rebuilt although the key set did not change")
	}
	allocs := testing.AllocsPerRun(100, func() { m.JWKS() })
	if allocs != 0 {
		t.Fatalf("JWKS allocates %v times", allocs)
	}
}
