package authserver

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/oauthkit/authserver/internal/password"
	"github.com/oauthkit/authserver/keys"
	"github.com/oauthkit/authserver/storage"
	"github.com/oauthkit/authserver/storage/memory"
)

// Test fixtures.
const (
	appSecret = "app-secret-0123456789-0123456789-abcdef"
	rsSecret  = "rs-secret-0123456789-0123456789-abcdefgh"
	svcSecret = "svc-secret-0123456789-0123456789-abcdefg"
	alicePW   = "password123"
	bobPW     = "password456"
)

type testEnv struct {
	t      testing.TB
	srv    *httptest.Server
	store  storage.Store
	km     *keys.Manager
	as     *Server
	issuer string
	alice  storage.User
	bob    storage.User
}

var testSecret = []byte("test-secret-0123456789-0123456789-0123456789")

func openMemory(t testing.TB) storage.Store { return memory.New() }

// newTestEnv starts a real HTTP server on store with seeded users and clients.
func newTestEnv(t testing.TB, store storage.Store, mods ...func(*Config)) *testEnv {
	t.Helper()
	env := &testEnv{t: t, store: store}
	env.srv = httptest.NewUnstartedServer(nil)
	env.issuer = "http://" + env.srv.Listener.Addr().String()
	seed(t, env)
	env.build(mods...)
	env.srv.Start()
	t.Cleanup(env.srv.Close)
	return env
}

// build (re)creates the key manager and server, as a restart does.
func (env *testEnv) build(mods ...func(*Config)) {
	t := env.t
	km, err := keys.New(t.Context(), env.store, keys.Config{Algorithm: "ES256", ExtraAlgorithms: []string{"RS256"}, Secret: testSecret, TokenLifetime: time.Hour, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{
		Issuer:         env.issuer,
		Secret:         testSecret,
		PasswordParams: password.TestParams,
		Logger:         slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	for _, m := range mods {
		m(&cfg)
	}
	as, err := New(cfg, env.store, km)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = as.Close() })
	env.km, env.as = km, as
	env.srv.Config.Handler = as.Handler()
}

func seed(t testing.TB, env *testEnv) {
	t.Helper()
	ctx := context.Background()
	now := time.Now().UTC()
	mk := func(id, email, name, pw string, roles ...string) storage.User {
		h, err := password.Hash(pw, password.TestParams)
		if err != nil {
			t.Fatal(err)
		}
		u := storage.User{ID: id, Email: email, Name: name, Roles: roles, PasswordHash: h, CreatedAt: now, UpdatedAt: now}
		if err := env.store.CreateUser(ctx, u); err != nil {
			t.Fatal(err)
		}
		return u
	}
	env.alice = mk("u-alice", "alice@example.com", "Alice", alicePW, "admin")
	env.bob = mk("u-bob", "bob@example.com", "Bob", bobPW, "user")
	for _, c := range []storage.Client{
		{ID: "demo", Public: true, GrantTypes: []string{"password", "refresh_token"}, Scopes: []string{"read", "write"}},
		{ID: "app", SecretHashes: []string{password.HashSecret(appSecret)}, GrantTypes: []string{"password", "refresh_token", "client_credentials"}, Scopes: []string{"read", "write"}},
		{ID: "noref", Public: true, GrantTypes: []string{"password"}},
		{ID: "svc", SecretHashes: []string{password.HashSecret(svcSecret)}, GrantTypes: []string{"client_credentials"}, Scopes: []string{"read"}},
		{ID: "rs", SecretHashes: []string{password.HashSecret(rsSecret)}, GrantTypes: []string{"client_credentials"}, Introspect: true},
	} {
		c.CreatedAt, c.UpdatedAt = now, now
		if err := env.store.CreateClient(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
}

// post sends a form to path with optional basic credentials.
func (env *testEnv) post(path string, form url.Values, user, pass string, hdr ...string) *http.Response {
	env.t.Helper()
	req, err := http.NewRequest(http.MethodPost, env.srv.URL+path, strings.NewReader(form.Encode()))
	if err != nil {
		env.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if user != "" {
		req.SetBasicAuth(url.QueryEscape(user), url.QueryEscape(pass))
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		env.t.Fatal(err)
	}
	return resp
}

// decode reads a JSON body into a map and closes it.
func decode(t testing.TB, resp *http.Response) map[string]any {
	t.Helper()
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) == 0 {
		return nil
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("body %q: %v", b, err)
	}
	return m
}

// passwordToken gets a token pair for a user through the demo client.
func (env *testEnv) passwordToken(email, pw string) (access, refresh string) {
	env.t.Helper()
	resp := env.post("/token", url.Values{"grant_type": {"password"}, "username": {email}, "password": {pw}, "client_id": {"demo"}}, "", "")
	m := decode(env.t, resp)
	if resp.StatusCode != 200 {
		env.t.Fatalf("password grant: %d %v", resp.StatusCode, m)
	}
	a, _ := m["access_token"].(string)
	r, _ := m["refresh_token"].(string)
	return a, r
}

func (env *testEnv) introspect(token string) map[string]any {
	env.t.Helper()
	resp := env.post("/introspect", url.Values{"token": {token}}, "rs", rsSecret)
	if resp.StatusCode != 200 {
		env.t.Fatalf("introspect: %d %v", resp.StatusCode, decode(env.t, resp))
	}
	return decode(env.t, resp)
}

func newHTTPTestServer(t testing.TB, h http.Handler) string {
	t.Helper()
	s := httptest.NewServer(h)
	t.Cleanup(s.Close)
	return s.URL
}

func stringsReader(s string) io.Reader { return strings.NewReader(s) }
