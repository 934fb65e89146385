package authserver

import (
	"net/http"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
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
		return env.clientCredentials(t, assertion(t, alg, []byte(key), "", goodClaims(id, tokenURL)))
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
