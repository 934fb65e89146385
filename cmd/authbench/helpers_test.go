package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/oauthkit/authserver/authserver"
	"github.com/oauthkit/authserver/internal/password"
	"github.com/oauthkit/authserver/keys"
	"github.com/oauthkit/authserver/storage"
	"github.com/oauthkit/authserver/storage/memory"
)

// testUsers is the number of bench users of the in-process server.
const testUsers = 8

// testServer starts an in-process authorization server (memory storage,
// cheap argon2id parameters, the demo API) seeded the way `authbench setup`
// seeds a real one, and returns its URL and the matching state.
func testServer(t *testing.T) (string, *benchState) {
	t.Helper()
	ctx := context.Background()
	st := memory.New()
	state := &benchState{
		Password:           "bench-test-password-1",
		ClientID:           benchClientID,
		ClientSecret:       "bench-secret-0123456789-0123456789-0123",
		IntrospectorID:     benchIntrospector,
		IntrospectorSecret: "bench-rs-secret-0123456789-0123456789-01",
		OIDCClientID:       benchOIDCClient,
		OIDCClientSecret:   "bench-oidc-secret-0123456789-0123456789-0",
		WebClientID:        benchWebClient,
		WebClientSecret:    "bench-web-secret-0123456789-0123456789-0",
		WebRedirectURI:     benchRedirectURI,
	}
	now := time.Now().UTC()
	h, err := password.Hash(state.Password, password.TestParams)
	if err != nil {
		t.Fatal(err)
	}
	for i := range testUsers {
		email := benchUserEmail(i)
		if err := st.CreateUser(ctx, storage.User{ID: fmt.Sprintf("u-%d", i), Email: email, Name: "Bench", Roles: []string{"user"},
			PasswordHash: h, CreatedAt: now, UpdatedAt: now}); err != nil {
			t.Fatal(err)
		}
		state.Users = append(state.Users, email)
	}
	for _, c := range []storage.Client{
		{ID: state.ClientID, SecretHashes: []string{password.HashSecret(state.ClientSecret)},
			GrantTypes: []string{"password", "refresh_token", "client_credentials"}, Scopes: []string{"read", "write"}},
		{ID: state.IntrospectorID, SecretHashes: []string{password.HashSecret(state.IntrospectorSecret)},
			GrantTypes: []string{"client_credentials"}, Introspect: true},
		{ID: state.OIDCClientID, SecretHashes: []string{password.HashSecret(state.OIDCClientSecret)},
			GrantTypes: []string{"authorization_code", "refresh_token"}, Scopes: []string{"openid", "profile", "email", "offline_access"},
			RedirectURIs: []string{benchOIDCRedirect}, SkipConsent: true},
		{ID: state.WebClientID, SecretHashes: []string{password.HashSecret(state.WebClientSecret)},
			GrantTypes: []string{"authorization_code"}, Scopes: []string{"read"},
			RedirectURIs: []string{state.WebRedirectURI}, SkipConsent: true},
	} {
		c.CreatedAt, c.UpdatedAt = now, now
		if err := st.CreateClient(ctx, c); err != nil {
			t.Fatal(err)
		}
	}

	discard := slog.New(slog.NewTextHandler(io.Discard, nil))
	secret := []byte("authbench-test-secret-0123456789-0123456789")
	km, err := keys.New(ctx, st, keys.Config{Algorithm: "ES256", ExtraAlgorithms: []string{"RS256"}, Secret: secret, TokenLifetime: time.Hour, Logger: discard})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewUnstartedServer(nil)
	issuer := "http://" + hs.Listener.Addr().String()
	srv, err := authserver.New(authserver.Config{
		Issuer:         issuer,
		Secret:         secret,
		PasswordParams: password.TestParams,
		Logger:         discard,
	}, st, km, authserver.WithDemoAPI())
	if err != nil {
		t.Fatal(err)
	}
	hs.Config.Handler = srv.Handler()
	hs.Start()
	t.Cleanup(hs.Close)
	return issuer, state
}

// testGlobals returns globals writing to out, with logs discarded.
func testGlobals(out io.Writer, args ...string) *globals {
	return &globals{args: args, stdout: out, stderr: io.Discard, log: slog.New(slog.NewTextHandler(io.Discard, nil))}
}
