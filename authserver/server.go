package authserver

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ory/fosite"
	"github.com/ory/fosite/compose"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"

	"github.com/oauthkit/authserver/authserver/ui"
	"github.com/oauthkit/authserver/internal/password"
	"github.com/oauthkit/authserver/internal/tracing"
	"github.com/oauthkit/authserver/keys"
	"github.com/oauthkit/authserver/storage"
)

// Config configures a Server. Zero values take the documented defaults.
type Config struct {
	// Issuer is the server's issuer identifier (RFC 8414), an absolute URL
	// without a trailing slash. Required.
	Issuer string
	// Audience is the aud of every access token; default Issuer + "/api".
	Audience string
	// Scopes, when set, are advertised in the metadata (scopes_supported)
	// instead of the default: every scope a registered client may request.
	Scopes []string
	// RefreshGrace, when positive, makes a retried refresh with the
	// just-rotated refresh token return the same new pair within this window
	// (idempotent retry) instead of revoking the grant. Default 0: strict.
	RefreshGrace time.Duration
	// AccessTokenTTL defaults to 15 minutes, RefreshTokenTTL to 30 days.
	AccessTokenTTL  time.Duration
	RefreshTokenTTL time.Duration
	// Secret is the server secret (at least 32 bytes). The key that signs
	// refresh tokens is derived from it, so every instance must share it.
	Secret []byte
	// PasswordParams are the argon2id parameters for new hashes; default
	// password.DefaultParams.
	PasswordParams password.Params
	// MaxConcurrentHashes bounds the password hashes computed at once
	// (default: GOMAXPROCS). Requests beyond it wait up to
	// HashQueueTimeout (default 2s) and then get 503 temporarily_unavailable.
	MaxConcurrentHashes int
	HashQueueTimeout    time.Duration
	// NoHashGC leaves the garbage collector alone around password hashes;
	// by default each hash's buffer is collected as soon as the hash ends
	// and the pacer's own collections wait while hashes run (see hashGC).
	NoHashGC bool
	// MaxBodyBytes limits request bodies at the OAuth endpoints (default 64 KiB).
	MaxBodyBytes int64
	// IntrospectionJWTTTL is the lifetime of signed (RFC 9701) introspection
	// responses; default 5 minutes.
	IntrospectionJWTTTL time.Duration
	// ClientCacheTTL is how long verified client credentials are remembered
	// per instance (default 10 minutes; negative disables the cache). It
	// bounds memory, not staleness: a cached registration is trusted only
	// while the client change feed confirms it, so a client updated,
	// rotated or deleted on any instance stops working from the cache
	// within ClientChangeMaxDelay (clientfeed.go).
	ClientCacheTTL time.Duration
	// ClientChangeMaxDelay bounds how long a client changed on another
	// instance (or in the database, by the CLI) can still authenticate
	// from this instance's cache (default 1s). A background poller reads
	// the storage client change feed at a quarter of it while anything is
	// cached; when the feed cannot be read, cached registrations are read
	// from storage again after this delay. Stop the poller with Close.
	ClientChangeMaxDelay time.Duration
	// IntrospectionCacheSize bounds the cache of verified access tokens that
	// introspection answers from (default 10000 entries; negative disables
	// it). See introspect_cache.go.
	IntrospectionCacheSize int
	// RevocationMaxDelay bounds how long a cached access token revoked on
	// another instance can still read active (default 1s). The instance
	// polls the storage revocation feed at a quarter of it while
	// introspection requests arrive.
	RevocationMaxDelay time.Duration
	// Throttle configures brute-force protection (on by default).
	Throttle ThrottleConfig
	// Registration configures dynamic client registration (register.go).
	Registration RegistrationConfig
	// CORSAllowedOrigins are the browser origins allowed to call the token,
	// revocation, pushed authorization, device authorization and userinfo
	// endpoints (exact matches, such as "https://app.example").
	// Empty (the default) disables CORS.
	CORSAllowedOrigins []string
	// MetricsOnMainHandler serves /metrics from Handler; otherwise use
	// MetricsHandler on a separate (admin) listener.
	MetricsOnMainHandler bool
	// AuthCodeTTL is the lifetime of an authorization code (default 60s).
	AuthCodeTTL time.Duration
	// PARTTL is the lifetime of a pushed request's request_uri (default 60s).
	PARTTL time.Duration
	// SessionTTL is the lifetime of a browser session (default 24h).
	SessionTTL time.Duration
	// LoginTTL is how long a user has to sign in and consent once an
	// authorization request arrived (default 15 minutes).
	LoginTTL time.Duration
	// PendingPerMinute and PendingBurst bound the authorization requests
	// an address may leave waiting for a sign-in or a consent (each is a
	// stored record until LoginTTL): a token bucket per address and
	// instance, refilled at PendingPerMinute (default 600) with PendingBurst
	// (default 200) at once; a negative PendingPerMinute turns it off. A
	// signed-in user's request that needs no page stores nothing and is
	// not counted.
	PendingPerMinute float64
	PendingBurst     int
	// UIDir, when set, holds templates/*.html and static/* files that
	// replace the embedded sign-in, consent and sign-out pages.
	UIDir string
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// TracerProvider, if set, traces every request (a server span per
	// route, continuing an incoming traceparent) and every signature. Nil
	// (the default) turns tracing off at no cost.
	TracerProvider trace.TracerProvider
	// Audit, if set, receives the audit events (NewAuditLog) instead of
	// Logger, which gets them as INFO records "audit" when Audit is nil.
	Audit *AuditLog
	// DeviceCodeTTL is the lifetime of a device authorization's device and
	// user codes (RFC 8628; default 10 minutes).
	DeviceCodeTTL time.Duration
	// DevicePollInterval is the polling interval given to devices (default
	// 5 s, RFC 8628 §3.2); whole seconds.
	DevicePollInterval time.Duration
	// ClientJWKSCacheTTL is how long a private_key_jwt client's key set
	// fetched from its jwks_uri is kept when the response has no
	// Cache-Control max-age (default 5 minutes; a max-age is honoured
	// between 30 s and 1 h).
	ClientJWKSCacheTTL time.Duration
	// ClientJWKSMinRefetch is the least time between two fetches of a
	// client's jwks_uri caused by an assertion with an unknown kid
	// (default 10 s).
	ClientJWKSMinRefetch time.Duration
	// InsecureAllowPrivateClientURLs lets the server connect to loopback,
	// private, link-local and other non-public addresses when it fetches a
	// client's jwks_uri or delivers a back-channel logout, and lets
	// /register accept such URLs (outbound.go). Off by default: anyone who
	// can register a client could otherwise reach the server's internal
	// network through it (SSRF). It MUST NOT be set when untrusted parties
	// can register clients; it is for internal deployments and tests.
	InsecureAllowPrivateClientURLs bool
	// DPoP configures DPoP proofs (RFC 9449) at the token endpoint.
	DPoP DPoPConfig
	// StatusList configures the Token Status Lists (statuslist.go).
	StatusList StatusListConfig
	// Now defaults to time.Now.
	Now func() time.Time
}

