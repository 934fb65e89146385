package authserver

import (
	"crypto/hmac"
	"crypto/sha256"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/oauthkit/authserver/internal/dpop"
	"github.com/oauthkit/authserver/internal/dpop/dpoptest"
	"github.com/oauthkit/authserver/storage"
)

func (env *testEnv) dpopToken(form url.Values, user, pass string, proofs ...string) (*http.Response, map[string]any) {
	env.t.Helper()
	req, err := http.NewRequest(http.MethodPost, env.srv.URL+"/token", strings.NewReader(form.Encode()))
	if err != nil {
		env.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if user != "" {
		req.SetBasicAuth(user, pass)
	}
	for _, p := range proofs {
		req.Header.Add("DPoP", p)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		env.t.Fatal(err)
	}
	return resp, decode(env.t, resp)
}

func passwordForm(client string) url.Values {
	return url.Values{"grant_type": {"password"}, "username": {"alice@example.com"}, "password": {alicePW}, "client_id": {client}, "scope": {"read"}}
}

func wantOAuthError(t *testing.T, resp *http.Response, m map[string]any, status int, code string) {
	t.Helper()
	if resp.StatusCode != status || m["error"] != code {
		t.Fatalf("got %d %v, want %d %s", resp.StatusCode, m, status, code)
	}
}

// TestDPoPTokenEndpoint: a bound token is issued, bound refresh tokens
// and introspection, and the hostile table of issue #17 at /token.
// It runs on memory and on SQLite (the jti records are storage.UsedJTI).
func TestDPoPTokenEndpoint(t *testing.T) {
	t.Run("Memory", func(t *testing.T) { testDPoPTokenEndpoint(t, openMemory) })
	t.Run("SQLite", func(t *testing.T) { testDPoPTokenEndpoint(t, openSQLite) })
}

func testDPoPTokenEndpoint(t *testing.T, open func(testing.TB) storage.Store) {
	env := newTestEnv(t, open(t))
	now := time.Now()
	if err := env.store.CreateClient(t.Context(), storage.Client{ID: "dpoponly", Public: true, RequireDPoP: true,
		GrantTypes: []string{"password", "refresh_token"}, Scopes: []string{"read"}, CreatedAt: now, UpdatedAt: now}); err != nil {
		t.Fatal(err)
	}
	key := dpoptest.NewKey(t)
	htu := env.issuer + "/token"
	good := func() string { return key.Proof(dpop.ProofClaims{Method: "POST", URL: htu}) }

	var access, refresh string
	t.Run("BoundTokenIssued", func(t *testing.T) {
		resp, m := env.dpopToken(passwordForm("demo"), "", "", good())
		if resp.StatusCode != 200 || m["token_type"] != "DPoP" {
			t.Fatalf("%d %v", resp.StatusCode, m)
		}
		access, refresh = m["access_token"].(string), m["refresh_token"].(string)
		tok := verifyIndependently(t, env, access)
		cnf, _ := claim(t, tok, "cnf").(map[string]any)
		if cnf["jkt"] != key.Signer.JKT() {
			t.Fatalf("cnf = %v, want jkt %s", cnf, key.Signer.JKT())
		}
		in := env.introspect(access)
		if in["token_type"] != "DPoP" || in["cnf"].(map[string]any)["jkt"] != key.Signer.JKT() {
			t.Fatalf("introspection %v", in)
		}
		// The public client's refresh token is bound to the key too.
		in = env.introspect(refresh)
		if cnf, _ := in["cnf"].(map[string]any); in["token_type"] != "refresh_token" || cnf["jkt"] != key.Signer.JKT() {
			t.Fatalf("refresh token introspection %v", in)
		}
	})
	t.Run("UnboundWithoutProof", func(t *testing.T) {
		resp, m := env.dpopToken(passwordForm("demo"), "", "")
		if resp.StatusCode != 200 || m["token_type"] != "Bearer" {
			t.Fatalf("%d %v", resp.StatusCode, m)
		}
		if in := env.introspect(m["access_token"].(string)); in["cnf"] != nil || in["token_type"] != "Bearer" {
			t.Fatalf("introspection %v", in)
		}
	})
	refreshForm := func(rt string) url.Values {
		return url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}, "client_id": {"demo"}}
	}
	t.Run("PublicRefreshNeedsTheBoundKey", func(t *testing.T) {
		other := dpoptest.NewKey(t)
		resp, m := env.dpopToken(refreshForm(refresh), "", "")
		wantOAuthError(t, resp, m, 400, "invalid_dpop_proof")
		resp, m = env.dpopToken(refreshForm(refresh), "", "", other.Proof(dpop.ProofClaims{Method: "POST", URL: htu}))
		wantOAuthError(t, resp, m, 400, "invalid_dpop_proof")
		// The refused attempts did not consume the refresh token.
		resp, m = env.dpopToken(refreshForm(refresh), "", "", good())
		if resp.StatusCode != 200 || m["token_type"] != "DPoP" {
			t.Fatalf("refresh with the bound key: %d %v", resp.StatusCode, m)
		}
		// The rotated refresh token stays bound.
		resp, m = env.dpopToken(refreshForm(m["refresh_token"].(string)), "", "", other.Proof(dpop.ProofClaims{Method: "POST", URL: htu}))
		wantOAuthError(t, resp, m, 400, "invalid_dpop_proof")
	})
	t.Run("ConfidentialRefreshIsNotBound", func(t *testing.T) {
		f := passwordForm("app")
		f.Del("client_id")
		resp, m := env.dpopToken(f, "app", appSecret, good())
		if resp.StatusCode != 200 || m["token_type"] != "DPoP" {
			t.Fatalf("%d %v", resp.StatusCode, m)
		}
		other := dpoptest.NewKey(t)
		if in := env.introspect(m["refresh_token"].(string)); in["active"] != true || in["cnf"] != nil {
			t.Fatalf("a confidential client's refresh token is not bound: %v", in)
		}
		rf := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {m["refresh_token"].(string)}}
		resp, m = env.dpopToken(rf, "app", appSecret, other.Proof(dpop.ProofClaims{Method: "POST", URL: htu}))
		if resp.StatusCode != 200 || m["token_type"] != "DPoP" {
			t.Fatalf("refresh with another key: %d %v", resp.StatusCode, m)
		}
		if in := env.introspect(m["access_token"].(string)); in["cnf"].(map[string]any)["jkt"] != other.Signer.JKT() {
			t.Fatalf("the new access token is not bound to the new proof's key: %v", in)
		}
	})
	t.Run("ClientCredentials", func(t *testing.T) {
		f := url.Values{"grant_type": {"client_credentials"}}
		resp, m := env.dpopToken(f, "svc", svcSecret, good())
		if resp.StatusCode != 200 || m["token_type"] != "DPoP" {
			t.Fatalf("%d %v", resp.StatusCode, m)
		}
	})

	iat := func(d time.Duration) string {
		return key.Proof(dpop.ProofClaims{Method: "POST", URL: htu, IssuedAt: time.Now().Add(d)})
	}
	claims := func() map[string]any {
		return map[string]any{"jti": newJTI(), "htm": "POST", "htu": htu, "iat": time.Now().Unix()}
	}
	replayed := good()
	if resp, m := env.dpopToken(passwordForm("demo"), "", "", replayed); resp.StatusCode != 200 {
		t.Fatalf("first use: %d %v", resp.StatusCode, m)
	}
	for _, tc := range []struct {
		name   string
		client string
		proofs []string
	}{
		{"MissingProofForBoundClient", "dpoponly", nil},
		{"OtherHTU", "demo", []string{key.Proof(dpop.ProofClaims{Method: "POST", URL: env.issuer + "/authorize"})}},
		{"HTUWithOtherHost", "demo", []string{key.Proof(dpop.ProofClaims{Method: "POST", URL: "https://evil.example/token"})}},
		{"OtherHTM", "demo", []string{key.Proof(dpop.ProofClaims{Method: "GET", URL: htu})}},
		{"ReplayedJTI", "demo", []string{replayed}},
		{"IATTooOld", "demo", []string{iat(-2 * time.Minute)}},
		{"IATInTheFuture", "demo", []string{iat(time.Minute)}},
		{"AlgNone", "demo", []string{dpoptest.RawProof(map[string]any{"typ": "dpop+jwt", "alg": "none", "jwk": key.JWK(false)}, claims(), nil)}},
		{"HS256", "demo", []string{dpoptest.RawProof(map[string]any{"typ": "dpop+jwt", "alg": "HS256", "jwk": key.JWK(false)}, claims(), func(in []byte) []byte {
			m := hmac.New(sha256.New, []byte("0123456789abcdef0123456789abcdef"))
			m.Write(in)
			return m.Sum(nil)
		})}},
		{"PrivateKeyInJWK", "demo", []string{dpoptest.RawProof(map[string]any{"typ": "dpop+jwt", "alg": "ES256", "jwk": key.JWK(true)}, claims(), key.ES256)}},
		{"WrongTyp", "demo", []string{dpoptest.RawProof(map[string]any{"typ": "JWT", "alg": "ES256", "jwk": key.JWK(false)}, claims(), key.ES256)}},
		{"NoJWK", "demo", []string{dpoptest.RawProof(map[string]any{"typ": "dpop+jwt", "alg": "ES256"}, claims(), key.ES256)}},
		{"BadSignature", "demo", []string{dpoptest.RawProof(map[string]any{"typ": "dpop+jwt", "alg": "ES256", "jwk": dpoptest.NewKey(t).JWK(false)}, claims(), key.ES256)}},
		{"TwoProofs", "demo", []string{good(), good()}},
		{"Garbage", "demo", []string{"not-a-jwt"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, m := env.dpopToken(passwordForm(tc.client), "", "", tc.proofs...)
			wantOAuthError(t, resp, m, 400, "invalid_dpop_proof")
		})
	}
	t.Run("HandMadeProofIsAccepted", func(t *testing.T) {
		// The hand-made shape itself is right: only the rows' defects fail.
		p := dpoptest.RawProof(map[string]any{"typ": "dpop+jwt", "alg": "ES256", "jwk": key.JWK(false)}, claims(), key.ES256)
		if resp, m := env.dpopToken(passwordForm("demo"), "", "", p); resp.StatusCode != 200 {
			t.Fatalf("%d %v", resp.StatusCode, m)
		}
	})
	t.Run("RequireDPoPClientWithProof", func(t *testing.T) {
		if resp, m := env.dpopToken(passwordForm("dpoponly"), "", "", good()); resp.StatusCode != 200 || m["token_type"] != "DPoP" {
			t.Fatalf("%d %v", resp.StatusCode, m)
		}
	})
	t.Run("JTIIsRecordedInStorage", func(t *testing.T) {
		// The replay check is shared: a second server on the same store
		// refuses a proof the first accepted.
		p := good()
		if resp, _ := env.dpopToken(passwordForm("demo"), "", "", p); resp.StatusCode != 200 {
			t.Fatal(resp.StatusCode)
		}
		env2 := &testEnv{t: t, store: env.store, issuer: env.issuer}
		env2.srv = env.srv
		env2.build()
		resp, m := env2.dpopToken(passwordForm("demo"), "", "", p)
		wantOAuthError(t, resp, m, 400, "invalid_dpop_proof")
	})
}

