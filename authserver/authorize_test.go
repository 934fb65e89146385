package authserver

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"html"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/oauthkit/authserver/authserver/ui"
	"github.com/oauthkit/authserver/internal/password"
	"github.com/oauthkit/authserver/storage"
)

// Code-flow clients of the tests.
const (
	webRedirect   = "https://web.example/cb"
	loopRedirect  = "http://127.0.0.1/cb"
	firstSecret   = "first-secret-0123456789-0123456789-abcdef"
	confSecret    = "conf-secret-0123456789-0123456789-abcdefg"
	confRedirect  = "https://conf.example/cb"
	apiResource   = "https://api.example/"
	otherResource = "https://other.example/"
)

func seedCodeClients(t testing.TB, env *testEnv) {
	t.Helper()
	now := time.Now().UTC()
	for _, c := range []storage.Client{
		{ID: "web", Name: "Web App", Public: true, GrantTypes: []string{"authorization_code", "refresh_token"},
			Scopes: []string{"read", "write"}, RedirectURIs: []string{webRedirect, loopRedirect, "com.example.app:/cb", "https://web.example/cb?x=1"},
			Resources: []string{apiResource}},
		{ID: "first", Name: "First Party", SecretHashes: []string{password.HashSecret(firstSecret)},
			GrantTypes: []string{"authorization_code"}, Scopes: []string{"read"}, RedirectURIs: []string{"https://first.example/cb"}, SkipConsent: true},
		{ID: "conf", Name: "Confidential App", SecretHashes: []string{password.HashSecret(confSecret)},
			GrantTypes: []string{"authorization_code", "refresh_token"}, Scopes: []string{"read", "write"}, RedirectURIs: []string{confRedirect}},
		{ID: "parapp", Public: true, GrantTypes: []string{"authorization_code"}, Scopes: []string{"read"},
			RedirectURIs: []string{"https://par.example/cb"}, RequirePAR: true},
	} {
		c.CreatedAt, c.UpdatedAt = now, now
		if err := env.store.CreateClient(context.Background(), c); err != nil {
			t.Fatal(err)
		}
	}
}

func newCodeEnv(t *testing.T, mods ...func(*Config)) *testEnv {
	env := newTestEnv(t, openMemory(t), mods...)
	seedCodeClients(t, env)
	return env
}

// browser is a user agent without JavaScript: a cookie jar, redirects
// followed on the server only, forms read from the HTML.
type browser struct {
	t    testing.TB
	env  *testEnv
	c    *http.Client
	host string
}

func newBrowser(t testing.TB, env *testEnv) *browser {
	jar, _ := cookiejar.New(nil)
	u, _ := url.Parse(env.srv.URL)
	b := &browser{t: t, env: env, host: u.Host}
	b.c = &http.Client{Jar: jar, CheckRedirect: func(req *http.Request, via []*http.Request) error {
		if req.URL.Host != b.host || len(via) > 10 {
			return http.ErrUseLastResponse
		}
		return nil
	}}
	return b
}

// page is a response with its body read.
type page struct {
	status int
	header http.Header
	body   string
	// location is set when the response redirects away from the server.
	location *url.URL
	url      *url.URL
}

func (b *browser) do(req *http.Request) *page {
	b.t.Helper()
	resp, err := b.c.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	p := &page{status: resp.StatusCode, header: resp.Header, body: string(body), url: resp.Request.URL}
	if loc := resp.Header.Get("Location"); loc != "" && resp.StatusCode/100 == 3 {
		p.location, _ = url.Parse(loc)
	}
	return p
}

func (b *browser) get(path string) *page {
	b.t.Helper()
	req, err := http.NewRequest(http.MethodGet, b.env.srv.URL+path, nil)
	if err != nil {
		b.t.Fatal(err)
	}
	return b.do(req)
}

func (b *browser) post(path string, form url.Values) *page {
	b.t.Helper()
	req, err := http.NewRequest(http.MethodPost, b.env.srv.URL+path, strings.NewReader(form.Encode()))
	if err != nil {
		b.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return b.do(req)
}

var (
	formRE   = regexp.MustCompile(`<form method="post" action="([^"]*)"`)
	hiddenRE = regexp.MustCompile(`<input type="hidden" name="([^"]*)" value="([^"]*)">`)
)

// form returns the action and the hidden fields of the page's form.
func (p *page) form(t testing.TB) (string, url.Values) {
	t.Helper()
	m := formRE.FindStringSubmatch(p.body)
	if m == nil {
		t.Fatalf("no form on the page (status %d): %s", p.status, p.body)
	}
	v := url.Values{}
	for _, h := range hiddenRE.FindAllStringSubmatch(p.body, -1) {
		v.Set(html.UnescapeString(h[1]), html.UnescapeString(h[2]))
	}
	return html.UnescapeString(m[1]), v
}

func (b *browser) signIn(p *page, user, pw string) *page {
	b.t.Helper()
	action, v := p.form(b.t)
	v.Set("username", user)
	v.Set("password", pw)
	return b.post(action, v)
}

func (b *browser) decide(p *page, decision string) *page {
	b.t.Helper()
	action, v := p.form(b.t)
	v.Set("decision", decision)
	return b.post(action, v)
}

// pkcePair returns a verifier and its S256 challenge.
func pkcePair(seed string) (verifier, challenge string) {
	verifier = strings.Repeat(seed, 64)[:64]
	h := sha256.Sum256([]byte(verifier))
	return verifier, base64.RawURLEncoding.EncodeToString(h[:])
}

func authorizeQuery(client, redirect, state, challenge string, extra ...string) string {
	v := url.Values{"response_type": {"code"}, "client_id": {client}, "redirect_uri": {redirect},
		"state": {state}, "code_challenge": {challenge}, "code_challenge_method": {"S256"}}
	for i := 0; i+1 < len(extra); i += 2 {
		if extra[i+1] == "" {
			v.Del(extra[i])
			continue
		}
		v.Set(extra[i], extra[i+1])
	}
	return "/authorize?" + v.Encode()
}

// callback checks an authorization response and returns its parameters.
func (env *testEnv) callback(t testing.TB, p *page, redirect string) url.Values {
	t.Helper()
	if p.location == nil {
		t.Fatalf("no redirect to the client (status %d): %s", p.status, p.body)
	}
	q := p.location.Query()
	base := *p.location
	base.RawQuery = ""
	if !strings.HasPrefix(p.location.String(), redirect) {
		t.Fatalf("redirected to %s, want %s", p.location, redirect)
	}
	if q.Get("iss") != env.issuer {
		t.Fatalf("iss = %q, want %q (RFC 9207)", q.Get("iss"), env.issuer)
	}
	return q
}

// codeFor runs the whole flow for alice and returns a code and its verifier.
func (env *testEnv) codeFor(t testing.TB, b *browser, client, redirect string, extra ...string) (code, verifier string) {
	t.Helper()
	verifier, challenge := pkcePair("v" + client)
	p := b.get(authorizeQuery(client, redirect, "state-123", challenge, extra...))
	if strings.Contains(p.body, `name="password"`) {
		p = b.signIn(p, "alice@example.com", alicePW)
	}
	if strings.Contains(p.body, `name="decision"`) {
		p = b.decide(p, "allow")
	}
	q := env.callback(t, p, redirect)
	if q.Get("code") == "" || q.Get("state") != "state-123" {
		t.Fatalf("authorization response %v", q)
	}
	return q.Get("code"), verifier
}

func (env *testEnv) exchange(code, verifier, client, redirect string, extra ...string) (int, map[string]any) {
	env.t.Helper()
	v := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "code_verifier": {verifier},
		"client_id": {client}, "redirect_uri": {redirect}}
	for i := 0; i+1 < len(extra); i += 2 {
		v.Set(extra[i], extra[i+1])
	}
	user, pass := "", ""
	switch client {
	case "first":
		user, pass = "first", firstSecret
		v.Del("client_id")
	case "conf":
		user, pass = "conf", confSecret
		v.Del("client_id")
	}
	resp := env.post("/token", v, user, pass)
	return resp.StatusCode, decode(env.t, resp)
}