func (c *Config) setDefaults() error {
	c.Issuer = strings.TrimRight(c.Issuer, "/")
	if c.Issuer == "" {
		return errors.New("authserver: Issuer is required")
	}
	if c.Audience == "" {
		c.Audience = c.Issuer + "/api"
	}
	if c.AccessTokenTTL <= 0 {
		c.AccessTokenTTL = 15 * time.Minute
	}
	if c.RefreshTokenTTL <= 0 {
		c.RefreshTokenTTL = 30 * 24 * time.Hour
	}
	if len(c.Secret) < 32 {
		return errors.New("authserver: Secret must be at least 32 bytes")
	}
	if c.PasswordParams == (password.Params{}) {
		c.PasswordParams = password.DefaultParams
	}
	if c.MaxConcurrentHashes <= 0 {
		c.MaxConcurrentHashes = runtime.GOMAXPROCS(0)
	}
	if c.HashQueueTimeout <= 0 {
		c.HashQueueTimeout = 2 * time.Second
	}
	if c.MaxBodyBytes <= 0 {
		c.MaxBodyBytes = 64 << 10
	}
	if c.IntrospectionJWTTTL <= 0 {
		c.IntrospectionJWTTTL = 5 * time.Minute
	}
	if c.ClientCacheTTL == 0 {
		c.ClientCacheTTL = defaultClientCacheTTL
	}
	if c.ClientChangeMaxDelay <= 0 {
		c.ClientChangeMaxDelay = defaultClientChangeMaxDelay
	}
	if c.AuthCodeTTL <= 0 {
		c.AuthCodeTTL = 60 * time.Second
	}
	if c.PARTTL <= 0 {
		c.PARTTL = 60 * time.Second
	}
	if c.SessionTTL <= 0 {
		c.SessionTTL = 24 * time.Hour
	}
	if c.LoginTTL <= 0 {
		c.LoginTTL = pendingTTLDefault
	}
	if c.PendingPerMinute == 0 {
		c.PendingPerMinute = 600
	}
	if c.PendingBurst <= 0 {
		c.PendingBurst = 200
	}
	if c.DeviceCodeTTL <= 0 {
		c.DeviceCodeTTL = defaultDeviceCodeTTL
	}
	if c.DevicePollInterval < time.Second {
		c.DevicePollInterval = defaultDevicePollInterval
	}
	c.DevicePollInterval = c.DevicePollInterval.Truncate(time.Second)
	c.Throttle.setDefaults()
	c.Registration.setDefaults()
	if err := c.StatusList.setDefaults(); err != nil {
		return err
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.ClientJWKSCacheTTL <= 0 {
		c.ClientJWKSCacheTTL = 5 * time.Minute
	}
	if c.ClientJWKSMinRefetch <= 0 {
		c.ClientJWKSMinRefetch = 10 * time.Second
	}
	return nil
}

// Server is the authorization server. Create it with New; serve Handler;
// Close it to stop its background work.
type Server struct {
	cfg      Config
	store    storage.Store
	keys     *keys.Manager
	provider fosite.OAuth2Provider
	strategy *tokenStrategy
	log      *slog.Logger
	hashSem  chan struct{}
	hashGC   *hashGC
	// dummyHash is verified for unknown users so that every password
	// attempt costs one hash.
	dummyHash   string
	extra       []route
	throttle    *throttler
	demoAPI     bool
	collectors  []prometheus.Collector
	clientCache *clientCache
	clientFeed  *clientFeed
	introCache  *introCache
	// userinfoCache and userCache answer UserInfo from memory, with the
	// rules of introCache (userinfo.go).
	userinfoCache *tokenCache[cachedUserinfo]
	userCache     *tokenCache[cachedUser]
	revoked       *revocationSet
	metrics       *metrics
	committer     *committer
	draining      atomic.Bool
	pages         *ui.Pages
	csrf          ui.CSRF
	scopes        scopeCache
	regLimiter    *rateLimiter
	// pendingLimiter bounds the pending authorization requests per address
	// (Config.PendingPerMinute); nil when off.
	pendingLimiter *rateLimiter
	status         *statusLists
	// basePath is the issuer's path ("" for an issuer at a host's root).
	basePath string
	// hashing counts the hashes running and the collections after them
	// (hashSlot).
	hashing sync.WaitGroup
	// backchannel counts back-channel logout deliveries in flight.
	backchannel sync.WaitGroup
	// devicePolls and userCodeMAC serve the device grant (device.go).
	devicePolls *devicePolls
	userCodeMAC []byte
	// clientKeys caches the public keys of private_key_jwt clients.
	clientKeys *keySetCache
	// backchannelHTTP delivers back-channel logout tokens (endsession.go).
	backchannelHTTP *http.Client
	// secretBox opens the secrets of client_secret_jwt clients.
	secretBox *keys.SecretBox
	// assertionVerifications counts client assertion signature checks
	// (for tests and benchmarks).
	assertionVerifications atomic.Int64
	dpop                   *dpopChecker
}

// route is an extra handler mounted by an Option: at a path prefix, or at
// exactly one path (a metadata document).
type route struct {
	pattern string
	h       http.Handler
	exact   bool
}

// Option configures optional parts of a Server.
type Option func(*Server)

// WithCollector registers an extra Prometheus collector (for example the
// database pool statistics) with the server's metrics.
func WithCollector(c prometheus.Collector) Option {
	return func(s *Server) { s.collectors = append(s.collectors, c) }
}

// WithHandler mounts h at the path prefix (for example the demo API).
func WithHandler(prefix string, h http.Handler) Option {
	return func(s *Server) { s.extra = append(s.extra, route{pattern: prefix, h: h}) }
}

// New builds a Server on store and the key manager.
func New(cfg Config, store storage.Store, km *keys.Manager, opts ...Option) (*Server, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, store: store, keys: km, log: cfg.Logger,
		hashSem: make(chan struct{}, cfg.MaxConcurrentHashes), csrf: ui.NewCSRF(deriveKey(cfg.Secret, "csrf"))}
	if u, err := url.Parse(cfg.Issuer); err == nil {
		s.basePath = strings.TrimRight(u.EscapedPath(), "/")
	}
	pages, err := ui.New(cfg.UIDir, s.basePath)
	if err != nil {
		return nil, err
	}
	s.pages = pages
	s.metrics = newMetrics(km)
	s.committer = newCommitter(store, defaultMinBatch, defaultLinger, func(n int, d time.Duration) {
		s.metrics.commitBatch.Observe(float64(n))
		s.metrics.commitDuration.Observe(d.Seconds())
	})
	s.hashGC = newHashGC(cfg.NoHashGC, cfg.PasswordParams.Memory)
	s.introCache = newIntroCache(cfg.IntrospectionCacheSize)
	s.userinfoCache = newTokenCache[cachedUserinfo](cfg.IntrospectionCacheSize)
	s.userCache = newTokenCache[cachedUser](cfg.IntrospectionCacheSize)
	s.dpop = newDPoPChecker(cfg.DPoP, cfg.Secret)
	s.revoked = newRevocationSet(store, cfg.RevocationMaxDelay)
	s.devicePolls, s.userCodeMAC = newDevicePolls(), deriveKey(cfg.Secret, "user-code")
	s.clientKeys = newKeySetCache(cfg.ClientJWKSCacheTTL, cfg.ClientJWKSMinRefetch, cfg.Now, cfg.InsecureAllowPrivateClientURLs, s.log)
	s.backchannelHTTP = newOutboundClient(backchannelTimeout, cfg.InsecureAllowPrivateClientURLs)
	if cfg.InsecureAllowPrivateClientURLs {
		s.log.Warn("the server may call client URLs (jwks_uri, backchannel_logout_uri) on private and loopback addresses (--allow-private-client-urls)")
	}
	box, err := keys.NewSecretBox(cfg.Secret)
	if err != nil {
		return nil, fmt.Errorf("authserver: %w", err)
	}
	s.secretBox = box
	s.status = newStatusLists(s.cfg.StatusList.Size)
	s.revoked.onEntry = s.status.revoke
	s.revoked.onGaveUp = func() {
		s.introCache.clear()
		s.userinfoCache.clear()
	}
	s.clientCache = newClientCache(deriveKey(cfg.Secret, "client-cache"), cfg.ClientCacheTTL, cfg.ClientChangeMaxDelay)
	s.clientFeed = newClientFeed(store, s.clientCache, s.log, cfg.Now)
	if !cfg.Throttle.Disabled {
		s.throttle = &throttler{cfg: cfg.Throttle, store: store, now: cfg.Now, blocked: map[string]time.Time{}}
	}
	s.regLimiter = newRateLimiter(cfg.Registration.RatePerMinute, cfg.Registration.Burst, cfg.Now)
	if cfg.PendingPerMinute > 0 {
		s.pendingLimiter = newRateLimiter(cfg.PendingPerMinute, cfg.PendingBurst, cfg.Now)
	}
	if cfg.Registration.Open {
		s.log.Warn("open dynamic client registration is on: anyone can register a client at /register")
	}
	for _, o := range opts {
		o(s)
	}
	dh, err := unusableHash(cfg.PasswordParams)
	if err != nil {
		return nil, err
	}
	s.dummyHash = dh
	for _, c := range s.collectors {
		s.metrics.register(c)
	}
	if s.demoAPI {
		if err := s.mountDemoAPI(); err != nil {
			return nil, err
		}
	}
	s.provider, s.strategy = s.newProvider()
	s.clientFeed.start()
	return s, nil
}

