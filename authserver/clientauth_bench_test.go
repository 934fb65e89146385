package authserver

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	dto "github.com/prometheus/client_model/go"

	"github.com/oauthkit/authserver/internal/assertiontest"
	"github.com/oauthkit/authserver/storage"
)

// The private_key_jwt benchmarks: a client_credentials grant on SQLite
// authenticated with an ES256 assertion (keys from a jwks_uri, cached),
// with client_secret_basic (verified credentials cached), and the bare
// ES256 verification of one assertion. Run together:
//
//	go test ./authserver -run '^$' -bench 'ClientCredentialsPrivateKeyJWT|ClientCredentialsSecretBasic|VerifyAssertionES256' -benchtime 2s

func jwtBenchEnv(b *testing.B, open func(testing.TB) storage.Store) (*testEnv, *jwtClients, string) {
	env := newTestEnv(b, open(b), allowPrivateClientURLs, func(c *Config) { c.Throttle.Disabled = true })
	jc := seedJWTClients(b, env)
	jwks := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Cache-Control", "max-age=300")
		w.Write(jwksOf(jc.es))
	}))
	b.Cleanup(jwks.Close)
	now := time.Now().UTC()
	if err := env.store.CreateClient(b.Context(), storage.Client{ID: "pk-bench", TokenEndpointAuthMethod: AuthMethodPrivateKey,
		JWKSURI: jwks.URL, GrantTypes: []string{grantClientCredentials}, Scopes: []string{"read"}, CreatedAt: now, UpdatedAt: now}); err != nil {
		b.Fatal(err)
	}
	return env, jc, env.issuer + "/token"
}

func serveToken(b *testing.B, h http.Handler, body string, user, pass string) {
	req := httptest.NewRequest(http.MethodPost, "/token", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if user != "" {
		req.SetBasicAuth(user, pass)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	if w.Code != 200 {
		b.Fatalf("%d %s", w.Code, w.Body)
	}
}

// benchParallelism × GOMAXPROCS requests run at once, so that the token
// writes are group-committed as under load (a lone request waits for the
// committer's linger).
const benchParallelism = 8

// The memory store is no baseline here: it copies its maps on every write
// transaction, so the growing jti records would dominate.

func BenchmarkClientCredentialsPrivateKeyJWT(b *testing.B) { benchPrivateKeyJWT(b, openSQLite) }

func benchPrivateKeyJWT(b *testing.B, open func(testing.TB) storage.Store) {
	env, jc, aud := jwtBenchEnv(b, open)
	h := env.as.Handler()
	body := func() string {
		return assertionForm(assertiontest.Sign(b, jose.ES256, jc.es.key, jc.es.kid, goodClaims("pk-bench", aud)),
			"grant_type", "client_credentials", "scope", "read").Encode()
	}
	serveToken(b, h, body(), "", "") // warm the key cache
	bodies := make([]string, b.N)
	for i := range bodies {
		bodies[i] = body()
	}
	verifies, fetches := env.as.assertionVerifications.Load(), env.as.clientKeys.fetches.Load()
	commits := startCommitCount(b, env.as)
	var next atomic.Int64
	b.SetParallelism(benchParallelism)
	b.ReportAllocs()
	b.ResetTimer()
	cpu := startCPU(b)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			serveToken(b, h, bodies[next.Add(1)-1], "", "")
		}
	})
	b.StopTimer()
	cpu()
	b.ReportMetric(float64(env.as.assertionVerifications.Load()-verifies)/float64(b.N), "verifies/op")
	b.ReportMetric(float64(env.as.clientKeys.fetches.Load()-fetches)/float64(b.N), "jwks-fetches/op")
	commits()
}

// startCPU starts counting this process's CPU time (user and system); the
// returned func reports it per op (cpu-ns/op). Unlike ns/op, it does not
// grow with other processes' load on the machine.
func startCPU(b *testing.B) func() {
	cpu := func() int64 {
		var ru syscall.Rusage
		if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
			b.Fatal(err)
		}
		return ru.Utime.Nano() + ru.Stime.Nano()
	}
	c0 := cpu()
	return func() { b.ReportMetric(float64(cpu()-c0)/float64(b.N), "cpu-ns/op") }
}

// startCommitCount starts counting the group committer's transactions and
// the requests they carried; the returned func reports them per op
// (commits/op, and requests per commit: a private_key_jwt request submits
// two, its jti record and its token records).
func startCommitCount(b *testing.B, s *Server) func() {
	count := func() (n uint64, reqs float64) {
		var m dto.Metric
		if err := s.metrics.commitBatch.Write(&m); err != nil {
			b.Fatal(err)
		}
		return m.GetHistogram().GetSampleCount(), m.GetHistogram().GetSampleSum()
	}
	n0, r0 := count()
	return func() {
		n, r := count()
		b.ReportMetric(float64(n-n0)/float64(b.N), "commits/op")
		if n > n0 {
			b.ReportMetric((r-r0)/float64(n-n0), "reqs/commit")
		}
	}
}

func BenchmarkClientCredentialsSecretBasic(b *testing.B) { benchSecretBasic(b, openSQLite) }

func benchSecretBasic(b *testing.B, open func(testing.TB) storage.Store) {
	env, _, _ := jwtBenchEnv(b, open)
	h := env.as.Handler()
	body := url.Values{"grant_type": {"client_credentials"}, "scope": {"read"}}.Encode()
	serveToken(b, h, body, "svc", svcSecret)
	commits := startCommitCount(b, env.as)
	b.SetParallelism(benchParallelism)
	b.ReportAllocs()
	b.ResetTimer()
	cpu := startCPU(b)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			serveToken(b, h, body, "svc", svcSecret)
		}
	})
	b.StopTimer()
	cpu()
	commits()
}

// BenchmarkVerifyAssertionES256 is one go-jose ES256 verification of a
// client assertion with the key in hand: the cost private_key_jwt adds.
func BenchmarkVerifyAssertionES256(b *testing.B) {
	_, jc, aud := jwtBenchEnv(b, openMemory)
	a := assertiontest.Sign(b, jose.ES256, jc.es.key, jc.es.kid, goodClaims("pk-bench", aud))
	pub := jc.es.publicJWK().Key
	b.ReportAllocs()
	b.ResetTimer()
	cpu := startCPU(b)
	defer cpu()
	for range b.N {
		jws, err := jose.ParseSignedCompact(a, privateKeyAlgs)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := jws.Verify(pub); err != nil {
			b.Fatal(err)
		}
	}
}
