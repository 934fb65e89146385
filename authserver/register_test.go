package authserver

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/oauthkit/authserver/internal/password"
	"github.com/oauthkit/authserver/keys"
	"github.com/oauthkit/authserver/storage"
	sqlstore "github.com/oauthkit/authserver/storage/sql"
)

// regScopes lets the test clients register the scopes of the fixtures.
func regScopes(c *Config) {
	c.Registration.Scopes = []string{"openid", "read", "write"}
	c.Registration.Burst = 1000
	c.Registration.RatePerMinute = 6000
}

// newInitialToken creates an initial access token in the env's store.
func newInitialToken(t testing.TB, st storage.Tokens, ttl time.Duration, uses int, now time.Time) string {
	t.Helper()
	tok, _, err := CreateInitialAccessToken(context.Background(), st, InitialAccessToken{TTL: ttl, MaxUses: uses}, now)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// regCall sends a JSON request with a bearer token to base+path.
func regCall(t testing.TB, method, u, token string, body any) (int, map[string]any, http.Header) {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, u, rd)
	if err != nil {
		t.Fatal(err)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, decode(t, resp), resp.Header
}

func str(m map[string]any, k string) string { s, _ := m[k].(string); return s }

// A client registered with an initial access token runs client_credentials
// with its secret and the code flow with x/oauth2; it reads, updates and
// deletes its registration, and once deleted its tokens and secret fail.
func TestRegistrationLifecycle(t *testing.T) {
	for name, open := range map[string]func(testing.TB) storage.Store{"memory": openMemory, "sqlite": openSQLite} {
		t.Run(name, func(t *testing.T) { testRegistrationLifecycle(t, open(t)) })
	}
}

func testRegistrationLifecycle(t *testing.T, st storage.Store) {
	var audit syncBuffer
	env := newTestEnv(t, st, regScopes, func(c *Config) { c.Audit = NewAuditLog(&audit, 1) })
	iat := newInitialToken(t, st, time.Hour, 1, time.Now())
	code, reg, hdr := regCall(t, http.MethodPost, env.srv.URL+"/register", iat, map[string]any{
		"client_name":                "Reg App",
		"redirect_uris":              []string{loopRedirect},
		"grant_types":                []string{"authorization_code", "client_credentials"},
		"response_types":             []string{"code"},
		"scope":                      "openid read",
		"token_endpoint_auth_method": "client_secret_basic",
		"logo_uri":                   "https://app.example/logo.png", // unsupported: ignored
		"skip_consent":               true,                           // not client metadata: ignored
	})
	if code != http.StatusCreated {
		t.Fatalf("register: %d %v", code, reg)
	}
	id, secret, rat := str(reg, "client_id"), str(reg, "client_secret"), str(reg, "registration_access_token")
	if id == "" || len(secret) < password.MinSecretLength || rat == "" || hdr.Get("Cache-Control") != "no-store" {
		t.Fatalf("registration response %v %v", reg, hdr)
	}
	if str(reg, "registration_client_uri") != env.issuer+"/register/"+id || hdr.Get("Location") != str(reg, "registration_client_uri") {
		t.Fatalf("registration_client_uri %v", reg)
	}
	if reg["client_secret_expires_at"] != float64(0) || reg["client_id_issued_at"] == nil || str(reg, "client_name") != "Reg App" || str(reg, "scope") != "openid read" {
		t.Fatalf("registered metadata %v", reg)
	}
	if _, ok := reg["logo_uri"]; ok {
		t.Fatalf("an unsupported member was echoed: %v", reg)
	}
	if _, ok := reg["skip_consent"]; ok {
		t.Fatalf("skip_consent echoed: %v", reg)
	}
	stored, err := st.GetClient(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	if stored.SkipConsent || stored.Introspect || strings.Contains(strings.Join(stored.SecretHashes, ""), secret) ||
		stored.RegistrationTokenHash == "" || strings.Contains(stored.RegistrationTokenHash, rat) {
		t.Fatalf("stored client %+v", stored)
	}
	// The token's single use is spent.
	if code, m, _ := regCall(t, http.MethodPost, env.srv.URL+"/register", iat, map[string]any{"grant_types": []string{"client_credentials"}}); code != 401 || str(m, "error") != "invalid_token" {
		t.Fatalf("second use of a one-use token: %d %v", code, m)
	}

	// client_credentials with x/oauth2.
	cc := &clientcredentials.Config{ClientID: id, ClientSecret: secret, TokenURL: env.srv.URL + "/token", Scopes: []string{"read"}, AuthStyle: oauth2.AuthStyleInHeader}
	tok, err := cc.Token(t.Context())
	if err != nil {
		t.Fatalf("client_credentials: %v", err)
	}
	if in := env.introspect(tok.AccessToken); in["active"] != true || in["client_id"] != id {
		t.Fatalf("introspect %v", in)
	}

	// The authorization code flow with PKCE, x/oauth2 as the client.
	b := newBrowser(t, env)
	ocfg := &oauth2.Config{ClientID: id, ClientSecret: secret, RedirectURL: loopRedirect, Scopes: []string{"openid", "read"},
		Endpoint: oauth2.Endpoint{AuthURL: env.srv.URL + "/authorize", TokenURL: env.srv.URL + "/token", AuthStyle: oauth2.AuthStyleInHeader}}
	verifier := oauth2.GenerateVerifier()
	u, _ := url.Parse(ocfg.AuthCodeURL("st-reg", oauth2.S256ChallengeOption(verifier)))
	p := b.get(u.RequestURI())
	p = b.signIn(p, "alice@example.com", alicePW)
	if !strings.Contains(p.body, "Reg App") {
		t.Fatalf("consent page does not name the client: %s", p.body)
	}
	p = b.decide(p, "allow")
	q := env.callback(t, p, loopRedirect)
	codeTok, err := ocfg.Exchange(t.Context(), q.Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatalf("code exchange: %v", err)
	}
	if codeTok.Extra("id_token") == nil {
		t.Fatal("no id_token for the openid scope")
	}

	// Read: no secret, and a rotated registration access token.
	regURI := str(reg, "registration_client_uri")
	code, got, _ := regCall(t, http.MethodGet, regURI, rat, nil)
	if code != 200 || got["client_secret"] != nil || str(got, "client_id") != id || str(got, "registration_access_token") == "" || str(got, "registration_access_token") == rat {
		t.Fatalf("read: %d %v", code, got)
	}
	if code, m, h := regCall(t, http.MethodGet, regURI, rat, nil); code != 401 || str(m, "error") != "invalid_token" || !strings.Contains(h.Get("WWW-Authenticate"), "Bearer") {
		t.Fatalf("read with the rotated-away token: %d %v %v", code, m, h)
	}
	rat = str(got, "registration_access_token")
	if code, m, _ := regCall(t, http.MethodGet, env.srv.URL+"/register/app", rat, nil); code != 401 {
		t.Fatalf("another client's configuration with this token: %d %v", code, m)
	}

	// Update: the client_id must match; a wrong secret is refused; the
	// metadata is replaced (omitted members cleared).
	upd := map[string]any{"client_id": "other", "client_name": "Renamed", "grant_types": []string{"client_credentials"}, "scope": "read"}
	if code, m, _ := regCall(t, http.MethodPut, regURI, rat, upd); code != 400 || str(m, "error") != "invalid_request" {
		t.Fatalf("PUT with another client_id: %d %v", code, m)
	}
	upd["client_id"], upd["client_secret"] = id, "wrong-secret-0123456789-0123456789-0123"
	if code, m, _ := regCall(t, http.MethodPut, regURI, rat, upd); code != 400 {
		t.Fatalf("PUT with a wrong client_secret: %d %v", code, m)
	}
	upd["client_secret"] = secret
	code, got, _ = regCall(t, http.MethodPut, regURI, rat, upd)
	if code != 200 || str(got, "client_name") != "Renamed" || got["redirect_uris"] != nil || got["client_secret"] != nil || str(got, "scope") != "read" {
		t.Fatalf("PUT: %d %v", code, got)
	}
	rat = str(got, "registration_access_token")
	if c, _ := st.GetClient(t.Context(), id); c.Name != "Renamed" || len(c.RedirectURIs) != 0 || len(c.GrantTypes) != 1 {
		t.Fatalf("stored after PUT: %+v", c)
	}
	// The secret still works after the update.
	tok2, err := cc.Token(t.Context())
	if err != nil {
		t.Fatalf("client_credentials after update: %v", err)
	}

	// Delete: 204, then the client's tokens and secret fail.
	if code, m, _ := regCall(t, http.MethodDelete, regURI, rat, nil); code != 204 {
		t.Fatalf("DELETE: %d %v", code, m)
	}
	for _, at := range []string{tok.AccessToken, tok2.AccessToken, codeTok.AccessToken} {
		if in := env.introspect(at); in["active"] != false {
			t.Fatalf("token of a deleted client still active: %v", in)
		}
	}
	if _, err := cc.Token(t.Context()); err == nil {
		t.Fatal("a deleted client's secret still authenticates")
	}
	if code, _, _ := regCall(t, http.MethodGet, regURI, rat, nil); code != 401 {
		t.Fatalf("read after delete: %d", code)
	}
	log := audit.String()
	for _, ev := range []string{"client_registered", "client_registration_updated", "client_registration_deleted", "client_registration_refused"} {
		if !strings.Contains(log, `"event":"`+ev+`"`) {
			t.Errorf("no %s audit event in %s", ev, log)
		}
	}
	for _, s := range []string{secret, rat, iat} {
		if strings.Contains(log, s) {
			t.Fatal("a secret reached the audit log")
		}
	}
}

// syncBuffer is a bytes.Buffer safe for concurrent writers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Each kind of bad metadata gets its RFC 7591 §3.2.2 error, and does not
// use up the initial access token.
func TestRegistrationBadMetadata(t *testing.T) {
	env := newTestEnv(t, openMemory(t), regScopes)
	iat := newInitialToken(t, env.store, time.Hour, 1, time.Now())
	jwk := `{"keys":[{"kty":"EC","crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}]}`
	privJWK := `{"keys":[{"kty":"EC","crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0","d":"jpsQnnGQmL-YBIffH1136cspYG6-0iY7X1fCE9-E9LI"}]}`
	for _, tc := range []struct {
		name, body, want string
	}{
		{"not JSON", `grant_types=client_credentials`, "invalid_client_metadata"},
		{"not an object", `["x"]`, "invalid_client_metadata"},
		{"wrong type", `{"redirect_uris":"https://a.example/cb"}`, "invalid_client_metadata"},
		{"http redirect URI", `{"redirect_uris":["http://a.example/cb"]}`, "invalid_redirect_uri"},
		{"fragment in redirect URI", `{"redirect_uris":["https://a.example/cb#x"]}`, "invalid_redirect_uri"},
		{"code grant without redirect URI", `{"grant_types":["authorization_code"]}`, "invalid_redirect_uri"},
		{"redirect URI without the code grant", `{"grant_types":["client_credentials"],"redirect_uris":["https://a.example/cb"]}`, "invalid_redirect_uri"},
		{"bad post-logout URI", `{"redirect_uris":["https://a.example/cb"],"post_logout_redirect_uris":["javascript:alert(1)"]}`, "invalid_redirect_uri"},
		{"unknown grant", `{"grant_types":["urn:example:magic"]}`, "invalid_client_metadata"},
		{"password grant", `{"grant_types":["password"]}`, "invalid_client_metadata"},
		{"implicit response type", `{"redirect_uris":["https://a.example/cb"],"response_types":["token"]}`, "invalid_client_metadata"},
		{"code response without the code grant", `{"grant_types":["client_credentials"],"response_types":["code"]}`, "invalid_client_metadata"},
		{"unknown auth method", `{"grant_types":["client_credentials"],"token_endpoint_auth_method":"tls_client_auth"}`, "invalid_client_metadata"},
		{"public client_credentials", `{"grant_types":["client_credentials"],"token_endpoint_auth_method":"none"}`, "invalid_client_metadata"},
		{"scope not offered", `{"grant_types":["client_credentials"],"scope":"admin"}`, "invalid_client_metadata"},
		{"jwks and jwks_uri", `{"grant_types":["client_credentials"],"token_endpoint_auth_method":"private_key_jwt","jwks_uri":"https://a.example/jwks","jwks":` + jwk + `}`, "invalid_client_metadata"},
		{"private_key_jwt without keys", `{"grant_types":["client_credentials"],"token_endpoint_auth_method":"private_key_jwt"}`, "invalid_client_metadata"},
		{"private key in jwks", `{"grant_types":["client_credentials"],"token_endpoint_auth_method":"private_key_jwt","jwks":` + privJWK + `}`, "invalid_client_metadata"},
		{"jwks_uri over http", `{"grant_types":["client_credentials"],"token_endpoint_auth_method":"private_key_jwt","jwks_uri":"http://a.example/jwks"}`, "invalid_client_metadata"},
		{"bad subject type", `{"redirect_uris":["https://a.example/cb"],"subject_type":"secret"}`, "invalid_client_metadata"},
		{"bad back-channel logout URI", `{"redirect_uris":["https://a.example/cb"],"backchannel_logout_uri":"http://a.example/bc"}`, "invalid_client_metadata"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, m, _ := regCall(t, http.MethodPost, env.srv.URL+"/register", iat, tc.body)
			if code != 400 || str(m, "error") != tc.want || str(m, "error_description") == "" {
				t.Fatalf("%s: %d %v, want 400 %s", tc.body, code, m, tc.want)
			}
			// Descriptions name RFC 7591 members, never Go types or CLI flags.
			if d := str(m, "error_description"); strings.Contains(d, "clientMetadata") || strings.Contains(d, "--") || strings.Contains(d, "jwks: jwks") {
				t.Errorf("error_description %q names internals", d)
			}
			switch tc.name {
			case "wrong type":
				if d := str(m, "error_description"); d != "The member 'redirect_uris' has the wrong type." {
					t.Errorf("error_description %q", d)
				}
			case "bad subject type":
				if d := str(m, "error_description"); !strings.Contains(d, "subject_type must be public or pairwise") {
					t.Errorf("error_description %q", d)
				}
			}
		})
	}
	// The token was not used by any of them; private_key_jwt with a public
	// JWK Set registers without a secret.
	code, m, _ := regCall(t, http.MethodPost, env.srv.URL+"/register", iat,
		`{"grant_types":["client_credentials"],"token_endpoint_auth_method":"private_key_jwt","jwks":`+jwk+`,"dpop_bound_access_tokens":true}`)
	if code != 201 || m["client_secret"] != nil || m["client_secret_expires_at"] != nil || m["jwks"] == nil || m["dpop_bound_access_tokens"] != true {
		t.Fatalf("private_key_jwt registration: %d %v", code, m)
	}
	if c, _ := env.store.GetClient(t.Context(), str(m, "client_id")); !c.RequireDPoP || c.TokenEndpointAuthMethod != "private_key_jwt" || len(c.SecretHashes) != 0 {
		t.Fatalf("stored %+v", c)
	}
}

// Without an initial access token registration is refused unless open
// registration is on; an expired or unknown token is invalid_token.
func TestRegistrationInitialAccessToken(t *testing.T) {
	env := newTestEnv(t, openMemory(t), regScopes)
	body := map[string]any{"grant_types": []string{"client_credentials"}}
	expired := newInitialToken(t, env.store, time.Hour, 0, time.Now().Add(-2*time.Hour))
	for name, tok := range map[string]string{"none": "", "unknown": "not-a-token", "expired": expired} {
		code, m, h := regCall(t, http.MethodPost, env.srv.URL+"/register", tok, body)
		if code != 401 || str(m, "error") != "invalid_token" || !strings.HasPrefix(h.Get("WWW-Authenticate"), "Bearer") {
			t.Fatalf("%s token: %d %v %v", name, code, m, h)
		}
	}
	// Unlimited token: several uses.
	tok := newInitialToken(t, env.store, time.Hour, 0, time.Now())
	for range 3 {
		if code, m, _ := regCall(t, http.MethodPost, env.srv.URL+"/register", tok, body); code != 201 {
			t.Fatalf("unlimited token: %d %v", code, m)
		}
	}

	// A token with a secret TTL gives the client's secret an expiry.
	ttlTok, _, err := CreateInitialAccessToken(t.Context(), env.store, InitialAccessToken{TTL: time.Hour, SecretTTL: 48 * time.Hour}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	code, m, _ := regCall(t, http.MethodPost, env.srv.URL+"/register", ttlTok, body)
	if exp, _ := m["client_secret_expires_at"].(float64); code != 201 || time.Until(time.Unix(int64(exp), 0)) < 47*time.Hour {
		t.Fatalf("secret TTL: %d %v", code, m)
	}

	var logs syncBuffer
	open := newTestEnv(t, openMemory(t), regScopes, func(c *Config) {
		c.Registration.Open = true
		c.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	})
	if !strings.Contains(logs.String(), "level=WARN") || !strings.Contains(logs.String(), "open dynamic client registration") {
		t.Fatalf("no warning about open registration: %s", logs.String())
	}
	if code, m, _ := regCall(t, http.MethodPost, open.srv.URL+"/register", "", body); code != 201 {
		t.Fatalf("open registration: %d %v", code, m)
	}
	if code, _, _ := regCall(t, http.MethodPost, open.srv.URL+"/register", "wrong", body); code != 401 {
		t.Fatalf("open registration with a wrong token: %d", code)
	}
	if _, _, err := CreateInitialAccessToken(t.Context(), env.store, InitialAccessToken{}, time.Now()); err == nil {
		t.Fatal("an initial access token without TTL")
	}
}

// Requests to /register are limited per address: 429 with Retry-After.
func TestRegistrationRateLimit(t *testing.T) {
	var sink lockedBuffer
	env := newTestEnv(t, openMemory(t), func(c *Config) {
		c.Registration.Burst, c.Registration.RatePerMinute = 3, 1
		c.Audit = NewAuditLog(&sink, 0)
	})
	for i := range 5 {
		code, m, h := regCall(t, http.MethodPost, env.srv.URL+"/register", "x", map[string]any{})
		switch {
		case i < 3 && code != 401:
			t.Fatalf("request %d: %d %v", i, code, m)
		case i >= 3 && (code != 429 || h.Get("Retry-After") == "" || str(m, "error") == ""):
			t.Fatalf("request %d: %d %v %v, want 429", i, code, m, h)
		}
	}
	if code, _, _ := regCall(t, http.MethodGet, env.srv.URL+"/register/app", "x", nil); code != 429 {
		t.Fatalf("client configuration endpoint not limited: %d", code)
	}
	// Each of the three refusals is audited.
	if n := countEvents(auditLines(t, sink.String()))["registration_throttled"]; n != 3 {
		t.Errorf("%d registration_throttled events, want 3\n%s", n, sink.String())
	}
}

// newRegInstances starts one server per store (instances sharing a
// database), without fixtures.
func newRegInstances(t *testing.T, stores ...storage.Store) []string {
	var urls []string
	for _, st := range stores {
		srv := httptest.NewUnstartedServer(nil)
		issuer := "http://" + srv.Listener.Addr().String()
		km, err := keys.New(t.Context(), st, keys.Config{Algorithm: "ES256", Secret: testSecret, TokenLifetime: time.Hour, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
		if err != nil {
			t.Fatal(err)
		}
		cfg := Config{Issuer: issuer, Secret: testSecret, PasswordParams: password.TestParams, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
		regScopes(&cfg)
		as, err := New(cfg, st, km)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = as.Close() })
		srv.Config.Handler = as.Handler()
		srv.Start()
		t.Cleanup(srv.Close)
		urls = append(urls, srv.URL)
	}
	return urls
}

// An initial access token with --max-uses N registers exactly N clients
// out of N+10 concurrent requests spread over instances.
func TestRegistrationUseLimitUnderConcurrency(t *testing.T) {
	t.Run("memory", func(t *testing.T) {
		st := openMemory(t)
		testUseLimit(t, st, newRegInstances(t, st, st, st))
	})
	t.Run("sqlite", func(t *testing.T) {
		path := t.TempDir() + "/auth.db"
		var stores []storage.Store
		for range 3 {
			st, err := sqlstore.OpenSQLite(t.Context(), path)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { st.Close() })
			stores = append(stores, st)
		}
		testUseLimit(t, stores[0], newRegInstances(t, stores...))
	})
	t.Run("postgres", func(t *testing.T) {
		dsn := regPostgresDSN(t)
		var stores []storage.Store
		for range 3 {
			st, err := sqlstore.OpenPostgres(t.Context(), dsn)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { st.Close() })
			stores = append(stores, st)
		}
		testUseLimit(t, stores[0], newRegInstances(t, stores...))
	})
}

func testUseLimit(t *testing.T, st storage.Store, urls []string) {
	const n = 5
	tok := newInitialToken(t, st, time.Hour, n, time.Now())
	var wg sync.WaitGroup
	var mu sync.Mutex
	codes := map[int]int{}
	for i := range n + 10 {
		wg.Go(func() {
			code, _, _ := regCall(t, http.MethodPost, urls[i%len(urls)]+"/register", tok, map[string]any{"grant_types": []string{"client_credentials"}})
			mu.Lock()
			codes[code]++
			mu.Unlock()
		})
	}
	wg.Wait()
	if codes[201] != n || codes[401] != 10 {
		t.Fatalf("status counts %v, want %d × 201 and 10 × 401", codes, n)
	}
	cs, err := st.ListClients(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(cs) != n {
		t.Fatalf("%d clients registered, want %d", len(cs), n)
	}
}

// regPostgresDSN returns a DSN on a fresh schema, or skips.
func regPostgresDSN(t *testing.T) string {
	base := os.Getenv("AUTHSERVER_TEST_POSTGRES_DSN")
	if base == "" {
		t.Skip("AUTHSERVER_TEST_POSTGRES_DSN not set; skipping the PostgreSQL registration race")
	}
	return postgresSchemaDSN(t, base)
}

// postgresSchemaDSN creates a schema for the test, dropped at cleanup, and
// returns base with search_path set to it.
func postgresSchemaDSN(t *testing.T, base string) string {
	t.Helper()
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	schema := "reg_" + hex.EncodeToString(b)
	conn, err := pgx.Connect(t.Context(), base)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(t.Context(), "CREATE SCHEMA "+schema); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if c, err := pgx.Connect(context.Background(), base); err == nil {
			_, _ = c.Exec(context.Background(), "DROP SCHEMA "+schema+" CASCADE")
			c.Close(context.Background())
		}
	})
	sep := "?"
	if strings.Contains(base, "?") {
		sep = "&"
	}
	return base + sep + "search_path=" + schema
}

