package resource

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

func TestVerifyAcceptsIssuedTokens(t *testing.T) {
	for _, k := range []*testKey{newRSAKey("rsa-1", 0), newECKey("ec-1"), newEdKey("ed-1")} {
		t.Run(string(k.alg), func(t *testing.T) {
			is := newTestIssuer(t, k)
			a := newAuth(t, is, nil)
			tok := is.mint(t)
			c, err := a.Verify(t.Context(), tok)
			if err != nil {
				t.Fatal(err)
			}
			now := is.clock.Now()
			if c.Subject != "user-42" || c.ClientID != "web-app" || c.Email != "ada@example.com" || c.Name != "Ada Lovelace" ||
				c.Issuer != is.URL() || !strings.HasPrefix(c.ID, "jti-") {
				t.Errorf("claims = %+v", c)
			}
			if !slices.Equal(c.Scopes, []string{"openid", "profile", "read:items"}) || !slices.Equal(c.Roles, []string{"user", "editor"}) ||
				!slices.Equal(c.Audience, []string{is.audience()}) {
				t.Errorf("scopes %q roles %q audience %q", c.Scopes, c.Roles, c.Audience)
			}
			if !c.Expiry.Equal(now.Add(time.Hour)) || !c.IssuedAt.Equal(now) || !c.NotBefore.Equal(now) {
				t.Errorf("times exp %v iat %v nbf %v", c.Expiry, c.IssuedAt, c.NotBefore)
			}
			var extra struct {
				Email string `json:"email"`
			}
			if err := c.Decode(&extra); err != nil || extra.Email != "ada@example.com" {
				t.Errorf("Decode = %v, %+v", err, extra)
			}
		})
	}
}