// The whole flow with golang.org/x/oauth2 as the client: sign-in, consent,
// the code with state and iss, the exchange with the PKCE verifier, the
// token at introspection and a refresh; a second authorization needs
// neither sign-in nor consent.
func TestCodeFlowWithOAuth2Client(t *testing.T) {
	env := newCodeEnv(t)
	b := newBrowser(t, env)
	cfg := &oauth2.Config{ClientID: "web", RedirectURL: loopRedirect, Scopes: []string{"read"},
		Endpoint: oauth2.Endpoint{AuthURL: env.srv.URL + "/authorize", TokenURL: env.srv.URL + "/token", AuthStyle: oauth2.AuthStyleInParams}}
	verifier := oauth2.GenerateVerifier()
	authURL := cfg.AuthCodeURL("st-1", oauth2.S256ChallengeOption(verifier))
	u, _ := url.Parse(authURL)
	p := b.get(u.RequestURI())
	if p.status != 200 || !strings.Contains(p.body, `name="username"`) || !strings.Contains(p.body, `autocomplete="current-password"`) {
		t.Fatalf("sign-in page: %d %s", p.status, p.body)
	}
	csp := p.header.Get("Content-Security-Policy")
	if !strings.Contains(csp, "frame-ancestors 'none'") || strings.Contains(csp, "script-src") || !strings.Contains(csp, "default-src 'none'") {
		t.Fatalf("CSP %q", csp)
	}
	p = b.signIn(p, "alice@example.com", alicePW)
	if p.status != 200 || !strings.Contains(p.body, "Web App") || !strings.Contains(p.body, `value="allow"`) || !strings.Contains(p.body, ">read<") {
		t.Fatalf("consent page: %d %s", p.status, p.body)
	}
	p = b.decide(p, "allow")
	q := env.callback(t, p, loopRedirect)
	if q.Get("state") != "st-1" {
		t.Fatalf("state = %q", q.Get("state"))
	}
	ctx := context.WithValue(t.Context(), oauth2.HTTPClient, http.DefaultClient)
	tok, err := cfg.Exchange(ctx, q.Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatal(err)
	}
	m := env.introspect(tok.AccessToken)
	if m["active"] != true || m["sub"] != env.alice.ID || m["client_id"] != "web" || m["scope"] != "read" || m["username"] != "alice@example.com" {
		t.Fatalf("introspection %v", m)
	}
	if tok.RefreshToken == "" {
		t.Fatal("no refresh token for a client with the refresh_token grant")
	}
	tok.Expiry = time.Now().Add(-time.Minute) // force a refresh
	tok2, err := cfg.TokenSource(ctx, tok).Token()
	if err != nil || tok2.AccessToken == tok.AccessToken {
		t.Fatalf("refresh: %v", err)
	}
	// Signed in: no sign-in page. web is a public client, so the user is
	// asked again even though consent was given (RFC 8252 §8.6: anyone can
	// listen on a loopback port).
	verifier2 := oauth2.GenerateVerifier()
	u, _ = url.Parse(cfg.AuthCodeURL("st-2", oauth2.S256ChallengeOption(verifier2)))
	p = b.get(u.RequestURI())
	if strings.Contains(p.body, `name="password"`) || !strings.Contains(p.body, `value="allow"`) {
		t.Fatalf("public client, second authorization: %d %s", p.status, p.body)
	}
	q = env.callback(t, b.decide(p, "allow"), loopRedirect)
	if _, err := cfg.Exchange(ctx, q.Get("code"), oauth2.VerifierOption(verifier2)); err != nil {
		t.Fatal(err)
	}
}

// A confidential client's remembered consent: straight back with a code;
// more scopes than consented ask again.
func TestConsentRememberedForConfidentialClient(t *testing.T) {
	env := newCodeEnv(t)
	b := newBrowser(t, env)
	code, verifier := env.codeFor(t, b, "conf", confRedirect, "scope", "read")
	if status, m := env.exchange(code, verifier, "conf", confRedirect); status != 200 {
		t.Fatalf("exchange: %d %v", status, m)
	}
	_, ch := pkcePair("again")
	p := b.get(authorizeQuery("conf", confRedirect, "s2", ch, "scope", "read"))
	if q := env.callback(t, p, confRedirect); q.Get("code") == "" || q.Get("state") != "s2" {
		t.Fatalf("remembered consent: %v", q)
	}
	if p = b.get(authorizeQuery("conf", confRedirect, "s3", ch, "scope", "read write")); !strings.Contains(p.body, `value="allow"`) || !strings.Contains(p.body, ">write<") {
		t.Fatalf("consent for a wider scope: %d %s", p.status, p.body)
	}
}

func TestCodeFlowLoopbackPortAndPrivateScheme(t *testing.T) {
	env := newCodeEnv(t)
	b := newBrowser(t, env)
	for _, redirect := range []string{"http://127.0.0.1:49152/cb", "com.example.app:/cb", "https://web.example/cb?x=1"} {
		code, verifier := env.codeFor(t, b, "web", redirect)
		if status, m := env.exchange(code, verifier, "web", redirect); status != 200 {
			t.Fatalf("%s: %d %v", redirect, status, m)
		}
	}
}

