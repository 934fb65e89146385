package main

import (
	"context"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/oauthkit/authserver/internal/demoapi"
	"github.com/oauthkit/authserver/resource"
)

// config is what the flags say.
type config struct {
	addr             string
	issuer           string
	audience         string
	mode             resource.Mode
	clientID         string
	clientSecretFile string
	externalURL      string
	dpopNonce        bool
	// statusRefresh is how often a cached Token Status List is fetched
	// again (local mode).
	statusRefresh time.Duration
	// issuerWait is how long startup keeps trying an issuer it cannot
	// reach.
	issuerWait time.Duration
}

func parseFlags(args []string, stderr io.Writer) (config, error) {
	var c config
	fs := flag.NewFlagSet("resourceserver", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.addr, "addr", "127.0.0.1:8082", "address to listen on (the default stays clear of authserver's --addr 127.0.0.1:8080 and --admin-addr 127.0.0.1:8081)")
	fs.StringVar(&c.issuer, "issuer", "", "issuer URL of the authorization server (required)")
	fs.StringVar(&c.audience, "audience", "", "this API's resource identifier, its public base URL (RFC 9728), required in the tokens' aud (default http://ADDR/api)")
	fs.TextVar(&c.mode, "mode", resource.ModeLocal, "token checks: local, introspect or local-then-introspect")
	fs.StringVar(&c.clientID, "introspect-client-id", "", "client ID for the introspection endpoint")
	fs.StringVar(&c.clientSecretFile, "introspect-client-secret-file", "", "file holding the introspection client secret")
	fs.StringVar(&c.externalURL, "external-url", "", "scheme and host clients use to reach this API behind a proxy, such as https://api.example.com: DPoP proofs must name it (default: the URL requests arrive at)")
	fs.BoolVar(&c.dpopNonce, "dpop-nonce", false, "require a server nonce in DPoP proofs (RFC 9449 §9); the nonce key is random per process, so clients of several instances may be asked for a nonce again")
	fs.DurationVar(&c.statusRefresh, "status-refresh", resource.DefaultStatusRefresh, "how often a cached token status list is fetched again (conditionally); a revoked token is refused within about this delay")
	fs.DurationVar(&c.issuerWait, "issuer-wait", 30*time.Second, "how long to keep trying at startup to fetch the issuer's metadata while the issuer cannot be reached (an API started beside its issuer); 0: fail at once")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: resourceserver --issuer URL [flags]\n\nServes the demo API against a remote issuer.\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if c.issuer == "" {
		return c, errors.New("--issuer is required")
	}
	if c.statusRefresh <= 0 {
		return c, errors.New("--status-refresh must be positive")
	}
	if c.issuerWait < 0 {
		return c, errors.New("--issuer-wait must not be negative")
	}
	if c.audience == "" {
		if host, _, err := net.SplitHostPort(c.addr); err != nil || host == "" || net.ParseIP(host).IsUnspecified() {
			return c, fmt.Errorf("--addr %q names no host to derive this API's identifier from; give --audience, its public base URL (such as https://api.example.com/api)", c.addr)
		}
	}
	introspects := c.mode != resource.ModeLocal
	hasCreds := c.clientID != "" || c.clientSecretFile != ""
	switch {
	case introspects && (c.clientID == "" || c.clientSecretFile == ""):
		return c, fmt.Errorf("--mode %s needs --introspect-client-id and --introspect-client-secret-file", c.mode)
	case !introspects && hasCreds:
		return c, errors.New("introspection credentials are given but --mode is local; choose introspect or local-then-introspect")
	}
	return c, nil
}

// run parses args, serves until ctx ends, then shuts down gracefully.
func run(ctx context.Context, args []string, stderr io.Writer) error {
	cfg, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	logger := slog.New(slog.NewTextHandler(stderr, nil))
	ln, err := net.Listen("tcp", cfg.addr)
	if err != nil {
		return err
	}
	if cfg.audience == "" {
		// The API's own base URL, on the port actually bound (--addr may
		// name port 0).
		cfg.audience = "http://" + ln.Addr().String() + "/api"
	}
	handler, err := newHandler(ctx, cfg, logger)
	if err != nil {
		ln.Close()
		return err
	}
	logger.Info("resourceserver: listening", "addr", ln.Addr().String(), "issuer", cfg.issuer,
		"audience", cfg.audience, "mode", cfg.mode.String())
	return serve(ctx, ln, handler, logger)
}

