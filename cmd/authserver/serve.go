package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	httppprof "net/http/pprof"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"go.opentelemetry.io/otel/trace"

	"github.com/oauthkit/authserver/adminapi"
	"github.com/oauthkit/authserver/authserver"
	"github.com/oauthkit/authserver/internal/password"
	"github.com/oauthkit/authserver/internal/tracing"
	"github.com/oauthkit/authserver/keys"
	"github.com/oauthkit/authserver/storage"
	sqlstore "github.com/oauthkit/authserver/storage/sql"
	"github.com/oauthkit/authserver/storage/storagetrace"
)

// introspectionJWTTTL is the lifetime of signed introspection responses; the
// key windows depend on it.
const introspectionJWTTTL = 5 * time.Minute

// serveConfig holds the settings of `authserver serve`. Every field is a flag
// (see registerFlags), also read from AUTHSERVER_<FLAG> and from the config
// file.
type serveConfig struct {
	addr            string
	issuer          string
	audience        string
	demo            bool
	accessTTL       time.Duration
	refreshTTL      time.Duration
	keyAlgorithm    string
	keyRotation     time.Duration
	jwksMaxAge      time.Duration
	logFormat       string
	logLevel        string
	shutdownTimeout time.Duration
	gcInterval      time.Duration
	insecureHTTP    bool
	adminAddr       string
	adminInsecure   bool
	adminTLSCert    string
	adminTLSKey     string
	adminClientCA   string
	pprof           bool
	drainDelay      time.Duration
	tlsCert         string
	tlsKey          string
	corsOrigins     []string
	refreshGrace    time.Duration
	dpopNonce       bool
	introCacheSize  int
	revocationDelay time.Duration
	clientDelay     time.Duration
	// statusListSize and statusBlockSize size the token status lists.
	statusListSize, statusBlockSize int64
	authCodeTTL                     time.Duration
	deviceCodeTTL                   time.Duration
	devicePoll                      time.Duration
	sessionTTL                      time.Duration
	uiDir                           string
	dbMaxConns                      int
	sqliteCacheMiB                  int
	dbStmtTimeout                   time.Duration
	dbConnLifetime                  time.Duration
	trustedProxies                  []string
	memoryLimitMiB                  int
	argon2                          password.Params
	auditLog                        string
	auditIssuance                   string
	otlpEndpoint                    string
	// Dynamic client registration (RFC 7591).
	openRegistration  bool
	registrationScope []string
	registrationRate  float64
	authorizeRate     float64
	// allowPrivateClientURLs turns the outbound-URL policy off.
	allowPrivateClientURLs bool
	secretFlags

	// audit is the opened --audit-log sink, set by serve.
	audit *authserver.AuditLog
	// tracer is the OpenTelemetry provider when tracing is on, set by serve.
	tracer trace.TracerProvider
	// certificate is loaded from tlsCert and tlsKey by validate.
	certificate *tls.Certificate
	// issuerFromAddr: validate derived the issuer from --addr.
	issuerFromAddr bool
	// ln, when set, is the --addr listener, bound early by bindEphemeral.
	ln net.Listener
	// auditRing keeps the last audit events for the admin API; adminAPI is
	// that API, set by serve with --admin-addr.
	auditRing *adminapi.AuditRing
	adminAPI  http.Handler
	// adminTLS is the admin listener's TLS configuration (with the
	// operators' CA when --admin-client-ca is set), built by validate.
	adminTLS *tls.Config
	// adminLn is the admin listener, bound early by bindAdmin.
	adminLn net.Listener
}

// adminOff turns the admin listener off as the value of --admin-addr.
const adminOff = "off"

// secretFlags locate the server secret.
type secretFlags struct {
	secret     string
	secretFile string
}

func (s *secretFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&s.secret, "secret", "", "server secret (at least 32 bytes); encrypts signing keys and keys refresh tokens")
	fs.StringVar(&s.secretFile, "secret-file", "", "file holding the server secret (default: authserver.secret beside the SQLite database)")
}

// check returns the problems with the secret settings for database db.
func (s *secretFlags) check(db string) []error {
	var errs []error
	if s.secret != "" && s.secretFile != "" {
		errs = append(errs, &settingError{flag: "secret", err: errors.New("give --secret or --secret-file, not both")})
	}
	if s.secret != "" && len(s.secret) < keys.MinSecretLen {
		errs = append(errs, &settingError{flag: "secret", err: fmt.Errorf("--secret must be at least %d bytes", keys.MinSecretLen)})
	}
	if s.secret == "" && s.secretFile == "" && isPostgres(db) {
		errs = append(errs, &settingError{flag: "secret", err: errors.New("with a PostgreSQL database, give --secret or --secret-file (every instance needs the same secret)")})
	}
	return errs
}

// path is the secret file used when --secret is not given.
func (s *secretFlags) path(db string) string {
	if s.secretFile != "" || isPostgres(db) {
		return s.secretFile
	}
	return filepath.Join(filepath.Dir(db), "authserver.secret")
}

// load returns the secret; with create, a missing secret file beside a SQLite
// database is generated (0600) and announced.
func (s *secretFlags) load(db string, create bool, log *slog.Logger) ([]byte, error) {
	if err := errors.Join(s.check(db)...); err != nil {
		return nil, err
	}
	if s.secret != "" {
		return []byte(s.secret), nil
	}
	path := s.path(db)
	if !create {
		if _, err := os.Stat(path); err != nil {
			return nil, fmt.Errorf("no server secret at %s (start `authserver serve` once, or give --secret/--secret-file): %w", path, err)
		}
	}
	sec, created, err := keys.LoadOrCreateSecret(path)
	if err != nil {
		return nil, fmt.Errorf("server secret: %w", err)
	}
	if created && log != nil {
		log.Warn("generated a new server secret; back it up with the database", "path", path)
	}
	return sec, nil
}

