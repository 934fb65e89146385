package resourcetest_test

import (
	"testing"

	"github.com/oauthkit/authserver/resource"
	"github.com/oauthkit/authserver/resource/resourcetest"
)

func TestIssuerTokensVerify(t *testing.T) {
	is := resourcetest.NewIssuer(t)
	auth, err := resource.New(t.Context(), resource.Config{Issuer: is.URL, Audience: is.Audience()})
	if err != nil {
		t.Fatal(err)
	}
	claims := is.Claims("user-1", "admin")
	claims["name"] = "Ada"
	c, err := auth.Verify(t.Context(), is.Sign(t, claims))
	if err != nil {
		t.Fatal(err)
	}
	if c.Subject != "user-1" || c.Name != "Ada" || !c.HasRole("admin") || !c.HasScope("email") {
		t.Errorf("claims = %+v", c)
	}
}