// path returns p (a path with an optional query) under the issuer's path,
// for the pages' own links and redirects: an issuer such as
// https://example.com/auth serves its pages under /auth.
func (s *Server) path(p string) string { return s.basePath + p }

// deriveKey derives a purpose-bound key from the server secret.
func deriveKey(secret []byte, purpose string) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte("authserver:" + purpose))
	return m.Sum(nil)
}

// providerConfig adapts fosite's config: a refresh token is issued exactly
// when the client may use the refresh_token grant (no offline_access ritual).
type providerConfig struct{ *fosite.Config }

// noRefresh is a scope no request can hold; see GetRefreshTokenScopes.
const noRefresh = "\x00no-refresh"

// GetRefreshTokenScopes overrides fosite's: an empty list means "always
// issue"; a list nobody matches means "never".
func (c providerConfig) GetRefreshTokenScopes(ctx context.Context) []string {
	if st := stateFrom(ctx); st != nil && st.client != nil && slices.Contains(st.client.GrantTypes, grantRefreshToken) {
		// An OpenID Connect grant gets a refresh token only with
		// offline_access (Core §11).
		if st.oidcGrant {
			return []string{scopeOfflineAccess}
		}
		return []string{}
	}
	return []string{noRefresh}
}

func (s *Server) newProvider() (fosite.OAuth2Provider, *tokenStrategy) {
	fc := &fosite.Config{
		AccessTokenLifespan:          s.cfg.AccessTokenTTL,
		RefreshTokenLifespan:         s.cfg.RefreshTokenTTL,
		AccessTokenIssuer:            s.cfg.Issuer,
		GlobalSecret:                 deriveKey(s.cfg.Secret, "refresh-token-hmac"),
		ScopeStrategy:                fosite.ExactScopeStrategy,
		AudienceMatchingStrategy:     fosite.ExactAudienceMatchingStrategy,
		SendDebugMessagesToClients:   false,
		UseLegacyErrorFormat:         false,
		TokenURL:                     s.cfg.Issuer + "/token",
		ClientAuthenticationStrategy: s.fositeClientAuth,
		RefreshTokenScopes:           []string{},
		AuthorizeCodeLifespan:        s.cfg.AuthCodeTTL,
		// PKCE with S256 for every client (RFC 9700 §2.1.1); validated
		// before fosite runs, enforced here again.
		EnforcePKCE: true,
		// The code record keeps the PKCE challenge (fosite's default list
		// is code and redirect_uri): the PKCE storage reads it from there,
		// so issuing a code is one write, not two (see fosite_code.go).
		SanitationWhiteList:            []string{"code", "redirect_uri", "code_challenge", "code_challenge_method"},
		EnablePKCEPlainChallengeMethod: false,
		// state is optional with PKCE (RFC 9700 §2.1): no minimum length.
		MinParameterEntropy:             -1,
		OmitRedirectScopeParam:          true,
		RedirectSecureChecker:           redirectSecure,
		PushedAuthorizeContextLifespan:  s.cfg.PARTTL,
		PushedAuthorizeRequestURIPrefix: requestURIPrefix,
		IDTokenLifespan:                 s.cfg.AccessTokenTTL,
		IDTokenIssuer:                   s.cfg.Issuer,
	}
	cfg := providerConfig{fc}
	strategy := &tokenStrategy{
		HMACSHAStrategy: compose.NewOAuth2HMACStrategy(fc),
		keys:            s.keys,
		issuer:          s.cfg.Issuer,
		now:             s.cfg.Now,
		slots:           make(chan struct{}, runtime.GOMAXPROCS(0)),
		pairwiseKey:     deriveKey(s.cfg.Secret, "pairwise-subject"),
		status: &statusAllocator{store: s.store, cfg: s.cfg.StatusList, tokenTTL: s.cfg.AccessTokenTTL,
			now: s.cfg.Now},
	}
	if s.cfg.TracerProvider != nil {
		strategy.tracer = s.cfg.TracerProvider.Tracer(tracing.ScopeName)
	}
	store := &fositeStore{store: s.store, srv: s}
	var handlers []any
	for _, factory := range []compose.Factory{
		//lint:ignore SA1019 the password grant is deprecated upstream but a requirement here
		compose.OAuth2ResourceOwnerPasswordCredentialsFactory,
		compose.OAuth2RefreshTokenGrantFactory,
		compose.OAuth2ClientCredentialsGrantFactory,
		// The code handler first: PKCE needs the code it issues.
		compose.OAuth2AuthorizeExplicitFactory,
		compose.OAuth2PKCEFactory,
		compose.PushedAuthorizeHandlerFactory,
	} {
		handlers = append(handlers, factory(cfg, store, strategy))
	}
	// The ID token handlers after the code handler (fosite's requirement).
	handlers = append(handlers, oidcHandlers(cfg, store, strategy)...)
	for _, h := range handlers {
		registered := false
		if th, ok := h.(fosite.TokenEndpointHandler); ok {
			// Not Append, which drops a handler whose type is already
			// listed: every wrapped handler has the wrapper's type.
			fc.TokenEndpointHandlers = append(fc.TokenEndpointHandlers, foreignGrantSkipper{th})
			registered = true
		}
		if ah, ok := h.(fosite.AuthorizeEndpointHandler); ok {
			fc.AuthorizeEndpointHandlers.Append(ah)
			registered = true
		}
		if ph, ok := h.(fosite.PushedAuthorizeEndpointHandler); ok {
			fc.PushedAuthorizeEndpointHandlers.Append(ph)
			registered = true
		}
		if !registered {
			panic("authserver: factory returned no endpoint handler")
		}
	}
	for _, h := range []fosite.TokenEndpointHandler{
		exchangeHandler{grantHandler{s, store, strategy, grantTokenExchange}},
		deviceHandler{grantHandler{s, store, strategy, grantDeviceCode}},
		jwtBearerHandler{grantHandler{s, store, strategy, grantJWTBearer}},
	} {
		fc.TokenEndpointHandlers.Append(h)
	}
	return fosite.NewOAuth2Provider(store, cfg), strategy
}