func newServeCmd(g *globals) *cobra.Command {
	var c serveConfig
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the authorization server",
		Long: `Run the authorization server until SIGTERM or SIGINT.

Every flag is also read from the environment variable AUTHSERVER_<FLAG> (upper
case, dashes as underscores, lists comma-separated) and from the YAML file of
--config, whose keys are the flag names. A flag on the command line wins over
the environment, which wins over the file, which wins over the default. The
whole configuration is checked before anything starts, and every problem is
reported at once; ` + "`authserver config show`" + ` prints what serve would run with.

On SIGTERM or SIGINT, /readyz fails at once, the listener stays open for
--drain-delay, then closes; in-flight requests get --shutdown-timeout to
finish, background jobs stop and the database is closed.`,
		Example: `  authserver serve --demo
  authserver serve --config /etc/authserver/authserver.yaml
  AUTHSERVER_SECRET=… authserver serve --db postgres://auth@db/auth --addr 0.0.0.0:8080 --issuer https://auth.example.com`,
		Args:        cobra.NoArgs,
		Annotations: map[string]string{annotLateConfigErrors: "yes"},
		RunE: func(cmd *cobra.Command, _ []string) error {
			return serve(cmd.Context(), g, &c)
		},
	}
	c.registerFlags(cmd.Flags())
	registerServeCompletions(cmd)
	return cmd
}

