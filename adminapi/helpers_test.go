package adminapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"

	"github.com/oauthkit/authserver/adminapi"
	"github.com/oauthkit/authserver/authserver"
	"github.com/oauthkit/authserver/internal/password"
	"github.com/oauthkit/authserver/keys"
	"github.com/oauthkit/authserver/storage"
	sqlstore "github.com/oauthkit/authserver/storage/sql"
)

const (
	opsSecret = "ops-secret-0123456789-0123456789-abcdef"
	svcSecret = "svc-secret-0123456789-0123456789-abcdef"
	alicePW   = "correct horse battery staple 1"
)

var testSecret = []byte("test-secret-0123456789-0123456789-0123456789")

// env is a server on a real SQLite database with its public listener and its
// admin listener, each an httptest.Server.
type env struct {
	t      testing.TB
	store  storage.Store
	km     *keys.Manager
	pub    *httptest.Server
	admin  *httptest.Server
	audit  *syncBuffer
	ring   *adminapi.AuditRing
	token  string // an admin token of the ops client
	alice  storage.User
	router routers.Router
	srv    *authserver.Server
	log    *authserver.AuditLog
}

// syncBuffer is a bytes.Buffer safe for the audit log's writes.
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

// openAPIRouter loads the document once; a broken document fails every test.
var openAPIRouter = sync.OnceValues(func() (routers.Router, error) {
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(adminapi.OpenAPI)
	if err != nil {
		return nil, err
	}
	if err := doc.Validate(loader.Context); err != nil {
		return nil, err
	}
	doc.Servers = nil // match whatever address the test server has
	return gorillamux.NewRouter(doc)
})

// newEnv starts the public server and the admin API on a fresh SQLite
// store; opts adjust the public server's configuration.
func newEnv(t testing.TB, opts ...func(*authserver.Config)) *env {
	t.Helper()
	ctx := t.Context()
	st, err := sqlstore.OpenSQLite(ctx, t.TempDir()+"/auth.db")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	e := &env{t: t, store: st, audit: &syncBuffer{}, ring: adminapi.NewAuditRing(100)}
	if e.router, err = openAPIRouter(); err != nil {
		t.Fatalf("the OpenAPI document does not load: %v", err)
	}
	now := time.Now().UTC()
	h, err := password.Hash(alicePW, password.TestParams)
	if err != nil {
		t.Fatal(err)
	}
	e.alice = storage.User{ID: "u-alice", Email: "alice@example.com", Name: "Alice", Roles: []string{"admin"}, PasswordHash: h, CreatedAt: now, UpdatedAt: now}
	if err := st.CreateUser(ctx, e.alice); err != nil {
		t.Fatal(err)
	}
	for _, c := range []storage.Client{
		{ID: "ops", SecretHashes: []string{password.HashSecret(opsSecret)}, GrantTypes: []string{"client_credentials"}, Scopes: []string{"admin"}},
		{ID: "svc", SecretHashes: []string{password.HashSecret(svcSecret)}, GrantTypes: []string{"client_credentials"}, Scopes: []string{"read"}},
		{ID: "app", Public: true, GrantTypes: []string{"password", "refresh_token"}, Scopes: []string{"read"}},
	} {
		c.CreatedAt, c.UpdatedAt = now, now
		if err := st.CreateClient(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	e.km, err = keys.New(ctx, st, keys.Config{Algorithm: "ES256", Secret: testSecret, TokenLifetime: time.Hour, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	e.pub = httptest.NewUnstartedServer(nil)
	auditLog := authserver.NewAuditLog(io.MultiWriter(e.audit, e.ring), 1)
	cfg := authserver.Config{Issuer: "http://" + e.pub.Listener.Addr().String(), Secret: testSecret,
		PasswordParams: password.TestParams, Logger: quiet, Audit: auditLog}
	for _, o := range opts {
		o(&cfg)
	}
	srv, err := authserver.New(cfg, st, e.km)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	e.srv, e.log = srv, auditLog
	e.pub.Config.Handler = srv.Handler()
	e.pub.Start()
	t.Cleanup(e.pub.Close)
	api, err := adminapi.New(ctx, adminapi.Config{Store: st, Keys: e.km, Server: srv, Audit: auditLog, Ring: e.ring,
		PasswordParams: password.TestParams, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	e.admin = httptest.NewServer(api.Handler())
	t.Cleanup(e.admin.Close)
	e.token = e.clientToken("ops", opsSecret, "admin")
	return e
}

// clientToken gets a client_credentials access token from the public listener.
func (e *env) clientToken(id, secret, scope string) string {
	e.t.Helper()
	form := url.Values{"grant_type": {"client_credentials"}, "scope": {scope}}
	req, _ := http.NewRequest(http.MethodPost, e.pub.URL+"/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(id, secret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	var tr struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&tr); err != nil || resp.StatusCode != 200 || tr.AccessToken == "" {
		e.t.Fatalf("token for %s: status %d, err %v", id, resp.StatusCode, err)
	}
	return tr.AccessToken
}

// result is one admin API response.
type result struct {
	status int
	header http.Header
	body   []byte
}

// decode unmarshals the body into v.
func (r result) decode(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("decode %s: %v", r.body, err)
	}
}

// call sends a request to the admin listener with the env's admin token and
// validates the response against the OpenAPI document.
func (e *env) call(method, path string, body any, hdr ...string) result {
	e.t.Helper()
	return e.callAs(e.token, method, path, body, hdr...)
}

// callAs is call with another token ("" for none).
func (e *env) callAs(token, method, path string, body any, hdr ...string) result {
	e.t.Helper()
	var rd io.Reader
	var raw []byte
	switch b := body.(type) {
	case nil:
	case string:
		raw = []byte(b)
	default:
		raw, _ = json.Marshal(b)
	}
	if raw != nil {
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, e.admin.URL+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	if raw != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	res := result{status: resp.StatusCode, header: resp.Header, body: b}
	e.validate(req, raw, res)
	return res
}

// validate checks a response against the OpenAPI document: its status must
// be documented for the operation and its body must match the schema. A
// request to no documented operation must get a problem.
func (e *env) validate(req *http.Request, body []byte, res result) {
	e.t.Helper()
	if body != nil {
		req.Body = io.NopCloser(bytes.NewReader(body))
	}
	route, params, err := e.router.FindRoute(req)
	if err != nil {
		if ct := res.header.Get("Content-Type"); res.status < 400 || ct != "application/problem+json" {
			e.t.Errorf("%s %s (no documented operation): status %d, Content-Type %q", req.Method, req.URL.Path, res.status, ct)
		}
		return
	}
	opts := &openapi3filter.Options{IncludeResponseStatus: true, AuthenticationFunc: openapi3filter.NoopAuthenticationFunc}
	in := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route, Options: opts},
		Status:                 res.status,
		Header:                 res.header,
		Options:                opts,
	}
	in.SetBodyBytes(res.body)
	if err := openapi3filter.ValidateResponse(context.Background(), in); err != nil {
		e.t.Errorf("%s %s: response %d does not match the OpenAPI document: %v\nbody: %s", req.Method, req.URL.Path, res.status, err, res.body)
	}
}

// want fails unless the response has the status.
func (r result) want(t *testing.T, status int) result {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d; body %s", r.status, status, r.body)
	}
	return r
}
