package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/oauthkit/authserver/authserver"
	"github.com/oauthkit/authserver/internal/dpop"
	"github.com/oauthkit/authserver/internal/dpop/dpoptest"
	"github.com/oauthkit/authserver/internal/password"
	"github.com/oauthkit/authserver/keys"
	"github.com/oauthkit/authserver/storage"
	"github.com/oauthkit/authserver/storage/memory"
)

// startRun runs the resource server with args and returns its base URL.
func startRun(t *testing.T, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, append([]string{"--addr", "127.0.0.1:0"}, args...), pw)
		pw.Close()
	}()
	t.Cleanup(func() { cancel(); <-done })
	addrc := make(chan string, 1)
	go func() {
		re := regexp.MustCompile(`addr=(\S+)`)
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			if m := re.FindStringSubmatch(sc.Text()); m != nil {
				addrc <- m[1]
			}
		}
	}()
	select {
	case a := <-addrc:
		return "http://" + a
	case err := <-done:
		t.Fatalf("run ended: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("the server did not start")
	}
	return ""
}

// dpopClient is a DPoP client built on go-jose: it keeps its key, makes a
// proof per request and retries once with a server nonce (RFC 9449 §8, §9).
type dpopClient struct {
	t     *testing.T
	key   *dpoptest.Key
	nonce map[string]string // by origin
}

func newDPoPClient(t *testing.T) *dpopClient {
	return &dpopClient{t: t, key: dpoptest.NewKey(t), nonce: map[string]string{}}
}