// TestDPoPNonce: with nonces on, a proof without one gets use_dpop_nonce
// and a DPoP-Nonce header; the retry with it succeeds.
func TestDPoPNonce(t *testing.T) {
	env := newTestEnv(t, openMemory(t), func(c *Config) { c.DPoP.Nonce = true })
	key := dpoptest.NewKey(t)
	htu := env.issuer + "/token"
	resp, m := env.dpopToken(passwordForm("demo"), "", "", key.Proof(dpop.ProofClaims{Method: "POST", URL: htu}))
	wantOAuthError(t, resp, m, 400, "use_dpop_nonce")
	nonce := resp.Header.Get("DPoP-Nonce")
	if nonce == "" {
		t.Fatal("no DPoP-Nonce header")
	}
	resp, m = env.dpopToken(passwordForm("demo"), "", "", key.Proof(dpop.ProofClaims{Method: "POST", URL: htu, Nonce: "forged-nonce"}))
	wantOAuthError(t, resp, m, 400, "use_dpop_nonce")
	resp, m = env.dpopToken(passwordForm("demo"), "", "", key.Proof(dpop.ProofClaims{Method: "POST", URL: htu, Nonce: nonce}))
	if resp.StatusCode != 200 || m["token_type"] != "DPoP" {
		t.Fatalf("retry with the nonce: %d %v", resp.StatusCode, m)
	}
	if resp.Header.Get("DPoP-Nonce") == "" {
		t.Fatal("a successful response carries no DPoP-Nonce")
	}
}

