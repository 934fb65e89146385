package resource

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// defaultAlgorithms are the signature algorithms accepted when
// Config.Algorithms is empty: those our authorization server issues.
var defaultAlgorithms = []jose.SignatureAlgorithm{jose.RS256, jose.ES256, jose.EdDSA}

// DefaultLeeway is the clock skew tolerated on exp, nbf and iat when
// Config.Leeway is zero.
const DefaultLeeway = 5 * time.Second

// jwtVerifier verifies RFC 9068 JWT access tokens locally.
type jwtVerifier struct {
	issuer   string
	audience string
	algs     []jose.SignatureAlgorithm
	keys     KeySet
	leeway   time.Duration
	now      func() time.Time
}

// verify checks rawToken per RFC 9068 §4 and RFC 8725 and returns its claims.
// The order is cheapest first: structure and header before the key lookup,
// the signature before the claims. The caller has bounded the token's size.
func (v *jwtVerifier) verify(ctx context.Context, rawToken string) (*Claims, error) {
	if strings.Count(rawToken, ".") != 2 {
		// JWS compact serialization has three parts; five would be a JWE,
		// which this package does not accept.
		return nil, fmt.Errorf("%w: not a JWS compact serialization", ErrInvalidToken)
	}
	// The algorithm allow-list is enforced by the parser: none, HS* and
	// anything unlisted fail here (RFC 8725 §3.1).
	jws, err := jose.ParseSignedCompact(rawToken, v.algs)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidToken, err)
	}
	h := jws.Signatures[0].Protected
	// Explicit typing, RFC 9068 §4 and RFC 8725 §3.11: an ID token or any
	// other JWT signed by the same key is not an access token.
	if typ, _ := h.ExtraHeaders[jose.HeaderType].(string); !isAccessTokenType(typ) {
		return nil, fmt.Errorf("%w: typ %q is not at+jwt", ErrInvalidToken, typ)
	}
	// The key comes from the configured key set only; jku, x5u, x5c and an
	// embedded jwk are never consulted (RFC 8725 §3.10).
	if h.KeyID == "" {
		return nil, fmt.Errorf("%w: no kid in header", ErrInvalidToken)
	}
	key, err := v.keys.Key(ctx, h.KeyID)
	if err != nil {
		if errors.Is(err, ErrUnavailable) {
			return nil, err
		}
		return nil, fmt.Errorf("%w: %w", ErrInvalidToken, err)
	}
	// The algorithm must fit the key: its declared alg if any, and its type
	// (RFC 8725 §3.1).
	if key.Algorithm != "" && key.Algorithm != h.Algorithm || !algFitsKey(h.Algorithm, key.Key) {
		return nil, fmt.Errorf("%w: alg %q does not fit key %q", ErrInvalidToken, h.Algorithm, h.KeyID)
	}
	payload, err := jws.Verify(key.Key)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidToken, err)
	}
	var cs claimSet
	if err := json.Unmarshal(payload, &cs); err != nil {
		return nil, fmt.Errorf("%w: decoding claims: %w", ErrInvalidToken, err)
	}
	if err := cs.validate(v.issuer, v.audience, v.now(), v.leeway); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidToken, err)
	}
	return cs.claims(payload), nil
}

// isAccessTokenType reports whether typ names an RFC 9068 access token:
// "at+jwt" or "application/at+jwt", case-insensitively (RFC 9068 §2.1, §4).
func isAccessTokenType(typ string) bool {
	typ, _ = strings.CutPrefix(strings.ToLower(typ), "application/")
	return typ == "at+jwt"
}

// algFitsKey reports whether a signature with alg can be verified with key:
// RSA for RS* and PS*, ECDSA on the matching curve for ES*, Ed25519 for
// EdDSA. Keys of any other type, symmetric keys included, fit nothing.
func algFitsKey(alg string, key any) bool {
	switch jose.SignatureAlgorithm(alg) {
	case jose.RS256, jose.RS384, jose.RS512, jose.PS256, jose.PS384, jose.PS512:
		_, ok := key.(*rsa.PublicKey)
		return ok
	case jose.ES256:
		return ecdsaCurve(key) == elliptic.P256()
	case jose.ES384:
		return ecdsaCurve(key) == elliptic.P384()
	case jose.ES512:
		return ecdsaCurve(key) == elliptic.P521()
	case jose.EdDSA:
		_, ok := key.(ed25519.PublicKey)
		return ok
	}
	return false
}

func ecdsaCurve(key any) elliptic.Curve {
	if k, ok := key.(*ecdsa.PublicKey); ok {
		return k.Curve
	}
	return nil
}

// checkAlgorithms validates an algorithm allow-list: asymmetric signature
// algorithms only.
func checkAlgorithms(algs []jose.SignatureAlgorithm) error {
	for _, a := range algs {
		switch a {
		case jose.RS256, jose.RS384, jose.RS512, jose.PS256, jose.PS384, jose.PS512,
			jose.ES256, jose.ES384, jose.ES512, jose.EdDSA:
		default:
			return fmt.Errorf("resource: algorithm %q is not allowed; use asymmetric signature algorithms only", a)
		}
	}
	return nil
}