// do sends a request built by mk, with a proof for htu (the URL the
// client believes it addresses) and token (ath), and returns the status,
// headers and JSON body.
func (c *dpopClient) do(mk func() *http.Request, htu, token string) (int, http.Header, map[string]any) {
	c.t.Helper()
	for attempt := 0; ; attempt++ {
		req := mk()
		u, _ := url.Parse(htu)
		req.Header.Set("DPoP", c.key.Proof(dpop.ProofClaims{Method: req.Method, URL: htu, AccessToken: token, Nonce: c.nonce[u.Host]}))
		if token != "" {
			req.Header.Set("Authorization", "DPoP "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			c.t.Fatal(err)
		}
		var body map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		if n := resp.Header.Get("DPoP-Nonce"); n != "" {
			c.nonce[u.Host] = n
		}
		nonceErr := body["error"] == "use_dpop_nonce" || strings.Contains(resp.Header.Get("WWW-Authenticate"), `error="use_dpop_nonce"`)
		if nonceErr && attempt == 0 {
			continue
		}
		return resp.StatusCode, resp.Header, body
	}
}

func (c *dpopClient) token(issuer string, form url.Values) (int, map[string]any) {
	c.t.Helper()
	status, _, body := c.do(func() *http.Request {
		req, _ := http.NewRequest(http.MethodPost, issuer+"/token", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		return req
	}, issuer+"/token", "")
	return status, body
}

func (c *dpopClient) get(target, htu, token string) (int, http.Header, map[string]any) {
	c.t.Helper()
	return c.do(func() *http.Request {
		req, _ := http.NewRequest(http.MethodGet, target, nil)
		return req
	}, htu, token)
}

// TestDPoPEndToEnd: a DPoP client gets bound tokens from a real
// authorization server (nonces on, a --require-dpop client) and calls its
// in-process API and this resource server behind a proxy URL; the bound
// refresh token works with the client's key only.
func TestDPoPEndToEnd(t *testing.T) {
	const apiID = "https://api.example/api" // the resource server's public identity
	store := memory.New()
	now := time.Now().UTC()
	h, err := password.Hash("password123", password.TestParams)
	if err != nil {
		t.Fatal(err)
	}
	if err := store.CreateUser(t.Context(), storage.User{ID: "u-ada", Email: "ada@example.com", Name: "Ada", Roles: []string{"admin"}, PasswordHash: h, CreatedAt: now, UpdatedAt: now}); err != nil {
		t.Fatal(err)
	}
	if err := store.CreateClient(t.Context(), storage.Client{ID: "spa", Public: true, RequireDPoP: true, GrantTypes: []string{"password", "refresh_token"},
		Scopes: []string{"read"}, Resources: []string{apiID}, CreatedAt: now, UpdatedAt: now}); err != nil {
		t.Fatal(err)
	}
	secret := []byte("dpop-e2e-secret-0123456789-0123456789-0123")
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	km, err := keys.New(t.Context(), store, keys.Config{Algorithm: "ES256", Secret: secret, TokenLifetime: time.Hour, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(nil)
	issuer := "http://" + srv.Listener.Addr().String()
	as, err := authserver.New(authserver.Config{Issuer: issuer, Secret: secret, PasswordParams: password.TestParams, Logger: logger,
		DPoP: authserver.DPoPConfig{Nonce: true}}, store, km, authserver.WithDemoAPI())
	if err != nil {
		t.Fatal(err)
	}
	srv.Config.Handler = as.Handler()
	srv.Start()
	t.Cleanup(srv.Close)

	rs := startRun(t, "--issuer", issuer, "--audience", apiID, "--external-url", "https://api.example", "--dpop-nonce")
	client := newDPoPClient(t)
	pwForm := func(resource string) url.Values {
		f := url.Values{"grant_type": {"password"}, "username": {"ada@example.com"}, "password": {"password123"}, "client_id": {"spa"}, "scope": {"read"}}
		if resource != "" {
			f.Set("resource", resource)
		}
		return f
	}

	// Without a proof the --require-dpop client gets nothing.
	resp, err := http.PostForm(issuer+"/token", pwForm(""))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 400 {
		t.Fatalf("token without a proof: %d", resp.StatusCode)
	}

	// The in-process API (audience {issuer}/api).
	status, tok := client.token(issuer, pwForm(""))
	if status != 200 || tok["token_type"] != "DPoP" {
		t.Fatalf("token: %d %v", status, tok)
	}
	at := tok["access_token"].(string)
	if code, _, body := client.get(issuer+"/api/me", issuer+"/api/me", at); code != 200 || body["email"] != "ada@example.com" {
		t.Fatalf("in-process /api/me: %d %v", code, body)
	}
	bearer := func(target, token string) (int, string) {
		req, _ := http.NewRequest(http.MethodGet, target, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode, resp.Header.Get("WWW-Authenticate")
	}
	if code, ch := bearer(issuer+"/api/me", at); code != 401 || !strings.Contains(ch, "invalid_token") {
		t.Fatalf("in-process API, bound token as Bearer: %d %q", code, ch)
	}

	// cmd/resourceserver, reached at its listener but known to clients as
	// https://api.example (the proxy case).
	status, tok = client.token(issuer, pwForm(apiID))
	if status != 200 || tok["token_type"] != "DPoP" {
		t.Fatalf("token for the API: %d %v", status, tok)
	}
	at, rt := tok["access_token"].(string), tok["refresh_token"].(string)
	if code, _, body := client.get(rs+"/api/me", "https://api.example/api/me", at); code != 200 || body["id"] != "u-ada" {
		t.Fatalf("resourceserver /api/me: %d %v", code, body)
	}
	if code, ch := bearer(rs+"/api/me", at); code != 401 || !strings.HasPrefix(ch, "Bearer") || !strings.Contains(ch, "invalid_token") {
		t.Fatalf("resourceserver, bound token as Bearer: %d %q", code, ch)
	}
	thief := newDPoPClient(t)
	if code, h, _ := thief.get(rs+"/api/me", "https://api.example/api/me", at); code != 401 || !strings.Contains(h.Get("WWW-Authenticate"), "invalid_dpop_proof") {
		t.Fatalf("resourceserver, stolen token with another key: %d %q", code, h.Get("WWW-Authenticate"))
	}
	if code, h, _ := client.get(rs+"/api/me", rs+"/api/me", at); code != 401 || !strings.Contains(h.Get("WWW-Authenticate"), "invalid_dpop_proof") {
		t.Fatalf("resourceserver, proof for the internal URL: %d %q", code, h.Get("WWW-Authenticate"))
	}

	// Refresh: the public client's refresh token is bound to its key.
	refresh := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}, "client_id": {"spa"}}
	if status, body := thief.token(issuer, refresh); status != 400 || body["error"] != "invalid_dpop_proof" {
		t.Fatalf("refresh with another key: %d %v", status, body)
	}
	status, tok = client.token(issuer, refresh)
	if status != 200 || tok["token_type"] != "DPoP" {
		t.Fatalf("refresh with the bound key: %d %v", status, tok)
	}
	if code, _, _ := client.get(rs+"/api/me", "https://api.example/api/me", tok["access_token"].(string)); code != 200 {
		t.Fatalf("resourceserver with the refreshed token: %d", code)
	}
}
