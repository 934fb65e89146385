package authserver

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/oauthkit/authserver/storage"
)

func TestTokenErrors(t *testing.T) {
	env := newTestEnv(t, openMemory(t))
	_, rt := env.passwordToken("alice@example.com", alicePW)
	form := func(kv ...string) string {
		v := url.Values{}
		for i := 0; i+1 < len(kv); i += 2 {
			v.Add(kv[i], kv[i+1])
		}
		return v.Encode()
	}
	basic := func(id, secret string) string {
		r, _ := http.NewRequest("GET", "/", nil)
		r.SetBasicAuth(id, secret)
		return r.Header.Get("Authorization")
	}
	tests := []struct {
		name        string
		method      string
		contentType string
		body        string
		auth        string
		status      int
		code        string
		challenge   bool
	}{
		{"UnknownGrantType", "", "", form("grant_type", "urn:ietf:params:oauth:grant-type:saml2-bearer", "client_id", "demo"), "", 400, "unsupported_grant_type", false},
		{"AuthorizationCodeWithoutVerifier", "", "", form("grant_type", "authorization_code", "code", "x", "client_id", "demo"), "", 400, "invalid_request", false},
		{"MissingGrantType", "", "", form("client_id", "demo"), "", 400, "invalid_request", false},
		{"RepeatedParameter", "", "", "grant_type=password&username=a&username=b&password=x&client_id=demo", "", 400, "invalid_request", false},
		{"JSONBody", "", "application/json", `{"grant_type":"password"}`, "", 400, "invalid_request", false},
		{"NoContentType", "", "-", form("grant_type", "password"), "", 400, "invalid_request", false},
		{"GetMethod", "GET", "", "", "", 405, "invalid_request", false},
		{"MissingUsername", "", "", form("grant_type", "password", "password", "x", "client_id", "demo"), "", 400, "invalid_request", false},
		{"MissingRefreshToken", "", "", form("grant_type", "refresh_token", "client_id", "demo"), "", 400, "invalid_request", false},
		{"TwoClientAuthMethods", "", "", form("grant_type", "client_credentials", "client_secret", appSecret), basic("app", appSecret), 400, "invalid_request", false},
		{"BasicIDDiffersFromBodyID", "", "", form("grant_type", "client_credentials", "client_id", "svc"), basic("app", appSecret), 400, "invalid_request", false},
		{"WrongClientSecret", "", "", form("grant_type", "client_credentials"), basic("app", "wrong-secret-wrong-secret-wrong-secret"), 401, "invalid_client", true},
		{"UnknownClient", "", "", form("grant_type", "client_credentials"), basic("nobody", appSecret), 401, "invalid_client", true},
		{"NoClientAtAll", "", "", form("grant_type", "client_credentials"), "", 401, "invalid_client", true},
		{"MalformedBasicHeader", "", "", form("grant_type", "client_credentials"), "Basic !!!", 401, "invalid_client", true},
		{"PublicClientSendsSecret", "", "", form("grant_type", "password", "username", "alice@example.com", "password", alicePW, "client_id", "demo", "client_secret", "anything-anything-anything-anything"), "", 401, "invalid_client", true},
		{"ConfidentialClientWithoutSecret", "", "", form("grant_type", "client_credentials", "client_id", "app"), "", 401, "invalid_client", true},
		{"GrantNotAllowedForClient", "", "", form("grant_type", "password", "username", "alice@example.com", "password", alicePW), basic("svc", svcSecret), 400, "unauthorized_client", false},
		{"PublicClientCannotUseClientCredentials", "", "", form("grant_type", "client_credentials", "client_id", "demo"), "", 400, "unauthorized_client", false},
		{"ScopeNotAllowed", "", "", form("grant_type", "client_credentials", "scope", "admin"), basic("svc", svcSecret), 400, "invalid_scope", false},
		{"WrongPassword", "", "", form("grant_type", "password", "username", "alice@example.com", "password", "nope", "client_id", "demo"), "", 400, "invalid_grant", false},
		{"UnknownRefreshToken", "", "", form("grant_type", "refresh_token", "refresh_token", "ory_rt_bogus.bogus", "client_id", "demo"), "", 400, "invalid_grant", false},
		{"RefreshWiderScope", "", "", form("grant_type", "refresh_token", "refresh_token", rt, "scope", "read write admin", "client_id", "demo"), "", 400, "invalid_scope", false},
		{"RefreshByAnotherClient", "", "", form("grant_type", "refresh_token", "refresh_token", rt), basic("app", appSecret), 400, "invalid_grant", false},
		{"BodyTooLarge", "", "", form("grant_type", "password", "pad", strings.Repeat("x", 70<<10)), "", 413, "invalid_request", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			method := tc.method
			if method == "" {
				method = http.MethodPost
			}
			req, _ := http.NewRequest(method, env.srv.URL+"/token", strings.NewReader(tc.body))
			switch tc.contentType {
			case "":
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			case "-":
			default:
				req.Header.Set("Content-Type", tc.contentType)
			}
			if tc.auth != "" {
				req.Header.Set("Authorization", tc.auth)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			if resp.Header.Get("Cache-Control") != "no-store" || resp.Header.Get("Pragma") != "no-cache" {
				t.Errorf("caching headers: %q %q", resp.Header.Get("Cache-Control"), resp.Header.Get("Pragma"))
			}
			if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
				t.Errorf("Content-Type = %q", ct)
			}
			m := decode(t, resp)
			if resp.StatusCode != tc.status || m["error"] != tc.code {
				t.Fatalf("got %d %v, want %d %s", resp.StatusCode, m, tc.status, tc.code)
			}
			if len(m) > 2 {
				t.Errorf("body has extra members: %v", m)
			}
			if d, _ := m["error_description"].(string); d == "" || strings.Contains(strings.ToLower(d), "sql") || strings.Contains(d, "storage") {
				t.Errorf("error_description %q is empty or leaks internals", d)
			}
			wa := resp.Header.Get("WWW-Authenticate")
			if tc.challenge != (wa != "") || (tc.challenge && !strings.HasPrefix(wa, "Basic realm=")) {
				t.Errorf("WWW-Authenticate = %q, want challenge=%v", wa, tc.challenge)
			}
		})
	}
}