// registerFlags defines serve's flags on fs. `config show` defines the same
// flags, and the config file accepts their names as keys.
func (c *serveConfig) registerFlags(f *pflag.FlagSet) {
	f.StringVar(&c.addr, "addr", "127.0.0.1:8080", "listen address")
	f.StringVar(&c.issuer, "issuer", "", "issuer URL (default http://ADDR)")
	f.StringVar(&c.audience, "audience", "", "aud of access tokens, required by the demo API (default ISSUER/api)")
	f.BoolVar(&c.demo, "demo", false, "seed demo users and a demo client into an empty database")
	f.DurationVar(&c.accessTTL, "access-token-ttl", 15*time.Minute, "access token lifetime")
	f.DurationVar(&c.refreshTTL, "refresh-token-ttl", 720*time.Hour, "refresh token lifetime")
	f.StringVar(&c.keyAlgorithm, "key-algorithm", "RS256", "algorithm of new signing keys: RS256, ES256 or EdDSA")
	f.DurationVar(&c.keyRotation, "key-rotation", 30*24*time.Hour, "how long a signing key stays active before rotation")
	f.DurationVar(&c.jwksMaxAge, "jwks-max-age", time.Hour, "Cache-Control max-age of the JWKS (keys are published this long, plus a margin, before use)")
	f.StringVar(&c.logFormat, "log-format", "text", "log format: text or json")
	f.StringVar(&c.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	f.DurationVar(&c.shutdownTimeout, "shutdown-timeout", 15*time.Second, "how long in-flight requests may finish on shutdown")
	f.DurationVar(&c.gcInterval, "gc-interval", 10*time.Minute, "how often expired token records are deleted")
	f.StringVar(&c.adminAddr, "admin-addr", "127.0.0.1:8081", "address of the admin listener: the admin API (/admin/v1, /admin/openapi.json), the console (/admin/ui/), /metrics, /healthz, /readyz (and pprof); \"off\" (or empty) for none, which moves /metrics (and pprof) to the main address")
	f.StringVar(&c.adminTLSCert, "admin-tls-cert", "", "serve the admin listener over HTTPS with this certificate (PEM); requires --admin-tls-key")
	f.StringVar(&c.adminTLSKey, "admin-tls-key", "", "private key (PEM) of --admin-tls-cert")
	f.StringVar(&c.adminClientCA, "admin-client-ca", "", "CA certificates (PEM) of operators' client certificates: a client certificate verified against them authenticates to the admin API instead of a bearer token (mutual TLS; requires --admin-tls-cert)")
	f.BoolVar(&c.adminInsecure, "admin-insecure-loopback", false, "serve the admin API without authentication on a loopback --admin-addr (development only; MUST NOT be used in production)")
	f.BoolVar(&c.pprof, "pprof", false, "serve net/http/pprof under /debug/pprof/ on the admin address (or the main one with --admin-addr off)")
	f.DurationVar(&c.drainDelay, "drain-delay", 0, "on shutdown, how long /readyz fails before the listener closes (lets load balancers drain)")
	f.StringVar(&c.tlsCert, "tls-cert", "", "serve HTTPS with this certificate (PEM); requires --tls-key")
	f.StringVar(&c.tlsKey, "tls-key", "", "private key (PEM) of --tls-cert")
	f.StringSliceVar(&c.corsOrigins, "cors-origin", nil, "browser origin allowed to call /token, /revoke, /par, /device_authorization and /userinfo (repeatable; CORS is off without it)")
	f.IntVar(&c.dbMaxConns, "db-max-conns", 0, "database connection pool size (0: 10 on PostgreSQL, max(4, CPUs) readers on SQLite)")
	f.IntVar(&c.sqliteCacheMiB, "sqlite-cache-mib", sqlstore.DefaultSQLiteCacheKiB>>10, "page cache of the SQLite writer in MiB (each reader gets an eighth); more memory, fewer page reads on large databases")
	f.DurationVar(&c.dbStmtTimeout, "db-statement-timeout", 0, "PostgreSQL statement_timeout (0: none)")
	f.DurationVar(&c.dbConnLifetime, "db-conn-max-lifetime", 0, "recycle database connections after this long (0: 30m on PostgreSQL, unlimited on SQLite)")
	f.DurationVar(&c.authCodeTTL, "auth-code-ttl", 60*time.Second, "authorization code lifetime")
	f.DurationVar(&c.deviceCodeTTL, "device-code-ttl", 10*time.Minute, "lifetime of a device authorization's device_code and user_code (RFC 8628)")
	f.DurationVar(&c.devicePoll, "device-poll-interval", 5*time.Second, "polling interval given to devices (RFC 8628 §3.2; whole seconds)")
	f.DurationVar(&c.sessionTTL, "session-ttl", 24*time.Hour, "browser sign-in session lifetime")
	f.StringVar(&c.uiDir, "ui-dir", "", "directory with templates/*.html and static/* replacing the built-in sign-in, consent and sign-out pages")
	f.BoolVar(&c.dpopNonce, "dpop-nonce", false, "require a server nonce in DPoP proofs at the token endpoint (RFC 9449 §8; stateless, shared through the server secret)")
	f.DurationVar(&c.refreshGrace, "refresh-grace", 0, "window in which a retried refresh with the just-rotated token gets the same new pair (0: strict, any reuse revokes the grant)")
	f.IntVar(&c.introCacheSize, "introspection-cache-size", 10000, "verified access tokens introspection answers from memory (negative: no cache)")
	f.Int64Var(&c.statusListSize, "status-list-size", 1<<20, "indexes per token status list (a power of two); a new list starts when one is full")
	f.Int64Var(&c.statusBlockSize, "status-list-block", 1024, "status list indexes an instance reserves at once (divides --status-list-size)")
	f.DurationVar(&c.revocationDelay, "revocation-max-delay", time.Second, "longest time a token revoked on another instance can still introspect active (the revocation feed is polled at a quarter of it)")
	f.DurationVar(&c.clientDelay, "client-change-max-delay", time.Second, "longest time a client updated, rotated or deleted on another instance (or with the CLI) can still authenticate from this instance's cache (the client change feed is polled at a quarter of it)")
	f.StringSliceVar(&c.trustedProxies, "trusted-proxy", nil, "proxy network (CIDR) whose X-Forwarded-For is believed for throttling and audit (repeatable)")
	f.IntVar(&c.memoryLimitMiB, "memory-limit-mib", 96, "soft memory limit of the Go runtime in MiB (0: none; GOMEMLIMIT overrides)")
	f.BoolVar(&c.openRegistration, "open-registration", false, "let anyone register a client at /register without an initial access token (off by default; see `clients initial-token`)")
	f.StringSliceVar(&c.registrationScope, "registration-scope", nil, "scope a dynamically registered client may register (repeatable; default openid, profile, email, offline_access)")
	f.Float64Var(&c.registrationRate, "registration-rate", 20, "requests per minute and address allowed at /register (a burst of 10)")
	f.Float64Var(&c.authorizeRate, "authorize-rate", 600, "authorization requests per minute and address that may wait for a sign-in or consent (each is stored for 15 minutes; a burst of 200; 0: no limit)")
	f.BoolVar(&c.allowPrivateClientURLs, "allow-private-client-urls", false, "let the server call client URLs (jwks_uri fetches, back-channel logout) on loopback, private, link-local and other non-public addresses, and /register accept them (internal deployments and tests; MUST NOT be used when untrusted parties can register clients)")
	f.BoolVar(&c.insecureHTTP, "insecure-http", false, "allow a non-loopback http:// issuer (MUST NOT be used in production)")
	f.Uint32Var(&c.argon2.Memory, "argon2-memory", password.DefaultParams.Memory, "argon2id memory in KiB")
	f.Uint32Var(&c.argon2.Time, "argon2-time", password.DefaultParams.Time, "argon2id passes")
	f.Uint8Var(&c.argon2.Threads, "argon2-threads", password.DefaultParams.Threads, "argon2id parallelism")
	f.StringVar(&c.auditLog, "audit-log", "stderr", auditLogUsage)
	f.StringVar(&c.otlpEndpoint, "otlp-endpoint", "", "send OpenTelemetry traces over OTLP/HTTP to this collector URL, such as http://127.0.0.1:4318 (off without it or OTEL_EXPORTER_OTLP_ENDPOINT)")
	f.StringVar(&c.auditIssuance, "audit-issuance", "none", "audit events of successful issuance (token_issued, login_succeeded, code_issued, signed_in, …) to write: all, none, or a sampling rate such as 0.01; failures and security events are always written")
	c.secretFlags.register(f)
}

// registerServeCompletions adds shell completion of serve's enumerated and
// file-valued flags to cmd (serve or config show).
func registerServeCompletions(cmd *cobra.Command) {
	fixed := map[string][]string{
		"log-format":    {"text", "json"},
		"log-level":     {"debug", "info", "warn", "error"},
		"key-algorithm": {keys.RS256, keys.ES256, keys.EdDSA},
	}
	for name, values := range fixed {
		_ = cmd.RegisterFlagCompletionFunc(name, cobra.FixedCompletions(values, cobra.ShellCompDirectiveNoFileComp))
	}
	_ = cmd.MarkFlagFilename("tls-cert", "pem", "crt")
	_ = cmd.MarkFlagFilename("tls-key", "pem", "key")
	_ = cmd.MarkFlagFilename("secret-file")
}

func newLogger(w io.Writer, format, level string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level: %w", err)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	default:
		return nil, fmt.Errorf("--log-format must be text or json, not %q", format)
	}
}

