package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/oauthkit/authserver/resource"
	"github.com/oauthkit/authserver/resource/resourcetest"
)

func TestParseFlags(t *testing.T) {
	secret := filepath.Join(t.TempDir(), "secret")
	cases := []struct {
		name    string
		args    []string
		wantErr string
		check   func(config) bool
	}{
		// The default identifier is derived from the bound address by run.
		{"AudienceDefault", []string{"--issuer", "https://auth.example/"}, "", func(c config) bool {
			return c.audience == "" && c.mode == resource.ModeLocal
		}},
		{"AudienceGiven", []string{"--issuer", "https://auth.example/", "--addr", ":8081", "--audience", "https://api.example/v1"}, "", func(c config) bool {
			return c.audience == "https://api.example/v1"
		}},
		{"WildcardAddrNeedsAudience", []string{"--issuer", "https://a", "--addr", ":8081"}, "give --audience", nil},
		{"UnspecifiedAddrNeedsAudience", []string{"--issuer", "https://a", "--addr", "0.0.0.0:8081"}, "give --audience", nil},
		{"Introspect", []string{"--issuer", "https://a", "--mode", "introspect", "--introspect-client-id", "api", "--introspect-client-secret-file", secret}, "",
			func(c config) bool { return c.mode == resource.ModeIntrospect && c.clientID == "api" }},
		{"NoIssuer", nil, "--issuer is required", nil},
		{"BadMode", []string{"--issuer", "https://a", "--mode", "both"}, "unknown mode", nil},
		{"IntrospectWithoutCreds", []string{"--issuer", "https://a", "--mode", "local-then-introspect"}, "needs --introspect-client-id", nil},
		{"CredsInLocalMode", []string{"--issuer", "https://a", "--introspect-client-id", "api"}, "--mode is local", nil},
		{"StrayArgument", []string{"--issuer", "https://a", "serve"}, "unexpected arguments", nil},
		{"IssuerWaitDefault", []string{"--issuer", "https://a"}, "", func(c config) bool { return c.issuerWait == 30*time.Second }},
		{"IssuerWaitOff", []string{"--issuer", "https://a", "--issuer-wait", "0"}, "", func(c config) bool { return c.issuerWait == 0 }},
		{"IssuerWaitNegative", []string{"--issuer", "https://a", "--issuer-wait", "-1s"}, "must not be negative", nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := parseFlags(tc.args, io.Discard)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || !tc.check(c) {
				t.Fatalf("config %+v, err %v", c, err)
			}
		})
	}
}

func TestMissingSecretFile(t *testing.T) {
	is := resourcetest.NewIssuer(t)
	err := run(t.Context(), []string{"--issuer", is.URL, "--mode", "introspect", "--introspect-client-id", "api",
		"--introspect-client-secret-file", filepath.Join(t.TempDir(), "absent")}, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "secret") {
		t.Fatalf("err = %v", err)
	}
}

// TestServesDemoAPI runs the command's logic on a free port against a fake
// issuer and drives it over HTTP.
func TestServesDemoAPI(t *testing.T) {
	is := resourcetest.NewIssuer(t)
	ctx, cancel := context.WithCancel(t.Context())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"--addr", "127.0.0.1:0", "--issuer", is.URL}, pw)
		pw.Close()
	}()
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
	var base string
	select {
	case a := <-addrc:
		base = "http://" + a
	case err := <-done:
		t.Fatalf("run ended: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("the server did not start")
	}

	get := func(path, token string) (int, http.Header, map[string]any) {
		t.Helper()
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, base+path, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body map[string]any
		if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		return resp.StatusCode, resp.Header, body
	}

	// This API's resource identifier is its own base URL (RFC 9728): the
	// issuer must put it in aud.
	resourceID := base + "/api"
	forAPI := func(c map[string]any) map[string]any { c["aud"] = []string{resourceID}; return c }
	ada := forAPI(is.Claims("user-1", "admin"))
	ada["name"], ada["email"] = "Ada", "ada@example.com"
	adaTok := is.Sign(t, ada)
	bobTok := is.Sign(t, forAPI(is.Claims("user-2", "user")))
	serviceTok := is.Sign(t, func() map[string]any { c := forAPI(is.Claims("test-client")); delete(c, "roles"); return c }())
	if code, h, _ := get("/api/me", is.Token(t, "user-1", "admin")); code != 401 || !strings.Contains(h.Get("WWW-Authenticate"), "invalid_token") {
		t.Errorf("a token for another resource ({issuer}/api): %d %q", code, h.Get("WWW-Authenticate"))
	}

	if code, _, body := get("/api/me", adaTok); code != 200 || body["name"] != "Ada" {
		t.Errorf("/api/me: %d %v", code, body)
	}
	if code, _, body := get("/api/protected", bobTok); code != 200 || !strings.HasPrefix(body["message"].(string), "Hello, user-2!") {
		t.Errorf("/api/protected: %d %v", code, body)
	}
	get("/api/protected", serviceTok)
	if code, h, _ := get("/api/admin/users", bobTok); code != 403 || !strings.Contains(h.Get("WWW-Authenticate"), "insufficient_scope") {
		t.Errorf("/api/admin/users as user: %d %q", code, h.Get("WWW-Authenticate"))
	}
	code, _, body := get("/api/admin/users", adaTok)
	users, _ := json.Marshal(body["users"])
	if want := `[{"email":"ada@example.com","id":"user-1","name":"Ada","roles":["admin"]},{"email":"","id":"user-2","name":"","roles":["user"]}]`; code != 200 || string(users) != want {
		t.Errorf("/api/admin/users: %d %s, want %s", code, users, want)
	}
	// The challenge names the metadata on this API's own origin (RFC 9728
	// §3.1, §5.1); following it gives the document whose resource is the
	// identifier the URL was formed from (§3.3).
	code, h, _ := get("/api/me", "")
	metaURL := base + "/.well-known/oauth-protected-resource/api"
	if want := `Bearer realm="demo-api", resource_metadata="` + metaURL + `"`; code != 401 || h.Get("WWW-Authenticate") != want {
		t.Fatalf("no token: %d %q, want %q", code, h.Get("WWW-Authenticate"), want)
	}
	resp, err := http.Get(regexp.MustCompile(`resource_metadata="([^"]+)"`).FindStringSubmatch(h.Get("WWW-Authenticate"))[1])
	if err != nil {
		t.Fatal(err)
	}
	var md resource.ProtectedResourceMetadata
	if err := json.NewDecoder(resp.Body).Decode(&md); err != nil || resp.StatusCode != 200 {
		t.Fatalf("metadata: %d %v", resp.StatusCode, err)
	}
	resp.Body.Close()
	if md.Resource != resourceID || len(md.AuthorizationServers) != 1 || md.AuthorizationServers[0] != is.URL {
		t.Errorf("metadata = %+v, want resource %s and authorization server %s", md, resourceID, is.URL)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no shutdown")
	}
}

