package resource

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"time"
)

// Claims describes a verified access token: who the caller is and what it may
// do. It is built from the JWT claims of RFC 9068 §2.2 or from an RFC 7662
// introspection response, never from unverified input.
//
// Handlers receive it with FromContext and must treat it as read-only.
type Claims struct {
	// Issuer is the iss claim; it equals Config.Issuer.
	Issuer string
	// Subject is the sub claim: a user ID, or the client ID for a token from
	// the client_credentials grant.
	Subject string
	// ClientID is the client_id claim: the client the token was issued to.
	ClientID string
	// Username is the introspection response's username; empty for local
	// verification (RFC 9068 tokens carry no username claim).
	Username string
	// Email and Name describe the user, when the issuer includes them.
	Email string
	Name  string
	// Scopes are the granted scopes, split from the space-separated scope
	// claim (RFC 9068 §2.2.3).
	Scopes []string
	// Roles are the user's roles from the roles claim.
	Roles []string
	// Audience is the aud claim; it contains Config.Audience.
	Audience []string
	// Expiry, IssuedAt and NotBefore are exp, iat and nbf; NotBefore and
	// IssuedAt are zero when the claim is absent.
	Expiry    time.Time
	IssuedAt  time.Time
	NotBefore time.Time
	// ID is the jti claim.
	ID string
	// JKT is the cnf.jkt claim of a DPoP-bound token (RFC 9449 §6): the
	// thumbprint of the key its proofs must be signed with.
	JKT string
	// Raw is the JSON object the claims were read from: the JWT payload, or
	// the introspection response. Decode reads custom claims from it.
	Raw json.RawMessage
	// status is the Token Status List claim, read with the others
	// (statuslist.go).
	status *tokenStatus
}

// HasScope reports whether the token grants scope.
func (c *Claims) HasScope(scope string) bool { return slices.Contains(c.Scopes, scope) }

// HasRole reports whether the token carries role.
func (c *Claims) HasRole(role string) bool { return slices.Contains(c.Roles, role) }

// Decode unmarshals the raw claims into v, for claims this type does not
// model.
func (c *Claims) Decode(v any) error {
	if len(c.Raw) == 0 {
		return errors.New("resource: no raw claims")
	}
	return json.Unmarshal(c.Raw, v)
}

// claimSet is the JSON shape shared by RFC 9068 JWT payloads and RFC 7662
// introspection responses. Numeric dates are float64 because RFC 7519 §2
// allows fractional seconds; zero means absent (a date of 1970 is as good
// as absent for every check below), which spares an allocation per date.
type claimSet struct {
	Active    bool     `json:"active"`
	TokenType string   `json:"token_type"`
	Issuer    string   `json:"iss"`
	Subject   string   `json:"sub"`
	Audience  audience `json:"aud"`
	Expiry    float64  `json:"exp"`
	NotBefore float64  `json:"nbf"`
	IssuedAt  float64  `json:"iat"`
	ID        string   `json:"jti"`
	ClientID  string   `json:"client_id"`
	Username  string   `json:"username"`
	Scope     string   `json:"scope"`
	Roles     []string `json:"roles"`
	Email     string   `json:"email"`
	Name      string   `json:"name"`
	Cnf       struct {
		JKT string `json:"jkt"`
	} `json:"cnf"`
	// Status is the Token Status List claim (statuslist.go).
	Status *tokenStatus `json:"status"`
}

// validate checks the registered claims every token must satisfy, whatever
// its source: iss exact, aud contains audience, exp present and not past,
// nbf and iat not in the future, all with leeway (RFC 9068 §4, RFC 7519
// §4.1).
func (cs *claimSet) validate(issuer, aud string, now time.Time, leeway time.Duration) error {
	if cs.Issuer != issuer {
		return errors.New("iss does not match")
	}
	if !slices.Contains(cs.Audience, aud) {
		return errors.New("aud does not contain this resource")
	}
	if cs.Expiry == 0 {
		return errors.New("exp is missing")
	}
	if now.Add(-leeway).After(numericDate(cs.Expiry)) {
		return ErrTokenExpired
	}
	if cs.NotBefore != 0 && now.Add(leeway).Before(numericDate(cs.NotBefore)) {
		return ErrTokenNotYetValid
	}
	if cs.IssuedAt != 0 && now.Add(leeway).Before(numericDate(cs.IssuedAt)) {
		return ErrTokenNotYetValid
	}
	return nil
}

