package authserver

import (
	"errors"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/oauthkit/authserver/internal/assertiontest"
	"github.com/oauthkit/authserver/storage"
)

// allowPrivateClientURLs lets a test server call client URLs on httptest
// servers, which listen on 127.0.0.1.
func allowPrivateClientURLs(c *Config) { c.InsecureAllowPrivateClientURLs = true }

func TestIsPublicAddr(t *testing.T) {
	for _, a := range []string{
		"127.0.0.1", "127.1.2.3", "10.1.2.3", "172.16.0.1", "172.31.255.255", "192.168.1.1", "100.64.0.1", "100.127.255.254",
		"169.254.169.254", "0.0.0.0", "0.1.2.3", "224.0.0.1", "239.255.255.250", "255.255.255.255", "240.0.0.1", "198.18.0.1",
		"::1", "::", "fc00::1", "fd12:3456::1", "fe80::1", "fe80::1%eth0", "ff02::1", "fec0::1",
		"::ffff:127.0.0.1", "::ffff:10.0.0.1", "::ffff:169.254.169.254", "::127.0.0.1",
		"64:ff9b::a9fe:a9fe", "64:ff9b::7f00:1", "2002:7f00:1::1", "2002:a00:1::1",
		"192.0.2.1", "198.51.100.7", "203.0.113.9", "2001:db8::1", "2001:0:4136:e378::1", "2001:2::1", "100::1", "64:ff9b:1::a00:1",
	} {
		if isPublicAddr(netip.MustParseAddr(a)) {
			t.Errorf("%s counts as public", a)
		}
	}
	for _, a := range []string{"8.8.8.8", "1.1.1.1", "93.184.216.34", "172.32.0.1", "100.128.0.1", "11.0.0.1", "169.255.0.1",
		"2606:4700:4700::1111", "2a00:1450:4001::1", "::ffff:8.8.8.8", "64:ff9b::808:808", "2002:808:808::1"} {
		if !isPublicAddr(netip.MustParseAddr(a)) {
			t.Errorf("%s counts as non-public", a)
		}
	}
	if isPublicAddr(netip.Addr{}) {
		t.Error("the zero Addr counts as public")
	}
}

// The outbound client refuses to connect to a loopback server, whether it
// is named by address or by a name that resolves to it: the check is on the
// address dialled. No request reaches the server.
func TestOutboundClientRefusesLoopback(t *testing.T) {
	var hits atomic.Int64
	srv := newHTTPTestServer(t, http.HandlerFunc(func(http.ResponseWriter, *http.Request) { hits.Add(1) }))
	port := srv[strings.LastIndex(srv, ":")+1:]
	c := newOutboundClient(2*time.Second, false)
	// localhost may resolve to ::1 first, and on a host without IPv6 that
	// socket fails before the check: for it, any failure without a request
	// will do. (No [::1] literal, for the same reason.)
	for _, u := range []string{srv, "http://127.0.0.2:" + port, "http://localhost:" + port} {
		resp, err := c.Get(u)
		if err == nil {
			resp.Body.Close()
			t.Fatalf("%s: connected (status %d)", u, resp.StatusCode)
		}
		if !errors.Is(err, errNonPublicAddress) && !strings.Contains(u, "localhost") {
			t.Fatalf("%s: %v, want the policy's refusal", u, err)
		}
	}
	if n := hits.Load(); n != 0 {
		t.Fatalf("%d requests reached the loopback server", n)
	}
	// With the policy off, the same client reaches it.
	resp, err := newOutboundClient(2*time.Second, true).Get(srv)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if hits.Load() != 1 {
		t.Fatalf("hits %d with the policy off", hits.Load())
	}
}