// foreignGrantSkipper answers fosite's PopulateTokenEndpointResponse for a
// grant its handler cannot handle with fosite.ErrUnknownRequest itself.
// fosite asks every token handler to populate every response, and its own
// handlers, after the same CanHandleTokenEndpointRequest check, return the
// error wrapped with a captured stack trace: four stack walks per token
// response, about 2% of the CPU of a code exchange.
type foreignGrantSkipper struct{ fosite.TokenEndpointHandler }

// PopulateTokenEndpointResponse implements fosite.TokenEndpointHandler.
func (h foreignGrantSkipper) PopulateTokenEndpointResponse(ctx context.Context, ar fosite.AccessRequester, resp fosite.AccessResponder) error {
	if !h.CanHandleTokenEndpointRequest(ctx, ar) {
		return fosite.ErrUnknownRequest
	}
	return h.TokenEndpointHandler.PopulateTokenEndpointResponse(ctx, ar, resp)
}

// redirectSecure is fosite's check of a redirect URI's transport, matching
// registration: https, loopback http, or a private-use scheme (RFC 8252).
func redirectSecure(_ context.Context, u *url.URL) bool {
	switch u.Scheme {
	case "https":
		return true
	case "http":
		return isLoopbackLiteral(u.Hostname())
	default:
		return strings.Contains(u.Scheme, ".")
	}
}