// TestDPoPCodeBinding: dpop_jkt at /authorize (and through PAR) binds the
// code to a key (RFC 9449 §10).
func TestDPoPCodeBinding(t *testing.T) {
	env := newCodeEnv(t)
	key, other := dpoptest.NewKey(t), dpoptest.NewKey(t)
	htu := env.issuer + "/token"
	b := newBrowser(t, env)
	code, verifier := env.codeFor(t, b, "web", webRedirect, "dpop_jkt", key.Signer.JKT())
	exchange := func(k *dpoptest.Key) (*http.Response, map[string]any) {
		v := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "code_verifier": {verifier},
			"client_id": {"web"}, "redirect_uri": {webRedirect}}
		var proofs []string
		if k != nil {
			proofs = append(proofs, k.Proof(dpop.ProofClaims{Method: "POST", URL: htu}))
		}
		return env.dpopToken(v, "", "", proofs...)
	}
	resp, m := exchange(nil)
	wantOAuthError(t, resp, m, 400, "invalid_dpop_proof")
	resp, m = exchange(other)
	wantOAuthError(t, resp, m, 400, "invalid_dpop_proof")
	resp, m = exchange(key)
	if resp.StatusCode != 200 || m["token_type"] != "DPoP" {
		t.Fatalf("exchange with the bound key: %d %v", resp.StatusCode, m)
	}
	if in := env.introspect(m["access_token"].(string)); in["cnf"].(map[string]any)["jkt"] != key.Signer.JKT() {
		t.Fatalf("introspection %v", in)
	}
	// web is public: its refresh token is bound to the key too.
	rf := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {m["refresh_token"].(string)}, "client_id": {"web"}}
	resp, m = env.dpopToken(rf, "", "", other.Proof(dpop.ProofClaims{Method: "POST", URL: htu}))
	wantOAuthError(t, resp, m, 400, "invalid_dpop_proof")

	t.Run("MalformedDPoPJKT", func(t *testing.T) {
		_, ch := pkcePair("m")
		p := b.get(authorizeQuery("web", webRedirect, "state-123", ch, "dpop_jkt", "short"))
		q := env.callback(t, p, webRedirect)
		if q.Get("error") != "invalid_request" {
			t.Fatalf("callback %v", q)
		}
	})
	t.Run("PARWithProof", func(t *testing.T) {
		verifier, ch := pkcePair("p")
		v := url.Values{"response_type": {"code"}, "client_id": {"parapp"}, "redirect_uri": {"https://par.example/cb"},
			"state": {"par-state"}, "code_challenge": {ch}, "code_challenge_method": {"S256"}, "scope": {"read"}}
		resp := env.post("/par", v, "", "", "DPoP", key.Proof(dpop.ProofClaims{Method: "POST", URL: env.issuer + "/par"}))
		m := decode(t, resp)
		ru, _ := m["request_uri"].(string)
		if resp.StatusCode != 201 {
			t.Fatalf("push: %d %v", resp.StatusCode, m)
		}
		p := b.get("/authorize?" + url.Values{"client_id": {"parapp"}, "request_uri": {ru}}.Encode())
		if strings.Contains(p.body, `name="decision"`) {
			p = b.decide(p, "allow")
		}
		cb := env.callback(t, p, "https://par.example/cb")
		ex := url.Values{"grant_type": {"authorization_code"}, "code": {cb.Get("code")}, "code_verifier": {verifier},
			"client_id": {"parapp"}, "redirect_uri": {"https://par.example/cb"}}
		r2, m2 := env.dpopToken(ex, "", "", other.Proof(dpop.ProofClaims{Method: "POST", URL: htu}))
		wantOAuthError(t, r2, m2, 400, "invalid_dpop_proof")
		r2, m2 = env.dpopToken(ex, "", "", key.Proof(dpop.ProofClaims{Method: "POST", URL: htu}))
		if r2.StatusCode != 200 || m2["token_type"] != "DPoP" {
			t.Fatalf("%d %v", r2.StatusCode, m2)
		}
	})
}

