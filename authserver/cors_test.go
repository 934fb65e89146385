package authserver

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
)

func TestCORS(t *testing.T) {
	preflight := func(env *testEnv, origin string, path ...string) *http.Response {
		p := "/token"
		if len(path) > 0 {
			p = path[0]
		}
		req, _ := http.NewRequest(http.MethodOptions, env.srv.URL+p, nil)
		req.Header.Set("Origin", origin)
		req.Header.Set("Access-Control-Request-Method", "POST")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	t.Run("OffByDefault", func(t *testing.T) {
		env := newTestEnv(t, openMemory(t))
		if resp := preflight(env, "https://app.example"); resp.StatusCode != 403 || resp.Header.Get("Access-Control-Allow-Origin") != "" {
			t.Fatalf("preflight: %d %q", resp.StatusCode, resp.Header.Get("Access-Control-Allow-Origin"))
		}
		resp := env.post("/token", url.Values{"grant_type": {"client_credentials"}}, "svc", svcSecret, "Origin", "https://app.example")
		resp.Body.Close()
		if resp.Header.Get("Access-Control-Allow-Origin") != "" {
			t.Fatal("CORS header sent while CORS is off")
		}
	})
	t.Run("AllowedOrigin", func(t *testing.T) {
		env := newTestEnv(t, openMemory(t), func(c *Config) { c.CORSAllowedOrigins = []string{"https://app.example"} })
		resp := preflight(env, "https://app.example")
		if resp.StatusCode != 204 || resp.Header.Get("Access-Control-Allow-Origin") != "https://app.example" ||
			!strings.Contains(resp.Header.Get("Access-Control-Allow-Methods"), "POST") {
			t.Fatalf("preflight: %d %v", resp.StatusCode, resp.Header)
		}
		if resp := preflight(env, "https://evil.example"); resp.StatusCode != 403 || resp.Header.Get("Access-Control-Allow-Origin") != "" {
			t.Fatalf("other origin: %d", resp.StatusCode)
		}
		// Every endpoint the README names, /userinfo with GET too.
		for path, methods := range map[string]string{"/revoke": "POST", "/par": "POST", "/device_authorization": "POST", "/userinfo": "GET, POST"} {
			resp := preflight(env, "https://app.example", path)
			if resp.StatusCode != 204 || resp.Header.Get("Access-Control-Allow-Origin") != "https://app.example" || resp.Header.Get("Access-Control-Allow-Methods") != methods {
				t.Errorf("preflight %s: %d %v", path, resp.StatusCode, resp.Header)
			}
		}
		r := env.post("/token", url.Values{"grant_type": {"client_credentials"}}, "svc", svcSecret, "Origin", "https://app.example")
		r.Body.Close()
		if r.StatusCode != 200 || r.Header.Get("Access-Control-Allow-Origin") != "https://app.example" || !strings.Contains(r.Header.Get("Vary"), "Origin") {
			t.Fatalf("token: %d %v", r.StatusCode, r.Header)
		}
	})
}

func TestHardeningHeadersEverywhere(t *testing.T) {
	env := newTestEnv(t, openMemory(t))
	for _, path := range []string{"/token", "/.well-known/jwks.json", "/.well-known/oauth-authorization-server", "/nope", "/healthz"} {
		resp, err := http.Get(env.srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.Header.Get("X-Content-Type-Options") != "nosniff" || resp.Header.Get("Referrer-Policy") == "" {
			t.Errorf("%s: security headers missing: %v", path, resp.Header)
		}
	}
}