// errHashBusy is returned when the password hashing queue is full.
var errHashBusy = errors.New("authserver: password hashing capacity exhausted")

// authenticateUser checks a username and password. Unknown, disabled and
// wrong all cost exactly one hash and return fosite.ErrNotFound. Hashes run
// under a semaphore, so a flood of attempts cannot exhaust memory.
func (s *Server) authenticateUser(ctx context.Context, email, pw string) (storage.User, error) {
	ip := ""
	if st := stateFrom(ctx); st != nil {
		ip = st.ip
	}
	if oe := s.reservePassword(ctx, email, ip); oe != nil {
		return storage.User{}, oe
	}
	kAI, kA, kIP := passwordKeys(email, ip)
	succeeded := false
	if s.throttle != nil {
		defer func() { s.throttle.end(succeeded, kAI, kA) }()
	}
	u, err := s.store.GetUserByEmail(ctx, email)
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		return storage.User{}, unavailable(err)
	}
	found := err == nil
	hash := s.dummyHash
	if found {
		hash = u.PasswordHash
	}
	release, err := s.hashSlot(ctx)
	if err != nil {
		return storage.User{}, unavailable(err)
	}
	rehash, verr := password.Verify(pw, hash, s.cfg.PasswordParams)
	release()
	if !found || verr != nil || u.Disabled {
		if verr != nil && !errors.Is(verr, password.ErrMismatch) && found {
			s.log.Warn("stored password hash unusable", "user_id", u.ID, "err", verr)
		}
		s.metrics.loginFailures.Inc()
		if s.throttle != nil {
			s.throttle.failed(ctx, kIP, s.cfg.Throttle.IP)
		}
		s.audit(ctx, "login_failed", slog.String("reason", "bad_credentials"))
		return storage.User{}, fmt.Errorf("%w: bad credentials", fosite.ErrNotFound)
	}
	if s.throttle != nil {
		s.throttle.unblock(kAI, kA)
		// Committed with the token records (late: in key order across the
		// batch, see commitReq), unless other attempts on the account wait
		// for this success to reset its counters.
		release := s.throttle.releaseWrites(kAI, kA)
		if st := stateFrom(ctx); st != nil && !s.throttle.contended(kAI, kA) {
			st.late = append(st.late, release...)
		} else {
			s.runLate(ctx, release)
		}
	}
	succeeded = true
	s.audit(ctx, "login_succeeded", slog.String("sub", u.ID))
	// A reset password that must be changed is not rehashed: it is about to
	// be replaced, and a pending change is bound to its stored hash
	// (passwordChangeCurrent).
	if rehash && !u.MustChangePassword {
		s.rehash(ctx, u.ID, pw)
	}
	return u, nil
}