// TestDPoPUserinfo: the UserInfo endpoint takes a bound token with the
// DPoP scheme and a proof of its key, and refuses it as Bearer.
func TestDPoPUserinfo(t *testing.T) {
	env := newTestEnv(t, openMemory(t))
	now := time.Now()
	if err := env.store.CreateClient(t.Context(), storage.Client{ID: "pwoidc", Public: true,
		GrantTypes: []string{"password"}, Scopes: []string{"openid", "read"}, CreatedAt: now, UpdatedAt: now}); err != nil {
		t.Fatal(err)
	}
	key := dpoptest.NewKey(t)
	f := passwordForm("pwoidc")
	f.Set("scope", "openid")
	resp, m := env.dpopToken(f, "", "", key.Proof(dpop.ProofClaims{Method: "POST", URL: env.issuer + "/token"}))
	if resp.StatusCode != 200 || m["token_type"] != "DPoP" {
		t.Fatalf("%d %v", resp.StatusCode, m)
	}
	at := m["access_token"].(string)
	call := func(scheme string, proofs ...string) (*http.Response, map[string]any) {
		req, _ := http.NewRequest(http.MethodGet, env.srv.URL+"/userinfo", nil)
		req.Header.Set("Authorization", scheme+" "+at)
		for _, p := range proofs {
			req.Header.Add("DPoP", p)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return resp, decode(t, resp)
	}
	good := func() string {
		return key.Proof(dpop.ProofClaims{Method: "GET", URL: env.issuer + "/userinfo", AccessToken: at})
	}
	if resp, m := call("DPoP", good()); resp.StatusCode != 200 || m["sub"] != env.alice.ID {
		t.Fatalf("DPoP: %d %v", resp.StatusCode, m)
	}
	for _, tc := range []struct {
		name, scheme, code, challenge string
		proofs                        []string
	}{
		{"AsBearer", "Bearer", "invalid_token", "Bearer", nil},
		{"NoProof", "DPoP", "invalid_dpop_proof", "DPoP", nil},
		{"OtherKey", "DPoP", "invalid_dpop_proof", "DPoP", []string{dpoptest.NewKey(t).Proof(dpop.ProofClaims{Method: "GET", URL: env.issuer + "/userinfo", AccessToken: at})}},
		{"WrongATH", "DPoP", "invalid_dpop_proof", "DPoP", []string{key.Proof(dpop.ProofClaims{Method: "GET", URL: env.issuer + "/userinfo", AccessToken: "other"})}},
		{"OtherHTM", "DPoP", "invalid_dpop_proof", "DPoP", []string{key.Proof(dpop.ProofClaims{Method: "POST", URL: env.issuer + "/userinfo", AccessToken: at})}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, m := call(tc.scheme, tc.proofs...)
			if ch := resp.Header.Get("WWW-Authenticate"); resp.StatusCode != 401 || m["error"] != tc.code || !strings.HasPrefix(ch, tc.challenge+" ") {
				t.Fatalf("%d %v %q", resp.StatusCode, m, ch)
			}
		})
	}
	// A token that does not verify, sent with the DPoP scheme, is refused
	// with a DPoP challenge (RFC 9449 §7.1), not a Bearer one.
	req, _ := http.NewRequest(http.MethodGet, env.srv.URL+"/userinfo", nil)
	req.Header.Set("Authorization", "DPoP not-a-token")
	req.Header.Set("DPoP", key.Proof(dpop.ProofClaims{Method: "GET", URL: env.issuer + "/userinfo", AccessToken: "not-a-token"}))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if m, ch := decode(t, resp), resp.Header.Get("WWW-Authenticate"); resp.StatusCode != 401 || m["error"] != "invalid_token" || !strings.HasPrefix(ch, "DPoP ") {
		t.Fatalf("an invalid token with the DPoP scheme: %d %v %q", resp.StatusCode, m, ch)
	}
	// A proof of another key is refused before its jti is recorded: sent
	// again, it is refused for its key, not as a replay.
	other := dpoptest.NewKey(t).Proof(dpop.ProofClaims{Method: "GET", URL: env.issuer + "/userinfo", AccessToken: at})
	for range 2 {
		if resp, m := call("DPoP", other); resp.StatusCode != 401 || !strings.Contains(fmt.Sprint(m["error_description"]), "bound to") {
			t.Fatalf("a proof of another key: %d %v", resp.StatusCode, m)
		}
	}
}