// validate checks the configuration for database db, fills in the issuer
// default, loads the TLS certificate, and returns every problem at once.
// Each problem is a *settingError naming its flag.
func (c *serveConfig) validate(db string) error {
	var errs []error
	bad := func(flag, format string, args ...any) {
		errs = append(errs, &settingError{flag: flag, err: fmt.Errorf(format, args...)})
	}
	if db == "" {
		bad("db", "--db must name a SQLite file or a postgres:// URL")
	}
	if _, _, err := net.SplitHostPort(c.addr); err != nil {
		bad("addr", "--addr %q: %w", c.addr, err)
	}
	if c.adminAddr == adminOff {
		c.adminAddr = ""
	}
	if c.adminAddr != "" {
		if _, _, err := net.SplitHostPort(c.adminAddr); err != nil {
			bad("admin-addr", "--admin-addr %q: %w", c.adminAddr, err)
		} else if c.adminAddr == c.addr {
			bad("admin-addr", "--admin-addr (default 127.0.0.1:8081) must differ from --addr; give another address, or --admin-addr off")
		} else if host, _, _ := net.SplitHostPort(c.adminAddr); c.adminInsecure && !isLoopback(host) {
			bad("admin-insecure-loopback", "--admin-insecure-loopback needs a loopback --admin-addr, not %q", c.adminAddr)
		}
	} else if c.adminInsecure {
		bad("admin-insecure-loopback", "--admin-insecure-loopback needs --admin-addr")
	}
	c.adminTLS = nil
	switch {
	case (c.adminTLSCert == "") != (c.adminTLSKey == ""):
		bad("admin-tls-cert", "--admin-tls-cert and --admin-tls-key go together")
	case c.adminClientCA != "" && c.adminTLSCert == "":
		bad("admin-client-ca", "--admin-client-ca needs --admin-tls-cert and --admin-tls-key (client certificates need TLS)")
	case c.adminTLSCert != "" && c.adminAddr == "":
		bad("admin-tls-cert", "--admin-tls-cert needs an --admin-addr")
	case c.adminTLSCert != "":
		if cfg, err := adminTLSConfig(c.adminTLSCert, c.adminTLSKey, c.adminClientCA); err != nil {
			bad("admin-tls-cert", "%w", err)
		} else {
			c.adminTLS = cfg
		}
	}
	c.certificate = nil
	switch {
	case (c.tlsCert == "") != (c.tlsKey == ""):
		bad("tls-cert", "--tls-cert and --tls-key go together")
	case c.tlsCert != "":
		cert, err := tls.LoadX509KeyPair(c.tlsCert, c.tlsKey)
		if err != nil {
			bad("tls-cert", "--tls-cert/--tls-key: %w", err)
		} else {
			c.certificate = &cert
		}
	}
	if c.issuer == "" {
		scheme := "http://"
		if c.tlsCert != "" {
			scheme = "https://"
		}
		c.issuer = scheme + c.addr
		c.issuerFromAddr = true
	}
	if c.refreshGrace < 0 || c.refreshGrace > time.Hour {
		bad("refresh-grace", "--refresh-grace must be between 0 and 1h, not %s", c.refreshGrace)
	}
	if c.revocationDelay < 40*time.Millisecond || c.revocationDelay > time.Minute {
		bad("revocation-max-delay", "--revocation-max-delay must be between 40ms and 1m, not %s", c.revocationDelay)
	}
	if c.clientDelay < 40*time.Millisecond || c.clientDelay > time.Minute {
		bad("client-change-max-delay", "--client-change-max-delay must be between 40ms and 1m, not %s", c.clientDelay)
	}
	if n := c.statusListSize; n < 8 || n > 1<<26 || n&(n-1) != 0 || c.statusBlockSize <= 0 || n%c.statusBlockSize != 0 {
		bad("status-list-size", "--status-list-size must be a power of two between 8 and 2^26 and a multiple of --status-list-block")
	}
	if c.authCodeTTL < time.Second || c.authCodeTTL > 10*time.Minute {
		bad("auth-code-ttl", "--auth-code-ttl must be between 1s and 10m (RFC 6749 §4.1.2), not %s", c.authCodeTTL)
	}
	if c.deviceCodeTTL < 10*time.Second || c.deviceCodeTTL > time.Hour {
		bad("device-code-ttl", "--device-code-ttl must be between 10s and 1h, not %s", c.deviceCodeTTL)
	}
	if c.devicePoll < time.Second || c.devicePoll > time.Minute || c.devicePoll%time.Second != 0 {
		bad("device-poll-interval", "--device-poll-interval must be whole seconds between 1s and 1m, not %s", c.devicePoll)
	}
	if c.sessionTTL < time.Minute {
		bad("session-ttl", "--session-ttl must be at least 1m, not %s", c.sessionTTL)
	}
	if c.uiDir != "" {
		if st, err := os.Stat(c.uiDir); err != nil || !st.IsDir() {
			bad("ui-dir", "--ui-dir %q is not a directory", c.uiDir)
		}
	}
	for _, p := range c.trustedProxies {
		if _, err := netip.ParsePrefix(p); err != nil {
			bad("trusted-proxy", "--trusted-proxy %q must be a CIDR such as 10.0.0.0/8", p)
		}
	}
	if c.authorizeRate < 0 {
		bad("authorize-rate", "--authorize-rate must not be negative (0 turns the limit off)")
	}
	if c.sqliteCacheMiB < 1 {
		bad("sqlite-cache-mib", "--sqlite-cache-mib must be at least 1")
	}
	if c.dbMaxConns < 0 || c.dbStmtTimeout < 0 || c.dbConnLifetime < 0 {
		bad("db-max-conns", "--db-max-conns, --db-statement-timeout and --db-conn-max-lifetime must not be negative")
	}
	if c.memoryLimitMiB < 0 {
		bad("memory-limit-mib", "--memory-limit-mib must not be negative")
	}
	for _, o := range c.corsOrigins {
		if u, err := url.Parse(o); err != nil || u.Host == "" || u.Path != "" || (u.Scheme != "https" && u.Scheme != "http") {
			bad("cors-origin", "--cors-origin %q must be an origin such as https://app.example", o)
		}
	}
	u, err := url.Parse(c.issuer)
	switch {
	case err != nil:
		bad("issuer", "--issuer must be an absolute http(s) URL") // not echoed: it may hold a password
	case u.User != nil:
		bad("issuer", "--issuer must not have userinfo") // not echoed: it may hold a password
	case u.Host == "" || (u.Scheme != "http" && u.Scheme != "https"):
		bad("issuer", "--issuer %q must be an absolute http(s) URL", c.issuer)
	case u.RawQuery != "" || u.Fragment != "":
		bad("issuer", "--issuer %q must not have a query or fragment (RFC 8414)", c.issuer)
	case u.Scheme == "http" && !isLoopback(u.Hostname()) && !c.insecureHTTP:
		bad("issuer", "--issuer %q uses http on a non-loopback host; use https or pass --insecure-http", c.issuer)
	}
	if c.accessTTL < time.Second {
		bad("access-token-ttl", "--access-token-ttl must be at least 1s")
	}
	if c.refreshTTL < c.accessTTL {
		bad("refresh-token-ttl", "--refresh-token-ttl must not be shorter than --access-token-ttl")
	}
	switch c.keyAlgorithm {
	case keys.RS256, keys.ES256, keys.EdDSA:
	default:
		bad("key-algorithm", "--key-algorithm must be RS256, ES256 or EdDSA, not %q", c.keyAlgorithm)
	}
	if c.jwksMaxAge < time.Second {
		bad("jwks-max-age", "--jwks-max-age must be at least 1s")
	} else if pre := c.jwksMaxAge + keys.DefaultReloadInterval + keys.SafetyMargin; c.keyRotation <= pre {
		bad("key-rotation", "--key-rotation (%v) must be longer than the pre-publication window (%v: --jwks-max-age + %v reload + %v margin)",
			c.keyRotation, pre, keys.DefaultReloadInterval, keys.SafetyMargin)
	}
	if _, err := newLogger(io.Discard, c.logFormat, "info"); err != nil {
		bad("log-format", "%w", err)
	}
	if _, err := newLogger(io.Discard, "text", c.logLevel); err != nil {
		bad("log-level", "%w", err)
	}
	if c.argon2.Memory < 8*uint32(max(c.argon2.Threads, 1)) || c.argon2.Time < 1 || c.argon2.Threads < 1 {
		bad("argon2-memory", "--argon2-memory/time/threads are out of range")
	}
	if c.otlpEndpoint != "" {
		if u, err := url.Parse(c.otlpEndpoint); err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
			bad("otlp-endpoint", "--otlp-endpoint %q must be an http(s) URL such as http://127.0.0.1:4318", c.otlpEndpoint)
		}
	}
	if c.auditLog == "" {
		bad("audit-log", "--audit-log must be stderr, off or a file path")
	}
	if _, err := authserver.ParseAuditIssuance(c.auditIssuance); err != nil {
		bad("audit-issuance", "--audit-issuance %w", err)
	}
	if c.gcInterval <= 0 {
		bad("gc-interval", "--gc-interval must be positive")
	}
	if c.shutdownTimeout <= 0 {
		bad("shutdown-timeout", "--shutdown-timeout must be positive")
	}
	if c.drainDelay < 0 {
		bad("drain-delay", "--drain-delay must not be negative")
	}
	errs = append(errs, c.secretFlags.check(db)...)
	return errors.Join(errs...)
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// serve runs the server until ctx is done, then shuts it down gracefully.
func serve(ctx context.Context, g *globals, c *serveConfig) error {
	if err := g.configProblems(g.loadErr, c.validate(g.db)); err != nil {
		return err
	}
	log, err := newLogger(g.stderr, c.logFormat, c.logLevel)
	if err != nil {
		return err
	}
	c.argon2.SaltLen, c.argon2.KeyLen = password.DefaultParams.SaltLen, password.DefaultParams.KeyLen
	if _, set := os.LookupEnv("GOMEMLIMIT"); !set && c.memoryLimitMiB > 0 {
		// A soft limit: the collector works harder near it, which keeps a
		// password flood's argon2 garbage (19 MiB per hash) from piling up.
		debug.SetMemoryLimit(int64(c.memoryLimitMiB) << 20)
	}

	tp, stopTracing, err := tracing.Setup(ctx, c.otlpEndpoint, version)
	if err != nil {
		return err
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if err := stopTracing(sctx); err != nil {
			log.Warn("tracing: flushing spans failed", "err", err)
		}
	}()
	if tp != nil {
		c.tracer = tp
		log = slog.New(tracing.LogHandler(log.Handler()))
	}
	issuance, _ := authserver.ParseAuditIssuance(c.auditIssuance) // validated
	c.auditRing = adminapi.NewAuditRing(auditRingSize)
	audit, closeAudit, err := openAuditLogTee(c.auditLog, g.stderr, issuance, c.auditRing)
	if err != nil {
		return err
	}
	defer closeAudit()
	c.audit = audit

	if err := c.bindEphemeral(); err != nil {
		return err
	}
	if err := c.bindAdmin(); err != nil {
		if c.ln != nil {
			c.ln.Close()
		}
		return err
	}
	a, err := openApp(ctx, g, c, log)
	if err != nil {
		if c.ln != nil {
			c.ln.Close()
		}
		if c.adminLn != nil {
			c.adminLn.Close()
		}
		return err
	}
	defer a.store.Close()
	defer a.srv.Close() // before the store: stops the client change poller
	if c.adminAddr != "" {
		if c.adminAPI, err = newAdminAPI(ctx, a, c, log); err != nil {
			if c.ln != nil {
				c.ln.Close()
			}
			c.adminLn.Close()
			return err
		}
	}
	hs, admin, err := c.listen(a.srv, log)
	if err != nil {
		return err
	}
	stopBG := a.runBackground(ctx, c.gcInterval, log)
	defer stopBG()

	log.Info("listening", "addr", hs.ln.Addr().String(), "issuer", c.issuer, "version", version,
		"storage", storageKind(g.db), "key_algorithm", c.keyAlgorithm)
	errc := make(chan error, 2)
	go func() { errc <- hs.serve() }()
	if admin != nil {
		log.Info("admin listening", "addr", admin.ln.Addr().String())
		go func() { errc <- admin.serve() }()
	}
	select {
	case err := <-errc:
		_ = hs.Close()
		if admin != nil {
			_ = admin.Close()
		}
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}

	if err := c.shutdown(ctx, a.srv, hs, admin, log); err != nil {
		return err
	}
	stopBG()
	log.Info("stopped")
	return nil
}

