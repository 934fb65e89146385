package authserver

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/go-jose/go-jose/v4"

	"github.com/oauthkit/authserver/internal/dpop"
	"github.com/oauthkit/authserver/internal/dpop/dpoptest"
)

// benchEnv issues one access token on a SQLite-backed server.
func benchEnv(b *testing.B) (*testEnv, string) {
	// Parallel sign-ins of one account would be throttled.
	env := newTestEnv(b, openSQLite(b), func(c *Config) { c.Throttle.Disabled = true })
	at, _ := env.passwordToken("alice@example.com", alicePW)
	return env, at
}

// BenchmarkIntrospectJWT measures the introspection handler (caller
// authentication, signature verification by kid, one indexed lookup) in
// process, next to BenchmarkVerifyJWTRaw, the bare signature check of the
// same token: the ratio is the overhead of introspection.
func BenchmarkIntrospectJWT(b *testing.B) {
	env, at := benchEnv(b)
	h := env.as.Handler()
	body := url.Values{"token": {at}}.Encode()
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req := httptest.NewRequest(http.MethodPost, "/introspect", strings.NewReader(body))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.SetBasicAuth("rs", rsSecret)
			w := httptest.NewRecorder()
			h.ServeHTTP(w, req)
			if w.Code != 200 || !strings.HasPrefix(w.Body.String(), `{"active":true`) {
				b.Fatalf("%d %s", w.Code, w.Body)
			}
		}
	})
}

// BenchmarkVerifyJWTRaw is the physical limit of BenchmarkIntrospectJWT:
// go-jose verification of the same token with the key already in hand.
func BenchmarkVerifyJWTRaw(b *testing.B) {
	env, at := benchEnv(b)
	jws, err := jose.ParseSignedCompact(at, signatureAlgorithms)
	if err != nil {
		b.Fatal(err)
	}
	key, ok := env.km.PublicKey(jws.Signatures[0].Protected.KeyID)
	if !ok {
		b.Fatal("no key")
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			j, err := jose.ParseSignedCompact(at, signatureAlgorithms)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := j.Verify(key); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkClientCredentials issues access tokens (one JWT signature and one
// committed token record each) on SQLite, in process.
func BenchmarkClientCredentials(b *testing.B) { benchClientCredentials(b, nil) }

// benchClientCredentials runs client_credentials requests of the svc client,
// 32 at once on 2 CPUs like a loaded server; proof, when set, makes each
// request's DPoP header for the token endpoint's URL.
func benchClientCredentials(b *testing.B, proof func(htu string) string) {
	b.SetParallelism(16)
	env, _ := benchEnv(b)
	h := env.as.Handler()
	body := url.Values{"grant_type": {"client_credentials"}}.Encode()
	htu := env.issuer + "/token"
	want := `"token_type":"Bearer"`
	if proof != nil {
		want = `"token_type":"DPoP"`
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req := httptest.NewRequest(http.MethodPost, "/token", strings.NewReader(body))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			if proof != nil {
				req.Header.Set("DPoP", proof(htu))
			}
			req.SetBasicAuth("svc", svcSecret)
			w := httptest.NewRecorder()
			h.ServeHTTP(w, req)
			if w.Code != 200 || !strings.Contains(w.Body.String(), want) {
				b.Fatalf("%d %s", w.Code, w.Body)
			}
		}
	})
}

// BenchmarkRefresh walks one refresh chain per goroutine on SQLite.
func BenchmarkRefresh(b *testing.B) {
	env, _ := benchEnv(b)
	h := env.as.Handler()
	b.SetParallelism(8)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		_, rt := env.passwordToken("alice@example.com", alicePW)
		for pb.Next() {
			body := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}, "client_id": {"demo"}}.Encode()
			req := httptest.NewRequest(http.MethodPost, "/token", strings.NewReader(body))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			w := httptest.NewRecorder()
			h.ServeHTTP(w, req)
			if w.Code != 200 {
				b.Fatalf("%d %s", w.Code, w.Body)
			}
			var m map[string]any
			_ = json.Unmarshal(w.Body.Bytes(), &m)
			rt = m["refresh_token"].(string)
		}
	})
}

// BenchmarkClientCredentialsDPoP is BenchmarkClientCredentials with a fresh
// DPoP proof per request (made in the loop: one ES256 signature on the
// client side, one verification and a single-use jti record on the server).
func BenchmarkClientCredentialsDPoP(b *testing.B) {
	key := dpoptest.NewKey(b)
	benchClientCredentials(b, func(htu string) string {
		return key.Proof(dpop.ProofClaims{Method: http.MethodPost, URL: htu})
	})
}