func TestVerifyAcceptsVariants(t *testing.T) {
	is := newTestIssuer(t)
	a := newAuth(t, is, nil)
	k := is.signer
	cases := map[string]string{
		"TypWithMediaTypePrefix": mintWith(t, k, map[string]any{"typ": "application/at+jwt"}, is.claims()),
		"TypUpperCase":           mintWith(t, k, map[string]any{"typ": "AT+JWT"}, is.claims()),
		"AudienceAsString":       is.mint(t, func(m map[string]any) { m["aud"] = is.audience() }),
		"AudienceAmongOthers":    is.mint(t, func(m map[string]any) { m["aud"] = []string{"other", is.audience()} }),
		"NoNotBefore":            is.mint(t, func(m map[string]any) { delete(m, "nbf") }),
		"ExpiredWithinLeeway":    is.mint(t, func(m map[string]any) { m["exp"] = is.clock.Now().Add(-4 * time.Second).Unix() }),
		"NotBeforeWithinLeeway":  is.mint(t, func(m map[string]any) { m["nbf"] = is.clock.Now().Add(4 * time.Second).Unix() }),
		"FractionalDates":        is.mint(t, func(m map[string]any) { m["exp"] = float64(is.clock.Now().Unix()) + 60.5 }),
		"ClientCredentialsToken": is.mint(t, func(m map[string]any) {
			m["sub"] = "web-app"
			for _, c := range []string{"roles", "email", "name"} {
				delete(m, c)
			}
		}),
	}
	for name, tok := range cases {
		t.Run(name, func(t *testing.T) {
			if _, err := a.Verify(t.Context(), tok); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestLeewayIsConfigurable(t *testing.T) {
	is := newTestIssuer(t)
	tok := is.mint(t, func(m map[string]any) { m["exp"] = is.clock.Now().Add(-30 * time.Second).Unix() })
	if _, err := newAuth(t, is, nil).Verify(t.Context(), tok); !errors.Is(err, ErrTokenExpired) {
		t.Fatalf("default leeway: err = %v, want ErrTokenExpired", err)
	}
	loose := newAuth(t, is, func(c *Config) { c.Leeway = time.Minute })
	if _, err := loose.Verify(t.Context(), tok); err != nil {
		t.Fatalf("one-minute leeway: %v", err)
	}
	strict := newAuth(t, is, func(c *Config) { c.Leeway = -1 })
	justExpired := is.mint(t, func(m map[string]any) { m["exp"] = is.clock.Now().Add(-time.Second).Unix() })
	if _, err := strict.Verify(t.Context(), justExpired); !errors.Is(err, ErrTokenExpired) {
		t.Fatalf("no leeway: err = %v, want ErrTokenExpired", err)
	}
}

// TestForgedAndBrokenTokensAreRefused sends each token through the
// middleware and checks the RFC 6750 answer.
func TestForgedAndBrokenTokensAreRefused(t *testing.T) {
	rsa := newRSAKey("rsa-1", 0)
	is := newTestIssuer(t, rsa, newECKey("ec-1"))
	attacker := newRSAKey("rsa-1", 1) // same kid, other key

	// An attacker's JWKS, to prove jku is never followed.
	attackerJWKS := newTestIssuer(t, attacker)

	pubDER, err := x509.MarshalPKIXPublicKey(rsa.priv.Public())
	if err != nil {
		t.Fatal(err)
	}
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})
	hs256 := func(key []byte) func([]byte) []byte {
		return func(in []byte) []byte { m := hmac.New(sha256.New, key); m.Write(in); return m.Sum(nil) }
	}
	good := is.mint(t)
	parts := strings.Split(good, ".")
	flipped := []byte(parts[2])
	if flipped[10] = 'A'; parts[2][10] == 'A' {
		flipped[10] = 'B'
	}
	now := is.clock.Now()

	cases := []struct {
		name       string
		header     []string // Authorization values; nil means none
		token      string   // used as "Bearer <token>" when header is nil
		wantStatus int
		wantCode   ErrorCode
		wantErr    error // for Verify, when token is set
	}{
		{name: "AlgNone", token: rawJWS(t, map[string]any{"alg": "none", "typ": "at+jwt", "kid": "rsa-1"}, is.claims(), nil)},
		{name: "AlgNoneWithSignature", token: rawJWS(t, map[string]any{"alg": "none", "typ": "at+jwt", "kid": "rsa-1"}, is.claims(), func([]byte) []byte { return []byte("x") })},
		{name: "HS256KeyedWithRSAPublicKeyPEM", token: rawJWS(t, map[string]any{"alg": "HS256", "typ": "at+jwt", "kid": "rsa-1"}, is.claims(), hs256(pubPEM))},
		{name: "HS256KeyedWithRSAPublicKeyDER", token: rawJWS(t, map[string]any{"alg": "HS256", "typ": "at+jwt", "kid": "rsa-1"}, is.claims(), hs256(pubDER))},
		{name: "UnknownKid", token: mintWith(t, newECKey("nope"), map[string]any{"typ": "at+jwt"}, is.claims()), wantErr: ErrUnknownKey},
		{name: "NoKid", token: rawJWS(t, map[string]any{"alg": "RS256", "typ": "at+jwt"}, is.claims(), signWith(rsa))},
		{name: "TypJWTIDTokenReplayed", token: mintWith(t, rsa, map[string]any{"typ": "JWT"}, is.claims())},
		{name: "NoTyp", token: mintWith(t, rsa, nil, is.claims())},
		{name: "WrongIssuer", token: is.mint(t, func(m map[string]any) { m["iss"] = is.URL() + "/" })},
		{name: "WrongAudience", token: is.mint(t, func(m map[string]any) { m["aud"] = []string{"https://other.example/api"} })},
		{name: "NoAudience", token: is.mint(t, func(m map[string]any) { delete(m, "aud") })},
		{name: "Expired", token: is.mint(t, func(m map[string]any) { m["exp"] = now.Add(-time.Minute).Unix() }), wantErr: ErrTokenExpired},
		{name: "NoExpiry", token: is.mint(t, func(m map[string]any) { delete(m, "exp") })},
		{name: "ExpiryNotANumber", token: is.mint(t, func(m map[string]any) { m["exp"] = "tomorrow" })},
		{name: "NotYetValid", token: is.mint(t, func(m map[string]any) { m["nbf"] = now.Add(time.Minute).Unix() }), wantErr: ErrTokenNotYetValid},
		{name: "IssuedInTheFuture", token: is.mint(t, func(m map[string]any) { m["iat"] = now.Add(time.Minute).Unix() }), wantErr: ErrTokenNotYetValid},
		{name: "BadSignature", token: parts[0] + "." + parts[1] + "." + string(flipped)},
		{name: "SignedByAttackerWithRealKid", token: mintWith(t, attacker, map[string]any{"typ": "at+jwt"}, is.claims())},
		{name: "EmbeddedJWKOfAttacker", token: mintWith(t, attacker, map[string]any{"typ": "at+jwt", "jwk": attacker.public()}, is.claims())},
		{name: "JKUOfAttacker", token: mintWith(t, attacker, map[string]any{"typ": "at+jwt", "jku": attackerJWKS.jwksURL()}, is.claims())},
		{name: "AlgDoesNotFitKeyType", token: rawJWS(t, map[string]any{"alg": "ES256", "typ": "at+jwt", "kid": "rsa-1"}, is.claims(), signWith(is.published[1]))},
		{name: "AlgDiffersFromJWKAlg", token: mintWith(t, &testKey{kid: "rsa-1", alg: jose.PS256, priv: rsa.priv}, map[string]any{"typ": "at+jwt"}, is.claims())},
		{name: "PayloadSwapped", token: parts[0] + "." + b64([]byte(`{"iss":"x"}`)) + "." + parts[2]},
		{name: "Truncated", token: good[:len(good)/2]},
		{name: "TwoParts", token: parts[0] + "." + parts[1]},
		{name: "JWEShape", token: good + ".a.b"},
		{name: "NotBase64", token: "a.b.c"},
		{name: "Huge", token: "eyJ" + strings.Repeat("A", 1<<20) + "." + parts[1] + "." + parts[2]},
		{name: "EmptyBearer", header: []string{"Bearer "}, wantStatus: 400, wantCode: CodeInvalidRequest},
		{name: "EmptyHeader", header: []string{""}, wantStatus: 401, wantCode: ""},
	}
	// Both share one key set, to count its fetches.
	keys, err := NewRemoteKeySet(RemoteKeySetConfig{URL: is.jwksURL(), Now: is.clock.Now, Logger: discardLogger()})
	if err != nil {
		t.Fatal(err)
	}
	a := newAuth(t, is, func(c *Config) { c.KeySet = keys })
	h := a.Middleware(okHandler)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.wantStatus == 0 {
				tc.wantStatus, tc.wantCode = http.StatusUnauthorized, CodeInvalidToken
			}
			header := tc.header
			if header == nil {
				header = []string{"Bearer " + tc.token}
			}
			w := serve(h, header...)
			if w.Code != tc.wantStatus {
				t.Fatalf("status = %d, want %d; body %s", w.Code, tc.wantStatus, w.Body)
			}
			ch := w.Header().Get("WWW-Authenticate")
			if tc.wantCode == "" {
				if ch != "Bearer" {
					t.Errorf("challenge = %q, want a bare Bearer", ch)
				}
			} else if !strings.Contains(ch, `error="`+string(tc.wantCode)+`"`) {
				t.Errorf("challenge = %q, want error %q", ch, tc.wantCode)
			}
			var body errorBody
			if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil || body.Error == "" {
				t.Errorf("body %q: %v", w.Body, err)
			}
			if tc.token != "" {
				_, err := a.Verify(t.Context(), tc.token)
				if !errors.Is(err, ErrInvalidToken) {
					t.Errorf("Verify error = %v, want ErrInvalidToken", err)
				}
				if tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
					t.Errorf("Verify error = %v, want %v", err, tc.wantErr)
				}
				if tc.wantErr != ErrTokenExpired && errors.Is(err, ErrTokenExpired) {
					t.Errorf("Verify error = %v: only a validly signed, expired token may be ErrTokenExpired", err)
				}
			}
		})
	}
	if n := attackerJWKS.jwksFetches.Load(); n != 0 {
		t.Errorf("the attacker's jku was fetched %d times", n)
	}
	// The first case that reaches the key set loads it; UnknownKid then
	// falls within the cooldown. Nothing else may fetch.
	if n := is.jwksFetches.Load(); n > 1 {
		t.Errorf("the forged tokens caused %d JWKS fetches", n)
	}
}