// rehash upgrades a stored hash made with older parameters or bcrypt.
func (s *Server) rehash(ctx context.Context, id, pw string) {
	release, err := s.hashSlot(ctx)
	var h string
	if err == nil {
		h, err = password.Hash(pw, s.cfg.PasswordParams)
		release()
	}
	if err == nil {
		_, err = s.store.UpdateUser(ctx, id, func(u storage.User) (storage.User, error) {
			u.PasswordHash = h
			u.UpdatedAt = s.cfg.Now().UTC()
			return u, nil
		})
	}
	if err != nil {
		s.log.Warn("password rehash failed", "user_id", id, "err", err)
		return
	}
	s.audit(ctx, "password_rehashed", slog.String("sub", id))
}

// audit writes one audit record: the single entry point for audit events.
// With Config.Audit set it goes to that sink (see AuditLog for the schema and
// which events are sampled); otherwise it is an INFO record "audit" of the
// operational log. attrs use the AuditLog vocabulary and never hold secrets.
func (s *Server) audit(ctx context.Context, event string, attrs ...slog.Attr) {
	if s.cfg.Audit != nil && !s.cfg.Audit.Enabled() {
		return // --audit-log off: skip even the address lookup
	}
	if st := stateFrom(ctx); st != nil && st.ip != "" {
		attrs = append(attrs, slog.String("ip", st.ip))
	}
	if s.cfg.Audit != nil {
		s.cfg.Audit.Log(ctx, event, attrs...)
		return
	}
	s.log.LogAttrs(ctx, slog.LevelInfo, "audit", append([]slog.Attr{slog.String("event", event)}, attrs...)...)
}