// shutdown drains and stops the listeners: /readyz fails at once, the
// listeners stay open for --drain-delay, then close, and in-flight requests
// get --shutdown-timeout to finish; those still running then are cut off.
func (c *serveConfig) shutdown(ctx context.Context, srv *authserver.Server, hs, admin *listener, log *slog.Logger) error {
	log.Info("shutting down", "drain_delay", c.drainDelay, "timeout", c.shutdownTimeout)
	srv.Drain()
	if c.drainDelay > 0 {
		time.Sleep(c.drainDelay)
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.shutdownTimeout)
	defer cancel()
	err := hs.Shutdown(sctx)
	if admin != nil {
		if aerr := admin.Shutdown(sctx); aerr != nil {
			_ = admin.Close()
		}
	}
	if err != nil {
		_ = hs.Close()
		return fmt.Errorf("shutdown: in-flight requests did not finish within --shutdown-timeout: %w", err)
	}
	return nil
}

// storageKind names the database kind of --db for the startup log line.
func storageKind(db string) string {
	if isPostgres(db) {
		return "postgres"
	}
	return "sqlite"
}

// pendingRate maps --authorize-rate to Config.PendingPerMinute, whose
// "off" is negative.
func pendingRate(perMinute float64) float64 {
	if perMinute == 0 {
		return -1
	}
	return perMinute
}