func TestFirstPartyClientSkipsConsent(t *testing.T) {
	env := newCodeEnv(t)
	b := newBrowser(t, env)
	_, challenge := pkcePair("f")
	p := b.signIn(b.get(authorizeQuery("first", "https://first.example/cb", "s1", challenge)), "alice@example.com", alicePW)
	q := env.callback(t, p, "https://first.example/cb")
	if q.Get("code") == "" {
		t.Fatalf("no code: %v", q)
	}
}

func TestConsentDenied(t *testing.T) {
	env := newCodeEnv(t)
	b := newBrowser(t, env)
	_, challenge := pkcePair("d")
	p := b.signIn(b.get(authorizeQuery("web", webRedirect, "st-deny", challenge)), "alice@example.com", alicePW)
	p = b.decide(p, "deny")
	q := env.callback(t, p, webRedirect)
	if q.Get("error") != "access_denied" || q.Get("state") != "st-deny" || q.Get("code") != "" {
		t.Fatalf("deny: %v", q)
	}
}

func TestWrongPasswordShownOnPage(t *testing.T) {
	env := newCodeEnv(t)
	b := newBrowser(t, env)
	_, challenge := pkcePair("w")
	p := b.signIn(b.get(authorizeQuery("web", webRedirect, "s", challenge)), "alice@example.com", "wrong")
	if p.status != http.StatusUnauthorized || !strings.Contains(p.body, `role="alert"`) || !strings.Contains(p.body, "Incorrect email or password") ||
		!strings.HasPrefix(p.header.Get("Content-Type"), "text/html") || !strings.Contains(p.body, `value="alice@example.com"`) {
		t.Fatalf("wrong password: %d %s %s", p.status, p.header.Get("Content-Type"), p.body)
	}
	// The page still works: the right password goes on to consent.
	if p = b.signIn(p, "alice@example.com", alicePW); !strings.Contains(p.body, `value="allow"`) {
		t.Fatalf("retry: %d %s", p.status, p.body)
	}
}

// Requests whose client or redirect URI cannot be trusted get an error page
// and never a redirect (RFC 6749 §4.1.2.1); the redirect URI is compared as
// an exact string (RFC 9700 §4.1.3).
func TestAuthorizeErrorPageNeverRedirects(t *testing.T) {
	env := newCodeEnv(t)
	b := newBrowser(t, env)
	_, ch := pkcePair("x")
	for _, tc := range []struct{ name, query string }{
		{"UnknownClient", authorizeQuery("nope", webRedirect, "s", ch)},
		{"MissingClient", authorizeQuery("", webRedirect, "s", ch, "client_id", "")},
		{"UnregisteredRedirect", authorizeQuery("web", "https://evil.example/cb", "s", ch)},
		{"TrailingSlash", authorizeQuery("web", webRedirect+"/", "s", ch)},
		{"CaseChange", authorizeQuery("web", "https://WEB.example/cb", "s", ch)},
		{"ExtraQuery", authorizeQuery("web", webRedirect+"?next=https://evil.example", "s", ch)},
		{"UserInfo", authorizeQuery("web", "https://web.example@evil.example/cb", "s", ch)},
		{"Fragment", authorizeQuery("web", webRedirect+"#x", "s", ch)},
		{"OtherPortNonLoopback", authorizeQuery("web", "https://web.example:8443/cb", "s", ch)},
		{"LoopbackOtherPath", authorizeQuery("web", "http://127.0.0.1:9000/other", "s", ch)},
		{"LocalhostIsNotLoopbackLiteral", authorizeQuery("web", "http://localhost:9000/cb", "s", ch)},
		{"LoopbackUserInfo", authorizeQuery("web", "http://evil@127.0.0.1:9000/cb", "s", ch)},
		{"LoopbackSchemeCase", authorizeQuery("web", "HTTP://127.0.0.1:9000/cb", "s", ch)},
		{"LoopbackPortNotNumeric", authorizeQuery("web", "http://127.0.0.1:x/cb", "s", ch)},
		{"LoopbackOtherHost", authorizeQuery("web", "http://127.0.0.2:9000/cb", "s", ch)},
		{"MissingRedirectWithSeveralRegistered", authorizeQuery("web", "", "s", ch, "redirect_uri", "")},
		{"RepeatedClientID", authorizeQuery("web", webRedirect, "s", ch) + "&client_id=first"},
		{"OversizedState", authorizeQuery("web", webRedirect, strings.Repeat("s", 3000), ch)},
		{"OversizedRequest", authorizeQuery("web", webRedirect, "s", ch) + "&x=" + strings.Repeat("a", 2000) + "&y=" + strings.Repeat("a", 2000) + "&z=" + strings.Repeat("a", 2000) + "&w=" + strings.Repeat("a", 2000) + strings.Repeat("&v=1", 2500)},
		{"ForeignRequestURIUnknownPAR", authorizeQuery("web", "", "", "", "request_uri", requestURIPrefix+"nope", "redirect_uri", "", "state", "", "code_challenge", "", "code_challenge_method", "")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := b.get(tc.query)
			if p.location != nil || p.status != http.StatusBadRequest || !strings.HasPrefix(p.header.Get("Content-Type"), "text/html") {
				t.Fatalf("%d, location %v, body %s", p.status, p.location, p.body)
			}
			if !strings.Contains(p.header.Get("Content-Security-Policy"), "frame-ancestors 'none'") {
				t.Fatal("error page without CSP")
			}
		})
	}
}

// Every other error redirects with error, error_description, state and iss.
func TestAuthorizeErrorsRedirect(t *testing.T) {
	env := newCodeEnv(t)
	b := newBrowser(t, env)
	_, ch := pkcePair("r")
	for _, tc := range []struct{ name, query, code string }{
		{"MissingChallenge", authorizeQuery("web", webRedirect, "s", "", "code_challenge", ""), "invalid_request"},
		{"PlainMethod", authorizeQuery("web", webRedirect, "s", ch, "code_challenge_method", "plain"), "invalid_request"},
		{"MissingMethodMeansPlain", authorizeQuery("web", webRedirect, "s", ch, "code_challenge_method", ""), "invalid_request"},
		{"ShortChallenge", authorizeQuery("web", webRedirect, "s", ch[:42]), "invalid_request"},
		{"LongChallenge", authorizeQuery("web", webRedirect, "s", ch+"A"), "invalid_request"},
		{"ChallengeBadAlphabet", authorizeQuery("web", webRedirect, "s", ch[:42]+"+"), "invalid_request"},
		{"MissingResponseType", authorizeQuery("web", webRedirect, "s", ch, "response_type", ""), "invalid_request"},
		{"ImplicitToken", authorizeQuery("web", webRedirect, "s", ch, "response_type", "token"), "unsupported_response_type"},
		{"Hybrid", authorizeQuery("web", webRedirect, "s", ch, "response_type", "code id_token"), "unsupported_response_type"},
		{"UnknownScope", authorizeQuery("web", webRedirect, "s", ch, "scope", "read admin"), "invalid_scope"},
		{"UnknownResource", authorizeQuery("web", webRedirect, "s", ch, "resource", otherResource), "invalid_target"},
		{"RelativeResource", authorizeQuery("web", webRedirect, "s", ch, "resource", "/api"), "invalid_target"},
		{"RepeatedScope", authorizeQuery("web", webRedirect, "s", ch) + "&scope=read&scope=write", "invalid_request"},
		{"RequestObject", authorizeQuery("web", webRedirect, "s", ch, "request", "eyJhbGciOiJub25lIn0.e30."), "request_not_supported"},
		{"ForeignRequestURI", authorizeQuery("web", webRedirect, "s", ch, "request_uri", "https://evil.example/req"), "request_uri_not_supported"},
		{"FragmentResponseMode", authorizeQuery("web", webRedirect, "s", ch, "response_mode", "fragment"), "invalid_request"},
		{"RequirePAR", authorizeQuery("parapp", "https://par.example/cb", "s", ch), "invalid_request"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := b.get(tc.query)
			if p.location == nil {
				t.Fatalf("no redirect: %d %s", p.status, p.body)
			}
			q := p.location.Query()
			if q.Get("error") != tc.code || q.Get("error_description") == "" || q.Get("state") != "s" || q.Get("iss") != env.issuer || q.Get("code") != "" {
				t.Fatalf("redirect %s", p.location)
			}
		})
	}
}