// logError logs a failed request: server-side causes at error level, client
// mistakes at debug level. Never logs request parameters.
func (s *Server) logError(r *http.Request, msg string, e *oauthError) {
	level := slog.LevelDebug
	if e.Status >= 500 {
		level = failureLevel(e.Cause)
	}
	attrs := []slog.Attr{slog.String("path", r.URL.Path), slog.String("error", e.Code), slog.Int("status", e.Status)}
	if e.Cause != nil {
		attrs = append(attrs, slog.String("cause", e.Cause.Error()))
	}
	s.log.LogAttrs(r.Context(), level, msg, attrs...)
}

// failureLevel is the level at which a server-side failure is logged:
// warning for a full hashing queue or a client that went away, which need
// no operator, error for anything else.
func failureLevel(cause error) slog.Level {
	if errors.Is(cause, errHashBusy) || errors.Is(cause, context.Canceled) {
		return slog.LevelWarn
	}
	return slog.LevelError
}

func itoa(n int) string { return strconv.Itoa(n) }

// hashSlot waits, at most HashQueueTimeout and while ctx lasts, for one of
// the hashing slots that bound concurrent argon2id hashes (and their
// memory), and tunes the collector while hashes run (hashGC). release
// ends the hash for hashGC (which may collect its buffer) and gives the
// slot back. With the tuning on, release returns at once and a goroutine
// of its own does both: the next hash still starts only after the
// collection has freed this one's buffer, but the request goes on (signs
// its token, commits) on the core the collection would have left idle
// while it waited for the other core's hash to stop (BENCHMARKS.md).
func (s *Server) hashSlot(ctx context.Context) (release func(), err error) {
	timer := time.NewTimer(s.cfg.HashQueueTimeout)
	defer timer.Stop()
	select {
	case s.hashSem <- struct{}{}:
	case <-timer.C:
		return nil, errHashBusy
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if s.hashGC == nil {
		return func() { <-s.hashSem }, nil
	}
	s.hashGC.enter()
	s.hashing.Add(1) // from the hash's start, so Close waits for running hashes too
	return func() {
		go func() {
			defer s.hashing.Done()
			s.hashGC.exit()
			<-s.hashSem
		}()
	}, nil
}
