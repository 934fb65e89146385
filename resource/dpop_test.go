package resource

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/oauthkit/authserver/internal/dpop"
	"github.com/oauthkit/authserver/internal/dpop/dpoptest"
)

const dpopTestURL = "http://api.example/api/thing"

// serveDPoP runs h on GET dpopTestURL with the Authorization value and the
// DPoP proofs.
func serveDPoP(h http.Handler, authorization string, proofs ...string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(http.MethodGet, dpopTestURL, nil)
	if authorization != "" {
		r.Header.Set("Authorization", authorization)
	}
	for _, p := range proofs {
		r.Header.Add("DPoP", p)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func wantRefusal(t *testing.T, w *httptest.ResponseRecorder, status int, code ErrorCode, scheme string) {
	t.Helper()
	var body errorBody
	_ = json.Unmarshal(w.Body.Bytes(), &body)
	ch := w.Header().Get("WWW-Authenticate")
	if w.Code != status || body.Error != code || !strings.HasPrefix(ch, scheme+" ") || !strings.Contains(ch, `error="`+string(code)+`"`) {
		t.Fatalf("got %d %s %q, want %d %s with a %s challenge", w.Code, body.Error, ch, status, code, scheme)
	}
}

// TestDPoPResource is the hostile table of issue #17 at the resource
// server, one subtest per row.
func TestDPoPResource(t *testing.T) {
	is := newTestIssuer(t, newECKey("ec-1"))
	client := dpoptest.NewKey(t)
	bound := func(c map[string]any) { c["cnf"] = map[string]any{"jkt": client.Signer.JKT()} }
	token := is.mint(t, bound)
	h := newAuth(t, is, nil).Middleware(okHandler)
	proof := func(edit func(*dpop.ProofClaims)) string {
		pc := dpop.ProofClaims{Method: "GET", URL: dpopTestURL, AccessToken: token, IssuedAt: is.clock.Now()}
		if edit != nil {
			edit(&pc)
		}
		return client.Proof(pc)
	}
	claims := func() map[string]any {
		return map[string]any{"jti": "hand-" + time.Now().String(), "htm": "GET", "htu": dpopTestURL, "iat": is.clock.Now().Unix(), "ath": dpop.ATH(token)}
	}

	t.Run("Accepted", func(t *testing.T) {
		if w := serveDPoP(h, "DPoP "+token, proof(nil)); w.Code != 200 || w.Body.String() != "user-42" {
			t.Fatalf("%d %s %s", w.Code, w.Body, w.Header())
		}
	})
	t.Run("HandMadeProofAccepted", func(t *testing.T) {
		p := rawJWS(t, map[string]any{"typ": "dpop+jwt", "alg": "ES256", "jwk": client.JWK(false)}, claims(), client.ES256)
		if w := serveDPoP(h, "DPoP "+token, p); w.Code != 200 {
			t.Fatalf("%d %s", w.Code, w.Body)
		}
	})
	t.Run("BoundTokenAsBearer", func(t *testing.T) {
		wantRefusal(t, serveDPoP(h, "Bearer "+token), 401, CodeInvalidToken, "Bearer")
		wantRefusal(t, serveDPoP(h, "Bearer "+token, proof(nil)), 401, CodeInvalidToken, "Bearer")
	})
	t.Run("UnboundTokenWithDPoPScheme", func(t *testing.T) {
		unbound := is.mint(t)
		p := client.Proof(dpop.ProofClaims{Method: "GET", URL: dpopTestURL, AccessToken: unbound, IssuedAt: is.clock.Now()})
		wantRefusal(t, serveDPoP(h, "DPoP "+unbound, p), 401, CodeInvalidToken, "DPoP")
		// ...and as Bearer it works as before.
		if w := serveDPoP(h, "Bearer "+unbound); w.Code != 200 {
			t.Fatalf("unbound bearer: %d", w.Code)
		}
	})
	replayed := proof(nil)
	if w := serveDPoP(h, "DPoP "+token, replayed); w.Code != 200 {
		t.Fatalf("first use: %d %s", w.Code, w.Body)
	}
	other := dpoptest.NewKey(t)
	for _, tc := range []struct {
		name   string
		proofs []string
	}{
		{"MissingProof", nil},
		{"TwoProofs", []string{proof(nil), proof(nil)}},
		{"OtherHTU", []string{proof(func(pc *dpop.ProofClaims) { pc.URL = "http://api.example/api/other" })}},
		{"OtherHost", []string{proof(func(pc *dpop.ProofClaims) { pc.URL = "https://evil.example/api/thing" })}},
		{"OtherHTM", []string{proof(func(pc *dpop.ProofClaims) { pc.Method = "POST" })}},
		{"OtherKey", []string{other.Proof(dpop.ProofClaims{Method: "GET", URL: dpopTestURL, AccessToken: token, IssuedAt: is.clock.Now()})}},
		{"ReplayedJTI", []string{replayed}},
		{"IATTooOld", []string{proof(func(pc *dpop.ProofClaims) { pc.IssuedAt = is.clock.Now().Add(-2 * time.Minute) })}},
		{"IATInTheFuture", []string{proof(func(pc *dpop.ProofClaims) { pc.IssuedAt = is.clock.Now().Add(time.Minute) })}},
		{"WrongATH", []string{proof(func(pc *dpop.ProofClaims) { pc.AccessToken = is.mint(t, bound) })}},
		{"NoATH", []string{proof(func(pc *dpop.ProofClaims) { pc.AccessToken = "" })}},
		{"AlgNone", []string{rawJWS(t, map[string]any{"typ": "dpop+jwt", "alg": "none", "jwk": client.JWK(false)}, claims(), nil)}},
		{"HS256", []string{rawJWS(t, map[string]any{"typ": "dpop+jwt", "alg": "HS256", "jwk": client.JWK(false)}, claims(), func(in []byte) []byte {
			m := hmac.New(sha256.New, []byte("0123456789abcdef0123456789abcdef"))
			m.Write(in)
			return m.Sum(nil)
		})}},
		{"PrivateKeyInJWK", []string{rawJWS(t, map[string]any{"typ": "dpop+jwt", "alg": "ES256", "jwk": client.JWK(true)}, claims(), client.ES256)}},
		{"WrongTyp", []string{rawJWS(t, map[string]any{"typ": "JWT", "alg": "ES256", "jwk": client.JWK(false)}, claims(), client.ES256)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wantRefusal(t, serveDPoP(h, "DPoP "+token, tc.proofs...), 401, CodeInvalidDPoPProof, "DPoP")
		})
	}
	t.Run("NoCredentialsOffersBothSchemes", func(t *testing.T) {
		w := serveDPoP(h, "")
		chs := w.Header().Values("WWW-Authenticate")
		if w.Code != 401 || len(chs) != 2 || !strings.HasPrefix(chs[0], "Bearer") || !strings.HasPrefix(chs[1], "DPoP algs=\"ES256 ") {
			t.Fatalf("%d %q", w.Code, chs)
		}
	})
}

// TestDPoPResourceNonce: with a nonce key, a proof without the nonce gets
// use_dpop_nonce and a DPoP-Nonce header; the retry is accepted.
func TestDPoPResourceNonce(t *testing.T) {
	is := newTestIssuer(t, newECKey("ec-1"))
	client := dpoptest.NewKey(t)
	token := is.mint(t, func(c map[string]any) { c["cnf"] = map[string]any{"jkt": client.Signer.JKT()} })
	key := []byte("nonce-key-0123456789-0123456789-0123456789")
	h := newAuth(t, is, func(c *Config) { c.DPoP.NonceKey = key }).Middleware(okHandler)
	pc := dpop.ProofClaims{Method: "GET", URL: dpopTestURL, AccessToken: token, IssuedAt: is.clock.Now()}
	w := serveDPoP(h, "DPoP "+token, client.Proof(pc))
	wantRefusal(t, w, 401, CodeUseDPoPNonce, "DPoP")
	nonce := w.Header().Get("DPoP-Nonce")
	if nonce == "" {
		t.Fatal("no DPoP-Nonce")
	}
	pc.Nonce = "forged"
	wantRefusal(t, serveDPoP(h, "DPoP "+token, client.Proof(pc)), 401, CodeUseDPoPNonce, "DPoP")
	pc.Nonce = nonce
	if w := serveDPoP(h, "DPoP "+token, client.Proof(pc)); w.Code != 200 {
		t.Fatalf("retry with the nonce: %d %s", w.Code, w.Body)
	}
}

// TestDPoPResourceExternalURL: behind a proxy, htu is the external URL.
func TestDPoPResourceExternalURL(t *testing.T) {
	is := newTestIssuer(t, newECKey("ec-1"))
	client := dpoptest.NewKey(t)
	token := is.mint(t, func(c map[string]any) { c["cnf"] = map[string]any{"jkt": client.Signer.JKT()} })
	h := newAuth(t, is, func(c *Config) { c.DPoP.ExternalURL = "https://API.example:443/" }).Middleware(okHandler)
	for _, tc := range []struct {
		htu  string
		want int
	}{
		{"https://api.example/api/thing?q=1", 200},
		{dpopTestURL, 401}, // the address the proxy used
	} {
		p := client.Proof(dpop.ProofClaims{Method: "GET", URL: tc.htu, AccessToken: token, IssuedAt: is.clock.Now()})
		if w := serveDPoP(h, "DPoP "+token, p); w.Code != tc.want {
			t.Fatalf("htu %s: %d, want %d", tc.htu, w.Code, tc.want)
		}
	}
}

// TestDPoPSchemeMalformedTokenGetsDPoPChallenge: a request that uses the
// DPoP scheme with an empty, ill-formed or oversized token is refused with
// the DPoP scheme's challenge (RFC 9449 §7.1): 400 invalid_request for the
// syntax, 401 invalid_token for the size limit.
func TestDPoPSchemeMalformedTokenGetsDPoPChallenge(t *testing.T) {
	is := newTestIssuer(t, newECKey("ec-1"))
	h := newAuth(t, is, func(c *Config) { c.MaxTokenSize = 64 }).Middleware(okHandler)
	for _, tc := range []struct {
		name, token string
		status      int
		code        ErrorCode
	}{
		{"Empty", "", http.StatusBadRequest, CodeInvalidRequest},
		{"BadSyntax", "abc%def", http.StatusBadRequest, CodeInvalidRequest},
		{"Oversized", strings.Repeat("a", 65), http.StatusUnauthorized, CodeInvalidToken},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := serveDPoP(h, "DPoP "+tc.token, "x.y.z")
			wantRefusal(t, w, tc.status, tc.code, "DPoP")
			if chs := w.Header().Values("WWW-Authenticate"); len(chs) != 1 {
				t.Fatalf("challenges %q, want the DPoP one only", chs)
			}
		})
	}
}

