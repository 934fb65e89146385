package authserver

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
)

// FuzzMatchRedirectURI: a requested redirect URI matches only a registered
// one exactly, or a registered loopback URI with only the port changed; it
// never matches with user information or a fragment.
func FuzzMatchRedirectURI(f *testing.F) {
	registered := []string{"https://app.example/cb", "http://127.0.0.1/cb", "http://[::1]:8080/cb?x=1", "com.example.app:/cb"}
	for _, s := range []string{"https://app.example/cb", "http://127.0.0.1:5000/cb", "http://[::1]:1/cb?x=1", "http://127.0.0.1:5000/cb#x",
		"http://a@127.0.0.1:1/cb", "http://127.0.0.1:1/cb/", "HTTP://127.0.0.1:1/cb", "http://127.0.0.1:1/%63b", "com.example.app:/cb"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, requested string) {
		got, ok := matchRedirectURI(registered, requested, true)
		if !ok {
			return
		}
		if got != requested {
			t.Fatalf("matched %q as %q", requested, got)
		}
		if slices.Contains(registered, requested) {
			return
		}
		u, err := url.Parse(requested)
		if err != nil || u.Scheme != "http" || u.User != nil || strings.Contains(requested, "#") || !isLoopbackLiteral(u.Hostname()) {
			t.Fatalf("%q matched but is not a loopback http URI", requested)
		}
		for _, reg := range registered {
			r, _ := url.Parse(reg)
			if r.Scheme == "http" && r.Hostname() == u.Hostname() && r.EscapedPath() == u.EscapedPath() && r.RawQuery == u.RawQuery {
				return
			}
		}
		t.Fatalf("%q matched no registered loopback URI by path and query", requested)
	})
}

// FuzzAuthorizeEndpoint: any query string gets an error page (400) or a
// redirect to a registered redirect URI; never a 5xx, never a redirect
// elsewhere.
func FuzzAuthorizeEndpoint(f *testing.F) {
	env := newTestEnv(f, openMemory(f))
	seedCodeClients(f, env)
	h := env.as.Handler()
	for _, s := range []string{
		"response_type=code&client_id=web&redirect_uri=https%3A%2F%2Fweb.example%2Fcb&code_challenge=" + strings.Repeat("a", 43) + "&code_challenge_method=S256",
		"client_id=web&redirect_uri=https%3A%2F%2Fweb.example%2Fcb&response_type=token",
		"client_id=web&request_uri=urn%3Aietf%3Aparams%3Aoauth%3Arequest_uri%3Ax",
		"client_id=web&redirect_uri=http%3A%2F%2F127.0.0.1%3A1%2Fcb&scope=read%20x&resource=%2F",
		"%zz", "client_id=web&client_id=web",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, query string) {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest(http.MethodGet, "/authorize", nil)
		req.URL.RawQuery = query
		h.ServeHTTP(rec, req)
		switch {
		case rec.Code >= 500:
			t.Fatalf("%q: %d %s", query, rec.Code, rec.Body)
		case rec.Code == http.StatusSeeOther:
			loc := rec.Header().Get("Location")
			if strings.HasPrefix(loc, "/login?") || strings.HasPrefix(loc, "/consent?") {
				return
			}
			// The registered loopback URI itself (no port) or with any
			// port (RFC 8252 §7.3).
			for _, r := range []string{webRedirect, "com.example.app:/cb", "http://127.0.0.1:", loopRedirect + "?"} {
				if strings.HasPrefix(loc, r) {
					return
				}
			}
			t.Fatalf("%q redirected to %q", query, loc)
		case rec.Code != http.StatusBadRequest:
			t.Fatalf("%q: unexpected %d", query, rec.Code)
		}
	})
}
