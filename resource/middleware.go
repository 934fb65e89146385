package resource

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"
)

// Authenticator verifies bearer tokens and guards HTTP handlers with them.
// It is safe for concurrent use.
type Authenticator struct {
	mode       Mode
	issuer     string
	audience   string
	leeway     time.Duration
	maxSize    int
	allowForm  bool
	realm      string
	resMeta    string
	logger     *slog.Logger
	onError    func(http.ResponseWriter, *http.Request, *Error)
	tokenCheck TokenCheckFunc

	jwt          *jwtVerifier // nil in ModeIntrospect
	status       *statusChecker
	introspector *introspector // nil in ModeLocal
	dpop         *dpopVerifier // dpop.go
}

// TokenCheckFunc inspects a token after it was verified. Returning an error
// refuses the request with 401 invalid_token; an error wrapping
// ErrUnavailable answers 503 instead.
type TokenCheckFunc func(ctx context.Context, rawToken string, c *Claims) error

// Option configures rarely needed hooks of an Authenticator.
type Option func(*Authenticator)

// WithTokenCheck runs check after every successful verification, for
// example to refuse at once a token the issuer has revoked when the service
// can look the revocation up without a round trip (the authorization server
// mounting its own API in-process does this).
func WithTokenCheck(check TokenCheckFunc) Option {
	return func(a *Authenticator) { a.tokenCheck = check }
}

// New returns an Authenticator for cfg. If cfg needs the issuer's metadata
// (no JWKSURL or KeySet in a local mode, no Introspection.URL in an
// introspecting mode), New fetches it and fails when it cannot. ctx bounds
// that fetch only.
func New(ctx context.Context, cfg Config, opts ...Option) (*Authenticator, error) {
	if cfg.Issuer == "" {
		return nil, errors.New("resource: Config.Issuer is required")
	}
	if cfg.Audience == "" {
		return nil, errors.New("resource: Config.Audience is required")
	}
	if cfg.Mode < ModeLocal || cfg.Mode > ModeLocalThenIntrospect {
		return nil, fmt.Errorf("resource: unknown mode %v", cfg.Mode)
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = http.DefaultClient
	}
	setDefault(&cfg.HTTPTimeout, DefaultFetchTimeout)
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	switch {
	case cfg.Leeway == 0:
		cfg.Leeway = DefaultLeeway
	case cfg.Leeway < 0:
		cfg.Leeway = 0
	}
	if cfg.MaxTokenSize <= 0 {
		cfg.MaxTokenSize = DefaultMaxTokenSize
	}
	if len(cfg.Algorithms) == 0 {
		cfg.Algorithms = defaultAlgorithms
	}
	cfg.Algorithms = slices.Clone(cfg.Algorithms)
	if err := checkAlgorithms(cfg.Algorithms); err != nil {
		return nil, err
	}

	a := &Authenticator{
		mode:      cfg.Mode,
		issuer:    cfg.Issuer,
		audience:  cfg.Audience,
		leeway:    cfg.Leeway,
		maxSize:   cfg.MaxTokenSize,
		allowForm: cfg.AllowFormToken,
		realm:     cfg.Realm,
		resMeta:   cfg.ResourceMetadataURL,
		logger:    cfg.Logger,
		onError:   cfg.ErrorHandler,
	}
	for _, o := range opts {
		o(a)
	}
	dv, err := newDPoPVerifier(cfg.DPoP, cfg.Now)
	if err != nil {
		return nil, err
	}
	a.dpop = dv

	local := cfg.Mode != ModeIntrospect
	remote := cfg.Mode != ModeLocal
	if remote && (cfg.Introspection.ClientID == "" || cfg.Introspection.ClientSecret == "") {
		return nil, errNoIntrospection
	}
	var md *serverMetadata
	if local && cfg.KeySet == nil && cfg.JWKSURL == "" || remote && cfg.Introspection.URL == "" {
		dctx, cancel := context.WithTimeout(ctx, cfg.HTTPTimeout)
		defer cancel()
		var err error
		if md, err = discover(dctx, cfg.HTTPClient, cfg.Issuer, DefaultMaxResponseSize); err != nil {
			return nil, err
		}
	}

	if local {
		keys := cfg.KeySet
		if keys == nil {
			url := cfg.JWKSURL
			if url == "" {
				if url = md.JWKSURI; url == "" {
					return nil, fmt.Errorf("resource: the metadata of %s has no jwks_uri", cfg.Issuer)
				}
			}
			rks, err := NewRemoteKeySet(RemoteKeySetConfig{
				URL:          url,
				HTTPClient:   cfg.HTTPClient,
				Now:          cfg.Now,
				Logger:       cfg.Logger,
				FetchTimeout: cfg.HTTPTimeout,
			})
			if err != nil {
				return nil, err
			}
			keys = rks
		}
		a.jwt = &jwtVerifier{
			issuer:   cfg.Issuer,
			audience: cfg.Audience,
			algs:     cfg.Algorithms,
			keys:     keys,
			leeway:   cfg.Leeway,
			now:      cfg.Now,
		}
		if !cfg.StatusList.SkipStatusCheck {
			a.status = newStatusChecker(cfg.StatusList, cfg.Issuer, cfg.HTTPClient, cfg.HTTPTimeout,
				keys, cfg.Algorithms, cfg.Leeway, cfg.Now, cfg.Logger)
		}
	}
	if remote {
		ic := cfg.Introspection
		url := ic.URL
		if url == "" {
			if url = md.IntrospectionEndpoint; url == "" {
				url = strings.TrimSuffix(cfg.Issuer, "/") + "/introspect"
			}
		}
		if ic.MaxCacheEntries <= 0 {
			ic.MaxCacheEntries = 10000
		}
		a.introspector = &introspector{
			url:          url,
			clientID:     ic.ClientID,
			clientSecret: ic.ClientSecret,
			client:       cfg.HTTPClient,
			timeout:      cfg.HTTPTimeout,
			now:          cfg.Now,
			logger:       cfg.Logger,
			maxSize:      DefaultMaxResponseSize,
			ttl:          ic.CacheTTL,
			maxEntries:   ic.MaxCacheEntries,
		}
	}
	return a, nil
}

