package authserver

import (
	"context"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/oauthkit/authserver/internal/password"
	"github.com/oauthkit/authserver/resource"
	"github.com/oauthkit/authserver/storage"
)

// Hashes imported from bcrypt, or made with older argon2id parameters, are
// replaced by an argon2id hash with the current parameters at the next
// successful sign-in; the password keeps working.
func TestTransparentRehash(t *testing.T) {
	env := newTestEnv(t, openSQLite(t))
	bc, _ := bcrypt.GenerateFromPassword([]byte("imported-password-1"), bcrypt.MinCost)
	old, _ := password.Hash("old-params-password-1", password.Params{Memory: 32, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32})
	for id, h := range map[string]string{"u-bcrypt": string(bc), "u-old": old} {
		if err := env.store.CreateUser(t.Context(), storage.User{ID: id, Email: id + "@example.com", PasswordHash: h}); err != nil {
			t.Fatal(err)
		}
	}
	for id, pw := range map[string]string{"u-bcrypt": "imported-password-1", "u-old": "old-params-password-1"} {
		env.passwordToken(id+"@example.com", pw)
		u, err := env.store.GetUser(t.Context(), id)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(u.PasswordHash, "$argon2id$v=19$m=64,t=1,p=1$") {
			t.Errorf("%s: hash not upgraded: %.30s", id, u.PasswordHash)
		}
		env.passwordToken(id+"@example.com", pw) // still works
	}
}

// The resource package's RFC 7662 client (written against the RFC, not
// against this server) introspects our tokens: active, then inactive after
// revocation.
func TestIntrospectionWithResourceClient(t *testing.T) {
	env := newTestEnv(t, openSQLite(t))
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	auth, err := resource.New(ctx, resource.Config{
		Issuer:   env.issuer,
		Audience: env.issuer + "/api",
		Mode:     resource.ModeIntrospect,
		Introspection: resource.IntrospectionConfig{
			ClientID: "rs", ClientSecret: rsSecret, CacheTTL: -1,
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	at, _ := env.passwordToken("alice@example.com", alicePW)
	c, err := auth.Verify(ctx, at)
	if err != nil {
		t.Fatalf("introspect an active token: %v", err)
	}
	if c.Subject != env.alice.ID || !c.HasRole("admin") {
		t.Errorf("claims %+v", c)
	}
	resp := env.post("/revoke", map[string][]string{"token": {at}, "client_id": {"demo"}}, "", "")
	resp.Body.Close()
	if _, err := auth.Verify(ctx, at); err == nil {
		t.Fatal("a revoked token is still accepted in introspection mode")
	}
}