func TestSuccessResponseShape(t *testing.T) {
	env := newTestEnv(t, openMemory(t))
	resp := env.post("/token", url.Values{"grant_type": {"password"}, "username": {"alice@example.com"}, "password": {alicePW}, "scope": {"read"}, "client_id": {"demo"}}, "", "")
	if resp.Header.Get("Cache-Control") != "no-store" || resp.Header.Get("Pragma") != "no-cache" {
		t.Errorf("caching headers missing on success")
	}
	m := decode(t, resp)
	if resp.StatusCode != 200 {
		t.Fatalf("%d %v", resp.StatusCode, m)
	}
	if m["token_type"] != "Bearer" || m["scope"] != "read" || m["refresh_token"] == nil {
		t.Fatalf("body %v", m)
	}
	if exp, ok := m["expires_in"].(float64); !ok || exp != float64(int64(exp)) || exp < 890 || exp > 900 {
		t.Fatalf("expires_in = %v, want integer 900", m["expires_in"])
	}
}

// Wrong password, unknown user and disabled user give byte-identical
// responses.
func TestNoUserEnumeration(t *testing.T) {
	env := newTestEnv(t, openMemory(t))
	if _, err := env.store.UpdateUser(context.Background(), env.bob.ID, func(u storage.User) (storage.User, error) {
		u.Disabled = true
		return u, nil
	}); err != nil {
		t.Fatal(err)
	}
	body := func(user, pw string) []byte {
		resp := env.post("/token", url.Values{"grant_type": {"password"}, "username": {user}, "password": {pw}, "client_id": {"demo"}}, "", "")
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 400 {
			t.Fatalf("%s: status %d", user, resp.StatusCode)
		}
		return b
	}
	wrong := body("alice@example.com", "wrong-password")
	unknown := body("nobody@example.com", "wrong-password")
	disabled := body("bob@example.com", bobPW)
	if !bytes.Equal(wrong, unknown) || !bytes.Equal(wrong, disabled) {
		t.Fatalf("responses differ:\n%s\n%s\n%s", wrong, unknown, disabled)
	}
}

func TestRefreshRotation(t *testing.T) {
	for name, open := range map[string]func(testing.TB) storage.Store{"Memory": openMemory, "SQLite": openSQLite} {
		t.Run(name, func(t *testing.T) {
			env := newTestEnv(t, open(t))
			at1, rt1 := env.passwordToken("alice@example.com", alicePW)
			refresh := func(rt string, extra ...string) (*http.Response, map[string]any) {
				f := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}, "client_id": {"demo"}}
				for i := 0; i+1 < len(extra); i += 2 {
					f.Set(extra[i], extra[i+1])
				}
				resp := env.post("/token", f, "", "")
				return resp, decode(t, resp)
			}
			resp, m := refresh(rt1)
			if resp.StatusCode != 200 {
				t.Fatalf("first refresh: %d %v", resp.StatusCode, m)
			}
			at2, rt2 := m["access_token"].(string), m["refresh_token"].(string)
			if env.introspect(at1)["active"] != false {
				t.Error("the previous access token must die on refresh")
			}
			// Revoking the dead access token is a no-op (RFC 7009 §2.2): it
			// is no handle on the grant's live tokens.
			if resp := env.post("/revoke", url.Values{"token": {at1}, "client_id": {"demo"}}, "", ""); resp.StatusCode != 200 {
				t.Fatalf("revoke old access token: %d", resp.StatusCode)
			}
			if env.introspect(at2)["active"] != true || env.introspect(rt2)["active"] != true {
				t.Fatal("new pair inactive")
			}
			// Narrower scope: the access token gets it, the refresh token keeps the grant's.
			resp, m = refresh(rt2, "scope", "read")
			if resp.StatusCode != 200 || m["scope"] != "read" {
				t.Fatalf("narrow refresh: %d %v", resp.StatusCode, m)
			}
			at3, rt3 := m["access_token"].(string), m["refresh_token"].(string)
			if got := env.introspect(at3)["scope"]; got != "read" {
				t.Errorf("narrowed access token scope = %v", got)
			}
			if got := env.introspect(rt3)["scope"]; got != "read write" {
				t.Errorf("refresh token scope = %v, want the grant's", got)
			}
			// Reuse of a rotated token fails and kills the whole grant.
			resp, m = refresh(rt1)
			if resp.StatusCode != 400 || m["error"] != "invalid_grant" {
				t.Fatalf("reuse: %d %v", resp.StatusCode, m)
			}
			for _, tok := range []string{at3, rt3} {
				if env.introspect(tok)["active"] != false {
					t.Error("reuse must revoke the whole grant")
				}
			}
			if resp, m := refresh(rt3); resp.StatusCode != 400 || m["error"] != "invalid_grant" {
				t.Fatalf("refresh after reuse detection: %d %v", resp.StatusCode, m)
			}
		})
	}
}