// TestDPoPHTUPercentEncodingIsNormalized: RFC 9449 §4.3 compares htu after
// RFC 3986 §6.2.2 normalization, which decodes percent-encoded unreserved
// characters and ignores the case of hex digits: a proof for .../th%69ng
// is one for .../thing, in either direction, while an encoded reserved
// character still makes another URL.
func TestDPoPHTUPercentEncodingIsNormalized(t *testing.T) {
	is := newTestIssuer(t, newECKey("ec-1"))
	client := dpoptest.NewKey(t)
	token := is.mint(t, func(c map[string]any) { c["cnf"] = map[string]any{"jkt": client.Signer.JKT()} })
	h := newAuth(t, is, nil).Middleware(okHandler)
	for _, tc := range []struct {
		htu, target string
		want        int
	}{
		{"http://api.example/api/th%69ng", dpopTestURL, http.StatusOK},
		{dpopTestURL, "http://api.example/api/th%69ng", http.StatusOK},
		{"http://api.example/api/a%7eb", "http://api.example/api/a~b", http.StatusOK},
		{"http://api.example/api/a%2fb", "http://api.example/api/a%2Fb", http.StatusOK},
		{"http://api.example/api/x/../thing", dpopTestURL, http.StatusOK},
		{"http://api.example/api/a%2Fb", "http://api.example/api/a/b", http.StatusUnauthorized},
		{"http://api.example/api//thing", dpopTestURL, http.StatusUnauthorized},
	} {
		r := httptest.NewRequest(http.MethodGet, tc.target, nil)
		r.Header.Set("Authorization", "DPoP "+token)
		r.Header.Set("DPoP", client.Proof(dpop.ProofClaims{Method: "GET", URL: tc.htu, AccessToken: token, IssuedAt: is.clock.Now()}))
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != tc.want {
			t.Errorf("htu %s for a request to %s: %d %q, want %d", tc.htu, tc.target, w.Code, w.Header().Get("WWW-Authenticate"), tc.want)
		}
	}
}

// TestDPoPReplayCacheBounded: the cache never holds more than its size.
func TestDPoPReplayCacheBounded(t *testing.T) {
	c := newReplayCache(3)
	now := time.Now()
	for i := range 10 {
		if !c.add(string(rune('a'+i)), now.Add(time.Minute), now) {
			t.Fatalf("entry %d refused", i)
		}
	}
	if len(c.entries) != 3 || len(c.order) != 3 {
		t.Fatalf("%d entries", len(c.entries))
	}
	if c.add("j", now.Add(time.Minute), now) {
		t.Fatal("a recent entry was forgotten")
	}
}