// A registration request without any token gets a Bearer challenge with no
// error code (RFC 6750 §3.1); a wrong token gets error="invalid_token".
func TestRegistrationChallenges(t *testing.T) {
	env := newTestEnv(t, openMemory(t), regScopes)
	body := map[string]any{"client_name": "x", "grant_types": []string{"client_credentials"}}
	for _, tc := range []struct {
		what, method, url, token, want string
	}{
		{"register, no token", http.MethodPost, env.srv.URL + "/register", "", `Bearer realm="authserver"`},
		{"register, wrong token", http.MethodPost, env.srv.URL + "/register", "wrong", `Bearer realm="authserver", error="invalid_token"`},
		{"read, no token", http.MethodGet, env.srv.URL + "/register/some-client", "", `Bearer realm="authserver"`},
		{"read, wrong token", http.MethodGet, env.srv.URL + "/register/some-client", "wrong", `Bearer realm="authserver", error="invalid_token"`},
	} {
		var b any
		if tc.method == http.MethodPost {
			b = body
		}
		code, _, h := regCall(t, tc.method, tc.url, tc.token, b)
		if code != http.StatusUnauthorized || h.Get("WWW-Authenticate") != tc.want {
			t.Errorf("%s: %d %q, want 401 %q", tc.what, code, h.Get("WWW-Authenticate"), tc.want)
		}
	}
}