// app is what serve wires together: the store, the key manager and the
// authorization server.
type app struct {
	store *sqlstore.Store
	keys  *keys.Manager
	srv   *authserver.Server
}

// openApp opens the database (applying migrations), loads or creates the
// server secret, loads the signing keys, seeds the demo data with --demo and
// builds the authorization server. On error, nothing stays open.
func openApp(ctx context.Context, g *globals, c *serveConfig, log *slog.Logger) (a *app, err error) {
	opts := []sqlstore.Option{sqlstore.WithSQLiteCache(c.sqliteCacheMiB << 10)}
	if c.dbMaxConns > 0 {
		opts = append(opts, sqlstore.WithMaxOpenConns(c.dbMaxConns))
	}
	if c.dbStmtTimeout > 0 {
		opts = append(opts, sqlstore.WithStatementTimeout(c.dbStmtTimeout))
	}
	if c.dbConnLifetime > 0 {
		opts = append(opts, sqlstore.WithConnMaxLifetime(c.dbConnLifetime))
	}
	st, err := g.openStore(ctx, opts...)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			st.Close()
		}
	}()
	secret, err := c.secretFlags.load(g.db, true, log)
	if err != nil {
		return nil, err
	}
	var store storage.Store = st
	if c.tracer != nil {
		store = storagetrace.Wrap(st, c.tracer)
	}
	km, err := keys.New(ctx, store, keys.Config{
		Algorithm:       c.keyAlgorithm,
		ExtraAlgorithms: oidcKeyAlgorithms,
		Secret:          secret,
		RotationPeriod:  c.keyRotation,
		JWKSMaxAge:      c.jwksMaxAge,
		TokenLifetime:   max(c.accessTTL, introspectionJWTTTL),
		Logger:          log,
		OnEvent:         keyEvents(c.audit),
	})
	if err != nil {
		return nil, err
	}
	if c.demo {
		if err := seedDemo(ctx, st, c.argon2, log); err != nil {
			return nil, err
		}
		debug.FreeOSMemory() // the seeding hashes' garbage would otherwise linger in RSS
	}
	var proxies []netip.Prefix
	for _, p := range c.trustedProxies {
		proxies = append(proxies, netip.MustParsePrefix(p)) // validated
	}
	srv, err := authserver.New(authserver.Config{
		Issuer:                 c.issuer,
		Audience:               c.audience,
		AccessTokenTTL:         c.accessTTL,
		RefreshTokenTTL:        c.refreshTTL,
		Secret:                 secret,
		PasswordParams:         c.argon2,
		IntrospectionJWTTTL:    introspectionJWTTTL,
		Logger:                 log,
		Audit:                  c.audit,
		TracerProvider:         c.tracer,
		MetricsOnMainHandler:   c.adminAddr == "",
		CORSAllowedOrigins:     c.corsOrigins,
		RefreshGrace:           c.refreshGrace,
		DPoP:                   authserver.DPoPConfig{Nonce: c.dpopNonce},
		IntrospectionCacheSize: c.introCacheSize,
		RevocationMaxDelay:     c.revocationDelay,
		ClientChangeMaxDelay:   c.clientDelay,
		StatusList:             authserver.StatusListConfig{Size: c.statusListSize, BlockSize: c.statusBlockSize},
		AuthCodeTTL:            c.authCodeTTL,
		DeviceCodeTTL:          c.deviceCodeTTL,
		DevicePollInterval:     c.devicePoll,
		SessionTTL:             c.sessionTTL,
		UIDir:                  c.uiDir,
		Throttle:               authserver.ThrottleConfig{TrustedProxies: proxies},
		Registration: authserver.RegistrationConfig{Open: c.openRegistration, Scopes: c.registrationScope,
			RatePerMinute: c.registrationRate},
		InsecureAllowPrivateClientURLs: c.allowPrivateClientURLs,
		PendingPerMinute:               pendingRate(c.authorizeRate),
	}, store, km, serverOptions(st)...)
	if err != nil {
		return nil, err
	}
	return &app{store: st, keys: km, srv: srv}, nil
}

