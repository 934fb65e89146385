package resource

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// BenchmarkVerification measures, on the same token:
//
//   - go-jose: the least a verifier must do with go-jose (parse the compact
//     JWS, verify the signature, decode the claims once);
//   - go-jose-jwt: the same through go-jose's jwt package, for reference;
//   - middleware: the full middleware (header parsing, verification, typ,
//     key and claim checks, context, handler call).
//
// The middleware/go-jose throughput ratio is the middleware's overhead;
// BENCHMARKS.md records it.
//
//	go test -run '^$' -bench BenchmarkVerification -benchmem -count 6 ./resource/
func BenchmarkVerification(b *testing.B) {
	for _, k := range []*testKey{newRSAKey("rsa-1", 0), newECKey("ec-1")} {
		is := newTestIssuer(b, k)
		is.clock = &fakeClock{t: time.Now()}
		tok := is.mint(b)
		algs := []jose.SignatureAlgorithm{k.alg}
		pub := k.priv.Public()

		b.Run(string(k.alg)+"/go-jose", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				jws, err := jose.ParseSignedCompact(tok, algs)
				if err != nil {
					b.Fatal(err)
				}
				payload, err := jws.Verify(pub)
				if err != nil {
					b.Fatal(err)
				}
				var c benchClaims
				if err := json.Unmarshal(payload, &c); err != nil {
					b.Fatal(err)
				}
			}
		})

		b.Run(string(k.alg)+"/go-jose-jwt", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				t, err := jwt.ParseSigned(tok, algs)
				if err != nil {
					b.Fatal(err)
				}
				var std jwt.Claims
				var extra struct {
					ClientID string   `json:"client_id"`
					Scope    string   `json:"scope"`
					Roles    []string `json:"roles"`
					Email    string   `json:"email"`
					Name     string   `json:"name"`
				}
				if err := t.Claims(pub, &std, &extra); err != nil {
					b.Fatal(err)
				}
			}
		})

		b.Run(string(k.alg)+"/middleware", func(b *testing.B) {
			a := newAuth(b, is, func(c *Config) { c.Now = time.Now })
			var sub string
			h := a.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				c, _ := FromContext(r.Context())
				sub = c.Subject
			}))
			r := httptest.NewRequestWithContext(context.Background(), http.MethodGet, "/api/me", nil)
			r.Header.Set("Authorization", "Bearer "+tok)
			w := &discardWriter{h: http.Header{}}
			h.ServeHTTP(w, r) // warm the key cache
			if sub != "user-42" || w.status != 0 {
				b.Fatalf("warm-up: status %d", w.status)
			}
			b.ReportAllocs()
			for b.Loop() {
				h.ServeHTTP(w, r)
			}
			if w.status != 0 {
				b.Fatalf("status %d", w.status)
			}
		})
	}
}

// benchClaims has the fields of our access tokens.
type benchClaims struct {
	Issuer    string   `json:"iss"`
	Subject   string   `json:"sub"`
	Audience  []string `json:"aud"`
	Expiry    int64    `json:"exp"`
	IssuedAt  int64    `json:"iat"`
	NotBefore int64    `json:"nbf"`
	ID        string   `json:"jti"`
	ClientID  string   `json:"client_id"`
	Scope     string   `json:"scope"`
	Roles     []string `json:"roles"`
	Email     string   `json:"email"`
	Name      string   `json:"name"`
}

type discardWriter struct {
	h      http.Header
	status int
}

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (w *discardWriter) WriteHeader(s int)           { w.status = s }