// Verify checks rawToken according to the configured mode and returns its
// claims. Errors wrap the package's sentinels: ErrInvalidToken for any
// rejected token (with ErrTokenExpired, ErrTokenNotYetValid,
// ErrTokenInactive or ErrUnknownKey when they apply), or ErrUnavailable when
// the issuer could not be consulted.
//
// Verify does not check scopes or roles; the Require methods do.
func (a *Authenticator) Verify(ctx context.Context, rawToken string) (*Claims, error) {
	if len(rawToken) > a.maxSize {
		return nil, fmt.Errorf("%w: token of %d bytes exceeds the limit", ErrInvalidToken, len(rawToken))
	}
	var c *Claims
	var err error
	switch a.mode {
	case ModeLocal:
		if c, err = a.jwt.verify(ctx, rawToken); err == nil && a.status != nil {
			err = a.status.check(ctx, c)
		}
	case ModeIntrospect:
		c, err = a.introspector.introspect(ctx, rawToken, a.issuer, a.audience, a.leeway)
	case ModeLocalThenIntrospect:
		if c, err = a.jwt.verify(ctx, rawToken); err == nil {
			_, err = a.introspector.introspect(ctx, rawToken, a.issuer, a.audience, a.leeway)
		}
	}
	if err != nil {
		return nil, err
	}
	if a.tokenCheck != nil {
		if err := a.tokenCheck(ctx, rawToken, c); err != nil {
			if errors.Is(err, ErrUnavailable) {
				return nil, err
			}
			return nil, fmt.Errorf("%w: token check: %w", ErrInvalidToken, err)
		}
	}
	return c, nil
}

// Middleware authenticates each request and passes it on with the token's
// Claims in its context (see FromContext). A request without a valid token
// is refused with the RFC 6750 §3 error and does not reach next.
//
// Its signature is that of gorilla/mux's MiddlewareFunc, so the method value
// plugs into router.Use; with net/http, wrap handlers directly.
func (a *Authenticator) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r, _ := a.authenticate(w, r); r != nil {
			next.ServeHTTP(w, r)
		}
	})
}

// authenticate verifies r's token and returns r with the claims in its
// context, recorded as verified by a, or writes the refusal and returns
// nil.
func (a *Authenticator) authenticate(w http.ResponseWriter, r *http.Request) (*http.Request, *verification) {
	c, err := a.credentials(w, r) // a bearer or a DPoP-bound token (dpop.go)
	if err != nil {
		a.refuse(w, r, errorFor(err))
		return nil, nil
	}
	v := &verification{claims: c, by: a}
	return r.WithContext(context.WithValue(r.Context(), contextKey{}, v)), v
}

