package authserver

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"

	"github.com/oauthkit/authserver/internal/password"
	"github.com/oauthkit/authserver/storage"
)

// The OpenID Foundation's oidcc-basic-certification-test-plan, reproduced:
// one subtest per module of the plan, named after it, with the module's
// checks. The suite itself is a Java service with container images this
// machine cannot fetch, so it does not run here. Pages go through the test
// browser (cookie jar, forms read from the HTML); ID tokens are verified by
// github.com/coreos/go-oidc/v3 through discovery, as a relying party does.

const (
	rpSecret   = "rp-secret-0123456789-0123456789-abcdefgh"
	rpRedirect = "https://rp.example/cb"
	rpBye      = "https://rp.example/bye"
)

// oidcEnv is a test server with the relying party "rp" registered and a
// clock the test moves (sessions, auth_time and token times follow it).
type oidcEnv struct {
	*testEnv
	mu  sync.Mutex
	now time.Time
}

func (e *oidcEnv) clock() time.Time { e.mu.Lock(); defer e.mu.Unlock(); return e.now }

// advance moves the clock. fosite refuses an auth_time more than 5s ahead
// of the real clock, so tests move it by a few seconds at most, or only
// after the sign-ins they need.
func (e *oidcEnv) advance(d time.Duration) { e.mu.Lock(); e.now = e.now.Add(d); e.mu.Unlock() }

func newOIDCEnv(t *testing.T, mods ...func(*storage.Client)) *oidcEnv {
	return newOIDCEnvConfig(t, nil, mods...)
}

// newOIDCEnvConfig is newOIDCEnv with cfg applied to the server's Config.
func newOIDCEnvConfig(t *testing.T, cfg func(*Config), mods ...func(*storage.Client)) *oidcEnv {
	e := &oidcEnv{now: time.Now().Add(-time.Minute)}
	e.testEnv = newTestEnv(t, openMemory(t), func(c *Config) {
		c.Now = e.clock
		if cfg != nil {
			cfg(c)
		}
	})
	seedCodeClients(t, e.testEnv)
	c := storage.Client{ID: "rp", Name: "Relying Party", SecretHashes: []string{password.HashSecret(rpSecret)},
		GrantTypes: []string{"authorization_code", "refresh_token"}, Scopes: []string{"openid", "profile", "email", "offline_access", "read"},
		RedirectURIs: []string{rpRedirect}, PostLogoutRedirectURIs: []string{rpBye}, CreatedAt: time.Now(), UpdatedAt: time.Now()}
	for _, m := range mods {
		m(&c)
	}
	if err := e.store.CreateClient(t.Context(), c); err != nil {
		t.Fatal(err)
	}
	return e
}

// authorize runs an authorization request for rp in b, signing in as alice
// and allowing when asked, and returns the final page.
func (e *oidcEnv) authorize(t *testing.T, b *browser, extra ...string) (p *page, verifier string) {
	t.Helper()
	verifier, challenge := pkcePair("rp")
	args := append([]string{"scope", "openid", "nonce", "n-0S6_WzA2Mj"}, extra...)
	p = b.get(authorizeQuery("rp", rpRedirect, "state-123", challenge, args...))
	if strings.Contains(p.body, `name="password"`) {
		p = b.signIn(p, "alice@example.com", alicePW)
	}
	if strings.Contains(p.body, `name="decision"`) {
		p = b.decide(p, "allow")
	}
	return p, verifier
}

// signInAndExchange signs in as user on the sign-in page p, allows consent
// if asked, and exchanges the code; it returns the token response.
func (e *oidcEnv) signInAndExchange(t *testing.T, b *browser, p *page, user, pw, verifier string) map[string]any {
	t.Helper()
	p = b.signIn(p, user, pw)
	if strings.Contains(p.body, `name="decision"`) {
		p = b.decide(p, "allow")
	}
	status, tok := e.exchangeRP(e.callback(t, p, rpRedirect).Get("code"), verifier)
	if status != http.StatusOK {
		t.Fatalf("exchange: %d %v", status, tok)
	}
	return tok
}

// codeFlow runs the flow and exchanges the code; it returns the token
// response.
func (e *oidcEnv) codeFlow(t *testing.T, b *browser, extra ...string) map[string]any {
	t.Helper()
	p, verifier := e.authorize(t, b, extra...)
	q := e.callback(t, p, rpRedirect)
	if q.Get("code") == "" {
		t.Fatalf("no code: %v", q)
	}
	status, tok := e.exchangeRP(q.Get("code"), verifier)
	if status != http.StatusOK {
		t.Fatalf("exchange: %d %v", status, tok)
	}
	return tok
}

func (e *testEnv) exchangeRP(code, verifier string) (int, map[string]any) {
	v := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "code_verifier": {verifier}, "redirect_uri": {rpRedirect}}
	resp := e.post("/token", v, "rp", rpSecret)
	return resp.StatusCode, decode(e.t, resp)
}

// verifier returns a go-oidc verifier for rp, configured by discovery.
func (e *oidcEnv) verifier(t *testing.T, clientID string) *oidc.IDTokenVerifier {
	t.Helper()
	p, err := oidc.NewProvider(t.Context(), e.issuer)
	if err != nil {
		t.Fatal(err)
	}
	return p.Verifier(&oidc.Config{ClientID: clientID})
}

// idToken verifies the response's ID token with go-oidc and returns it
// with its claims.
func (e *oidcEnv) idToken(t *testing.T, tok map[string]any) (*oidc.IDToken, map[string]any) {
	t.Helper()
	raw, _ := tok["id_token"].(string)
	if raw == "" {
		t.Fatalf("no id_token in %v", tok)
	}
	idt, err := e.verifier(t, "rp").Verify(t.Context(), raw)
	if err != nil {
		t.Fatalf("go-oidc refused the ID token: %v", err)
	}
	var claims map[string]any
	if err := idt.Claims(&claims); err != nil {
		t.Fatal(err)
	}
	return idt, claims
}

func (e *oidcEnv) userinfo(t *testing.T, method, token, where string) (int, http.Header, map[string]any) {
	t.Helper()
	var body io.Reader
	if where == "body" {
		body = strings.NewReader(url.Values{"access_token": {token}}.Encode())
	}
	req, _ := http.NewRequest(method, e.srv.URL+"/userinfo", body)
	if where == "body" {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	} else if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&m)
	return resp.StatusCode, resp.Header, m
}

func atHash(token string) string {
	h := sha256.Sum256([]byte(token))
	return base64.RawURLEncoding.EncodeToString(h[:16])
}

func wantRedirectError(t *testing.T, e *oidcEnv, p *page, code string) {
	t.Helper()
	q := e.callback(t, p, rpRedirect)
	if q.Get("error") != code || q.Get("state") != "state-123" {
		t.Fatalf("authorization response %v, want error=%s with state", q, code)
	}
}

func wantErrorPage(t *testing.T, p *page) {
	t.Helper()
	if p.location != nil || p.status < 400 {
		t.Fatalf("want an error page and no redirect, got %d to %v", p.status, p.location)
	}
}

