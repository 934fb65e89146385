package authserver

import (
	"crypto/rand"
	"crypto/rsa"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/oauthkit/authserver/internal/password"
	"github.com/oauthkit/authserver/keys"
)

// rs256Env is exchangeEnv with RS256 signing keys.
func rs256Env(b *testing.B) *testEnv {
	env := exchangeEnv(b)
	km, err := keys.New(b.Context(), env.store, keys.Config{Algorithm: "RS256", Secret: testSecret, TokenLifetime: time.Hour,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		b.Fatal(err)
	}
	as, err := New(Config{Issuer: env.issuer, Secret: testSecret, PasswordParams: password.TestParams,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}, env.store, km)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = as.Close() })
	env.km, env.as = km, as
	env.srv.Config.Handler = as.Handler()
	return env
}

// BenchmarkTokenExchange measures a delegation exchange in process on
// SQLite with RS256 keys: client auth (cached), two verifications (subject
// and actor tokens), two record lookups, the user lookup, one RS256
// signature and one committed record. Compare with BenchmarkSignRS256Raw.
func BenchmarkTokenExchange(b *testing.B) {
	b.SetParallelism(16)
	env := rs256Env(b)
	user, _ := env.passwordToken("alice@example.com", alicePW)
	actorTok := env.clientToken("gw", gwSecret, "read")
	h := env.as.Handler()
	body := url.Values{"grant_type": {grantTokenExchange}, "subject_token": {user}, "subject_token_type": {tokenTypeAccess},
		"actor_token": {actorTok}, "actor_token_type": {tokenTypeAccess}, "audience": {"https://orders.example/"}, "scope": {"read"}}.Encode()
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req := httptest.NewRequest(http.MethodPost, "/token", strings.NewReader(body))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.SetBasicAuth("gw", gwSecret)
			w := httptest.NewRecorder()
			h.ServeHTTP(w, req)
			if w.Code != 200 {
				b.Fatalf("%d %s", w.Code, w.Body)
			}
		}
	})
}

// BenchmarkSignRS256Raw is the RS256 signing limit: go-jose signing of a
// token-sized payload with a 2048-bit key in hand.
func BenchmarkSignRS256Raw(b *testing.B) {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		b.Fatal(err)
	}
	sig, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: k}, (&jose.SignerOptions{}).WithType("at+jwt"))
	if err != nil {
		b.Fatal(err)
	}
	payload := []byte(strings.Repeat("x", 400))
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			j, err := sig.Sign(payload)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := j.CompactSerialize(); err != nil {
				b.Fatal(err)
			}
		}
	})
}