func TestSeenUsersIsBounded(t *testing.T) {
	s := newSeenUsers(2)
	for _, id := range []string{"a", "b", "c"} {
		_ = s.record(t.Context(), "", &resource.Claims{Subject: id, ClientID: "cl"})
	}
	_ = s.record(t.Context(), "", &resource.Claims{Subject: "a", ClientID: "cl", Name: "renamed"})
	users, _ := s.ListUsers(t.Context())
	if len(users) != 2 || users[0].Name != "renamed" {
		t.Errorf("users = %+v", users)
	}
}

// refusingTransport refuses its first refusals round trips as a closed port
// does, then passes them on.
type refusingTransport struct {
	refusals int32
	n        atomic.Int32
}

func (rt *refusingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if rt.n.Add(1) <= rt.refusals {
		return nil, &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}
	}
	return http.DefaultTransport.RoundTrip(r)
}

// An API started before its issuer waits for it (--issuer-wait); an issuer
// that answers wrongly, or no wait, fails at once.
func TestIssuerWait(t *testing.T) {
	is := resourcetest.NewIssuer(t)
	var logs strings.Builder
	logger := slog.New(slog.NewTextHandler(&logs, nil))
	config := func(issuer string, rt http.RoundTripper) resource.Config {
		return resource.Config{Issuer: issuer, Audience: "http://127.0.0.1:8082/api", HTTPClient: &http.Client{Transport: rt}, Logger: logger}
	}

	rt := &refusingTransport{refusals: 3}
	auth, err := newAuthenticator(t.Context(), config(is.URL, rt), 30*time.Second, logger)
	if err != nil || auth == nil {
		t.Fatalf("after 3 refusals: %v", err)
	}
	if got := strings.Count(logs.String(), "cannot be reached yet"); got != 3 || rt.n.Load() < 4 {
		t.Errorf("%d warnings, %d round trips; want 3 warnings and at least 4 round trips\n%s", got, rt.n.Load(), logs.String())
	}

	if _, err := newAuthenticator(t.Context(), config(is.URL, &refusingTransport{refusals: 1}), 0, logger); err == nil || !unreachable(err) {
		t.Errorf("no wait: err = %v, want the refusal", err)
	}

	// A 404 is an answer: no retry.
	logs.Reset()
	wrong := &refusingTransport{}
	if _, err := newAuthenticator(t.Context(), config(is.URL+"/elsewhere", wrong), 30*time.Second, logger); err == nil || unreachable(err) {
		t.Errorf("an issuer without metadata: err = %v", err)
	}
	if logs.Len() != 0 || wrong.n.Load() > 2 {
		t.Errorf("retried an answer: %d round trips\n%s", wrong.n.Load(), logs.String())
	}

	// Stopping the process stops the wait.
	ctx, cancel := context.WithCancel(t.Context())
	time.AfterFunc(300*time.Millisecond, cancel)
	if _, err := newAuthenticator(ctx, config(is.URL, &refusingTransport{refusals: 1 << 30}), time.Hour, logger); !errors.Is(err, context.Canceled) {
		t.Errorf("a cancelled wait: err = %v, want context.Canceled", err)
	}
}
