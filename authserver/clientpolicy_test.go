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
