package keys

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"
)

// Supported signing algorithms (RFC 7518 §3.1, RFC 8037 §3.1).
const (
	RS256 = "RS256" // RSASSA-PKCS1-v1_5 with SHA-256, 2048-bit keys
	ES256 = "ES256" // ECDSA on P-256 with SHA-256
	EdDSA = "EdDSA" // Ed25519
)

// Defaults applied by New to zero fields of Config.
const (
	DefaultAlgorithm      = RS256
	DefaultRotationPeriod = 30 * 24 * time.Hour
	DefaultJWKSMaxAge     = time.Hour
	DefaultReloadInterval = 10 * time.Second
)

// SafetyMargin is added to both derived windows (see Config). It absorbs
// clock differences between instances and verifiers, verifier leeway on
// "exp", and slow reloads.
const SafetyMargin = 5 * time.Minute

// RSABits is the size of generated RSA keys. 2048 bits is the size RFC 7518
// §3.3 requires at minimum; larger keys make every RS256 signature several
// times slower on the token endpoint's hot path for no practical gain within a
// 30-day key lifetime.
const RSABits = 2048

// MinSecretLen is the minimum length of Config.Secret in bytes.
const MinSecretLen = 32

// Config configures a Manager. Zero durations take the defaults above, except
// TokenLifetime, which has no default.
//
// Two windows are derived from it, never configured on their own, so that
// they cannot disagree with the values they protect:
//
//	pre-publication = JWKSMaxAge + ReloadInterval + SafetyMargin
//	retention       = TokenLifetime + ReloadInterval + SafetyMargin
//
// A new key is published for at least the pre-publication window before it
// signs, so every cached JWKS (at most JWKSMaxAge old, fetched from an
// instance at most ReloadInterval behind storage) already holds it. A retired
// key stays published for the retention window, so every token it signed,
// including those signed by an instance that had not yet reloaded, expires
// first.
type Config struct {
	// Algorithm is used for newly generated keys: "RS256" (default), "ES256"
	// or "EdDSA". Existing keys keep their algorithm, so changing it takes
	// effect at the next rotation.
	Algorithm string
	// ExtraAlgorithms each keep one active key of their own, rotated by the
	// same lifecycle as the keys of Algorithm and published in the same
	// JWKS (for example RS256 for OpenID Connect ID tokens, which every
	// relying party must be able to verify, while access tokens use ES256).
	// An entry equal to Algorithm is ignored. Keys of any algorithm that is
	// not an extra one belong to Algorithm's group, so changing Algorithm
	// still takes effect at the next rotation. A group without keys gets an
	// active key at once (it cannot be in any cached JWKS yet: verifiers
	// must refetch the JWKS on an unknown kid, as go-oidc does).
	ExtraAlgorithms []string
	// Secret encrypts private keys at rest. Required, at least MinSecretLen
	// bytes (see LoadOrCreateSecret). Every instance sharing a store MUST use
	// the same Secret.
	Secret []byte
	// RotationPeriod is how long a key stays active; default 30 days. It must
	// be longer than the pre-publication window.
	RotationPeriod time.Duration
	// JWKSMaxAge is the Cache-Control max-age of the JWKS response; default one
	// hour, truncated to whole seconds.
	JWKSMaxAge time.Duration
	// TokenLifetime is the longest lifetime of anything signed with these keys
	// (access tokens, signed introspection responses, ID tokens). Required: it
	// has no safe default, and it must come from the same settings that set
	// those lifetimes.
	TokenLifetime time.Duration
	// ReloadInterval is how often Run reloads the key set from storage, where
	// other instances may have rotated it; default 10 seconds.
	ReloadInterval time.Duration
	// Now returns the current time; default time.Now.
	Now func() time.Time
	// Logger receives lifecycle events; default slog.Default(). Key material is
	// never logged.
	Logger *slog.Logger
	// OnEvent, if set, is called for every lifecycle change this manager
	// applies (what is created, activated, retired, rescheduled, deleted or
	// dropped), for example to write an audit record. It gets identifiers
	// only, never key material, and must not block.
	OnEvent func(ctx context.Context, what, kid, alg string)
}

// withDefaults returns a copy of c with defaults applied, or an error when a
// field is invalid.
func (c Config) withDefaults() (Config, error) {
	if c.Algorithm == "" {
		c.Algorithm = DefaultAlgorithm
	}
	switch c.Algorithm {
	case RS256, ES256, EdDSA:
	default:
		return c, fmt.Errorf("keys: unsupported algorithm %q (want %s, %s or %s)", c.Algorithm, RS256, ES256, EdDSA)
	}
	var extra []string
	for _, a := range c.ExtraAlgorithms {
		switch a {
		case RS256, ES256, EdDSA:
		default:
			return c, fmt.Errorf("keys: unsupported extra algorithm %q (want %s, %s or %s)", a, RS256, ES256, EdDSA)
		}
		if a != c.Algorithm && !slices.Contains(extra, a) {
			extra = append(extra, a)
		}
	}
	c.ExtraAlgorithms = extra
	if len(c.Secret) < MinSecretLen {
		return c, fmt.Errorf("keys: Config.Secret must be at least %d bytes, got %d", MinSecretLen, len(c.Secret))
	}
	if c.TokenLifetime <= 0 {
		return c, errors.New("keys: Config.TokenLifetime is required (the longest lifetime of any signed token)")
	}
	for _, d := range []struct {
		name string
		v    *time.Duration
		def  time.Duration
	}{
		{"RotationPeriod", &c.RotationPeriod, DefaultRotationPeriod},
		{"JWKSMaxAge", &c.JWKSMaxAge, DefaultJWKSMaxAge},
		{"ReloadInterval", &c.ReloadInterval, DefaultReloadInterval},
	} {
		switch {
		case *d.v < 0:
			return c, fmt.Errorf("keys: Config.%s must not be negative, got %v", d.name, *d.v)
		case *d.v == 0:
			*d.v = d.def
		}
	}
	c.JWKSMaxAge = c.JWKSMaxAge.Truncate(time.Second)
	if c.JWKSMaxAge < time.Second {
		return c, errors.New("keys: Config.JWKSMaxAge must be at least one second")
	}
	if c.RotationPeriod <= c.prePublication() {
		return c, fmt.Errorf("keys: Config.RotationPeriod (%v) must be longer than the pre-publication window (%v = JWKSMaxAge + ReloadInterval + %v)",
			c.RotationPeriod, c.prePublication(), SafetyMargin)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c, nil
}

// prePublication is how long a key is published before it may sign.
func (c Config) prePublication() time.Duration {
	return c.JWKSMaxAge + c.ReloadInterval + SafetyMargin
}

// retention is how long a retired key stays published.
func (c Config) retention() time.Duration {
	return c.TokenLifetime + c.ReloadInterval + SafetyMargin
}
