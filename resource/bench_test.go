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
//	go test -run '^$' -bench . -benchmem -count 10 ./resource/
func BenchmarkVerification(b *testing.B) {
	for _, k := range []*testKey{newRSAKey("rsa-1", 0), newECKey("ec-1")} {
		tok, raw, mw := benchSetup(b, k)
		b.Run(string(k.alg)+"/go-jose", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				raw()
			}
		})
		b.Run(string(k.alg)+"/go-jose-jwt", func(b *testing.B) {
			algs := []jose.SignatureAlgorithm{k.alg}
			pub := k.priv.Public()
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
			b.ReportAllocs()
			for b.Loop() {
				mw()
			}
		})
	}
}

// BenchmarkMiddlewareVsGoJose runs the go-jose baseline and the middleware
// alternately in one loop and times each, so both see the same machine load;
// on a shared machine its ratio is steadier than one taken across separate
// benchmarks. It reports each side's ns/op and the middleware's throughput
// as a percentage of go-jose's.
func BenchmarkMiddlewareVsGoJose(b *testing.B) {
	for _, k := range []*testKey{newRSAKey("rsa-1", 0), newECKey("ec-1")} {
		_, raw, mw := benchSetup(b, k)
		b.Run(string(k.alg), func(b *testing.B) {
			var rawTime, mwTime time.Duration
			n := 0
			for b.Loop() {
				if n%2 == 0 { // alternate the order, so neither always runs warm
					t0 := time.Now()
					raw()
					t1 := time.Now()
					mw()
					rawTime, mwTime = rawTime+t1.Sub(t0), mwTime+time.Since(t1)
				} else {
					t0 := time.Now()
					mw()
					t1 := time.Now()
					raw()
					mwTime, rawTime = mwTime+t1.Sub(t0), rawTime+time.Since(t1)
				}
				n++
			}
			b.ReportMetric(float64(rawTime.Nanoseconds())/float64(n), "go-jose-ns/op")
			b.ReportMetric(float64(mwTime.Nanoseconds())/float64(n), "middleware-ns/op")
			b.ReportMetric(100*float64(rawTime)/float64(mwTime), "%throughput")
		})
	}
}

// benchSetup returns a token signed with k, the go-jose baseline verifying
// it (parse the compact JWS, verify, decode the claims once), and one
// request through the middleware with it.
func benchSetup(b *testing.B, k *testKey) (tok string, raw, mw func()) {
	is := newTestIssuer(b, k)
	is.clock = &fakeClock{t: time.Now()}
	tok = is.mint(b)
	algs := []jose.SignatureAlgorithm{k.alg}
	pub := k.priv.Public()
	raw = func() {
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
	mw = func() {
		sub = ""
		h.ServeHTTP(w, r)
		if sub == "" {
			b.Fatalf("refused: status %d", w.status)
		}
	}
	return tok, raw, mw
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