// runBackground starts the key manager and the garbage collector. They stop
// when the returned function is called (which waits for them), not when ctx
// is cancelled, so that they outlive the shutdown of in-flight requests.
func (a *app) runBackground(ctx context.Context, gcEvery time.Duration, log *slog.Logger) (stop func()) {
	bg, cancel := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := a.keys.Run(bg); err != nil {
			log.Error("key manager stopped", "err", err)
		}
	})
	wg.Go(func() { gcLoop(bg, a.store, gcEvery, log) })
	var once sync.Once
	return func() {
		once.Do(func() {
			cancel()
			wg.Wait()
		})
	}
}

// listener is an http.Server with its listener.
type listener struct {
	*http.Server
	ln net.Listener
}

func (l *listener) serve() error { return l.Serve(l.ln) }

// bindEphemeral binds --addr now when its port is 0 and the issuer is
// derived from it, so that the issuer (and the default audience) name the
// port the kernel chose rather than port 0.
func (c *serveConfig) bindEphemeral() error {
	if !c.issuerFromAddr {
		return nil
	}
	if _, port, err := net.SplitHostPort(c.addr); err != nil || port != "0" {
		return nil
	}
	ln, err := net.Listen("tcp", c.addr)
	if err != nil {
		return fmt.Errorf("listen on --addr: %w", err)
	}
	c.ln = ln
	c.issuer = strings.TrimSuffix(c.issuer, c.addr) + ln.Addr().String()
	c.addr = ln.Addr().String()
	return nil
}

// bindAdmin binds the admin listener now, before the database is opened:
// a taken --admin-addr (such as the default 127.0.0.1:8081 on a machine
// that already runs a server) fails at once with a clear error, and an
// --admin-addr with port 0 names the port the kernel chose (the console's
// callback needs it).
func (c *serveConfig) bindAdmin() error {
	if c.adminAddr == "" {
		return nil
	}
	ln, err := net.Listen("tcp", c.adminAddr)
	if err != nil {
		return fmt.Errorf("listen on --admin-addr %s (the admin listener, on by default): %w; give a free address with --admin-addr HOST:PORT, or --admin-addr off", c.adminAddr, err)
	}
	if host, port, _ := net.SplitHostPort(c.adminAddr); port == "0" {
		_, real, _ := net.SplitHostPort(ln.Addr().String())
		c.adminAddr = net.JoinHostPort(host, real)
	}
	c.adminLn = ln
	return nil
}

// adminScheme is the scheme of the admin listener's URLs.
func (c *serveConfig) adminScheme() string {
	if c.adminTLS != nil {
		return "https"
	}
	return "http"
}

// adminTLSConfig loads the admin listener's certificate and, when caFile is
// set, the CA pool that verifies operators' client certificates. A client
// without a certificate still connects (and needs a bearer token); one with
// a certificate the pool does not verify fails the handshake.
func adminTLSConfig(certFile, keyFile, caFile string) (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("--admin-tls-cert/--admin-tls-key: %w", err)
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}}
	if caFile == "" {
		return cfg, nil
	}
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("--admin-client-ca: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("--admin-client-ca %s: no PEM certificate in it", caFile)
	}
	cfg.ClientCAs = pool
	cfg.ClientAuth = tls.VerifyClientCertIfGiven
	return cfg, nil
}