func signWith(k *testKey) func([]byte) []byte {
	return func(in []byte) []byte {
		h := sha256.Sum256(in)
		switch p := k.priv.(type) {
		case *ecdsa.PrivateKey:
			r, s, err := ecdsa.Sign(rand.Reader, p, h[:])
			if err != nil {
				panic(err)
			}
			out := make([]byte, 64)
			r.FillBytes(out[:32])
			s.FillBytes(out[32:])
			return out
		default:
			sig, err := k.priv.Sign(rand.Reader, h[:], crypto.SHA256)
			if err != nil {
				panic(err)
			}
			return sig
		}
	}
}

func TestHugeTokenIsRefusedWithoutParsing(t *testing.T) {
	is := newTestIssuer(t)
	a := newAuth(t, is, nil)
	huge := strings.Repeat("A", DefaultMaxTokenSize+1)
	_, err := a.Verify(t.Context(), huge)
	if !errors.Is(err, ErrInvalidToken) || !strings.Contains(err.Error(), "exceeds the limit") {
		t.Fatalf("err = %v", err)
	}
	if n := is.jwksFetches.Load(); n != 0 {
		t.Errorf("%d JWKS fetches for an oversized token", n)
	}
	small := newAuth(t, is, func(c *Config) { c.MaxTokenSize = 100 })
	if _, err := small.Verify(t.Context(), is.mint(t)); err == nil || !strings.Contains(err.Error(), "exceeds the limit") {
		t.Fatalf("MaxTokenSize 100: err = %v", err)
	}
}