// Codes are single-use, bound to their client, redirect URI, PKCE
// challenge and lifetime; a second use revokes what the first one got.
func TestAuthorizationCodeHostile(t *testing.T) {
	env := newCodeEnv(t, func(c *Config) { c.AuthCodeTTL = time.Second })
	b := newBrowser(t, env)

	code, verifier := env.codeFor(t, b, "web", webRedirect)
	status, first := env.exchange(code, verifier, "web", webRedirect)
	if status != 200 {
		t.Fatalf("exchange: %d %v", status, first)
	}
	rt, _ := first["refresh_token"].(string)
	status, m := env.exchange(code, verifier, "web", webRedirect)
	if status != 400 || m["error"] != "invalid_grant" {
		t.Fatalf("reuse: %d %v", status, m)
	}
	if env.introspect(first["access_token"].(string))["active"] != false || env.introspect(rt)["active"] != false {
		t.Fatal("the tokens of a reused code are still active")
	}

	for _, tc := range []struct {
		name   string
		mutate func(code, verifier string) (int, map[string]any)
		want   string
	}{
		{"WrongVerifier", func(c, _ string) (int, map[string]any) {
			v, _ := pkcePair("other")
			return env.exchange(c, v, "web", webRedirect)
		}, "invalid_grant"},
		{"ShortVerifier", func(c, v string) (int, map[string]any) { return env.exchange(c, v[:42], "web", webRedirect) }, "invalid_grant"},
		{"MissingVerifier", func(c, _ string) (int, map[string]any) {
			return env.exchange(c, "", "web", webRedirect)
		}, "invalid_request"},
		{"RedirectChanged", func(c, v string) (int, map[string]any) { return env.exchange(c, v, "web", loopRedirect) }, "invalid_grant"},
		{"OtherClient", func(c, v string) (int, map[string]any) { return env.exchange(c, v, "first", webRedirect) }, "invalid_grant"},
		{"Expired", func(c, v string) (int, map[string]any) {
			time.Sleep(1100 * time.Millisecond)
			return env.exchange(c, v, "web", webRedirect)
		}, "invalid_grant"},
		{"UnknownCode", func(_, v string) (int, map[string]any) {
			return env.exchange("ory_ac_nope.nope", v, "web", webRedirect)
		}, "invalid_grant"},
		{"ResourceNotInGrant", func(c, v string) (int, map[string]any) {
			return env.exchange(c, v, "web", webRedirect, "resource", otherResource)
		}, "invalid_target"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, verifier := env.codeFor(t, b, "web", webRedirect)
			if tc.name == "MissingVerifier" {
				verifier = ""
			}
			status, m := tc.mutate(code, verifier)
			if status != 400 || m["error"] != tc.want {
				t.Fatalf("%d %v, want %s", status, m, tc.want)
			}
		})
	}
}

// resource (RFC 8707) picks the token's aud at /authorize and may narrow it
// at /token; password and client_credentials take it too.
func TestResourceIndicators(t *testing.T) {
	env := newCodeEnv(t)
	b := newBrowser(t, env)
	code, verifier := env.codeFor(t, b, "web", webRedirect, "resource", apiResource)
	status, m := env.exchange(code, verifier, "web", webRedirect)
	if status != 200 {
		t.Fatalf("%d %v", status, m)
	}
	if aud := env.introspect(m["access_token"].(string))["aud"]; !audIs(aud, apiResource) {
		t.Fatalf("aud %v, want %s", aud, apiResource)
	}
	// Without resource: the default audience, as before.
	code, verifier = env.codeFor(t, b, "web", webRedirect)
	_, m = env.exchange(code, verifier, "web", webRedirect)
	if aud := env.introspect(m["access_token"].(string))["aud"]; !audIs(aud, env.as.cfg.Audience) {
		t.Fatalf("default aud %v", aud)
	}
	// client_credentials with a resource the client may not have.
	resp := env.post("/token", url.Values{"grant_type": {"client_credentials"}, "resource": {otherResource}}, "svc", svcSecret)
	if m := decode(t, resp); resp.StatusCode != 400 || m["error"] != "invalid_target" {
		t.Fatalf("client_credentials with a foreign resource: %d %v", resp.StatusCode, m)
	}
}

func audIs(aud any, want string) bool {
	switch a := aud.(type) {
	case string:
		return a == want
	case []any:
		return len(a) == 1 && a[0] == want
	}
	return false
}