// listen opens the main listener (with TLS when configured) and, with
// --admin-addr, the admin listener; admin is nil without it.
func (c *serveConfig) listen(srv *authserver.Server, log *slog.Logger) (primary, admin *listener, err error) {
	handler := srv.Handler()
	if c.pprof && c.adminAddr == "" {
		handler = withPprof(handler)
	}
	hs := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       15 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	ln := c.ln
	if ln == nil {
		var err error
		if ln, err = net.Listen("tcp", c.addr); err != nil {
			return nil, nil, fmt.Errorf("listen on --addr: %w", err)
		}
	}
	if c.certificate != nil {
		// Modern settings: TLS 1.2 minimum with AEAD suites only (Go's
		// defaults), TLS 1.3 preferred.
		hs.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{*c.certificate}}
		ln = tls.NewListener(ln, hs.TLSConfig)
	}
	primary = &listener{Server: hs, ln: ln}
	if c.adminAddr == "" {
		return primary, nil, nil
	}
	aln := c.adminLn
	if aln == nil {
		if aln, err = net.Listen("tcp", c.adminAddr); err != nil {
			ln.Close()
			return nil, nil, fmt.Errorf("listen on --admin-addr: %w", err)
		}
	}
	if c.adminTLS != nil {
		aln = tls.NewListener(aln, c.adminTLS)
	}
	admin = &listener{Server: &http.Server{
		Handler:           adminHandler(srv, c.pprof, c.adminAPI),
		ReadHeaderTimeout: 5 * time.Second,
		IdleTimeout:       time.Minute,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}, ln: aln}
	return primary, admin, nil
}

// gcLoop deletes expired token records and stale throttling counters.
func gcLoop(ctx context.Context, st storage.Store, every time.Duration, log *slog.Logger) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			res, err := st.GarbageCollect(ctx, time.Now(), 24*time.Hour)
			if err != nil {
				log.Warn("garbage collection failed", "err", err)
				continue
			}
			if res.Tokens+res.Attempts > 0 {
				log.Info("garbage collected", "tokens", res.Tokens, "attempts", res.Attempts)
			}
		}
	}
}

// seedDemo creates the demo users and client in an empty database.
func seedDemo(ctx context.Context, st storage.Store, params password.Params, log *slog.Logger) error {
	users, err := st.ListUsers(ctx)
	if err != nil {
		return err
	}
	clients, err := st.ListClients(ctx)
	if err != nil {
		return err
	}
	now := time.Now().UTC()
	if err := seedDemoApp(ctx, st, now, log); err != nil {
		return err
	}
	if len(users) > 0 || len(clients) > 0 {
		log.Info("demo: the database is not empty; no demo users seeded")
		return nil
	}
	for _, u := range []struct{ email, name, pw, role string }{
		{"alice@example.com", "Alice", "password123", "admin"},
		{"bob@example.com", "Bob", "password456", "user"},
	} {
		h, err := password.Hash(u.pw, params)
		if err != nil {
			return err
		}
		if err := st.CreateUser(ctx, storage.User{ID: newID(), Email: u.email, Name: u.name, Roles: []string{u.role},
			PasswordHash: h, CreatedAt: now, UpdatedAt: now}); err != nil && !errors.Is(err, storage.ErrAlreadyExists) {
			return fmt.Errorf("demo: %w", err)
		}
	}
	if err := st.CreateClient(ctx, storage.Client{ID: "demo", Name: "Demo public client", Public: true,
		GrantTypes: []string{"password", "refresh_token", authserver.GrantDeviceCode}, CreatedAt: now, UpdatedAt: now}); err != nil && !errors.Is(err, storage.ErrAlreadyExists) {
		return fmt.Errorf("demo: %w", err)
	}
	log.Warn(strings.Repeat("!", 20) + " DEMO CREDENTIALS SEEDED: users alice@example.com (admin) and bob@example.com (user) with the well-known passwords from the README, and the public client \"demo\". Anyone can sign in with them: never use --demo in production. " + strings.Repeat("!", 20))
	return nil
}

// demoAppRedirect is the loopback redirect URI of the demo-app client; any
// port matches (RFC 8252 §7.3), so cmd/democlient can listen where it likes.
const demoAppRedirect = "http://127.0.0.1/callback"

// seedDemoApp registers demo-app, the public client of the authorization
// code flow that cmd/democlient uses, when it is missing.
func seedDemoApp(ctx context.Context, st storage.Store, now time.Time, log *slog.Logger) error {
	err := st.CreateClient(ctx, storage.Client{ID: "demo-app", Name: "Demo App", Public: true,
		GrantTypes: []string{"authorization_code", "refresh_token"}, Scopes: []string{"profile", "email"},
		RedirectURIs: []string{demoAppRedirect}, CreatedAt: now, UpdatedAt: now})
	switch {
	case errors.Is(err, storage.ErrAlreadyExists):
		return nil
	case err != nil:
		return fmt.Errorf("demo: %w", err)
	}
	log.Info("demo: registered the public client demo-app for the authorization code flow", "redirect_uri", demoAppRedirect)
	return nil
}

// adminHandler serves the operational endpoints on the admin listener.
func adminHandler(srv *authserver.Server, pprof bool, api http.Handler) http.Handler {
	mux := http.NewServeMux()
	if api != nil {
		mux.Handle("/admin/", api)
	}
	mux.Handle("GET /metrics", srv.MetricsHandler())
	main := srv.Handler()
	mux.Handle("GET /healthz", main)
	mux.Handle("GET /readyz", main)
	if pprof {
		return withPprof(mux)
	}
	return mux
}

// withPprof adds net/http/pprof under /debug/pprof/.
func withPprof(next http.Handler) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", httppprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", httppprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", httppprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", httppprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", httppprof.Trace)
	mux.Handle("/", next)
	return mux
}

// serverOptions are the server options: the demo API and the database pool
// statistics.
func serverOptions(st *sqlstore.Store) []authserver.Option {
	opts := []authserver.Option{authserver.WithDemoAPI()}
	for name, db := range st.Pools() {
		opts = append(opts, authserver.WithCollector(collectors.NewDBStatsCollector(db, name)))
	}
	return opts
}
