package authserver

import (
	"net/http"
	"strings"
	"testing"
)

// A method a route does not take is 405 in JSON with the route's methods in
// Allow (RFC 9110 §15.5.6), the JWK Set included.
func TestMethodNotAllowedNamesTheMethods(t *testing.T) {
	env := newTestEnv(t, openMemory(t))
	for _, tc := range []struct{ method, path, allow string }{
		{http.MethodPut, "/.well-known/jwks.json", "GET, HEAD"},
		{http.MethodPost, "/.well-known/oauth-authorization-server", "GET, HEAD"},
		{http.MethodPut, "/userinfo", "GET, POST"},
		{http.MethodDelete, "/register", "POST"},
		{http.MethodPost, "/register/some-client", "GET, PUT, DELETE"},
		{http.MethodPut, "/authorize", "GET, POST"},
	} {
		req, _ := http.NewRequest(tc.method, env.srv.URL+tc.path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		m := decode(t, resp)
		if resp.StatusCode != http.StatusMethodNotAllowed || m["error"] != "method_not_allowed" || resp.Header.Get("Allow") != tc.allow {
			t.Errorf("%s %s: %d %v Allow %q, want 405 with Allow %q", tc.method, tc.path, resp.StatusCode, m, resp.Header.Get("Allow"), tc.allow)
		}
	}
}

// RFC 6750 §3.1 at /userinfo: a malformed Bearer header is 400
// invalid_request, another scheme gets a bare challenge, and an oversized
// form is 413 as at every other endpoint.
func TestUserinfoAuthorizationErrors(t *testing.T) {
	env := newTestEnv(t, openMemory(t))
	call := func(method, auth, body string) (*http.Response, map[string]any) {
		t.Helper()
		req, _ := http.NewRequest(method, env.srv.URL+"/userinfo", strings.NewReader(body))
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		if body != "" {
			req.Header.Set("Content-Type", formContentType)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return resp, decode(t, resp)
	}
	for _, auth := range []string{"Bearer", "Bearer   ", "DPoP", "DPoP  "} {
		resp, m := call(http.MethodGet, auth, "")
		if resp.StatusCode != http.StatusBadRequest || m["error"] != errInvalidRequest || !strings.Contains(resp.Header.Get("WWW-Authenticate"), `error="invalid_request"`) {
			t.Errorf("%q: %d %v %q", auth, resp.StatusCode, m, resp.Header.Get("WWW-Authenticate"))
		}
	}
	resp, m := call(http.MethodGet, "Basic ZGVtbzp4", "")
	if ch := resp.Header.Get("WWW-Authenticate"); resp.StatusCode != http.StatusUnauthorized || m != nil || ch != `Bearer realm="authserver"` {
		t.Errorf("Basic: %d %v %q, want 401 with a bare challenge", resp.StatusCode, m, ch)
	}
	resp, m = call(http.MethodPost, "", "access_token="+strings.Repeat("x", 70<<10))
	if resp.StatusCode != http.StatusRequestEntityTooLarge || m["error"] != errInvalidRequest {
		t.Errorf("oversized form: %d %v", resp.StatusCode, m)
	}
}