func TestConfigRefusesSymmetricAlgorithms(t *testing.T) {
	is := newTestIssuer(t)
	for _, alg := range []jose.SignatureAlgorithm{"none", jose.HS256, "RS1"} {
		_, err := New(t.Context(), Config{Issuer: is.URL(), Audience: "a", JWKSURL: is.jwksURL(), Algorithms: []jose.SignatureAlgorithm{alg}})
		if err == nil {
			t.Errorf("Algorithms %q accepted", alg)
		}
	}
}

func TestAlgorithmAllowList(t *testing.T) {
	is := newTestIssuer(t, newEdKey("ed-1"))
	a := newAuth(t, is, func(c *Config) { c.Algorithms = []jose.SignatureAlgorithm{jose.RS256, jose.ES256} })
	if _, err := a.Verify(t.Context(), is.mint(t)); !errors.Is(err, ErrInvalidToken) {
		t.Fatalf("EdDSA outside the allow-list: err = %v", err)
	}
}

func TestAlgorithmMustMatchTheKeysDeclaredAlg(t *testing.T) {
	declared := newRSAKey("rsa-declared", 0) // published with alg RS256
	undeclared := newRSAKey("rsa-open", 1)
	is := newTestIssuer(t, declared)
	keys, err := NewStaticKeySet(declared.public(), jose.JSONWebKey{Key: undeclared.priv.Public(), KeyID: undeclared.kid})
	if err != nil {
		t.Fatal(err)
	}
	a := newAuth(t, is, func(c *Config) {
		c.KeySet = keys
		c.Algorithms = []jose.SignatureAlgorithm{jose.RS256, jose.PS256}
	})
	ps := func(k *testKey) string {
		return mintWith(t, &testKey{kid: k.kid, alg: jose.PS256, priv: k.priv}, map[string]any{"typ": "at+jwt"}, is.claims())
	}
	if _, err := a.Verify(t.Context(), ps(declared)); err == nil || !strings.Contains(err.Error(), "does not fit") {
		t.Errorf("PS256 with an RS256 key: err = %v", err)
	}
	if _, err := a.Verify(t.Context(), ps(undeclared)); err != nil {
		t.Errorf("PS256 with an RSA key that declares no alg: %v", err)
	}
}