// /register refuses a jwks_uri or backchannel_logout_uri whose host is a
// non-public literal address or localhost, with invalid_client_metadata;
// with InsecureAllowPrivateClientURLs it accepts a loopback one.
func TestRegistrationRefusesNonPublicClientURLs(t *testing.T) {
	env := newTestEnv(t, openMemory(t), regScopes)
	iat := newInitialToken(t, env.store, time.Hour, 1, time.Now())
	for _, body := range []string{
		`{"grant_types":["client_credentials"],"token_endpoint_auth_method":"private_key_jwt","jwks_uri":"https://127.0.0.1/jwks"}`,
		`{"grant_types":["client_credentials"],"token_endpoint_auth_method":"private_key_jwt","jwks_uri":"https://169.254.169.254/latest/meta-data"}`,
		`{"grant_types":["client_credentials"],"token_endpoint_auth_method":"private_key_jwt","jwks_uri":"https://10.0.0.7:8443/jwks"}`,
		`{"grant_types":["client_credentials"],"token_endpoint_auth_method":"private_key_jwt","jwks_uri":"https://[::1]/jwks"}`,
		`{"grant_types":["client_credentials"],"token_endpoint_auth_method":"private_key_jwt","jwks_uri":"https://[fd00::1]/jwks"}`,
		`{"grant_types":["client_credentials"],"token_endpoint_auth_method":"private_key_jwt","jwks_uri":"https://[::ffff:127.0.0.1]/jwks"}`,
		`{"grant_types":["client_credentials"],"token_endpoint_auth_method":"private_key_jwt","jwks_uri":"https://localhost/jwks"}`,
		`{"redirect_uris":["https://a.example/cb"],"backchannel_logout_uri":"http://127.0.0.1:9/bc"}`,
		`{"redirect_uris":["https://a.example/cb"],"backchannel_logout_uri":"https://192.168.0.10/bc"}`,
		`{"redirect_uris":["https://a.example/cb"],"backchannel_logout_uri":"https://100.64.0.1/bc"}`,
		`{"redirect_uris":["https://a.example/cb"],"backchannel_logout_uri":"http://localhost:8080/bc"}`,
	} {
		code, m, _ := regCall(t, http.MethodPost, env.srv.URL+"/register", iat, body)
		if code != 400 || str(m, "error") != errInvalidClientMetadata || !strings.Contains(str(m, "error_description"), "the server does not call") {
			t.Fatalf("%s: %d %v, want 400 invalid_client_metadata", body, code, m)
		}
	}
	// The one use of the token is still there: a public URL registers.
	code, m, _ := regCall(t, http.MethodPost, env.srv.URL+"/register", iat,
		`{"redirect_uris":["https://a.example/cb"],"backchannel_logout_uri":"https://rp.example/bc"}`)
	if code != 201 {
		t.Fatalf("public backchannel_logout_uri: %d %v", code, m)
	}

	open := newTestEnv(t, openMemory(t), regScopes, allowPrivateClientURLs)
	iat = newInitialToken(t, open.store, time.Hour, 1, time.Now())
	code, m, _ = regCall(t, http.MethodPost, open.srv.URL+"/register", iat,
		`{"redirect_uris":["https://a.example/cb"],"backchannel_logout_uri":"http://127.0.0.1:9/bc"}`)
	if code != 201 {
		t.Fatalf("loopback backchannel_logout_uri with the policy off: %d %v", code, m)
	}
}

// A private_key_jwt client registered by an operator (here through the
// store, as `clients add` does) with a jwks_uri on a loopback server: with
// the policy on, its assertion fails closed with invalid_client and the
// server never connects; a name resolving to loopback (localhost) is
// refused the same way. With the policy off the same client authenticates,
// so the refusal is the policy's.
func TestJWKSURIOnLoopbackFailsClosed(t *testing.T) {
	var hits atomic.Int64
	key := newECKey(t, "lo-1")
	srv := newHTTPTestServer(t, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		hits.Add(1)
		w.Header().Set("Content-Type", "application/jwk-set+json")
		w.Write(jwksOf(key))
	}))
	port := srv[strings.LastIndex(srv, ":")+1:]
	run := func(t *testing.T, jwksURI string, mods ...func(*Config)) (int, map[string]any) {
		env := newTestEnv(t, openMemory(t), append(mods, func(c *Config) { c.Throttle.Disabled = true })...)
		now := time.Now().UTC()
		c := storage.Client{ID: "lo", TokenEndpointAuthMethod: AuthMethodPrivateKey, JWKSURI: jwksURI,
			GrantTypes: []string{grantClientCredentials}, Scopes: []string{"read"}, CreatedAt: now, UpdatedAt: now}
		if err := ValidateClient(c, RegistrationNames{}); err != nil {
			t.Fatal(err) // the CLI's rules accept http on loopback
		}
		if err := env.store.CreateClient(t.Context(), c); err != nil {
			t.Fatal(err)
		}
		return env.clientCredentials(t, assertiontest.Sign(t, jose.ES256, key.key, key.kid, goodClaims("lo", env.issuer+"/token")))
	}
	for _, u := range []string{srv + "/jwks", "http://localhost:" + port + "/jwks"} {
		code, m := run(t, u)
		if code != http.StatusUnauthorized || m["error"] != errInvalidClient {
			t.Fatalf("%s with the policy on: %d %v, want 401 invalid_client", u, code, m)
		}
		if n := hits.Load(); n != 0 {
			t.Fatalf("%s: %d requests reached the loopback server", u, n)
		}
	}
	if code, m := run(t, srv+"/jwks", allowPrivateClientURLs); code != http.StatusOK {
		t.Fatalf("with the policy off: %d %v", code, m)
	}
	if hits.Load() != 1 {
		t.Fatalf("hits %d with the policy off", hits.Load())
	}
}

