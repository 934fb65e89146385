package authserver

import (
	"strings"
	"testing"

	"github.com/oauthkit/authserver/storage"
)

func TestValidateClient(t *testing.T) {
	names := RegistrationNames{ID: "--id", Grant: "--grant", RedirectURI: "--redirect-uri",
		PostLogoutRedirectURI: "--post-logout-redirect-uri", ExchangeAudience: "--exchange-audience"}
	ok := storage.Client{ID: "web", GrantTypes: []string{"authorization_code"}, RedirectURIs: []string{"https://app.example/cb"}}
	if err := ValidateClient(ok, names); err != nil {
		t.Fatalf("valid client refused: %v", err)
	}
	for _, good := range []storage.Client{
		{ID: "k1", GrantTypes: []string{grantClientCredentials}, TokenEndpointAuthMethod: AuthMethodPrivateKey, JWKS: []byte(publicJWKSJSON)},
		{ID: "k2", GrantTypes: []string{grantClientCredentials}, TokenEndpointAuthMethod: AuthMethodPrivateKey, JWKSURI: "https://app.example/jwks"},
		{ID: "k3", GrantTypes: []string{grantClientCredentials}, TokenEndpointAuthMethod: AuthMethodPrivateKey, JWKSURI: "http://127.0.0.1:8080/jwks"},
		{ID: "k4", GrantTypes: []string{grantClientCredentials}, TokenEndpointAuthMethod: AuthMethodSecretJWT},
	} {
		if err := ValidateClient(good, names); err != nil {
			t.Errorf("%s refused: %v", good.ID, err)
		}
	}
	for _, tc := range []struct {
		name string
		mod  func(*storage.Client)
		want string
	}{
		{"slash in id", func(c *storage.Client) { c.ID = "a/b" }, "--id is required"},
		{"long id", func(c *storage.Client) { c.ID = strings.Repeat("x", 201) }, "--id is required"},
		{"no grant", func(c *storage.Client) { c.GrantTypes = nil }, "at least one --grant"},
		{"unknown grant", func(c *storage.Client) { c.GrantTypes = append(c.GrantTypes, "implicit") }, "unknown grant"},
		{"public client_credentials", func(c *storage.Client) { c.Public, c.GrantTypes = true, append(c.GrantTypes, grantClientCredentials) }, "public client"},
		{"public token exchange", func(c *storage.Client) { c.Public, c.GrantTypes = true, append(c.GrantTypes, grantTokenExchange) }, "public client"},
		{"public introspect", func(c *storage.Client) { c.Public, c.Introspect = true, true }, "introspect"},
		{"code without redirect", func(c *storage.Client) { c.RedirectURIs = nil }, "needs at least one --redirect-uri"},
		{"redirect without code", func(c *storage.Client) { c.GrantTypes = []string{grantPassword} }, "--redirect-uri is only for"},
		{"fragment", func(c *storage.Client) { c.RedirectURIs = []string{"https://app.example/cb#x"} }, "fragment"},
		{"audience without exchange", func(c *storage.Client) { c.ExchangeAudiences = []string{"billing"} }, "--exchange-audience is only for"},
		{"bad post-logout", func(c *storage.Client) { c.PostLogoutRedirectURIs = []string{"http://evil.example/"} }, "--post-logout-redirect-uri:"},
		{"unknown auth method", func(c *storage.Client) { c.TokenEndpointAuthMethod = "tls_client_auth" }, "unknown token_endpoint_auth_method"},
		{"private_key_jwt without keys", func(c *storage.Client) { c.TokenEndpointAuthMethod = AuthMethodPrivateKey }, "needs jwks_uri or jwks"},
		{"jwks and jwks_uri", func(c *storage.Client) {
			c.TokenEndpointAuthMethod, c.JWKSURI, c.JWKS = AuthMethodPrivateKey, "https://app.example/jwks", []byte(publicJWKSJSON)
		}, "not both"},
		{"http jwks_uri", func(c *storage.Client) {
			c.TokenEndpointAuthMethod, c.JWKSURI = AuthMethodPrivateKey, "http://app.example/jwks"
		}, "must be https"},
		{"private key in jwks", func(c *storage.Client) {
			c.TokenEndpointAuthMethod, c.JWKS = AuthMethodPrivateKey, []byte(privateJWKSJSON)
		}, "not a public key"},
		{"symmetric key in jwks", func(c *storage.Client) {
			c.TokenEndpointAuthMethod, c.JWKS = AuthMethodPrivateKey, []byte(`{"keys":[{"kty":"oct","k":"c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0"}]}`)
		}, "not a public key"},
		{"jwks without private_key_jwt", func(c *storage.Client) { c.JWKS = []byte(publicJWKSJSON) }, "only for clients with"},
		{"public with a secret method", func(c *storage.Client) { c.Public, c.TokenEndpointAuthMethod = true, AuthMethodSecretJWT }, "public client authenticates"},
	} {
		c := ok
		c.GrantTypes = append([]string(nil), ok.GrantTypes...)
		tc.mod(&c)
		err := ValidateClient(c, names)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want an error with %q", tc.name, err, tc.want)
		}
	}
}

// An EC P-256 key pair (RFC 7517 appendix A.1 and A.2 example key).
const (
	publicJWKSJSON  = `{"keys":[{"kty":"EC","crv":"P-256","x":"MKBCTNIcKUSDii11ySs3526iDZ8AiTo7Tu6KPAqv7D4","y":"4Etl6SRW2YiLUrN5vfvVHuhp7x8PxltmWWlbbM4IFyM","kid":"1"}]}`
	privateJWKSJSON = `{"keys":[{"kty":"EC","crv":"P-256","x":"MKBCTNIcKUSDii11ySs3526iDZ8AiTo7Tu6KPAqv7D4","y":"4Etl6SRW2YiLUrN5vfvVHuhp7x8PxltmWWlbbM4IFyM","d":"870MB6gfuTJ4HtUnUvYMyJpr5eUZNP4Bk43bVdj3eAE","kid":"1"}]}`
)