// TestDPoPRefreshGrace: a retried refresh within the grace window gets
// the first attempt's DPoP-bound pair only with a proof of the same key.
func TestDPoPRefreshGrace(t *testing.T) {
	env := newTestEnv(t, openMemory(t), func(c *Config) { c.RefreshGrace = time.Minute })
	key := dpoptest.NewKey(t)
	htu := env.issuer + "/token"
	p := func(k *dpoptest.Key) string { return k.Proof(dpop.ProofClaims{Method: "POST", URL: htu}) }
	resp, m := env.dpopToken(passwordForm("demo"), "", "", p(key))
	if resp.StatusCode != 200 {
		t.Fatalf("%d %v", resp.StatusCode, m)
	}
	rf := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {m["refresh_token"].(string)}, "client_id": {"demo"}}
	resp, first := env.dpopToken(rf, "", "", p(key))
	if resp.StatusCode != 200 {
		t.Fatalf("%d %v", resp.StatusCode, first)
	}
	resp, m = env.dpopToken(rf, "", "", p(dpoptest.NewKey(t)))
	if resp.StatusCode != 400 {
		t.Fatalf("grace replay with another key: %d %v", resp.StatusCode, m)
	}
	resp, m = env.dpopToken(rf, "", "", p(key))
	if resp.StatusCode != 200 || m["access_token"] != first["access_token"] || m["token_type"] != "DPoP" {
		t.Fatalf("grace replay with the key: %d %v", resp.StatusCode, m)
	}
}

// TestDPoPTokenExchange: the token exchange grant issues a bound token to
// a proof like every other grant.
func TestDPoPTokenExchange(t *testing.T) {
	env := exchangeEnv(t)
	key := dpoptest.NewKey(t)
	user, _ := env.passwordToken("alice@example.com", alicePW)
	form := url.Values{"grant_type": {grantTokenExchange}, "subject_token": {user},
		"subject_token_type": {"urn:ietf:params:oauth:token-type:access_token"}, "audience": {"https://orders.example/"}, "scope": {"read"}}
	resp, m := env.dpopToken(form, "gw", gwSecret, key.Proof(dpop.ProofClaims{Method: "POST", URL: env.issuer + "/token"}))
	if resp.StatusCode != 200 || m["token_type"] != "DPoP" {
		t.Fatalf("%d %v", resp.StatusCode, m)
	}
	cnf, _ := jwtClaims(t, m["access_token"].(string))["cnf"].(map[string]any)
	if cnf["jkt"] != key.Signer.JKT() {
		t.Fatalf("cnf %v", cnf)
	}
}
