package authserver

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/oauthkit/authserver/resource"
)

// newDemoAPIEnv starts a server with the in-process demo API mounted.
func newDemoAPIEnv(t *testing.T, mods ...func(*Config)) *testEnv {
	t.Helper()
	env := newTestEnv(t, openMemory(t), mods...)
	as, err := New(env.as.cfg, env.store, env.km, WithDemoAPI())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = as.Close() })
	env.as = as
	env.srv.Config.Handler = as.Handler()
	return env
}

func getWithToken(t *testing.T, u, token string) *http.Response {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, u, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

var resourceMetadataParam = regexp.MustCompile(`resource_metadata="([^"]+)"`)

// TestDemoAPIProtectedResourceMetadata follows the in-process demo API's
// challenge to its RFC 9728 metadata over HTTP: the URL is on this server,
// formed from the resource identifier as §3.1 says, and the document's
// resource is that identifier (§3.3), which is the aud of issued tokens.
func TestDemoAPIProtectedResourceMetadata(t *testing.T) {
	env := newDemoAPIEnv(t)
	resp := getWithToken(t, env.srv.URL+"/api/me", "")
	resp.Body.Close()
	m := resourceMetadataParam.FindStringSubmatch(resp.Header.Get("WWW-Authenticate"))
	want := env.issuer + "/.well-known/oauth-protected-resource/api"
	if resp.StatusCode != 401 || m == nil || m[1] != want {
		t.Fatalf("challenge: %d %q, want resource_metadata=%q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"), want)
	}
	resp = getWithToken(t, m[1], "")
	var md resource.ProtectedResourceMetadata
	if err := json.NewDecoder(resp.Body).Decode(&md); err != nil || resp.StatusCode != 200 {
		t.Fatalf("metadata: %d %v", resp.StatusCode, err)
	}
	resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q", ct)
	}
	if md.Resource != env.issuer+"/api" || len(md.AuthorizationServers) != 1 || md.AuthorizationServers[0] != env.issuer {
		t.Errorf("metadata = %+v", md)
	}
	// The identifier is the aud of the tokens the API accepts.
	at, _ := env.passwordToken("alice@example.com", alicePW)
	payload, err := base64.RawURLEncoding.DecodeString(strings.Split(at, ".")[1])
	if err != nil {
		t.Fatal(err)
	}
	var claims struct{ Aud []string }
	if err := json.Unmarshal(payload, &claims); err != nil || len(claims.Aud) != 1 || claims.Aud[0] != md.Resource {
		t.Errorf("token aud %v, metadata resource %q", claims.Aud, md.Resource)
	}
	if resp := getWithToken(t, env.srv.URL+"/api/me", at); resp.StatusCode != 200 {
		t.Errorf("/api/me with the token: %d", resp.StatusCode)
	}
	// Only that exact path is the document; the method is GET or HEAD.
	for _, p := range []string{"/.well-known/oauth-protected-resource/apix", "/.well-known/oauth-protected-resource"} {
		if resp := getWithToken(t, env.srv.URL+p, ""); resp.StatusCode != 404 {
			t.Errorf("GET %s: %d, want 404", p, resp.StatusCode)
		}
	}
	if resp, err := http.PostForm(m[1], url.Values{}); err != nil || resp.StatusCode != 405 {
		t.Errorf("POST metadata: %v %v", resp.StatusCode, err)
	}
}

// TestDemoAPIAudienceElsewhere: with an audience on another origin, that
// API owns the metadata; the in-process API names no URL it cannot serve.
func TestDemoAPIAudienceElsewhere(t *testing.T) {
	env := newDemoAPIEnv(t, func(c *Config) { c.Audience = "https://api.example.com/v1" })
	resp := getWithToken(t, env.srv.URL+"/api/me", "")
	resp.Body.Close()
	if wa := resp.Header.Get("WWW-Authenticate"); resp.StatusCode != 401 || strings.Contains(wa, "resource_metadata") {
		t.Fatalf("challenge: %d %q", resp.StatusCode, wa)
	}
	for _, p := range []string{"/.well-known/oauth-protected-resource/v1", "/.well-known/oauth-protected-resource/api"} {
		if resp := getWithToken(t, env.srv.URL+p, ""); resp.StatusCode != 404 {
			t.Errorf("GET %s: %d, want 404", p, resp.StatusCode)
		}
	}
	at, _ := env.passwordToken("alice@example.com", alicePW)
	if resp := getWithToken(t, env.srv.URL+"/api/me", at); resp.StatusCode != 200 {
		t.Errorf("/api/me with a token for the configured audience: %d", resp.StatusCode)
	}
}
