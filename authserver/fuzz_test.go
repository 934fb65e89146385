package authserver

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
)

// allowedTokenErrors is the vocabulary of RFC 6749 §5.2 (plus server_error
// and temporarily_unavailable).
var allowedTokenErrors = []string{errInvalidRequest, errInvalidClient, errInvalidGrant, errUnauthorizedClient,
	errUnsupportedGrantType, errInvalidScope, errServerError, errTemporarilyUnavailable}

// FuzzTokenEndpoint drives the full token handler, on a real SQLite store,
// with arbitrary bodies, content types and Authorization headers: it must
// never panic or fail with a 5xx, and every error must be an RFC 6749 §5.2
// body with the no-store headers.
func FuzzTokenEndpoint(f *testing.F) {
	env := newTestEnv(f, openSQLite(f), func(c *Config) { c.Throttle.Disabled = true })
	h := env.as.Handler()
	f.Add("grant_type=password&username=alice%40example.com&password=password123&client_id=demo", "application/x-www-form-urlencoded", "")
	f.Add("grant_type=client_credentials&scope=read", "application/x-www-form-urlencoded", "Basic c3ZjOnN2Yy1zZWNyZXQtMDEyMzQ1Njc4OS0wMTIzNDU2Nzg5LWFiY2RlZmc=")
	f.Add("grant_type=refresh_token&refresh_token=ory_rt_a.b&client_id=demo", "application/x-www-form-urlencoded; charset=utf-8", "")
	f.Add("grant_type=password&grant_type=password", "application/x-www-form-urlencoded", "Basic Og==")
	f.Add("%zz=1", "application/x-www-form-urlencoded", "Bearer x")
	f.Add(`{"grant_type":"password"}`, "application/json", "")
	f.Add("grant_type=client_credentials&client_id=a%00b&client_secret=x", "application/x-www-form-urlencoded", "basic   ")
	// Client assertions (RFC 7523) and the jwt-bearer grant.
	f.Add("grant_type=client_credentials&client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer&client_assertion=eyJhbGciOiJFUzI1NiJ9.eyJpc3MiOiJzdmMiLCJzdWIiOiJzdmMifQ.AAAA", "application/x-www-form-urlencoded", "")
	f.Add("grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion=eyJhbGciOiJub25lIn0.e30.", "application/x-www-form-urlencoded", "Basic c3ZjOnN2Yy1zZWNyZXQtMDEyMzQ1Njc4OS0wMTIzNDU2Nzg5LWFiY2RlZmc=")
	f.Fuzz(func(t *testing.T, body, contentType, auth string) {
		req := httptest.NewRequest(http.MethodPost, "/token", strings.NewReader(body))
		req.Header.Set("Content-Type", contentType)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code >= 500 {
			t.Fatalf("status %d for body %q: %s", w.Code, body, w.Body)
		}
		if w.Header().Get("Cache-Control") != "no-store" {
			t.Fatalf("no Cache-Control: no-store")
		}
		var m map[string]any
		if err := json.Unmarshal(w.Body.Bytes(), &m); err != nil {
			t.Fatalf("body is not JSON: %q", w.Body)
		}
		if w.Code != 200 {
			code, _ := m["error"].(string)
			if !slices.Contains(allowedTokenErrors, code) {
				t.Fatalf("error code %q is not from RFC 6749 §5.2", code)
			}
		}
	})
}

// FuzzClientCredentials parses client authentication from arbitrary headers
// and forms: no panic, and a result only with a client ID.
func FuzzClientCredentials(f *testing.F) {
	f.Add("Basic YXBwOnNlY3JldA==", "client_id=app")
	f.Add("Basic YSUzQWI6YyUyNWQ=", "")
	f.Add("basic !!!", "client_secret=x")
	f.Add("Bearer abc", "client_id=&client_secret=")
	f.Add("Basic", "client_id=a&client_id=b")
	f.Fuzz(func(t *testing.T, header, body string) {
		form, err := url.ParseQuery(body)
		if err != nil {
			return
		}
		req := httptest.NewRequest(http.MethodPost, "/token", nil)
		req.Header.Set("Authorization", header)
		cc, oerr := readClientCredentials(req, form)
		if oerr == nil && cc.id == "" {
			t.Fatalf("credentials without a client ID from %q / %q", header, body)
		}
		if oerr != nil && oerr.Code != errInvalidClient && oerr.Code != errInvalidRequest {
			t.Fatalf("unexpected error %v", oerr)
		}
	})
}
