package authserver

import (
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/oauthkit/authserver/internal/assertiontest"
)

// A client_secret_jwt client registered at /register with an initial access
// token authenticates at /token with an HS256 assertion (go-jose) keyed by
// the secret the registration returned once; reading its registration
// shows no secret (RFC 7592 §2.1 lets the server leave it out); an update
// to client_secret_basic keeps the secret, one back to client_secret_jwt
// issues a new one (the old was kept only hashed); delete ends it.
func TestRegistrationClientSecretJWT(t *testing.T) {
	env := newTestEnv(t, openSQLite(t), regScopes, func(c *Config) { c.Throttle.Disabled = true })
	iat := newInitialToken(t, env.store, time.Hour, 1, time.Now())
	tokenURL := env.issuer + "/token"
	code, reg, _ := regCall(t, http.MethodPost, env.srv.URL+"/register", iat, map[string]any{
		"client_name": "HMAC service", "grant_types": []string{"client_credentials"}, "scope": "read",
		"token_endpoint_auth_method": "client_secret_jwt",
	})
	if code != http.StatusCreated {
		t.Fatalf("register: %d %v", code, reg)
	}
	id, secret, rat := str(reg, "client_id"), str(reg, "client_secret"), str(reg, "registration_access_token")
	if len(secret) < 64 || reg["client_secret_expires_at"] != float64(0) || str(reg, "token_endpoint_auth_method") != AuthMethodSecretJWT {
		t.Fatalf("registration response %v", reg)
	}
	stored, err := env.store.GetClient(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	if len(stored.SecretCiphertext) == 0 || strings.Contains(string(stored.SecretCiphertext), secret) || len(stored.SecretHashes) != 1 {
		t.Fatalf("the secret is not kept sealed: %+v", stored)
	}
	hs := func(alg jose.SignatureAlgorithm, key string) (int, map[string]any) {
		return env.clientCredentials(t, assertiontest.Sign(t, alg, []byte(key), "", goodClaims(id, tokenURL)))
	}
	if code, m := hs(jose.HS256, secret); code != http.StatusOK || m["access_token"] == nil {
		t.Fatalf("HS256 assertion with the returned secret: %d %v", code, m)
	}
	if code, m := hs(jose.HS512, secret); code != http.StatusOK {
		t.Fatalf("HS512 assertion: %d %v", code, m)
	}
	if code, m := hs(jose.HS256, secret+"x"); code != http.StatusUnauthorized || m["error"] != errInvalidClient {
		t.Fatalf("assertion with a wrong secret: %d %v", code, m)
	}

	// Read: the metadata, a new registration access token, no secret.
	uri := str(reg, "registration_client_uri")
	code, got, _ := regCall(t, http.MethodGet, uri, rat, nil)
	if code != http.StatusOK || got["client_secret"] != nil || str(got, "token_endpoint_auth_method") != AuthMethodSecretJWT ||
		got["client_secret_expires_at"] != float64(0) || str(got, "registration_access_token") == "" || str(got, "registration_access_token") == rat {
		t.Fatalf("read: %d %v", code, got)
	}
	rat = str(got, "registration_access_token")

	// Update to client_secret_basic: the same secret, no longer sealed.
	code, got, _ = regCall(t, http.MethodPut, uri, rat, map[string]any{"client_id": id, "client_secret": secret,
		"grant_types": []string{"client_credentials"}, "scope": "read", "token_endpoint_auth_method": "client_secret_basic"})
	if code != http.StatusOK || got["client_secret"] != nil || str(got, "token_endpoint_auth_method") != AuthMethodSecretBasic {
		t.Fatalf("update to client_secret_basic: %d %v", code, got)
	}
	rat = str(got, "registration_access_token")
	if c, _ := env.store.GetClient(t.Context(), id); len(c.SecretCiphertext) != 0 || len(c.SecretHashes) != 1 {
		t.Fatalf("after the update to client_secret_basic: %+v", c)
	}
	if code, m := hs(jose.HS256, secret); code != http.StatusUnauthorized {
		t.Fatalf("HS256 assertion for a client_secret_basic client: %d %v", code, m)
	}
	resp := env.post("/token", map[string][]string{"grant_type": {"client_credentials"}, "scope": {"read"}}, id, secret)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("client_secret_basic with the kept secret: %d %v", resp.StatusCode, decode(t, resp))
	}
	resp.Body.Close()

	// Back to client_secret_jwt: a new secret, returned once and sealed.
	code, got, _ = regCall(t, http.MethodPut, uri, rat, map[string]any{"client_id": id,
		"grant_types": []string{"client_credentials"}, "scope": "read", "token_endpoint_auth_method": "client_secret_jwt"})
	secret2 := str(got, "client_secret")
	if code != http.StatusOK || len(secret2) < 64 || secret2 == secret {
		t.Fatalf("update to client_secret_jwt: %d %v", code, got)
	}
	rat = str(got, "registration_access_token")
	if code, m := hs(jose.HS256, secret2); code != http.StatusOK {
		t.Fatalf("HS256 assertion with the new secret: %d %v", code, m)
	}
	if code, _ := hs(jose.HS256, secret); code != http.StatusUnauthorized {
		t.Fatalf("HS256 assertion with the replaced secret: %d", code)
	}

	// Delete: the client is gone.
	if code, m, _ := regCall(t, http.MethodDelete, uri, rat, nil); code != http.StatusNoContent {
		t.Fatalf("delete: %d %v", code, m)
	}
	if code, m := hs(jose.HS256, secret2); code != http.StatusUnauthorized || m["error"] != errInvalidClient {
		t.Fatalf("assertion of a deleted client: %d %v", code, m)
	}
}

