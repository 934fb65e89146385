package authserver

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/oauthkit/authserver/storage"
)

// RegistrationNames are the names ValidateClient gives the registration's
// fields in its errors, so that each front end speaks its own language:
// the CLI its flags, the admin API its JSON members.
type RegistrationNames struct {
	ID, Grant, RedirectURI, PostLogoutRedirectURI, ExchangeAudience string
	// AuthMethod, JWKSURI and JWKS name the client authentication fields;
	// empty means their RFC 7591 names (token_endpoint_auth_method,
	// jwks_uri, jwks).
	AuthMethod, JWKSURI, JWKS string
	// SubjectType and Name name the subject type and the display name;
	// empty means their registration names (subject_type, client_name).
	SubjectType, Name string
}

// ScopeToken reports whether s is a scope token of RFC 6749 §3.3: one or
// more of %x21 / %x23-5B / %x5D-7E (printable ASCII but space, '"' and
// '\').
func ScopeToken(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x21 || c > 0x7e || c == '"' || c == '\\' {
			return false
		}
	}
	return s != ""
}

// plainText reports whether s is valid UTF-8 without control characters
// (NUL, tabs and line breaks included).
func plainText(s string) bool {
	return utf8.ValidString(s) && !strings.ContainsFunc(s, unicode.IsControl)
}

func orName(n, def string) string {
	if n == "" {
		return def
	}
	return n
}

// ValidateClient applies the registration policy every front end shares
// (CLI and admin API): known grants, what a public client may do, scope
// syntax, redirect URIs and their grant, resources, OpenID Connect logout
// and subject type, and token-exchange audiences.
func ValidateClient(c storage.Client, n RegistrationNames) error {
	// "." and ".." would be path segments of the admin API's URLs.
	if c.ID == "" || len(c.ID) > 200 || strings.ContainsAny(c.ID, " :/") || !plainText(c.ID) || c.ID == "." || c.ID == ".." {
		return fmt.Errorf("%s is required, at most 200 characters, without spaces, colons, slashes or control characters, and not \".\" or \"..\"", n.ID)
	}
	if !plainText(c.Name) {
		return fmt.Errorf("%s must be UTF-8 text without control characters", orName(n.Name, "client_name"))
	}
	if len(c.GrantTypes) == 0 {
		return fmt.Errorf("at least one %s is required", n.Grant)
	}
	for _, gt := range c.GrantTypes {
		if !slices.Contains(SupportedGrantTypes, gt) {
			return fmt.Errorf("unknown grant %q (want one of %s)", gt, strings.Join(SupportedGrantTypes, ", "))
		}
		// A public client cannot authenticate: no client_credentials,
		// and no token exchange either. The device grant is made for
		// public clients (RFC 8628 §5.6).
		if c.Public && gt != grantAuthorizationCode && gt != grantPassword && gt != grantRefreshToken && gt != grantDeviceCode {
			return fmt.Errorf("a public client may only use the authorization_code, password, refresh_token and %s grants, not %q", grantDeviceCode, gt)
		}
	}
	if c.Public && c.Introspect {
		return errors.New("a public client cannot be allowed to introspect")
	}
	for _, s := range c.Scopes {
		if !ScopeToken(s) {
			return fmt.Errorf("invalid scope %q", s)
		}
	}
	for _, u := range c.RedirectURIs {
		if err := ValidateRedirectURI(u); err != nil {
			return err
		}
	}
	code := slices.Contains(c.GrantTypes, grantAuthorizationCode)
	if code && len(c.RedirectURIs) == 0 {
		return fmt.Errorf("the authorization_code grant needs at least one %s", n.RedirectURI)
	}
	if !code && len(c.RedirectURIs) > 0 {
		return fmt.Errorf("%s is only for clients with the authorization_code grant", n.RedirectURI)
	}
	for _, r := range c.Resources {
		if err := ValidateResource(r); err != nil {
			return err
		}
	}
	for _, u := range c.PostLogoutRedirectURIs {
		if err := ValidateRedirectURI(u); err != nil {
			return fmt.Errorf("%s: %w", n.PostLogoutRedirectURI, err)
		}
	}
	if err := ValidateSubjectType(c); err != nil {
		return fmt.Errorf("%s %w", orName(n.SubjectType, "subject_type"), err)
	}
	if u := c.BackchannelLogoutURI; u != "" {
		if err := ValidateBackchannelLogoutURI(u); err != nil {
			return err
		}
	}
	for _, a := range c.ExchangeAudiences {
		if a == "" || strings.ContainsAny(a, " \"\\") || !plainText(a) {
			return fmt.Errorf("invalid %s %q", n.ExchangeAudience, a)
		}
	}
	if len(c.ExchangeAudiences) > 0 && !slices.Contains(c.GrantTypes, grantTokenExchange) {
		return fmt.Errorf("%s is only for clients with the %s grant", n.ExchangeAudience, grantTokenExchange)
	}
	return validateClientAuth(c, n)
}