// An update carrying a member of the client information response is
// refused (RFC 7592 §2.2).
func TestRegistrationUpdateRefusesResponseMembers(t *testing.T) {
	env := newTestEnv(t, openMemory(t), regScopes)
	iat := newInitialToken(t, env.store, time.Hour, 1, time.Now())
	code, reg, _ := regCall(t, http.MethodPost, env.srv.URL+"/register", iat, map[string]any{
		"client_name": "x", "grant_types": []string{"client_credentials"}})
	if code != http.StatusCreated {
		t.Fatalf("register: %d %v", code, reg)
	}
	uri, rat := str(reg, "registration_client_uri"), str(reg, "registration_access_token")
	for _, member := range []string{"registration_access_token", "registration_client_uri", "client_secret_expires_at", "client_id_issued_at"} {
		body := map[string]any{"client_id": reg["client_id"], "client_name": "x", "grant_types": []string{"client_credentials"}, member: reg[member]}
		if code, m, _ := regCall(t, http.MethodPut, uri, rat, body); code != http.StatusBadRequest || m["error"] != "invalid_request" {
			t.Errorf("update with %s: %d %v", member, code, m)
		}
	}
	body := map[string]any{"client_id": reg["client_id"], "client_name": "y", "grant_types": []string{"client_credentials"}}
	if code, m, _ := regCall(t, http.MethodPut, uri, rat, body); code != http.StatusOK {
		t.Fatalf("update without them: %d %v", code, m)
	}
}

func TestCompactJWKSAndUsesSecret(t *testing.T) {
	for _, c := range []struct {
		in, want string
		fails    bool
	}{{"", "", false}, {"null", "", false}, {" null\n", "", false}, {`{ "keys": [ ] }`, `{"keys":[]}`, false}, {`{"keys":`, "", true}} {
		got, err := CompactJWKS([]byte(c.in))
		if string(got) != c.want || (err != nil) != c.fails {
			t.Errorf("CompactJWKS(%q) = %q, %v; want %q, fails %v", c.in, got, err, c.want, c.fails)
		}
	}
	for _, c := range []struct {
		client storage.Client
		want   bool
	}{
		{storage.Client{}, true}, // RFC 7591 §2: client_secret_basic by default
		{storage.Client{TokenEndpointAuthMethod: "client_secret_post"}, true},
		{storage.Client{TokenEndpointAuthMethod: AuthMethodSecretJWT}, true},
		{storage.Client{TokenEndpointAuthMethod: AuthMethodPrivateKey}, false},
		{storage.Client{Public: true}, false},
	} {
		if got := UsesSecret(c.client); got != c.want {
			t.Errorf("UsesSecret(%+v) = %v, want %v", c.client, got, c.want)
		}
	}
}