func TestOIDCBasicCertificationPlan(t *testing.T) {
	t.Run("oidcc-server", func(t *testing.T) {
		e := newOIDCEnv(t)
		b := newBrowser(t, e.testEnv)
		tok := e.codeFlow(t, b)
		idt, c := e.idToken(t, tok)
		if idt.Subject != e.alice.ID || idt.Nonce != "n-0S6_WzA2Mj" || c["azp"] != "rp" || c["sid"] == "" || c["auth_time"] == nil {
			t.Fatalf("claims %v", c)
		}
		if amr, _ := c["amr"].([]any); len(amr) != 1 || amr[0] != "pwd" {
			t.Fatalf("amr = %v", c["amr"])
		}
		if c["at_hash"] != atHash(tok["access_token"].(string)) {
			t.Fatalf("at_hash %v does not match the access token", c["at_hash"])
		}
		if err := idt.VerifyAccessToken(tok["access_token"].(string)); err != nil {
			t.Fatalf("go-oidc at_hash check: %v", err)
		}
		// The sub is the access token's.
		if sub := e.introspect(tok["access_token"].(string))["sub"]; sub != idt.Subject {
			t.Fatalf("access token sub %v, ID token sub %s", sub, idt.Subject)
		}
		if _, ok := tok["refresh_token"]; ok {
			t.Fatal("a refresh token without offline_access")
		}
	})

	t.Run("oidcc-response-type-missing", func(t *testing.T) {
		e := newOIDCEnv(t)
		b := newBrowser(t, e.testEnv)
		p, _ := e.authorize(t, b, "response_type", "")
		wantRedirectError(t, e, p, "invalid_request")
	})

	for _, mode := range []struct{ name, method, where string }{
		{"oidcc-userinfo-get", http.MethodGet, "header"},
		{"oidcc-userinfo-post-header", http.MethodPost, "header"},
		{"oidcc-userinfo-post-body", http.MethodPost, "body"},
	} {
		t.Run(mode.name, func(t *testing.T) {
			e := newOIDCEnv(t)
			tok := e.codeFlow(t, newBrowser(t, e.testEnv))
			status, _, m := e.userinfo(t, mode.method, tok["access_token"].(string), mode.where)
			if status != http.StatusOK || m["sub"] != e.alice.ID {
				t.Fatalf("userinfo %d %v", status, m)
			}
		})
	}

	t.Run("oidcc-ensure-request-without-nonce-succeeds-for-code-flow", func(t *testing.T) {
		e := newOIDCEnv(t)
		tok := e.codeFlow(t, newBrowser(t, e.testEnv), "nonce", "")
		if _, c := e.idToken(t, tok); c["nonce"] != nil {
			t.Fatalf("nonce %v without one in the request", c["nonce"])
		}
	})

	for _, sc := range []struct {
		module, scope string
		want, absent  []string
	}{
		{"oidcc-scope-profile", "openid profile", []string{"name", "preferred_username", "updated_at"}, []string{"email"}},
		{"oidcc-scope-email", "openid email", []string{"email", "email_verified"}, []string{"name"}},
		{"oidcc-scope-all", "openid profile email", []string{"name", "preferred_username", "updated_at", "email", "email_verified"}, nil},
		{"oidcc-ensure-other-scope-order-succeeds", "email openid", []string{"email"}, []string{"name"}},
	} {
		t.Run(sc.module, func(t *testing.T) {
			e := newOIDCEnv(t)
			tok := e.codeFlow(t, newBrowser(t, e.testEnv), "scope", sc.scope)
			e.idToken(t, tok)
			_, _, m := e.userinfo(t, http.MethodGet, tok["access_token"].(string), "header")
			for _, c := range sc.want {
				if _, ok := m[c]; !ok {
					t.Errorf("userinfo lacks %s: %v", c, m)
				}
			}
			for _, c := range sc.absent {
				if _, ok := m[c]; ok {
					t.Errorf("userinfo has %s, not granted: %v", c, m)
				}
			}
			if m["email"] != nil && m["email"] != "alice@example.com" || m["name"] != nil && m["name"] != "Alice" {
				t.Errorf("userinfo values %v", m)
			}
		})
	}

	for _, d := range []string{"page", "popup"} {
		t.Run("oidcc-display-"+d, func(t *testing.T) {
			e := newOIDCEnv(t)
			e.idToken(t, e.codeFlow(t, newBrowser(t, e.testEnv), "display", d))
		})
	}

	t.Run("oidcc-prompt-login", func(t *testing.T) {
		e := newOIDCEnv(t)
		b := newBrowser(t, e.testEnv)
		_, first := e.idToken(t, e.codeFlow(t, b))
		e.advance(2 * time.Second)
		_, challenge := pkcePair("rp")
		p := b.get(authorizeQuery("rp", rpRedirect, "state-123", challenge, "scope", "openid", "prompt", "login"))
		if !strings.Contains(p.body, `name="password"`) {
			t.Fatalf("prompt=login did not ask to sign in again (status %d)", p.status)
		}
		_, second := e.idToken(t, e.codeFlow(t, b, "prompt", "login"))
		if second["auth_time"].(float64) <= first["auth_time"].(float64) {
			t.Fatalf("auth_time %v after prompt=login, first %v", second["auth_time"], first["auth_time"])
		}
	})

	t.Run("oidcc-prompt-none-not-logged-in", func(t *testing.T) {
		e := newOIDCEnv(t)
		p, _ := e.authorize(t, newBrowser(t, e.testEnv), "prompt", "none")
		wantRedirectError(t, e, p, errLoginRequired)
	})

	t.Run("oidcc-prompt-none-logged-in", func(t *testing.T) {
		e := newOIDCEnv(t)
		b := newBrowser(t, e.testEnv)
		e.codeFlow(t, b)
		_, challenge := pkcePair("rp")
		p := b.get(authorizeQuery("rp", rpRedirect, "state-123", challenge, "scope", "openid", "prompt", "none"))
		if q := e.callback(t, p, rpRedirect); q.Get("code") == "" {
			t.Fatalf("prompt=none with a session and consent: %v", q)
		}
	})

	t.Run("oidcc-max-age-1", func(t *testing.T) {
		e := newOIDCEnv(t)
		b := newBrowser(t, e.testEnv)
		_, first := e.idToken(t, e.codeFlow(t, b))
		e.advance(2 * time.Second)
		_, challenge := pkcePair("rp")
		p := b.get(authorizeQuery("rp", rpRedirect, "state-123", challenge, "scope", "openid", "max_age", "1"))
		if !strings.Contains(p.body, `name="password"`) {
			t.Fatal("max_age=1 after 2s did not ask to sign in again")
		}
		_, second := e.idToken(t, e.codeFlow(t, b, "max_age", "1"))
		if second["auth_time"] == nil || second["auth_time"].(float64) <= first["auth_time"].(float64) {
			t.Fatalf("auth_time %v, first %v", second["auth_time"], first["auth_time"])
		}
	})

	t.Run("oidcc-max-age-10000", func(t *testing.T) {
		e := newOIDCEnv(t)
		b := newBrowser(t, e.testEnv)
		_, first := e.idToken(t, e.codeFlow(t, b))
		e.advance(2 * time.Second)
		_, challenge := pkcePair("rp")
		p := b.get(authorizeQuery("rp", rpRedirect, "state-123", challenge, "scope", "openid", "max_age", "10000"))
		if p.location == nil {
			t.Fatal("max_age=10000 asked to sign in again")
		}
		_, second := e.idToken(t, e.codeFlow(t, b, "max_age", "10000"))
		if second["auth_time"] != first["auth_time"] {
			t.Fatalf("auth_time %v, first %v", second["auth_time"], first["auth_time"])
		}
	})

	t.Run("oidcc-id-token-hint", func(t *testing.T) {
		e := newOIDCEnv(t)
		b := newBrowser(t, e.testEnv)
		tok := e.codeFlow(t, b)
		p, _ := e.authorize(t, b, "prompt", "none", "id_token_hint", tok["id_token"].(string))
		if q := e.callback(t, p, rpRedirect); q.Get("code") == "" {
			t.Fatalf("id_token_hint of the signed-in user with prompt=none: %v", q)
		}
		// Another user's hint: prompt=none cannot switch users.
		b2 := newBrowser(t, e.testEnv)
		_, challenge := pkcePair("rp")
		p = b2.get(authorizeQuery("rp", rpRedirect, "state-123", challenge, "scope", "openid"))
		p = b2.signIn(p, "bob@example.com", bobPW)
		b2.decide(p, "allow")
		p = b2.get(authorizeQuery("rp", rpRedirect, "state-123", challenge, "scope", "openid", "prompt", "none", "id_token_hint", tok["id_token"].(string)))
		wantRedirectError(t, e, p, errLoginRequired)
	})

	t.Run("oidcc-login-hint", func(t *testing.T) {
		e := newOIDCEnv(t)
		b := newBrowser(t, e.testEnv)
		_, challenge := pkcePair("rp")
		p := b.get(authorizeQuery("rp", rpRedirect, "state-123", challenge, "scope", "openid", "login_hint", "alice@example.com"))
		if !strings.Contains(p.body, `value="alice@example.com"`) {
			t.Fatalf("login_hint not filled in: %s", p.body)
		}
	})

	for _, m := range []struct{ module, param string }{{"oidcc-ui-locales", "ui_locales"}, {"oidcc-claims-locales", "claims_locales"}} {
		t.Run(m.module, func(t *testing.T) {
			e := newOIDCEnv(t)
			tok := e.codeFlow(t, newBrowser(t, e.testEnv), m.param, "se")
			e.idToken(t, tok)
			if status, _, _ := e.userinfo(t, http.MethodGet, tok["access_token"].(string), "header"); status != http.StatusOK {
				t.Fatalf("userinfo %d", status)
			}
		})
	}

	t.Run("oidcc-ensure-registered-redirect-uri", func(t *testing.T) {
		e := newOIDCEnv(t)
		_, challenge := pkcePair("rp")
		p := newBrowser(t, e.testEnv).get(authorizeQuery("rp", "https://attacker.example/cb", "state-123", challenge, "scope", "openid"))
		wantErrorPage(t, p)
	})

	t.Run("oidcc-codereuse", func(t *testing.T) {
		e := newOIDCEnv(t)
		p, verifier := e.authorize(t, newBrowser(t, e.testEnv))
		code := e.callback(t, p, rpRedirect).Get("code")
		if status, _ := e.exchangeRP(code, verifier); status != http.StatusOK {
			t.Fatal("first exchange failed")
		}
		if status, body := e.exchangeRP(code, verifier); status != http.StatusBadRequest || body["error"] != "invalid_grant" {
			t.Fatalf("second exchange %d %v", status, body)
		}
	})

	t.Run("oidcc-codereuse-30seconds", func(t *testing.T) {
		e := newOIDCEnv(t)
		p, verifier := e.authorize(t, newBrowser(t, e.testEnv))
		code := e.callback(t, p, rpRedirect).Get("code")
		status, tok := e.exchangeRP(code, verifier)
		if status != http.StatusOK {
			t.Fatal("first exchange failed")
		}
		e.advance(30 * time.Second)
		if status, body := e.exchangeRP(code, verifier); status != http.StatusBadRequest || body["error"] != "invalid_grant" {
			t.Fatalf("second exchange %d %v", status, body)
		}
		// The tokens of a reused code are revoked (RFC 6749 §4.1.2).
		if status, h, _ := e.userinfo(t, http.MethodGet, tok["access_token"].(string), "header"); status != http.StatusUnauthorized || !strings.Contains(h.Get("WWW-Authenticate"), "invalid_token") {
			t.Fatalf("userinfo with the revoked token: %d %q", status, h.Get("WWW-Authenticate"))
		}
	})

	t.Run("oidcc-ensure-redirect-uri-in-authorization-request", func(t *testing.T) {
		e := newOIDCEnv(t)
		_, challenge := pkcePair("rp")
		p := newBrowser(t, e.testEnv).get(authorizeQuery("rp", rpRedirect, "state-123", challenge, "scope", "openid", "redirect_uri", ""))
		wantErrorPage(t, p)
	})

	// An unsigned (alg none) request object: rejected as unsupported.
	unsigned := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none"}`)) + "." +
		base64.RawURLEncoding.EncodeToString([]byte(`{"client_id":"rp","response_type":"code","scope":"openid","redirect_uri":"`+rpRedirect+`"}`)) + "."
	t.Run("oidcc-unsigned-request-object-supported-correctly-or-rejected-as-unsupported", func(t *testing.T) {
		e := newOIDCEnv(t)
		p, _ := e.authorize(t, newBrowser(t, e.testEnv), "request", unsigned)
		wantRedirectError(t, e, p, errRequestNotSupported)
	})
	t.Run("oidcc-ensure-request-object-with-redirect-uri", func(t *testing.T) {
		e := newOIDCEnv(t)
		p, _ := e.authorize(t, newBrowser(t, e.testEnv), "request", unsigned)
		wantRedirectError(t, e, p, errRequestNotSupported)
		p, _ = e.authorize(t, newBrowser(t, e.testEnv), "request_uri", "https://rp.example/request.jwt")
		wantRedirectError(t, e, p, errRequestURINotSupported)
	})

	t.Run("oidcc-claims-essential", func(t *testing.T) {
		e := newOIDCEnv(t)
		tok := e.codeFlow(t, newBrowser(t, e.testEnv), "claims", `{"userinfo":{"name":{"essential":true}},"id_token":{"email":null}}`)
		_, c := e.idToken(t, tok)
		if c["email"] != "alice@example.com" {
			t.Errorf("ID token lacks the requested email: %v", c)
		}
		_, _, m := e.userinfo(t, http.MethodGet, tok["access_token"].(string), "header")
		if m["name"] != "Alice" {
			t.Errorf("userinfo lacks the essential name: %v", m)
		}
	})

	t.Run("oidcc-refresh-token", func(t *testing.T) {
		e := newOIDCEnv(t)
		tok := e.codeFlow(t, newBrowser(t, e.testEnv), "scope", "openid offline_access")
		_, first := e.idToken(t, tok)
		rt, _ := tok["refresh_token"].(string)
		if rt == "" {
			t.Fatalf("no refresh token with offline_access: %v", tok)
		}
		e.advance(2 * time.Second)
		resp := e.post("/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}, "rp", rpSecret)
		ref := decode(t, resp)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("refresh %d %v", resp.StatusCode, ref)
		}
		_, second := e.idToken(t, ref)
		for _, k := range []string{"iss", "sub", "aud", "auth_time", "azp", "sid"} {
			if k == "aud" {
				if !slices.Equal(second[k].([]any), first[k].([]any)) {
					t.Errorf("aud changed on refresh")
				}
				continue
			}
			if second[k] != first[k] {
				t.Errorf("%s changed on refresh: %v → %v (Core §12.2)", k, first[k], second[k])
			}
		}
		if second["iat"].(float64) <= first["iat"].(float64) {
			t.Errorf("iat %v not newer than %v", second["iat"], first["iat"])
		}
		if second["at_hash"] != atHash(ref["access_token"].(string)) {
			t.Error("at_hash of the refreshed ID token does not match the new access token")
		}
	})

	t.Run("oidcc-ensure-request-with-valid-pkce-succeeds", func(t *testing.T) {
		e := newOIDCEnv(t)
		e.idToken(t, e.codeFlow(t, newBrowser(t, e.testEnv)))
		// A wrong verifier fails.
		p, _ := e.authorize(t, newBrowser(t, e.testEnv))
		code := e.callback(t, p, rpRedirect).Get("code")
		if status, _ := e.exchangeRP(code, strings.Repeat("x", 64)); status != http.StatusBadRequest {
			t.Fatalf("a wrong code_verifier: %d", status)
		}
	})

	t.Run("oidcc-discovery-endpoint-verification", func(t *testing.T) {
		e := newOIDCEnv(t)
		get := func(path string) map[string]any {
			resp, err := http.Get(e.srv.URL + path)
			if err != nil {
				t.Fatal(err)
			}
			return decode(t, resp)
		}
		oidcDoc, oauthDoc := get("/.well-known/openid-configuration"), get("/.well-known/oauth-authorization-server")
		a, _ := json.Marshal(oidcDoc)
		b, _ := json.Marshal(oauthDoc)
		if string(a) != string(b) {
			t.Fatalf("the two metadata documents differ:\n%s\n%s", a, b)
		}
		if oidcDoc["issuer"] != e.issuer {
			t.Fatalf("issuer %v", oidcDoc["issuer"])
		}
		for _, k := range []string{"authorization_endpoint", "token_endpoint", "jwks_uri", "userinfo_endpoint", "end_session_endpoint",
			"response_types_supported", "subject_types_supported", "id_token_signing_alg_values_supported", "scopes_supported",
			"claims_supported", "prompt_values_supported"} {
			if oidcDoc[k] == nil {
				t.Errorf("%s missing", k)
			}
		}
		for _, sc := range oidcScopes {
			if !slices.Contains(oidcDoc["scopes_supported"].([]any), any(sc)) {
				t.Errorf("scopes_supported lacks %s", sc)
			}
		}
		if !slices.Contains(oidcDoc["id_token_signing_alg_values_supported"].([]any), any("RS256")) {
			t.Error("RS256 not offered for ID tokens")
		}
		if oidcDoc["claims_parameter_supported"] != true || oidcDoc["request_parameter_supported"] != false || oidcDoc["request_uri_parameter_supported"] != false {
			t.Error("request and claims parameter support misstated")
		}
		keys := get("/.well-known/jwks.json")["keys"].([]any)
		var algs []string
		for _, k := range keys {
			algs = append(algs, k.(map[string]any)["alg"].(string))
		}
		if !slices.Contains(algs, "RS256") || !slices.Contains(algs, "ES256") {
			t.Errorf("JWKS algorithms %v, want RS256 (ID tokens) and ES256 (access tokens)", algs)
		}
	})
}

