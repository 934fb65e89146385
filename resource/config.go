package resource

import (
	"fmt"
	"log/slog"
	"net/http"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// Mode chooses how the Authenticator decides that a token is valid.
type Mode int

// The three modes. See the package documentation for when to pick which.
const (
	// ModeLocal verifies JWT access tokens (RFC 9068) locally against the
	// issuer's JWKS. No network call per request; a revoked token is
	// refused once the token's status list (Config.StatusList) shows it,
	// and accepted until it expires if the token has no status claim.
	ModeLocal Mode = iota
	// ModeIntrospect asks the issuer's introspection endpoint (RFC 7662)
	// about every token, opaque or JWT. Revocation takes effect at once (or
	// after Introspection.CacheTTL); each uncached request costs a round
	// trip, and the issuer must be up.
	ModeIntrospect
	// ModeLocalThenIntrospect verifies the JWT locally first, so forged and
	// expired tokens never reach the issuer, then introspects it to learn
	// whether it was revoked. The claims come from the verified JWT.
	ModeLocalThenIntrospect
)

var modeNames = [...]string{
	ModeLocal:               "local",
	ModeIntrospect:          "introspect",
	ModeLocalThenIntrospect: "local-then-introspect",
}

// String returns the mode's name: "local", "introspect" or
// "local-then-introspect".
func (m Mode) String() string {
	if m >= 0 && int(m) < len(modeNames) {
		return modeNames[m]
	}
	return fmt.Sprintf("Mode(%d)", int(m))
}

// ParseMode returns the mode named s, as printed by Mode.String.
func ParseMode(s string) (Mode, error) {
	for m, name := range modeNames {
		if s == name {
			return Mode(m), nil
		}
	}
	return 0, fmt.Errorf("resource: unknown mode %q (want local, introspect or local-then-introspect)", s)
}

// MarshalText implements encoding.TextMarshaler.
func (m Mode) MarshalText() ([]byte, error) { return []byte(m.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler, for configuration files.
func (m *Mode) UnmarshalText(b []byte) error {
	v, err := ParseMode(string(b))
	if err != nil {
		return err
	}
	*m = v
	return nil
}

// Config configures an Authenticator. Zero values take the defaults named in
// each field's comment; Issuer and Audience are required.
type Config struct {
	// Issuer is the authorization server's issuer identifier. A token's iss
	// must equal it exactly. It also locates the RFC 8414 metadata when
	// JWKSURL or Introspection.URL are empty.
	Issuer string
	// Audience identifies this API. A token's aud must contain it. Our
	// authorization server's default is {Issuer}/api.
	Audience string
	// Mode chooses local verification, introspection, or both; default
	// ModeLocal.
	Mode Mode

	// KeySet supplies verification keys. Default: a RemoteKeySet for JWKSURL
	// with default tuning; build one yourself to tune it.
	KeySet KeySet
	// JWKSURL is the issuer's JWKS. Default: jwks_uri from the issuer's
	// RFC 8414 metadata, fetched once by New. Setting it lets New succeed
	// while the issuer is down.
	JWKSURL string
	// Algorithms is the signature algorithm allow-list; default RS256,
	// ES256 and EdDSA, those our authorization server issues. Only
	// asymmetric algorithms are accepted: none and HS256 are refused.
	Algorithms []jose.SignatureAlgorithm
	// Leeway is the clock skew tolerated on exp, nbf and iat; default
	// DefaultLeeway. A negative value means no leeway.
	Leeway time.Duration
	// MaxTokenSize bounds accepted tokens in bytes; default
	// DefaultMaxTokenSize. Longer tokens are refused without parsing.
	MaxTokenSize int

	// Introspection configures the RFC 7662 client, used by ModeIntrospect
	// and ModeLocalThenIntrospect.
	Introspection IntrospectionConfig
	// StatusList configures the Token Status List checks of locally
	// verified tokens (statuslist.go).
	StatusList StatusListConfig

	// HTTPClient makes every outgoing request (metadata, JWKS,
	// introspection); default http.DefaultClient.
	HTTPClient *http.Client
	// HTTPTimeout bounds each outgoing request; default DefaultFetchTimeout.
	HTTPTimeout time.Duration
	// Now is the clock; default time.Now.
	Now func() time.Time
	// Logger receives refusals (at debug level, without tokens) and
	// failures to reach the issuer; default slog.Default().
	Logger *slog.Logger

	// Realm, if set, is sent as the realm of WWW-Authenticate challenges.
	Realm string
	// ResourceMetadataURL, if set, is sent as the resource_metadata
	// parameter of challenges (RFC 9728 §5.1): the URL of this API's
	// protected resource metadata (see MetadataURL).
	ResourceMetadataURL string
	// AllowFormToken also accepts the token as access_token in a
	// form-encoded request body (RFC 6750 §2.2). The middleware then parses
	// the form of such requests. By default only the Authorization header is
	// read; the URI query never is.
	AllowFormToken bool
	// DPoP configures the checks of DPoP-bound tokens (RFC 9449), which are
	// always accepted with the DPoP scheme and refused as Bearer.
	DPoP DPoPConfig

	// ErrorHandler, if set, writes refusals instead of the default JSON body.
	// When it runs, the WWW-Authenticate header is already set on w (except
	// for 503); it writes the status and body.
	ErrorHandler func(w http.ResponseWriter, r *http.Request, e *Error)
}