// A secret issued by an update keeps the registration's
// client_secret_expires_at (RFC 7591 §3.2.1), also across a method with no
// secret; once it has passed, an update issues no new secret.
func TestRegistrationUpdateKeepsTheSecretExpiry(t *testing.T) {
	now := time.Now()
	var skew atomic.Int64 // added to now by the server's clock
	env := newTestEnv(t, openMemory(t), regScopes, func(c *Config) {
		c.Throttle.Disabled = true
		c.Now = func() time.Time { return now.Add(time.Duration(skew.Load())) }
	})
	iat, _, err := CreateInitialAccessToken(t.Context(), env.store, InitialAccessToken{TTL: time.Hour, SecretTTL: 48 * time.Hour}, now)
	if err != nil {
		t.Fatal(err)
	}
	code, reg, _ := regCall(t, http.MethodPost, env.srv.URL+"/register", iat, map[string]any{
		"client_name": "svc", "grant_types": []string{"client_credentials"}, "scope": "read"})
	if code != http.StatusCreated {
		t.Fatalf("register: %d %v", code, reg)
	}
	exp := reg["client_secret_expires_at"].(float64)
	id, uri, rat := str(reg, "client_id"), str(reg, "registration_client_uri"), str(reg, "registration_access_token")
	update := func(body map[string]any) (int, map[string]any) {
		t.Helper()
		body["client_id"], body["client_name"], body["scope"] = id, "svc", "read"
		body["grant_types"] = []string{"client_credentials"}
		code, got, _ := regCall(t, http.MethodPut, uri, rat, body)
		if code == http.StatusOK {
			rat = str(got, "registration_access_token")
		}
		return code, got
	}
	// basic -> client_secret_jwt: a new secret, the same expiry.
	code, got := update(map[string]any{"token_endpoint_auth_method": "client_secret_jwt"})
	if code != http.StatusOK || str(got, "client_secret") == "" || got["client_secret_expires_at"] != exp {
		t.Fatalf("to client_secret_jwt: %d %v (expiry was %v)", code, got, exp)
	}
	// -> private_key_jwt (no secret) -> basic: the expiry survives the round trip.
	jwks := map[string]any{"keys": []any{map[string]any{"kty": "EC", "crv": "P-256", "kid": "k",
		"x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU", "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}}}
	if code, got := update(map[string]any{"token_endpoint_auth_method": "private_key_jwt", "jwks": jwks}); code != http.StatusOK {
		t.Fatalf("to private_key_jwt: %d %v", code, got)
	}
	code, got = update(map[string]any{"token_endpoint_auth_method": "client_secret_basic"})
	if code != http.StatusOK || str(got, "client_secret") == "" || got["client_secret_expires_at"] != exp {
		t.Fatalf("back to client_secret_basic: %d %v (expiry was %v)", code, got, exp)
	}
	// After the expiry, no update issues a secret.
	if code, got := update(map[string]any{"token_endpoint_auth_method": "private_key_jwt", "jwks": jwks}); code != http.StatusOK {
		t.Fatalf("to private_key_jwt: %d %v", code, got)
	}
	skew.Store(int64(49 * time.Hour))
	if code, got := update(map[string]any{"token_endpoint_auth_method": "client_secret_basic"}); code != http.StatusBadRequest || got["error"] != "invalid_client_metadata" {
		t.Fatalf("a new secret after the expiry: %d %v", code, got)
	}
}