// RequireAnyScope returns middleware that lets a request through if its
// token grants at least one of scopes, and refuses it otherwise with 403
// insufficient_scope, listing scopes in the challenge.
//
// Placed after the same Authenticator's Middleware it reads the claims that
// Middleware verified. Otherwise (on its own, after another Authenticator's
// Middleware, or after NewContext) it authenticates the request first, so
// forgetting Middleware never opens the handler and claims verified for
// another audience never pass. It panics if scopes is empty.
//
// A refusal's challenge uses the scheme the request used: DPoP for a
// DPoP-bound token (RFC 9449 §7.1), Bearer otherwise.
func (a *Authenticator) RequireAnyScope(scopes ...string) func(http.Handler) http.Handler {
	mustNotBeEmpty("RequireAnyScope", scopes)
	return a.require(func(c *Claims) *Error {
		for _, s := range scopes {
			if c.HasScope(s) {
				return nil
			}
		}
		return scopeError("the access token grants none of the required scopes", scopes)
	})
}

// RequireAllScopes returns middleware that lets a request through if its
// token grants every one of scopes, and refuses it otherwise with 403
// insufficient_scope, listing scopes in the challenge. It composes like
// RequireAnyScope and panics if scopes is empty.
func (a *Authenticator) RequireAllScopes(scopes ...string) func(http.Handler) http.Handler {
	mustNotBeEmpty("RequireAllScopes", scopes)
	return a.require(func(c *Claims) *Error {
		for _, s := range scopes {
			if !c.HasScope(s) {
				return scopeError("the access token lacks a required scope", scopes)
			}
		}
		return nil
	})
}

// RequireAnyRole returns middleware that lets a request through if its
// token carries at least one of roles, and refuses it otherwise with 403
// insufficient_scope (RFC 6750 has no better code for a role). It composes
// like RequireAnyScope and panics if roles is empty.
func (a *Authenticator) RequireAnyRole(roles ...string) func(http.Handler) http.Handler {
	mustNotBeEmpty("RequireAnyRole", roles)
	return a.require(func(c *Claims) *Error {
		for _, r := range roles {
			if c.HasRole(r) {
				return nil
			}
		}
		return roleError()
	})
}

// RequireAllRoles returns middleware that lets a request through if its
// token carries every one of roles, and refuses it otherwise with 403
// insufficient_scope. It composes like RequireAnyScope and panics if roles
// is empty.
func (a *Authenticator) RequireAllRoles(roles ...string) func(http.Handler) http.Handler {
	mustNotBeEmpty("RequireAllRoles", roles)
	return a.require(func(c *Claims) *Error {
		for _, r := range roles {
			if !c.HasRole(r) {
				return roleError()
			}
		}
		return nil
	})
}

// require builds a middleware that applies check to the request's claims,
// authenticating first unless a's own Middleware already did: claims that
// another Authenticator (another audience, perhaps) or NewContext put in
// the context are not trusted.
func (a *Authenticator) require(check func(*Claims) *Error) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			v := verifiedBy(r.Context(), a)
			if v == nil {
				if r, v = a.authenticate(w, r); r == nil {
					return
				}
			}
			if e := check(v.claims); e != nil {
				e.dpop = v.claims.JKT != "" // the request used the DPoP scheme (credentials)
				a.refuse(w, r, e)
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

func scopeError(desc string, scopes []string) *Error {
	return &Error{Status: http.StatusForbidden, Code: CodeInsufficientScope, Description: desc, Scope: strings.Join(scopes, " ")}
}

func roleError() *Error {
	return &Error{Status: http.StatusForbidden, Code: CodeInsufficientScope, Description: "the caller lacks a required role"}
}

func mustNotBeEmpty(name string, list []string) {
	if len(list) == 0 {
		panic("resource: " + name + " needs at least one argument")
	}
}

// refuse logs e and writes it, through Config.ErrorHandler if set.
func (a *Authenticator) refuse(w http.ResponseWriter, r *http.Request, e *Error) {
	level := slog.LevelDebug
	if e.Status >= 500 {
		level = slog.LevelWarn
	}
	if a.logger.Enabled(r.Context(), level) {
		attrs := []slog.Attr{
			slog.Int("status", e.Status),
			slog.String("code", string(e.Code)),
			slog.String("method", r.Method),
			slog.String("path", r.URL.Path),
		}
		if e.Err != nil {
			attrs = append(attrs, slog.String("cause", e.Err.Error()))
		}
		a.logger.LogAttrs(r.Context(), level, "resource: request refused", attrs...)
	}
	if e.Status != http.StatusServiceUnavailable {
		a.setChallenges(w, e)
	}
	if a.onError != nil {
		a.onError(w, r, e)
		return
	}
	writeErrorBody(w, e)
}
