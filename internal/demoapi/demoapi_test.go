package demoapi_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/oauthkit/authserver/internal/demoapi"
	"github.com/oauthkit/authserver/resource"
	"github.com/oauthkit/authserver/resource/resourcetest"
)

type fixedDirectory struct {
	users []demoapi.UserInfo
	err   error
}

func (d fixedDirectory) ListUsers(context.Context) ([]demoapi.UserInfo, error) { return d.users, d.err }

func setup(t *testing.T, dir demoapi.Directory) (*resourcetest.Issuer, http.Handler) {
	t.Helper()
	is := resourcetest.NewIssuer(t)
	auth, err := resource.New(t.Context(), resource.Config{
		Issuer: is.URL, Audience: is.Audience(), Realm: "demo",
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	return is, demoapi.Handler(auth, dir)
}

func get(t *testing.T, h http.Handler, path, token string) (*httptest.ResponseRecorder, map[string]any) {
	t.Helper()
	r := httptest.NewRequest(http.MethodGet, path, nil)
	if token != "" {
		r.Header.Set("Authorization", "Bearer "+token)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	var body map[string]any
	if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil {
		t.Fatalf("GET %s: body %q: %v", path, w.Body, err)
	}
	return w, body
}

func asJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func TestMe(t *testing.T) {
	is, h := setup(t, fixedDirectory{})
	claims := is.Claims("user-7", "user")
	claims["name"], claims["email"] = "Grace Hopper", "grace@example.com"
	w, body := get(t, h, "/api/me", is.Sign(t, claims))
	if w.Code != 200 {
		t.Fatalf("status %d: %v", w.Code, body)
	}
	want := `{"email":"grace@example.com","id":"user-7","name":"Grace Hopper","roles":["user"]}`
	if got := asJSON(body); got != want {
		t.Errorf("body %s, want %s", got, want)
	}
	if cc := w.Header().Get("Cache-Control"); cc != "no-store" {
		t.Errorf("Cache-Control %q", cc)
	}
}

func TestProtected(t *testing.T) {
	is, h := setup(t, fixedDirectory{})
	claims := is.Claims("user-7", "user", "editor")
	claims["name"] = "Grace"
	_, body := get(t, h, "/api/protected", is.Sign(t, claims))
	want := `{"message":"Hello, Grace! You have access to this protected resource.","roles":["user","editor"]}`
	if got := asJSON(body); got != want {
		t.Errorf("body %s, want %s", got, want)
	}
	// A client_credentials token has no name and no roles.
	cc := is.Claims("service-client")
	delete(cc, "roles")
	_, body = get(t, h, "/api/protected", is.Sign(t, cc))
	want = `{"message":"Hello, service-client! You have access to this protected resource.","roles":[]}`
	if got := asJSON(body); got != want {
		t.Errorf("body %s, want %s", got, want)
	}
}

func TestAdminUsers(t *testing.T) {
	dir := fixedDirectory{users: []demoapi.UserInfo{
		{ID: "1", Name: "Ada", Email: "ada@example.com", Roles: []string{"admin"}},
		{ID: "2", Name: "Bob", Email: "bob@example.com"},
	}}
	is, h := setup(t, dir)
	w, body := get(t, h, "/api/admin/users", is.Token(t, "1", "admin"))
	if w.Code != 200 {
		t.Fatalf("admin: status %d: %v", w.Code, body)
	}
	want := `{"users":[{"email":"ada@example.com","id":"1","name":"Ada","roles":["admin"]},{"email":"bob@example.com","id":"2","name":"Bob","roles":[]}]}`
	if got := asJSON(body); got != want {
		t.Errorf("body %s, want %s", got, want)
	}

	w, body = get(t, h, "/api/admin/users", is.Token(t, "2", "user"))
	if w.Code != http.StatusForbidden || body["error"] != "insufficient_scope" {
		t.Fatalf("non-admin: status %d: %v", w.Code, body)
	}
	if ch := w.Header().Get("WWW-Authenticate"); !strings.HasPrefix(ch, `Bearer realm="demo", error="insufficient_scope"`) {
		t.Errorf("challenge %q", ch)
	}
}

func TestDirectoryFailureIs500(t *testing.T) {
	is, h := setup(t, fixedDirectory{err: errors.New("database is down")})
	w, body := get(t, h, "/api/admin/users", is.Token(t, "1", "admin"))
	if w.Code != 500 || body["error"] != "server_error" || strings.Contains(w.Body.String(), "database") {
		t.Fatalf("status %d, body %s", w.Code, w.Body)
	}
}

func TestUnauthenticated(t *testing.T) {
	is, h := setup(t, fixedDirectory{})
	expired := is.Claims("user-7")
	expired["exp"] = 1
	for _, path := range []string{"/api/me", "/api/protected", "/api/admin/users"} {
		w, body := get(t, h, path, "")
		if w.Code != 401 || w.Header().Get("WWW-Authenticate") != `Bearer realm="demo"` {
			t.Errorf("%s without a token: %d, %q, %v", path, w.Code, w.Header().Get("WWW-Authenticate"), body)
		}
		w, body = get(t, h, path, is.Sign(t, expired))
		if w.Code != 401 || body["error"] != "invalid_token" ||
			!strings.Contains(w.Header().Get("WWW-Authenticate"), `error="invalid_token"`) {
			t.Errorf("%s with an expired token: %d, %q, %v", path, w.Code, w.Header().Get("WWW-Authenticate"), body)
		}
	}
}

func TestOnlyGET(t *testing.T) {
	is, h := setup(t, fixedDirectory{})
	r := httptest.NewRequest(http.MethodPost, "/api/me", nil)
	r.Header.Set("Authorization", "Bearer "+is.Token(t, "u"))
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	if w.Code != http.StatusMethodNotAllowed {
		t.Errorf("POST /api/me: %d", w.Code)
	}
}