// With the policy on, a back-channel logout URI on a loopback receiver is
// never called (the delivery is attempted, refused and not retried), and
// sign-out still completes.
func TestBackchannelLogoutRefusesLoopback(t *testing.T) {
	var hits atomic.Int64
	var logs syncBuffer
	recv := newHTTPTestServer(t, http.HandlerFunc(func(http.ResponseWriter, *http.Request) { hits.Add(1) }))
	e := newOIDCEnvConfig(t, func(c *Config) { c.Logger = slog.New(slog.NewTextHandler(&logs, nil)) },
		func(c *storage.Client) { c.BackchannelLogoutURI = recv + "/backchannel" })
	b := newBrowser(t, e.testEnv)
	tok := e.codeFlow(t, b)
	p := b.get("/end_session?" + url.Values{"id_token_hint": {tok["id_token"].(string)}, "post_logout_redirect_uri": {rpBye}}.Encode())
	if p.location == nil {
		t.Fatalf("sign-out: status %d", p.status)
	}
	done := make(chan struct{})
	go func() { e.as.WaitBackchannel(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("the refused delivery was retried for more than 5 s")
	}
	if n := hits.Load(); n != 0 {
		t.Fatalf("%d back-channel requests reached the loopback receiver", n)
	}
	if l := logs.String(); strings.Count(l, "not on a public address") != 1 || !strings.Contains(l, "client_id=rp") {
		t.Fatalf("want one refused delivery for rp in the log:\n%s", l)
	}
}

// An outbound request's error names the whole URL, credentials included;
// what is logged (withoutURL) does not.
func TestWithoutURLDropsTheURL(t *testing.T) {
	c := newOutboundClient(time.Second, true)
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, "http://user:s3cret@127.0.0.1:1/logout?token=t0k", nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Do(req)
	if err == nil || !strings.Contains(err.Error(), "s3cret") && !strings.Contains(err.Error(), "t0k") {
		t.Fatalf("expected an error naming the URL, got %v", err)
	}
	if msg := withoutURL(err).Error(); strings.Contains(msg, "s3cret") || strings.Contains(msg, "t0k") || msg == "" {
		t.Errorf("withoutURL kept the URL: %q", msg)
	}
	if _, err := http.NewRequest(http.MethodGet, "http://h/%zz?token=t0k", nil); err == nil || strings.Contains(withoutURL(err).Error(), "t0k") {
		t.Errorf("a bad URL's error: %v", err)
	}
}

// A client URL refused at registration is named in the error, unless it
// has user info or does not parse: then it may hold a password.
func TestValidateCallURLDoesNotEchoPasswords(t *testing.T) {
	for _, raw := range []string{"https://u:s3cret@rp.example/bc", "https://u:s3cret@rp.example:bad/bc"} {
		err := ValidateBackchannelLogoutURI(raw)
		if err == nil || strings.Contains(err.Error(), "s3cret") {
			t.Errorf("%q: %v", raw, err)
		}
	}
	if err := ValidateJWKSURI("http://rp.example/jwks"); err == nil || !strings.Contains(err.Error(), `"http://rp.example/jwks"`) {
		t.Errorf("an http URL's error does not name it: %v", err)
	}
}