// validateClientAuth checks the client authentication method (RFC 7591 §2)
// and the client's keys: a private_key_jwt client has exactly one of
// jwks_uri (https, or http on loopback) and jwks (a JWK Set of public keys
// only); the two are mutually exclusive for every client.
func validateClientAuth(c storage.Client, n RegistrationNames) error {
	am, uri, set := orName(n.AuthMethod, "token_endpoint_auth_method"), orName(n.JWKSURI, "jwks_uri"), orName(n.JWKS, "jwks")
	switch m := c.TokenEndpointAuthMethod; m {
	case "", AuthMethodSecretBasic, AuthMethodSecretPost, AuthMethodSecretJWT, AuthMethodPrivateKey:
		if m != "" && c.Public {
			return fmt.Errorf("a public client authenticates with %s none, not %q", am, m)
		}
	case AuthMethodNone:
		if !c.Public {
			return fmt.Errorf("%s none is for public clients only", am)
		}
	default:
		return fmt.Errorf("unknown %s %q (want one of %s)", am, m, strings.Join(authMethodsSupported, ", "))
	}
	if c.JWKSURI != "" && len(c.JWKS) > 0 {
		return fmt.Errorf("give %s or %s, not both", uri, set)
	}
	if c.JWKSURI != "" {
		if err := ValidateJWKSURI(c.JWKSURI); err != nil {
			return fmt.Errorf("%s: %w", uri, err)
		}
	}
	if len(c.JWKS) > 0 {
		if _, err := ParseClientJWKS(c.JWKS); err != nil {
			return fmt.Errorf("%s: %w", set, err)
		}
	}
	if c.TokenEndpointAuthMethod == AuthMethodPrivateKey && c.JWKSURI == "" && len(c.JWKS) == 0 {
		return fmt.Errorf("%s private_key_jwt needs %s or %s", am, uri, set)
	}
	if (c.JWKSURI != "" || len(c.JWKS) > 0) && c.TokenEndpointAuthMethod != AuthMethodPrivateKey {
		return fmt.Errorf("%s and %s are only for clients with %s private_key_jwt", uri, set, am)
	}
	return nil
}

// ErrClientIDIsUser is returned by ClientIDFree for a client ID that is a
// user's ID.
var ErrClientIDIsUser = errors.New("the ID is a user's ID")

// userGetter reads a user by ID.
type userGetter interface {
	GetUser(ctx context.Context, id string) (storage.User, error)
}

// ClientIDFree checks, before a client is created, that its ID is no
// user's: a client's own tokens (client_credentials) carry its ID as sub
// (RFC 9068 §2.2), which must never name a user to a resource server or to
// userinfo. Users' IDs are random, so only a chosen client ID can collide.
func ClientIDFree(ctx context.Context, users userGetter, id string) error {
	_, err := users.GetUser(ctx, id)
	switch {
	case err == nil:
		return ErrClientIDIsUser
	case storage.Absent(err):
		return nil
	}
	return fmt.Errorf("reading the user of ID %q: %w", id, err)
}