// claims converts a validated claim set into Claims.
func (cs *claimSet) claims(raw []byte) *Claims {
	c := &Claims{
		Issuer:   cs.Issuer,
		Subject:  cs.Subject,
		ClientID: cs.ClientID,
		Username: cs.Username,
		Email:    cs.Email,
		Name:     cs.Name,
		Scopes:   strings.Fields(cs.Scope),
		Roles:    cs.Roles,
		Audience: cs.Audience,
		ID:       cs.ID,
		JKT:      cs.Cnf.JKT,
		Raw:      raw,
		status:   cs.Status,
	}
	if cs.Expiry != 0 {
		c.Expiry = numericDate(cs.Expiry)
	}
	if cs.IssuedAt != 0 {
		c.IssuedAt = numericDate(cs.IssuedAt)
	}
	if cs.NotBefore != 0 {
		c.NotBefore = numericDate(cs.NotBefore)
	}
	return c
}

// numericDate converts an RFC 7519 NumericDate to a time, saturating values
// outside the range time.Time can represent.
func numericDate(f float64) time.Time {
	const limit = 1e15 // seconds; some 30 million years, far beyond any real date
	switch {
	case f != f: // NaN cannot come from JSON, but be safe
		return time.Time{}
	case f > limit:
		return time.Unix(limit, 0)
	case f < -limit:
		return time.Unix(-limit, 0)
	}
	sec := int64(f)
	return time.Unix(sec, int64((f-float64(sec))*1e9))
}

// audience decodes aud, which RFC 7519 §4.1.3 allows as a string or an array
// of strings.
type audience []string

// UnmarshalJSON accepts a string or an array of strings. Strings without
// escapes, the usual case, are sliced out directly: encoding/json has
// already validated b, and a nested json.Unmarshal would cost as much as the
// rest of the claims.
func (a *audience) UnmarshalJSON(b []byte) error {
	if out, ok := simpleStrings(b); ok {
		*a = out
		return nil
	}
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*a = audience{s}
		return nil
	}
	var ss []string
	if err := json.Unmarshal(b, &ss); err != nil {
		return err
	}
	*a = ss
	return nil
}

// simpleStrings decodes valid JSON b that is a string or an array of
// strings, none with a backslash; ok is false for anything else.
func simpleStrings(b []byte) (out audience, ok bool) {
	str := func(i int) (string, int, bool) { // b[i] is the opening quote
		for j := i + 1; j < len(b); j++ {
			switch b[j] {
			case '\\':
				return "", 0, false
			case '"':
				return string(b[i+1 : j]), j + 1, true
			}
		}
		return "", 0, false
	}
	skip := func(i int) int {
		for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
			i++
		}
		return i
	}
	if len(b) > 0 && b[0] == '"' {
		s, _, ok := str(0)
		return audience{s}, ok
	}
	if len(b) == 0 || b[0] != '[' {
		return nil, false
	}
	out = make(audience, 0, 1)
	for i := skip(1); i < len(b); {
		switch b[i] {
		case ']':
			return out, true
		case ',':
			i = skip(i + 1)
		case '"':
			s, next, ok := str(i)
			if !ok {
				return nil, false
			}
			out = append(out, s)
			i = skip(next)
		default:
			return nil, false
		}
	}
	return nil, false
}

// contextKey is the unexported type of the context key for Claims.
type contextKey struct{}

// verification is the context value under contextKey: the claims, and, when
// an Authenticator's middleware verified them, which one (the scheme follows
// from the claims: a DPoP-bound token has a JKT). NewContext leaves by nil,
// so the Require methods never trust claims they did not see verified.
type verification struct {
	claims *Claims
	by     *Authenticator // nil for NewContext
}

// NewContext returns a copy of ctx that carries c, for tests of downstream
// handlers; the middleware stores the claims it verifies in the same place.
//
// Claims put in a context by NewContext are read by FromContext only: the
// Require methods do not trust them and authenticate the request
// themselves.
func NewContext(ctx context.Context, c *Claims) context.Context {
	return context.WithValue(ctx, contextKey{}, &verification{claims: c})
}

// FromContext returns the claims stored in ctx by the middleware or by
// NewContext, and whether there were any.
func FromContext(ctx context.Context) (*Claims, bool) {
	v, ok := ctx.Value(contextKey{}).(*verification)
	if !ok || v.claims == nil {
		return nil, false
	}
	return v.claims, true
}

// verifiedBy returns the verification in ctx if a verified the claims
// itself, or nil: claims from NewContext or from another Authenticator,
// which may have another audience, issuer or policy, do not count.
func verifiedBy(ctx context.Context, a *Authenticator) *verification {
	v, ok := ctx.Value(contextKey{}).(*verification)
	if !ok || v.by != a || v.claims == nil {
		return nil
	}
	return v
}