// The hostile cases of the issue.
func TestOIDCHostile(t *testing.T) {
	t.Run("WrongAudienceRefused", func(t *testing.T) {
		e := newOIDCEnv(t)
		tok := e.codeFlow(t, newBrowser(t, e.testEnv))
		if _, err := e.verifier(t, "other-client").Verify(t.Context(), tok["id_token"].(string)); err == nil {
			t.Fatal("go-oidc accepted an ID token for another client")
		}
	})
	t.Run("AlgorithmSwapRefused", func(t *testing.T) {
		e := newOIDCEnv(t)
		tok := e.codeFlow(t, newBrowser(t, e.testEnv))
		parts := strings.Split(tok["id_token"].(string), ".")
		for _, alg := range []string{"none", "HS256"} {
			h := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"` + alg + `","typ":"JWT"}`))
			forged := h + "." + parts[1] + "." + parts[2]
			if _, err := e.verifier(t, "rp").Verify(t.Context(), forged); err == nil {
				t.Fatalf("go-oidc accepted alg %s", alg)
			}
			// Our own id_token_hint check refuses it too.
			p, _ := e.authorize(t, newBrowser(t, e.testEnv), "id_token_hint", forged)
			wantRedirectError(t, e, p, errInvalidRequest)
		}
	})
	t.Run("NonceReplayDetectedByRP", func(t *testing.T) {
		e := newOIDCEnv(t)
		b := newBrowser(t, e.testEnv)
		_, c1 := e.idToken(t, e.codeFlow(t, b, "nonce", "nonce-one"))
		_, c2 := e.idToken(t, e.codeFlow(t, b, "nonce", "nonce-two"))
		// Each ID token carries its own request's nonce, so a relying party
		// comparing it with the nonce it sent refuses a replayed token.
		if c1["nonce"] != "nonce-one" || c2["nonce"] != "nonce-two" {
			t.Fatalf("nonces %v, %v", c1["nonce"], c2["nonce"])
		}
	})
	t.Run("IDTokenHintFromAnotherIssuer", func(t *testing.T) {
		other := newOIDCEnv(t)
		foreign := other.codeFlow(t, newBrowser(t, other.testEnv))["id_token"].(string)
		e := newOIDCEnv(t)
		p, _ := e.authorize(t, newBrowser(t, e.testEnv), "id_token_hint", foreign)
		wantRedirectError(t, e, p, errInvalidRequest)
		// Nor is it accepted at the end-session endpoint.
		p = newBrowser(t, e.testEnv).get("/end_session?" + url.Values{"id_token_hint": {foreign}, "post_logout_redirect_uri": {rpBye}}.Encode())
		wantErrorPage(t, p)
	})
	t.Run("PostLogoutRedirectURINotRegistered", func(t *testing.T) {
		e := newOIDCEnv(t)
		b := newBrowser(t, e.testEnv)
		tok := e.codeFlow(t, b)
		p := b.get("/end_session?" + url.Values{"id_token_hint": {tok["id_token"].(string)}, "post_logout_redirect_uri": {"https://attacker.example/"}}.Encode())
		wantErrorPage(t, p)
		// The user is still signed in.
		if q := e.callback(t, b.get(authorizeQuery("rp", rpRedirect, "state-123", mustChallenge(), "scope", "openid", "prompt", "none")), rpRedirect); q.Get("code") == "" {
			t.Fatalf("session ended by a refused logout: %v", q)
		}
	})
	t.Run("PromptNoneWithoutConsent", func(t *testing.T) {
		e := newOIDCEnv(t)
		b := newBrowser(t, e.testEnv)
		p := b.get(authorizeQuery("rp", rpRedirect, "state-123", mustChallenge(), "scope", "read"))
		p = b.signIn(p, "alice@example.com", alicePW) // consent page shown, not answered
		if !strings.Contains(p.body, `name="decision"`) {
			t.Fatal("no consent page")
		}
		p = b.get(authorizeQuery("rp", rpRedirect, "state-123", mustChallenge(), "scope", "openid", "prompt", "none"))
		wantRedirectError(t, e, p, errConsentRequired)
	})
	t.Run("MaxAgeZeroAlwaysSignsIn", func(t *testing.T) {
		e := newOIDCEnv(t)
		b := newBrowser(t, e.testEnv)
		e.codeFlow(t, b)
		p := b.get(authorizeQuery("rp", rpRedirect, "state-123", mustChallenge(), "scope", "openid", "max_age", "0"))
		if !strings.Contains(p.body, `name="password"`) {
			t.Fatal("max_age=0 did not ask to sign in")
		}
		p = b.get(authorizeQuery("rp", rpRedirect, "state-123", mustChallenge(), "scope", "openid", "max_age", "0", "prompt", "none"))
		wantRedirectError(t, e, p, errLoginRequired)
		// After signing in, the flow completes with auth_time.
		e.idToken(t, e.codeFlow(t, b, "max_age", "0"))
	})
	t.Run("BadParameters", func(t *testing.T) {
		e := newOIDCEnv(t)
		for _, kv := range [][2]string{{"prompt", "none login"}, {"prompt", "bogus"}, {"max_age", "-1"}, {"max_age", "abc"}, {"claims", "{"}, {"id_token_hint", "garbage"}} {
			p, _ := e.authorize(t, newBrowser(t, e.testEnv), kv[0], kv[1])
			wantRedirectError(t, e, p, errInvalidRequest)
		}
	})
	t.Run("UserinfoErrors", func(t *testing.T) {
		e := newOIDCEnv(t)
		status, h, _ := e.userinfo(t, http.MethodGet, "", "header")
		if status != http.StatusUnauthorized || h.Get("WWW-Authenticate") != `Bearer realm="authserver"` {
			t.Fatalf("no token: %d %q", status, h.Get("WWW-Authenticate"))
		}
		status, h, m := e.userinfo(t, http.MethodGet, "not.a.token", "header")
		if status != http.StatusUnauthorized || m["error"] != "invalid_token" || !strings.Contains(h.Get("WWW-Authenticate"), `error="invalid_token"`) {
			t.Fatalf("bad token: %d %v", status, m)
		}
		// An access token without openid: insufficient_scope (RFC 6750 §3.1).
		tok := e.codeFlow(t, newBrowser(t, e.testEnv), "scope", "read")
		if _, ok := tok["id_token"]; ok {
			t.Fatal("an ID token without the openid scope")
		}
		status, h, m = e.userinfo(t, http.MethodGet, tok["access_token"].(string), "header")
		if status != http.StatusForbidden || m["error"] != "insufficient_scope" || !strings.Contains(h.Get("WWW-Authenticate"), `error="insufficient_scope"`) {
			t.Fatalf("no openid: %d %v %q", status, m, h.Get("WWW-Authenticate"))
		}
		// The token in the header and the body at once: invalid_request.
		req, _ := http.NewRequest(http.MethodPost, e.srv.URL+"/userinfo", strings.NewReader("access_token=x"))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Authorization", "Bearer x")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Fatalf("two tokens: %d", resp.StatusCode)
		}
	})
}

// Without a scope parameter the client's registered scopes are granted; with
// openid among them, the grant is an OpenID Connect one (ID token, refresh
// with a new ID token).
func TestOIDCDefaultScopes(t *testing.T) {
	e := newOIDCEnv(t)
	tok := e.codeFlow(t, newBrowser(t, e.testEnv), "scope", "")
	e.idToken(t, tok)
	rt, _ := tok["refresh_token"].(string)
	if rt == "" {
		t.Fatalf("no refresh token with the default scopes (offline_access among them): %v", tok)
	}
	resp := e.post("/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}, "rp", rpSecret)
	ref := decode(t, resp)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("refresh %d %v", resp.StatusCode, ref)
	}
	e.idToken(t, ref)
}

func mustChallenge() string { _, c := pkcePair("rp"); return c }

// RP-initiated logout: with a hint, at once back to the registered URI with
// state; without one, after a confirmation page.
func TestRPInitiatedLogout(t *testing.T) {
	e := newOIDCEnv(t)
	b := newBrowser(t, e.testEnv)
	tok := e.codeFlow(t, b)
	p := b.get("/end_session?" + url.Values{"id_token_hint": {tok["id_token"].(string)}, "post_logout_redirect_uri": {rpBye}, "state": {"bye-1"}}.Encode())
	if p.location == nil || p.location.String() != rpBye+"?state=bye-1" {
		t.Fatalf("end_session: %d %v", p.status, p.location)
	}
	p = b.get(authorizeQuery("rp", rpRedirect, "state-123", mustChallenge(), "scope", "openid", "prompt", "none"))
	wantRedirectError(t, e, p, errLoginRequired)

	// Without a hint: a confirmation page, then the redirect.
	e.codeFlow(t, b)
	p = b.get("/end_session?" + url.Values{"client_id": {"rp"}, "post_logout_redirect_uri": {rpBye}}.Encode())
	if !strings.Contains(p.body, "Sign out") || p.location != nil {
		t.Fatalf("no confirmation page: %d %v", p.status, p.location)
	}
	action, v := p.form(t)
	p = b.post(action, v)
	if p.location == nil || p.location.String() != rpBye {
		t.Fatalf("after confirmation: %d %v", p.status, p.location)
	}
	// A forged confirmation signs nobody out; a POST without a hint asks.
	e.codeFlow(t, b)
	p = b.post("/end_session", url.Values{"client_id": {"rp"}, "csrf_token": {"forged"}})
	if p.status != http.StatusForbidden {
		t.Fatalf("POST with a forged CSRF token: %d", p.status)
	}
	p = b.post("/end_session", url.Values{"client_id": {"rp"}, "post_logout_redirect_uri": {rpBye}})
	if p.location != nil || !strings.Contains(p.body, "Sign out") {
		t.Fatalf("POST without a hint: %d %v", p.status, p.location)
	}
	if q := e.callback(t, b.get(authorizeQuery("rp", rpRedirect, "state-123", mustChallenge(), "scope", "openid", "prompt", "none")), rpRedirect); q.Get("code") == "" {
		t.Fatalf("signed out without confirmation: %v", q)
	}
}

// Back-channel logout: a receiver gets a valid logout token within a second
// of sign-out; a receiver that hangs does not delay sign-out.
func TestBackchannelLogout(t *testing.T) {
	got := make(chan string, 4)
	recv := newHTTPTestServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := r.ParseForm(); err == nil {
			got <- r.PostForm.Get("logout_token")
		}
	}))
	release := make(chan struct{})
	hang := newHTTPTestServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-time.After(10 * time.Second):
		}
	}))
	e := newOIDCEnvConfig(t, allowPrivateClientURLs, func(c *storage.Client) { c.BackchannelLogoutURI = recv + "/backchannel" })
	slow := storage.Client{ID: "slow", SecretHashes: []string{password.HashSecret(rpSecret)}, GrantTypes: []string{"authorization_code"},
		Scopes: []string{"openid"}, RedirectURIs: []string{"https://slow.example/cb"}, BackchannelLogoutURI: hang + "/hang",
		SkipConsent: true, CreatedAt: time.Now(), UpdatedAt: time.Now()}
	if err := e.store.CreateClient(t.Context(), slow); err != nil {
		t.Fatal(err)
	}
	// Cleanups run last-first: release the hanging receiver, then wait for
	// the deliveries, then close the servers.
	t.Cleanup(e.as.WaitBackchannel)
	t.Cleanup(func() { close(release) })
	b := newBrowser(t, e.testEnv)
	tok := e.codeFlow(t, b)
	_, claims := e.idToken(t, tok)
	// The slow client got a code in the same session.
	p := b.get(authorizeQuery("slow", "https://slow.example/cb", "state-123", mustChallenge(), "scope", "openid"))
	if p.location == nil || p.location.Query().Get("code") == "" {
		t.Fatalf("slow client flow: %d %v", p.status, p.location)
	}

	start := time.Now()
	p = b.get("/end_session?" + url.Values{"id_token_hint": {tok["id_token"].(string)}, "post_logout_redirect_uri": {rpBye}}.Encode())
	if took := time.Since(start); took > 500*time.Millisecond || p.location == nil {
		t.Fatalf("sign-out took %v (status %d): a hanging client delayed it", took, p.status)
	}
	var lt string
	select {
	case lt = <-got:
	case <-time.After(time.Second):
		t.Fatal("no logout token within a second of sign-out")
	}
	e.checkLogoutToken(t, lt, claims["sid"], "rp")
}

// checkLogoutToken verifies a logout token as a relying party would
// (Back-Channel Logout §2.6): alice's, for the client aud, naming sid.
func (e *oidcEnv) checkLogoutToken(t *testing.T, lt string, sid any, aud string) {
	t.Helper()
	jws, err := e.verifierKeySet(t).VerifySignature(context.Background(), lt)
	if err != nil {
		t.Fatalf("logout token signature: %v", err)
	}
	var c map[string]any
	if err := json.Unmarshal(jws, &c); err != nil {
		t.Fatal(err)
	}
	hdr, _ := base64.RawURLEncoding.DecodeString(strings.Split(lt, ".")[0])
	if !strings.Contains(string(hdr), `"typ":"logout+jwt"`) {
		t.Errorf("logout token header %s", hdr)
	}
	ev, _ := c["events"].(map[string]any)
	if _, ok := ev[backchannelEvent]; !ok || sid == nil || c["sid"] != sid || c["sub"] != e.alice.ID || c["iss"] != e.issuer || c["nonce"] != nil || c["jti"] == nil {
		t.Fatalf("logout token claims %v (want sid %v)", c, sid)
	}
	if a, _ := c["aud"].([]any); len(a) != 1 || a[0] != aud {
		t.Fatalf("logout token aud %v", c["aud"])
	}
}

func (e *oidcEnv) verifierKeySet(t *testing.T) *oidc.RemoteKeySet {
	return oidc.NewRemoteKeySet(t.Context(), e.issuer+"/.well-known/jwks.json")
}

// A pairwise client sees one pseudonym per user and sector, the same in its
// access tokens, ID tokens, userinfo and logout tokens (Core §8.1); another
// sector sees another one; id_token_hint and end_session accept it.
func TestPairwiseSubjects(t *testing.T) {
	got := make(chan string, 4)
	recv := newHTTPTestServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := r.ParseForm(); err == nil {
			got <- r.PostForm.Get("logout_token")
		}
	}))
	e := newOIDCEnvConfig(t, allowPrivateClientURLs, func(c *storage.Client) { c.SubjectType = SubjectPairwise; c.BackchannelLogoutURI = recv + "/bc" })
	other := storage.Client{ID: "rp2", SecretHashes: []string{password.HashSecret(rpSecret)}, GrantTypes: []string{"authorization_code"},
		Scopes: []string{"openid"}, RedirectURIs: []string{"https://rp2.example/cb"}, SubjectType: SubjectPairwise, SkipConsent: true,
		CreatedAt: time.Now(), UpdatedAt: time.Now()}
	if err := e.store.CreateClient(t.Context(), other); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.as.WaitBackchannel)
	b := newBrowser(t, e.testEnv)
	tok := e.codeFlow(t, b, "scope", "openid email")
	idt, _ := e.idToken(t, tok)
	if idt.Subject == e.alice.ID || !strings.HasPrefix(idt.Subject, "pw-") {
		t.Fatalf("pairwise client got sub %q", idt.Subject)
	}
	if sub := e.introspect(tok["access_token"].(string))["sub"]; sub != idt.Subject {
		t.Fatalf("access token sub %v, ID token sub %s", sub, idt.Subject)
	}
	status, _, info := e.userinfo(t, http.MethodGet, tok["access_token"].(string), "header")
	if status != http.StatusOK || info["sub"] != idt.Subject || info["email"] != "alice@example.com" {
		t.Fatalf("userinfo %d %v", status, info)
	}
	// Stable across grants.
	if again, _ := e.idToken(t, e.codeFlow(t, b)); again.Subject != idt.Subject {
		t.Fatalf("pairwise sub changed: %s, %s", idt.Subject, again.Subject)
	}
	// Another sector: another pseudonym.
	p := b.get(authorizeQuery("rp2", "https://rp2.example/cb", "state-123", mustChallenge(), "scope", "openid"))
	code := e.callback(t, p, "https://rp2.example/cb").Get("code")
	v := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "code_verifier": {strings.Repeat("rp", 64)[:64]}, "redirect_uri": {"https://rp2.example/cb"}}
	resp := e.post("/token", v, "rp2", rpSecret)
	tok2 := decode(t, resp)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("rp2 exchange %d %v", resp.StatusCode, tok2)
	}
	p2, err := oidc.NewProvider(t.Context(), e.issuer)
	if err != nil {
		t.Fatal(err)
	}
	idt2, err := p2.Verifier(&oidc.Config{ClientID: "rp2"}).Verify(t.Context(), tok2["id_token"].(string))
	if err != nil || idt2.Subject == idt.Subject || idt2.Subject == e.alice.ID {
		t.Fatalf("rp2 sub %v (rp's %s): %v", idt2, idt.Subject, err)
	}
	// The hint (a pseudonym) names the signed-in user.
	p, _ = e.authorize(t, b, "prompt", "none", "id_token_hint", tok["id_token"].(string))
	if q := e.callback(t, p, rpRedirect); q.Get("code") == "" {
		t.Fatalf("pairwise id_token_hint with prompt=none: %v", q)
	}
	p = b.get("/end_session?" + url.Values{"id_token_hint": {tok["id_token"].(string)}, "post_logout_redirect_uri": {rpBye}}.Encode())
	if p.location == nil {
		t.Fatalf("end_session with a pairwise hint asked for confirmation (status %d)", p.status)
	}
	select {
	case lt := <-got:
		payload, _ := base64.RawURLEncoding.DecodeString(strings.Split(lt, ".")[1])
		var c map[string]any
		if err := json.Unmarshal(payload, &c); err != nil || c["sub"] != idt.Subject {
			t.Fatalf("logout token sub %v, want %s", c["sub"], idt.Subject)
		}
	case <-time.After(time.Second):
		t.Fatal("no logout token")
	}
}

// A claim requested through the claims parameter is a request for the scope
// it belongs to (Core §3.1.2.4: the OP "MUST obtain an authorization
// decision before releasing information"): dropped when the client is not
// registered for that scope; otherwise listed on the consent page and
// covered by the remembered consent exactly like a requested scope. What
// the ID token and UserInfo release is what was decided at authorization.
func TestOIDCClaimsParameterNeedsScopeAndConsent(t *testing.T) {
	const claims = `{"userinfo":{"email":null,"name":null},"id_token":{"email":{"essential":true}}}`
	// released returns the ID token's email and UserInfo's email and name.
	released := func(t *testing.T, e *oidcEnv, tok map[string]any) (idEmail, email, name any) {
		t.Helper()
		_, c := e.idToken(t, tok)
		status, _, m := e.userinfo(t, http.MethodGet, tok["access_token"].(string), "header")
		if status != http.StatusOK {
			t.Fatalf("userinfo %d %v", status, m)
		}
		return c["email"], m["email"], m["name"]
	}
	exchange := func(t *testing.T, e *oidcEnv, p *page, verifier string) map[string]any {
		t.Helper()
		q := e.callback(t, p, rpRedirect)
		status, tok := e.exchangeRP(q.Get("code"), verifier)
		if status != http.StatusOK {
			t.Fatalf("exchange %v: %d %v", q, status, tok)
		}
		return tok
	}
	listed := func(p *page, scope string) bool {
		return strings.Contains(p.body, `<span class="scope-name">`+scope+`</span>`)
	}

	t.Run("ClientNotRegisteredForTheScope", func(t *testing.T) {
		e := newOIDCEnv(t, func(c *storage.Client) { c.Scopes = []string{"openid"} })
		b := newBrowser(t, e.testEnv)
		verifier, challenge := pkcePair("rp")
		p := b.get(authorizeQuery("rp", rpRedirect, "state-123", challenge, "scope", "openid", "claims", claims))
		p = b.signIn(p, "alice@example.com", alicePW)
		if !strings.Contains(p.body, `name="decision"`) || !listed(p, "openid") || listed(p, "email") || listed(p, "profile") {
			t.Fatalf("consent page (status %d) does not list exactly openid:\n%s", p.status, p.body)
		}
		p = b.decide(p, "allow")
		if id, em, n := released(t, e, exchange(t, e, p, verifier)); id != nil || em != nil || n != nil {
			t.Fatalf("client registered for openid only got ID token email=%v, userinfo email=%v name=%v", id, em, n)
		}
		// The consent is remembered: no page, and still nothing released.
		p = b.get(authorizeQuery("rp", rpRedirect, "state-123", challenge, "scope", "openid", "claims", claims))
		if id, em, n := released(t, e, exchange(t, e, p, verifier)); id != nil || em != nil || n != nil {
			t.Fatalf("with a remembered consent: ID token email=%v, userinfo email=%v name=%v", id, em, n)
		}
	})

	t.Run("RegisteredScopeNeedsConsent", func(t *testing.T) {
		e := newOIDCEnv(t) // rp is registered for profile and email
		b := newBrowser(t, e.testEnv)
		e.codeFlow(t, b) // consent to scope=openid only is remembered
		// Without a page, the claims' scopes cannot be consented.
		p := b.get(authorizeQuery("rp", rpRedirect, "state-123", mustChallenge(), "scope", "openid", "prompt", "none", "claims", claims))
		wantRedirectError(t, e, p, errConsentRequired)
		verifier, challenge := pkcePair("rp")
		p = b.get(authorizeQuery("rp", rpRedirect, "state-123", challenge, "scope", "openid", "claims", claims))
		if !strings.Contains(p.body, `name="decision"`) || !listed(p, "email") || !listed(p, "profile") {
			t.Fatalf("consent page (status %d) does not list the claims' scopes:\n%s", p.status, p.body)
		}
		p = b.decide(p, "allow")
		if id, em, n := released(t, e, exchange(t, e, p, verifier)); id != "alice@example.com" || em != "alice@example.com" || n != "Alice" {
			t.Fatalf("after consent: ID token email=%v, userinfo email=%v name=%v", id, em, n)
		}
		// Remembered now: prompt=none succeeds and releases them.
		p = b.get(authorizeQuery("rp", rpRedirect, "state-123", challenge, "scope", "openid", "prompt", "none", "claims", claims))
		if id, em, n := released(t, e, exchange(t, e, p, verifier)); id != "alice@example.com" || em != "alice@example.com" || n != "Alice" {
			t.Fatalf("with the remembered consent: ID token email=%v, userinfo email=%v name=%v", id, em, n)
		}
		// A grant keeps what was decided for it: revoking the consent
		// afterwards changes nothing for a grant made before.
		p = b.get(authorizeQuery("rp", rpRedirect, "state-123", challenge, "scope", "openid", "claims", `{"userinfo":{"name":null}}`))
		tok := exchange(t, e, p, verifier)
		if _, err := RevokeConsents(t.Context(), e.store, e.alice.ID, "rp"); err != nil {
			t.Fatal(err)
		}
		if _, em, n := released(t, e, tok); em != nil || n != "Alice" {
			t.Fatalf("grant for the name only: userinfo email=%v name=%v", em, n)
		}
	})

	t.Run("FirstPartyClient", func(t *testing.T) {
		e := newOIDCEnv(t, func(c *storage.Client) { c.SkipConsent = true })
		b := newBrowser(t, e.testEnv)
		verifier, challenge := pkcePair("rp")
		p := b.get(authorizeQuery("rp", rpRedirect, "state-123", challenge, "scope", "openid", "claims", claims))
		p = b.signIn(p, "alice@example.com", alicePW)
		if id, em, n := released(t, e, exchange(t, e, p, verifier)); id != "alice@example.com" || em != "alice@example.com" || n != "Alice" {
			t.Fatalf("first-party client: ID token email=%v, userinfo email=%v name=%v", id, em, n)
		}
	})
}

// Core §5.5.1: a sub value in the claims parameter's id_token member is
// treated like an id_token_hint: no code for another user. With prompt=none
// the answer is login_required; otherwise the user is asked to sign in, and
// a sign-in as another user still ends in login_required. The subject is
// the one the client sees (a pseudonym for a pairwise client).
func TestOIDCClaimsSubValueNamesTheUser(t *testing.T) {
	subClaims := func(sub string) string { return `{"id_token":{"sub":{"value":"` + sub + `"}}}` }
	t.Run("Public", func(t *testing.T) {
		e := newOIDCEnv(t)
		b := newBrowser(t, e.testEnv)
		e.codeFlow(t, b) // alice is signed in and has consented
		p := b.get(authorizeQuery("rp", rpRedirect, "state-123", mustChallenge(), "scope", "openid", "prompt", "none", "claims", subClaims(e.bob.ID)))
		wantRedirectError(t, e, p, errLoginRequired)
		// Without prompt=none: sign in; alice again is still not bob.
		p = b.get(authorizeQuery("rp", rpRedirect, "state-123", mustChallenge(), "scope", "openid", "claims", subClaims(e.bob.ID)))
		if !strings.Contains(p.body, `name="password"`) {
			t.Fatalf("a sub value for another user did not ask to sign in (status %d)", p.status)
		}
		p = b.signIn(p, "alice@example.com", alicePW)
		wantRedirectError(t, e, p, errLoginRequired)
		// Bob signing in gets the code, for bob.
		verifier, challenge := pkcePair("rp")
		p = b.get(authorizeQuery("rp", rpRedirect, "state-123", challenge, "scope", "openid", "claims", subClaims(e.bob.ID)))
		tok := e.signInAndExchange(t, b, p, "bob@example.com", bobPW, verifier)
		if _, c := e.idToken(t, tok); c["sub"] != e.bob.ID {
			t.Fatalf("sub %v, want %s", c["sub"], e.bob.ID)
		}
		// The signed-in user's own sub: no sign-in, a code.
		p = b.get(authorizeQuery("rp", rpRedirect, "state-123", mustChallenge(), "scope", "openid", "prompt", "none", "claims", subClaims(e.bob.ID)))
		if q := e.callback(t, p, rpRedirect); q.Get("code") == "" {
			t.Fatalf("sub value of the signed-in user: %v", q)
		}
	})
	t.Run("Pairwise", func(t *testing.T) {
		e := newOIDCEnv(t, func(c *storage.Client) { c.SubjectType = SubjectPairwise })
		b := newBrowser(t, e.testEnv)
		idt, _ := e.idToken(t, e.codeFlow(t, b))
		// The user ID is not the subject this client knows.
		p := b.get(authorizeQuery("rp", rpRedirect, "state-123", mustChallenge(), "scope", "openid", "prompt", "none", "claims", subClaims(e.alice.ID)))
		wantRedirectError(t, e, p, errLoginRequired)
		p = b.get(authorizeQuery("rp", rpRedirect, "state-123", mustChallenge(), "scope", "openid", "prompt", "none", "claims", subClaims(idt.Subject)))
		if q := e.callback(t, p, rpRedirect); q.Get("code") == "" {
			t.Fatalf("pairwise sub value of the signed-in user: %v", q)
		}
	})
	t.Run("NotAString", func(t *testing.T) {
		e := newOIDCEnv(t)
		p, _ := e.authorize(t, newBrowser(t, e.testEnv), "claims", `{"id_token":{"sub":{"value":42}}}`)
		wantRedirectError(t, e, p, errInvalidRequest)
	})
}

// Core §5.5.1.1: acr requested as an Essential Claim with values this
// server cannot assert (it asserts no acr) is a failed authentication:
// access_denied, or login_required with prompt=none, with state and iss.
// A voluntary acr, or an essential one without values, is no requirement.
func TestOIDCEssentialACRRefused(t *testing.T) {
	e := newOIDCEnv(t)
	for _, claims := range []string{
		`{"id_token":{"acr":{"essential":true,"values":["urn:example:loa:hardware-key"]}}}`,
		`{"id_token":{"acr":{"essential":true,"value":"urn:example:loa:hardware-key"}}}`,
	} {
		// Refused before any page: no sign-in could meet it.
		p := newBrowser(t, e.testEnv).get(authorizeQuery("rp", rpRedirect, "state-123", mustChallenge(), "scope", "openid", "claims", claims))
		wantRedirectError(t, e, p, errAccessDenied)
		b := newBrowser(t, e.testEnv)
		e.codeFlow(t, b)
		p = b.get(authorizeQuery("rp", rpRedirect, "state-123", mustChallenge(), "scope", "openid", "prompt", "none", "claims", claims))
		wantRedirectError(t, e, p, errLoginRequired)
	}
	for _, claims := range []string{
		`{"id_token":{"acr":{"values":["urn:example:loa:hardware-key"]}}}`,
		`{"id_token":{"acr":{"essential":true}}}`,
		`{"id_token":{"acr":null}}`,
	} {
		if _, c := e.idToken(t, e.codeFlow(t, newBrowser(t, e.testEnv), "claims", claims)); c["acr"] != nil {
			t.Fatalf("%s: acr %v", claims, c["acr"])
		}
	}
}

// Core §3.1.2.1: the user an id_token_hint names must be the one who signs
// in for the request; another user signing in gets login_required (with
// state and iss), not a code.
func TestOIDCIDTokenHintCheckedAfterSignIn(t *testing.T) {
	e := newOIDCEnv(t)
	hint := e.codeFlow(t, newBrowser(t, e.testEnv))["id_token"].(string) // alice's
	signInAs := func(b *browser, email, pw string) *page {
		t.Helper()
		p := b.get(authorizeQuery("rp", rpRedirect, "state-123", mustChallenge(), "scope", "openid", "id_token_hint", hint))
		if !strings.Contains(p.body, `name="password"`) {
			t.Fatalf("no sign-in page (status %d)", p.status)
		}
		p = b.signIn(p, email, pw)
		if strings.Contains(p.body, `name="decision"`) {
			p = b.decide(p, "allow")
		}
		return p
	}
	// Nobody signed in: bob signs in.
	wantRedirectError(t, e, signInAs(newBrowser(t, e.testEnv), "bob@example.com", bobPW), errLoginRequired)
	// Bob signed in (so the hint sends him to sign in) signs in again.
	b := newBrowser(t, e.testEnv)
	b.signIn(b.get("/login"), "bob@example.com", bobPW)
	wantRedirectError(t, e, signInAs(b, "bob@example.com", bobPW), errLoginRequired)
	// Alice signing in gets her code.
	if q := e.callback(t, signInAs(b, "alice@example.com", alicePW), rpRedirect); q.Get("code") == "" {
		t.Fatalf("the hinted user signed in: %v", q)
	}
}