// Every form refuses a missing or wrong CSRF token.
func TestFormsRequireCSRF(t *testing.T) {
	env := newCodeEnv(t)
	b := newBrowser(t, env)
	_, ch := pkcePair("c")
	login := b.get(authorizeQuery("web", webRedirect, "s", ch))
	action, v := login.form(t)
	v.Set("username", "alice@example.com")
	v.Set("password", alicePW)
	for _, tok := range []string{"", "AAAA", strings.Repeat("A", 43)} {
		w := url.Values{}
		for k, vs := range v {
			w[k] = vs
		}
		w.Set("csrf_token", tok)
		if p := b.post(action, w); p.status != http.StatusForbidden || strings.Contains(p.body, `value="allow"`) {
			t.Fatalf("login with csrf %q: %d", tok, p.status)
		}
	}
	consent := b.signIn(login, "alice@example.com", alicePW)
	action, v = consent.form(t)
	v.Set("decision", "allow")
	v.Set("csrf_token", "forged")
	if p := b.post(action, v); p.status != http.StatusForbidden || p.location != nil {
		t.Fatalf("consent with a forged token: %d %v", p.status, p.location)
	}
	// A consent token is bound to its session: a token from another
	// browser's session does not work here.
	other := newBrowser(t, env)
	oc := other.signIn(other.get(authorizeQuery("web", webRedirect, "s", ch)), "bob@example.com", bobPW)
	_, ov := oc.form(t)
	v.Set("csrf_token", ov.Get("csrf_token"))
	if p := b.post(action, v); p.status != http.StatusForbidden {
		t.Fatalf("consent with another session's token: %d", p.status)
	}
	// Sign-out.
	lp := b.get("/logout")
	action, v = lp.form(t)
	v.Set("csrf_token", "forged")
	if p := b.post(action, v); p.status != http.StatusForbidden {
		t.Fatalf("logout with a forged token: %d", p.status)
	}
	if p := b.get(authorizeQuery("web", webRedirect, "s", ch)); strings.Contains(p.body, `name="password"`) {
		t.Fatal("a forged sign-out ended the session")
	}
	if p := b.post(lp.mustForm(t)); p.status != 200 {
		t.Fatalf("sign-out: %d", p.status)
	}
	if p := b.get(authorizeQuery("web", webRedirect, "s", ch)); !strings.Contains(p.body, `name="password"`) {
		t.Fatal("still signed in after sign-out")
	}
}

func (p *page) mustForm(t testing.TB) (string, url.Values) { return p.form(t) }

// Login CSRF: a sign-in form posted from another site (without this
// browser's CSRF cookie) is refused, so an attacker cannot sign the victim
// in to the attacker's account.
func TestLoginCSRFAndSessionFixation(t *testing.T) {
	env := newCodeEnv(t)
	attacker := newBrowser(t, env)
	_, ch := pkcePair("l")
	ap := attacker.get(authorizeQuery("web", webRedirect, "s", ch))
	action, v := ap.form(t)
	v.Set("username", "bob@example.com")
	v.Set("password", bobPW)
	victim := newBrowser(t, env)
	if p := victim.post(action, v); p.status != http.StatusForbidden {
		t.Fatalf("login CSRF: %d", p.status)
	}

	// Session fixation: a session cookie planted before sign-in is
	// replaced; the planted value never becomes a session.
	b := newBrowser(t, env)
	u, _ := url.Parse(env.srv.URL)
	planted := "planted-value-0123456789"
	b.c.Jar.SetCookies(u, []*http.Cookie{{Name: sessionCookieName, Value: planted, Path: "/"}})
	p := b.signIn(b.get(authorizeQuery("web", webRedirect, "s", ch)), "alice@example.com", alicePW)
	if !strings.Contains(p.body, `value="allow"`) {
		t.Fatalf("sign-in: %d %s", p.status, p.body)
	}
	var got string
	for _, c := range b.c.Jar.Cookies(u) {
		if c.Name == sessionCookieName {
			got = c.Value
		}
	}
	if got == "" || got == planted {
		t.Fatalf("session cookie after sign-in = %q (planted %q)", got, planted)
	}
	if _, err := env.store.GetToken(t.Context(), storage.BrowserSession, hashHandle(planted)); err == nil {
		t.Fatal("the planted value became a session")
	}
	// A second sign-in in the same browser changes the ID again.
	p2 := b.signIn(b.get("/login"), "alice@example.com", alicePW)
	if p2.status != 200 {
		t.Fatalf("second sign-in: %d", p2.status)
	}
	for _, c := range b.c.Jar.Cookies(u) {
		if c.Name == sessionCookieName && c.Value == got {
			t.Fatal("the session ID did not change at the second sign-in")
		}
	}
	if _, err := env.store.GetToken(t.Context(), storage.BrowserSession, hashHandle(got)); err == nil {
		t.Fatal("the previous session survived a new sign-in")
	}
}

// The session cookie: HttpOnly, SameSite=Lax, and Secure with the __Host-
// prefix over https.
func TestSessionCookieAttributes(t *testing.T) {
	for _, issuer := range []string{"http://127.0.0.1:1", "https://auth.example"} {
		s := &Server{cfg: Config{Issuer: issuer}}
		rec := &headerRecorder{h: http.Header{}}
		s.setCookie(rec, sessionCookieName, "v", time.Hour)
		c := rec.h.Get("Set-Cookie")
		if !strings.Contains(c, "HttpOnly") || !strings.Contains(c, "SameSite=Lax") || !strings.Contains(c, "Path=/") {
			t.Fatalf("%s: %s", issuer, c)
		}
		secure := strings.HasPrefix(issuer, "https")
		if secure != strings.Contains(c, "Secure") || secure != strings.HasPrefix(c, "__Host-authserver-session=") {
			t.Fatalf("%s: %s", issuer, c)
		}
	}
}

type headerRecorder struct{ h http.Header }

func (r *headerRecorder) Header() http.Header       { return r.h }
func (r *headerRecorder) Write([]byte) (int, error) { return 0, nil }
func (r *headerRecorder) WriteHeader(int)           {}

// Disabling a user ends their browser sessions.
func TestDisabledUserLosesSession(t *testing.T) {
	env := newCodeEnv(t)
	b := newBrowser(t, env)
	code, verifier := env.codeFor(t, b, "web", webRedirect)
	if _, err := env.store.UpdateUser(t.Context(), env.alice.ID, func(u storage.User) (storage.User, error) { u.Disabled = true; return u, nil }); err != nil {
		t.Fatal(err)
	}
	if status, m := env.exchange(code, verifier, "web", webRedirect); status != 400 || m["error"] != "invalid_grant" {
		t.Fatalf("code of a disabled user: %d %v", status, m)
	}
	_, ch := pkcePair("z")
	if p := b.get(authorizeQuery("web", webRedirect, "s", ch)); !strings.Contains(p.body, `name="password"`) {
		t.Fatalf("a disabled user's session still works: %d", p.status)
	}
}