// newHandler wires the demo API, its protected resource metadata (RFC 9728)
// and a health check.
func newHandler(ctx context.Context, cfg config, logger *slog.Logger) (http.Handler, error) {
	rc := resource.Config{
		Issuer:   cfg.issuer,
		Audience: cfg.audience,
		Mode:     cfg.mode,
		Realm:    "demo-api",
		Logger:   logger,
		DPoP:     resource.DPoPConfig{ExternalURL: cfg.externalURL},
		StatusList: resource.StatusListConfig{
			Refresh: cfg.statusRefresh,
		},
	}
	if cfg.dpopNonce {
		rc.DPoP.NonceKey = make([]byte, 32)
		if _, err := rand.Read(rc.DPoP.NonceKey); err != nil {
			return nil, fmt.Errorf("generating the DPoP nonce key: %w", err)
		}
	}
	if cfg.mode != resource.ModeLocal {
		secret, err := os.ReadFile(cfg.clientSecretFile)
		if err != nil {
			return nil, fmt.Errorf("reading the introspection client secret: %w", err)
		}
		rc.Introspection = resource.IntrospectionConfig{
			ClientID:     cfg.clientID,
			ClientSecret: strings.TrimSpace(string(secret)),
			CacheTTL:     5 * time.Second,
		}
	}
	// The audience is this API's resource identifier (RFC 9728 §1.2), its
	// own base URL. Its RFC 9728 metadata lives at the well-known URL derived
	// from it (§3.1), on this API's origin: this process serves it there,
	// with resource equal to the identifier (§3.3), and challenges point
	// there.
	metaURL, metaErr := resource.MetadataURL(cfg.audience)
	if metaErr == nil {
		rc.ResourceMetadataURL = metaURL
	} else {
		logger.Warn("resourceserver: the audience is no URL; serving no protected resource metadata", "error", metaErr)
	}

	users := newSeenUsers(10000)
	auth, err := newAuthenticator(ctx, rc, cfg.issuerWait, logger, resource.WithTokenCheck(users.record))
	if err != nil {
		return nil, err
	}
	md := auth.Metadata()
	md.ResourceName = "Demo API"

	mux := http.NewServeMux()
	mux.Handle("/api/", demoapi.Handler(auth, users))
	if metaErr == nil {
		u, err := url.Parse(metaURL)
		if err != nil {
			return nil, err
		}
		mux.Handle("GET "+u.Path, resource.MetadataHandler(md))
	}
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "ok\n")
	})
	return mux, nil
}

// newAuthenticator is resource.New, tried again while the issuer cannot be
// reached (unreachable, refused, timed out: the issuer is still starting,
// or was started after this API), for up to wait. Any other error (a
// metadata document naming another issuer, a 404) fails at once.
func newAuthenticator(ctx context.Context, rc resource.Config, wait time.Duration, logger *slog.Logger, opts ...resource.Option) (*resource.Authenticator, error) {
	deadline := time.Now().Add(wait)
	delay := 250 * time.Millisecond
	for {
		auth, err := resource.New(ctx, rc, opts...)
		if ctx.Err() != nil {
			return nil, ctx.Err() // stopped while waiting, not refused
		}
		if err == nil || !unreachable(err) || time.Now().Add(delay).After(deadline) {
			return auth, err
		}
		logger.Warn("resourceserver: the issuer cannot be reached yet; trying again", "issuer", rc.Issuer, "retry_in", delay, "error", err)
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		case <-t.C:
		}
		delay = min(2*delay, 5*time.Second)
	}
}

// unreachable reports whether err is a failure to reach a server (a dial
// error, a lookup failure, a timeout) rather than an answer.
func unreachable(err error) bool {
	var op *net.OpError
	var dns *net.DNSError
	return errors.As(err, &op) || errors.As(err, &dns) || errors.Is(err, context.DeadlineExceeded)
}

// serve runs an http.Server with timeouts on ln until ctx ends.
func serve(ctx context.Context, ln net.Listener, h http.Handler, logger *slog.Logger) error {
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       15 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	logger.Info("resourceserver: shutting down")
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return err
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
