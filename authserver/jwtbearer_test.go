package authserver

import (
	"crypto/ecdsa"
	"encoding/json"
	"net/url"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/oauthkit/authserver/internal/assertiontest"
	"github.com/oauthkit/authserver/internal/password"
	"github.com/oauthkit/authserver/storage"
)

const bearerAppSecret = "bearer-secret-0123456789-0123456789-abcdef"

func TestJWTBearerGrant(t *testing.T) {
	env := newTestEnv(t, openMemory(t))
	idp, other := newECKey(t, "idp-1"), newECKey(t, "idp-1")
	now := time.Now().UTC()
	for _, iss := range []storage.Issuer{
		{ID: "https://idp.example", JWKS: jwksOf(idp), Subjects: []string{"alice@example.com"}, Scopes: []string{"read", "write"}, CreatedAt: now},
		{ID: "https://any.example", JWKS: jwksOf(idp), AnySubject: true, Scopes: []string{"read"}, CreatedAt: now},
	} {
		if err := env.store.CreateIssuer(t.Context(), iss); err != nil {
			t.Fatal(err)
		}
	}
	c := storage.Client{ID: "bearer-app", SecretHashes: []string{password.HashSecret(bearerAppSecret)}, GrantTypes: []string{grantJWTBearer},
		Scopes: []string{"read"}, CreatedAt: now, UpdatedAt: now}
	if err := ValidateClient(c, RegistrationNames{}); err != nil {
		t.Fatal(err)
	}
	if err := env.store.CreateClient(t.Context(), c); err != nil {
		t.Fatal(err)
	}
	claims := func(iss, sub string) jwt.Claims {
		return assertiontest.Claims(iss, sub, env.issuer+"/token", time.Minute)
	}
	grant := func(a, client, secret string, extra ...string) (int, map[string]any) {
		f := url.Values{"grant_type": {grantJWTBearer}, "assertion": {a}}
		for i := 0; i+1 < len(extra); i += 2 {
			f.Set(extra[i], extra[i+1])
		}
		resp := env.post("/token", f, client, secret)
		return resp.StatusCode, decode(t, resp)
	}
	good := assertiontest.Sign(t, jose.ES256, idp.key, idp.kid, claims("https://idp.example", "alice@example.com"))
	code, m := grant(good, "bearer-app", bearerAppSecret)
	if code != 200 || m["refresh_token"] != nil || m["scope"] != "read" {
		t.Fatalf("jwt-bearer grant: %d %v", code, m)
	}
	in := env.introspect(m["access_token"].(string))
	if in["active"] != true || in["sub"] != env.alice.ID || in["client_id"] != "bearer-app" {
		t.Fatalf("introspection of the granted token: %v", in)
	}
	// The user's ID is accepted as the subject too (AnySubject issuer).
	if code, m := grant(assertiontest.Sign(t, jose.ES256, idp.key, idp.kid, claims("https://any.example", env.bob.ID)), "bearer-app", bearerAppSecret); code != 200 {
		t.Fatalf("subject by ID: %d %v", code, m)
	}
	for _, tc := range []struct {
		name, assertion, client, secret, want string
		extra                                 []string
	}{
		{"replay", good, "bearer-app", bearerAppSecret, "invalid_grant", nil},
		{"unknown issuer", assertiontest.Sign(t, jose.ES256, idp.key, idp.kid, claims("https://evil.example", "alice@example.com")), "bearer-app", bearerAppSecret, "invalid_grant", nil},
		{"subject not allowed", assertiontest.Sign(t, jose.ES256, idp.key, idp.kid, claims("https://idp.example", "bob@example.com")), "bearer-app", bearerAppSecret, "invalid_grant", nil},
		{"subject not a user", assertiontest.Sign(t, jose.ES256, idp.key, idp.kid, claims("https://any.example", "nobody@example.com")), "bearer-app", bearerAppSecret, "invalid_grant", nil},
		{"key not the issuer's", assertiontest.Sign(t, jose.ES256, other.key, other.kid, claims("https://idp.example", "alice@example.com")), "bearer-app", bearerAppSecret, "invalid_grant", nil},
		{"wrong aud", assertiontest.Sign(t, jose.ES256, idp.key, idp.kid, func() jwt.Claims {
			c := claims("https://idp.example", "alice@example.com")
			c.Audience = jwt.Audience{"https://elsewhere.example"}
			return c
		}()), "bearer-app", bearerAppSecret, "invalid_grant", nil},
		{"scope beyond the client's", assertiontest.Sign(t, jose.ES256, idp.key, idp.kid, claims("https://idp.example", "alice@example.com")), "bearer-app", bearerAppSecret, "invalid_scope", []string{"scope", "write"}},
		{"client without the grant", assertiontest.Sign(t, jose.ES256, idp.key, idp.kid, claims("https://idp.example", "alice@example.com")), "app", appSecret, "unauthorized_client", nil},
		{"no assertion", "", "bearer-app", bearerAppSecret, "invalid_request", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, m := grant(tc.assertion, tc.client, tc.secret, tc.extra...)
			if code < 400 || m["error"] != tc.want {
				t.Fatalf("%d %v, want %s", code, m, tc.want)
			}
		})
	}
}

// A trusted issuer's jwks_uri may publish an encryption key (or one of a
// type we cannot parse) next to its signing key; the unusable keys are
// ignored, as for a client's jwks_uri.
func TestJWTBearerIssuerJWKSURIWithEncryptionKeys(t *testing.T) {
	env := newTestEnv(t, openMemory(t), allowPrivateClientURLs)
	idp := newECKey(t, "idp-sig")
	sigJWK, _ := json.Marshal(idp.publicJWK())
	encJWK, _ := json.Marshal(jose.JSONWebKey{Key: newECKey(t, "x").key.(*ecdsa.PrivateKey).Public(), KeyID: "idp-enc", Algorithm: "ECDH-ES", Use: "enc"})
	js := newJWKSServer(t, []byte(`{"keys":[`+string(sigJWK)+`,`+string(encJWK)+`,`+x25519JWK+`]}`))
	now := time.Now().UTC()
	if err := env.store.CreateIssuer(t.Context(), storage.Issuer{ID: "https://idp.example", JWKSURI: js.url, Subjects: []string{"alice@example.com"},
		Scopes: []string{"read"}, CreatedAt: now}); err != nil {
		t.Fatal(err)
	}
	if err := env.store.CreateClient(t.Context(), storage.Client{ID: "bearer-app", SecretHashes: []string{password.HashSecret(bearerAppSecret)},
		GrantTypes: []string{grantJWTBearer}, Scopes: []string{"read"}, CreatedAt: now, UpdatedAt: now}); err != nil {
		t.Fatal(err)
	}
	a := assertiontest.Sign(t, jose.ES256, idp.key, idp.kid, assertiontest.Claims("https://idp.example", "alice@example.com", env.issuer+"/token", time.Minute))
	resp := env.post("/token", url.Values{"grant_type": {grantJWTBearer}, "assertion": {a}}, "bearer-app", bearerAppSecret)
	if m := decode(t, resp); resp.StatusCode != 200 {
		t.Fatalf("assertion signed with the issuer's published signing key: %d %v", resp.StatusCode, m)
	}
}