// Pushed authorization requests: the request_uri works once, within its
// lifetime, for its client; a --require-par client must use it.
func TestPushedAuthorizationRequests(t *testing.T) {
	env := newCodeEnv(t)
	b := newBrowser(t, env)
	verifier, ch := pkcePair("p")
	push := func(client string, extra ...string) (int, map[string]any) {
		v := url.Values{"response_type": {"code"}, "client_id": {client}, "redirect_uri": {"https://par.example/cb"},
			"state": {"par-state"}, "code_challenge": {ch}, "code_challenge_method": {"S256"}, "scope": {"read"}}
		for i := 0; i+1 < len(extra); i += 2 {
			v.Set(extra[i], extra[i+1])
		}
		resp := env.post("/par", v, "", "")
		return resp.StatusCode, decode(t, resp)
	}
	status, m := push("parapp")
	ru, _ := m["request_uri"].(string)
	if status != 201 || !strings.HasPrefix(ru, requestURIPrefix) || m["expires_in"] != float64(60) {
		t.Fatalf("push: %d %v", status, m)
	}
	q := "/authorize?" + url.Values{"client_id": {"parapp"}, "request_uri": {ru}}.Encode()
	p := b.signIn(b.get(q), "alice@example.com", alicePW)
	p = b.decide(p, "allow")
	cb := env.callback(t, p, "https://par.example/cb")
	if cb.Get("state") != "par-state" || cb.Get("code") == "" {
		t.Fatalf("PAR callback %v", cb)
	}
	if status, m := env.exchange(cb.Get("code"), verifier, "parapp", "https://par.example/cb"); status != 200 {
		t.Fatalf("exchange: %d %v", status, m)
	}
	// Replayed request_uri: an error page, no redirect.
	if p := b.get(q); p.location != nil || p.status != 400 || !strings.Contains(p.body, "invalid_request_uri") {
		t.Fatalf("replayed request_uri: %d %v", p.status, p.location)
	}
	// Another client cannot use it.
	_, m = push("parapp")
	other := "/authorize?" + url.Values{"client_id": {"web"}, "request_uri": {m["request_uri"].(string)}}.Encode()
	if p := b.get(other); p.location != nil || p.status != 400 {
		t.Fatalf("request_uri of another client: %d", p.status)
	}
	// The pushed request is validated like /authorize, with JSON errors.
	for _, tc := range []struct {
		extra []string
		want  string
	}{
		{[]string{"code_challenge_method", "plain"}, "invalid_request"},
		{[]string{"redirect_uri", "https://evil.example/cb"}, "invalid_request"},
		{[]string{"request_uri", "urn:x"}, "invalid_request"},
		{[]string{"scope", "admin"}, "invalid_scope"},
	} {
		if status, m := push("parapp", tc.extra...); status != 400 || m["error"] != tc.want {
			t.Fatalf("push %v: %d %v", tc.extra, status, m)
		}
	}
	if status, m := push("nope"); status != 401 || m["error"] != "invalid_client" {
		t.Fatalf("push by an unknown client: %d %v", status, m)
	}
}

// The sign-in form has the password grant's throttling: 100 parallel wrong
// passwords never get past the limit, and other users are not affected.
func TestSignInThrottling(t *testing.T) {
	env := newCodeEnv(t, trustLoopback)
	_, ch := pkcePair("t")
	b := newBrowser(t, env)
	login := b.get(authorizeQuery("web", webRedirect, "s", ch))
	action, v := login.form(t)
	v.Set("username", "alice@example.com")
	v.Set("password", "wrong")
	var mu sync.Mutex
	counts := map[int]int{}
	var wg sync.WaitGroup
	for i := 0; i < 100; i++ {
		wg.Go(func() {
			req, _ := http.NewRequest(http.MethodPost, env.srv.URL+action, strings.NewReader(v.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.Header.Set("X-Forwarded-For", "203.0.113.50")
			resp, err := b.c.Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()
			mu.Lock()
			counts[resp.StatusCode]++
			mu.Unlock()
		})
	}
	wg.Wait()
	free := env.as.cfg.Throttle.AccountIP.Free
	if counts[http.StatusUnauthorized] > free || counts[http.StatusUnauthorized]+counts[http.StatusTooManyRequests] != 100 {
		t.Fatalf("statuses %v: more than %d wrong passwords were checked", counts, free)
	}
	// Bob, from another address, signs in.
	ob := newBrowser(t, env)
	lp := ob.get(authorizeQuery("web", webRedirect, "s", ch))
	action, w := lp.form(t)
	w.Set("username", "bob@example.com")
	w.Set("password", bobPW)
	req, _ := http.NewRequest(http.MethodPost, env.srv.URL+action, strings.NewReader(w.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("X-Forwarded-For", "198.51.100.20")
	if p := ob.do(req); !strings.Contains(p.body, `value="allow"`) {
		t.Fatalf("bob was affected: %d", p.status)
	}
}

// A pending request that expired, or an unknown one, is an error page.
func TestPendingRequestExpires(t *testing.T) {
	now := time.Now()
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	env := newCodeEnv(t, func(c *Config) { c.Now = clock; c.LoginTTL = time.Minute })
	b := newBrowser(t, env)
	_, ch := pkcePair("e")
	login := b.get(authorizeQuery("web", webRedirect, "s", ch))
	mu.Lock()
	now = now.Add(2 * time.Minute)
	mu.Unlock()
	p := b.signIn(login, "alice@example.com", alicePW)
	if p.status != 400 || p.location != nil || !strings.Contains(p.body, "expired") {
		t.Fatalf("expired pending request: %d %s", p.status, p.body)
	}
	if p := b.get("/consent?auth=unknown"); p.status != 400 || p.location != nil {
		t.Fatalf("unknown pending request: %d", p.status)
	}
}

func TestMetadataAdvertisesCodeFlow(t *testing.T) {
	env := newCodeEnv(t)
	resp, err := http.Get(env.srv.URL + "/.well-known/oauth-authorization-server")
	if err != nil {
		t.Fatal(err)
	}
	m := decode(t, resp)
	if m["authorization_endpoint"] != env.issuer+"/authorize" || m["pushed_authorization_request_endpoint"] != env.issuer+"/par" ||
		m["authorization_response_iss_parameter_supported"] != true {
		t.Fatalf("metadata %v", m)
	}
	for k, want := range map[string]string{"response_types_supported": "code", "code_challenge_methods_supported": "S256",
		"grant_types_supported": "authorization_code", "response_modes_supported": "query"} {
		l, _ := m[k].([]any)
		if !slices.Contains(l, any(want)) {
			t.Errorf("%s = %v, want %s in it", k, m[k], want)
		}
	}
	if l, _ := m["code_challenge_methods_supported"].([]any); len(l) != 1 {
		t.Errorf("code_challenge_methods_supported = %v, want only S256", l)
	}
}

// A remembered consent is asked again once revoked.
func TestRevokeConsent(t *testing.T) {
	env := newCodeEnv(t)
	b := newBrowser(t, env)
	env.codeFor(t, b, "conf", confRedirect)
	cs, err := ListConsents(t.Context(), env.store, env.alice.ID)
	if err != nil || len(cs) != 1 || cs[0].ClientID != "conf" || !slices.Equal(cs[0].Scopes, []string{"read", "write"}) {
		t.Fatalf("consents %+v %v", cs, err)
	}
	_, ch := pkcePair("rc")
	if p := b.get(authorizeQuery("conf", confRedirect, "s", ch)); p.location == nil {
		t.Fatalf("remembered consent: %d", p.status)
	}
	if n, err := RevokeConsents(t.Context(), env.store, env.alice.ID, ""); err != nil || n != 1 {
		t.Fatalf("revoke: %d %v", n, err)
	}
	if p := b.get(authorizeQuery("conf", confRedirect, "s", ch)); !strings.Contains(p.body, `value="allow"`) {
		t.Fatalf("consent not asked again after revocation: %d", p.status)
	}
}

// --ui-dir replaces embedded templates and static files by name.
func TestUIDirBranding(t *testing.T) {
	dir := t.TempDir()
	must := func(err error) {
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(dir, "templates"), 0o755))
	must(os.MkdirAll(filepath.Join(dir, "static"), 0o755))
	must(os.WriteFile(filepath.Join(dir, "templates", "login.html"), []byte(`{{define "title"}}ACME sign-in{{end}}{{define "content"}}<h1>ACME</h1><form method="post" action="{{.Action}}"><input type="hidden" name="csrf_token" value="{{.CSRF}}">{{range .Hidden}}<input type="hidden" name="{{.Name}}" value="{{.Value}}">{{end}}<input name="username"><input name="password" type="password"></form>{{end}}`), 0o644))
	must(os.WriteFile(filepath.Join(dir, "static", "style.css"), []byte("body{color:rebeccapurple}"), 0o644))
	env := newCodeEnv(t, func(c *Config) { c.UIDir = dir })
	b := newBrowser(t, env)
	_, ch := pkcePair("ui")
	p := b.get(authorizeQuery("web", webRedirect, "s", ch))
	if !strings.Contains(p.body, "<h1>ACME</h1>") {
		t.Fatalf("branded sign-in page not used: %s", p.body)
	}
	if p = b.signIn(p, "alice@example.com", alicePW); !strings.Contains(p.body, `value="allow"`) {
		t.Fatalf("the branded form does not sign in: %d", p.status)
	}
	if css := b.get("/ui/static/style.css"); !strings.Contains(css.body, "rebeccapurple") {
		t.Fatalf("stylesheet not replaced: %s", css.body)
	}
	if p := b.get("/ui/static/"); p.status != http.StatusNotFound {
		t.Fatalf("directory listing: %d", p.status)
	}
	// A broken template is refused at start-up, not at the first sign-in.
	must(os.WriteFile(filepath.Join(dir, "templates", "consent.html"), []byte(`{{define "content"}}{{.Nope`), 0o644))
	if _, err := ui.New(dir, ""); err == nil {
		t.Fatal("a broken template was accepted")
	}
}

// A POST to /authorize (possibly cross-site, without the SameSite=Lax
// session cookie) continues with a GET that sees the session.
func TestAuthorizePOSTContinuesWithSession(t *testing.T) {
	env := newCodeEnv(t)
	b := newBrowser(t, env)
	env.codeFor(t, b, "conf", confRedirect)
	_, ch := pkcePair("post")
	q := strings.TrimPrefix(authorizeQuery("conf", confRedirect, "post-state", ch), "/authorize?")
	v, _ := url.ParseQuery(q)
	p := b.post("/authorize", v)
	cb := env.callback(t, p, confRedirect)
	if cb.Get("code") == "" || cb.Get("state") != "post-state" {
		t.Fatalf("POST /authorize: %v", cb)
	}
}

// A pending request is answered once: a second consent POST (a double
// click) gets an error page, not a second code.
func TestPendingRequestIsSingleUse(t *testing.T) {
	env := newCodeEnv(t)
	b := newBrowser(t, env)
	_, ch := pkcePair("once")
	consent := b.signIn(b.get(authorizeQuery("web", webRedirect, "s", ch)), "alice@example.com", alicePW)
	env.callback(t, b.decide(consent, "allow"), webRedirect)
	if p := b.decide(consent, "allow"); p.location != nil || p.status != http.StatusBadRequest {
		t.Fatalf("second answer to one request: %d %v", p.status, p.location)
	}
}

// A pending request keeps only authorization parameters: a secret a client
// puts in the URL by mistake is never stored.
func TestPendingRequestStoresNoSecrets(t *testing.T) {
	env := newCodeEnv(t)
	b := newBrowser(t, env)
	_, ch := pkcePair("sec")
	p := b.get(authorizeQuery("web", webRedirect, "s", ch, "client_secret", "do-not-store-me", "password", "nor-me"))
	u, _ := url.Parse(p.url.String())
	id := u.Query().Get("auth")
	tok, err := env.store.GetToken(t.Context(), storage.AuthorizeRequest, hashHandle(id))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(tok.Payload), "do-not-store-me") || strings.Contains(string(tok.Payload), "nor-me") || !strings.Contains(string(tok.Payload), ch) {
		t.Fatalf("stored pending request: %s", tok.Payload)
	}
}

// With an issuer that has a path (behind a proxy that strips it), the
// pages' links and redirects stay under that path.
func TestIssuerWithPath(t *testing.T) {
	env := newTestEnv(t, openMemory(t), func(c *Config) { c.Issuer += "/auth" })
	seedCodeClients(t, env)
	_, ch := pkcePair("path")
	req, _ := http.NewRequest(http.MethodGet, env.srv.URL+authorizeQuery("web", webRedirect, "s", ch), nil)
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if loc := resp.Header.Get("Location"); !strings.HasPrefix(loc, "/auth/login?auth=") {
		t.Fatalf("Location %q", loc)
	}
	b := newBrowser(t, env)
	p := b.get("/login")
	if !strings.Contains(p.body, `href="/auth/ui/static/style.css"`) || !strings.Contains(p.body, `action="/auth/login"`) {
		t.Fatalf("page links: %s", p.body)
	}
}

// error_description keeps to RFC 6749 §5.2's characters, fosite's hints
// included.
func TestErrorDescriptionCharacters(t *testing.T) {
	env := newCodeEnv(t)
	b := newBrowser(t, env)
	code, verifier := env.codeFor(t, b, "web", webRedirect)
	status, m := env.exchange(code, verifier, "web", loopRedirect)
	d, _ := m["error_description"].(string)
	if status != 400 || d == "" || strings.ContainsAny(d, "\"\\") {
		t.Fatalf("%d %q", status, d)
	}
}

// A signed-in user reviews and revokes their consents on /consents.
func TestUserRevokesConsent(t *testing.T) {
	env := newCodeEnv(t)
	b := newBrowser(t, env)
	if p := b.get("/consents"); p.url.Path != "/login" {
		t.Fatalf("/consents without a session went to %s", p.url)
	}
	env.codeFor(t, b, "conf", confRedirect)
	p := b.get("/consents")
	if p.status != 200 || !strings.Contains(p.body, "Confidential App") || !strings.Contains(p.body, "read write") {
		t.Fatalf("consents page: %d %s", p.status, p.body)
	}
	action, v := p.form(t)
	forged := url.Values{"csrf_token": {"forged"}, "client_id": {"conf"}}
	if f := b.post(action, forged); f.status != http.StatusForbidden {
		t.Fatalf("forged revoke: %d", f.status)
	}
	p = b.post(action, v)
	if p.status != 200 || !strings.Contains(p.body, "Access revoked.") || strings.Contains(p.body, "Confidential App") {
		t.Fatalf("after revoke: %d %s", p.status, p.body)
	}
	_, ch := pkcePair("urc")
	if p := b.get(authorizeQuery("conf", confRedirect, "s", ch)); !strings.Contains(p.body, `value="allow"`) {
		t.Fatalf("consent not asked again: %d", p.status)
	}
}

// An address may leave at most PendingBurst authorization requests waiting
// for a sign-in at once (then PendingPerMinute): the next one goes back to
// the client with temporarily_unavailable (RFC 6749 §4.1.2.1), state and
// iss. A signed-in user's request that needs no page stores nothing and
// goes through.
func TestPendingAuthorizationRequestsAreLimitedPerAddress(t *testing.T) {
	env := newCodeEnv(t, func(c *Config) { c.PendingPerMinute, c.PendingBurst = 1, 3 })
	_, challenge := pkcePair("limit")
	// One sign-in (its pending request is the first of the burst).
	signedIn := newBrowser(t, env)
	code, _ := env.codeFor(t, signedIn, "first", "https://first.example/cb")
	if code == "" {
		t.Fatal("no code")
	}
	anon := newBrowser(t, env)
	for i := range 2 {
		if p := anon.get(authorizeQuery("web", webRedirect, "s", challenge)); !strings.Contains(p.body, `name="password"`) {
			t.Fatalf("anonymous request %d: status %d, no sign-in page", i, p.status)
		}
	}
	p := anon.get(authorizeQuery("web", webRedirect, "over", challenge))
	q := env.callback(t, p, webRedirect)
	if q.Get("error") != "temporarily_unavailable" || q.Get("state") != "over" || !strings.Contains(q.Get("error_description"), "Try again in") {
		t.Fatalf("request over the limit: %v", q)
	}
	// The signed-in user still gets codes: nothing is stored for them.
	for range 3 {
		if code, _ := env.codeFor(t, signedIn, "first", "https://first.example/cb"); code == "" {
			t.Fatal("no code for the signed-in user")
		}
	}
}

// Rate-limit buckets: an IPv4 address each, an IPv6 /64 each.
func TestLimitKey(t *testing.T) {
	for in, want := range map[string]string{
		"192.0.2.1":            "192.0.2.1",
		"::ffff:192.0.2.1":     "::ffff:192.0.2.1",
		"2001:db8:1:2:3:4:5:6": "2001:db8:1:2::/64",
		"2001:db8:1:2:ffff::1": "2001:db8:1:2::/64",
		"fe80::1%eth0":         "fe80::/64",
		"not an address":       "not an address",
	} {
		if got := limitKey(in); got != want {
			t.Errorf("limitKey(%q) = %q, want %q", in, got, want)
		}
	}
}

// /authorize reads a known client's registration from the client cache:
// a signed-in user's authorization requests cost no client read after the
// first, and a redirect URI removed through storage (as the CLI does) is
// refused within ClientChangeMaxDelay, without a redirect to it.
func TestAuthorizeClientFromTheCache(t *testing.T) {
	const maxDelay = 300 * time.Millisecond
	st := &clientReads{Store: openMemory(t)}
	env := newTestEnv(t, st, func(c *Config) { c.ClientChangeMaxDelay = maxDelay })
	seedCodeClients(t, env)
	b := newBrowser(t, env)
	_, challenge := pkcePair("f")
	q := authorizeQuery("first", "https://first.example/cb", "s1", challenge)
	env.callback(t, b.signIn(b.get(q), "alice@example.com", alicePW), "https://first.example/cb")
	before := st.n.Load()
	for range 5 {
		if c := env.callback(t, b.get(q), "https://first.example/cb"); c.Get("code") == "" {
			t.Fatalf("no code: %v", c)
		}
	}
	if n := st.n.Load() - before; n != 0 {
		t.Fatalf("5 authorization requests read the client %d times, want 0 (cached)", n)
	}
	if _, err := env.store.UpdateClient(t.Context(), "first", func(c storage.Client) (storage.Client, error) {
		c.RedirectURIs = []string{"https://first.example/other"}
		return c, nil
	}); err != nil {
		t.Fatal(err)
	}
	took := untilStatus(t, "removed redirect_uri", http.StatusBadRequest, 5*time.Second, func() int { return b.get(q).status })
	if took > maxDelay+200*time.Millisecond {
		t.Errorf("the removed redirect URI was used for %v, want at most %v (+ slack)", took, maxDelay)
	}
	if p := b.get(q); p.status != http.StatusBadRequest || p.location != nil {
		t.Fatalf("removed redirect_uri: %d to %v, want an error page", p.status, p.location)
	}
}

// sessionFailStore fails reads of browser sessions while down is set.
type sessionFailStore struct {
	storage.Store
	down atomic.Bool
}

var errStorageDown = errors.New("storage down for the test")

func (f *sessionFailStore) GetToken(ctx context.Context, kind storage.TokenKind, sig string) (storage.Token, error) {
	if kind == storage.BrowserSession && f.down.Load() {
		return storage.Token{}, errStorageDown
	}
	return f.Store.GetToken(ctx, kind, sig)
}

// A page whose storage fails answers 503 without the cause, and the
// operational log gets what failed, on which path, and why.
func TestUnavailablePageLogsItsCause(t *testing.T) {
	var oplog lockedBuffer
	fs := &sessionFailStore{Store: openMemory(t)}
	env := newTestEnv(t, fs, func(c *Config) { c.Logger = slog.New(slog.NewTextHandler(&oplog, nil)) })
	seedCodeClients(t, env)
	b := newBrowser(t, env)
	env.codeFor(t, b, "conf", confRedirect)
	fs.down.Store(true)
	for _, path := range []string{"/consents", "/logout"} {
		p := b.get(path)
		if p.status != http.StatusServiceUnavailable || strings.Contains(p.body, errStorageDown.Error()) {
			t.Fatalf("%s with the session store down: %d %s", path, p.status, p.body)
		}
		want := `level=ERROR msg="reading the browser session failed" path=` + path + ` cause="` + errStorageDown.Error()
		if !strings.Contains(oplog.String(), want) {
			t.Fatalf("%s: the log lacks %q:\n%s", path, want, oplog.String())
		}
	}
}
