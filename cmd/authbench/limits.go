package main

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"runtime"
	"slices"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"golang.org/x/crypto/argon2"

	"github.com/oauthkit/authserver/internal/password"
)

// limitsConfig holds the flags of `authbench limits`.
type limitsConfig struct {
	// Algorithms are the JWT algorithms measured (RS256, ES256, EdDSA).
	Algorithms []string
	// Argon2 are the parameters of the argon2id limit; skipped if zero.
	Argon2 password.Params
	// Concurrency of the CPU limits (default: every core).
	Concurrency int
	// HTTPConcurrency is the number of workers of the HTTP limit; 0 skips it.
	HTTPConcurrency int
	Warmup          time.Duration
	Duration        time.Duration
	// Only, when set, restricts the run to these limits (argon2id,
	// sign/ALG, verify/ALG, http).
	Only []string
	// Retry, when set, is asked after each measurement whether to measure
	// again, given the cores other processes used meanwhile; the quietest
	// attempt is kept.
	Retry func(name string, attempt int, otherCores float64) bool
}

// want reports whether the limit called name is to be measured.
func (c limitsConfig) want(name string) bool {
	return len(c.Only) == 0 || slices.Contains(c.Only, name)
}

// limitNames: argon2id, sign/ALG, verify/ALG and http.
const (
	limitArgon2 = "argon2id"
	limitHTTP   = "http"
)

func signLimit(alg string) string   { return "sign/" + alg }
func verifyLimit(alg string) string { return "verify/" + alg }

// limitRun is one measured limit.
type limitRun struct {
	name     string
	params   string
	conc     int
	res      *loadResult
	attempts int
}

// runLimits measures, with the same closed-loop generator as the scenarios,
// the work each scenario cannot avoid: an argon2id verification on every
// core, JWT signing and verification per algorithm with go-jose v4, and a
// trivial HTTP handler over loopback. Each result is passed to emit as soon
// as it is measured.
func runLimits(ctx context.Context, cfg limitsConfig, emit func(limitRun) error) error {
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = runtime.NumCPU()
	}
	load := func(name, params string, conc int, factory opFactory) error {
		var best *loadResult
		var tries int
		for attempt := 1; ; attempt++ {
			res, err := runLoad(ctx, loadConfig{Concurrency: conc, Warmup: cfg.Warmup, Duration: cfg.Duration,
				OK: func(int) bool { return true }}, factory)
			if err != nil {
				return fmt.Errorf("limit %s: %w", name, err)
			}
			if best == nil || res.otherCores() < best.otherCores() {
				best = res
			}
			tries = attempt
			if cfg.Retry == nil || !cfg.Retry(name, attempt, res.otherCores()) {
				break
			}
		}
		return emit(limitRun{name: name, params: params, conc: conc, res: best, attempts: tries})
	}
	same := func(o op) opFactory { return func(context.Context, int) (op, error) { return o, nil } }

	for _, n := range cfg.Only {
		known := n == limitArgon2 || n == limitHTTP
		for _, alg := range []string{"RS256", "ES256", "EdDSA"} {
			known = known || n == signLimit(alg) || n == verifyLimit(alg)
		}
		if !known {
			return fmt.Errorf("unknown limit %q (want argon2id, sign/ALG, verify/ALG or http)", n)
		}
	}
	if cfg.Argon2 != (password.Params{}) && cfg.want(limitArgon2) {
		p := cfg.Argon2
		if p.SaltLen == 0 {
			p.SaltLen = password.DefaultParams.SaltLen
		}
		if p.KeyLen == 0 {
			p.KeyLen = password.DefaultParams.KeyLen
		}
		// The limit is golang.org/x/crypto/argon2.IDKey itself, the work a
		// password verification cannot avoid, with the same parameters.
		pw, salt := []byte("limit-password-0123"), make([]byte, p.SaltLen)
		if _, err := rand.Read(salt); err != nil {
			return fmt.Errorf("limit %s: %w", limitArgon2, err)
		}
		params := fmt.Sprintf("m=%d,t=%d,p=%d", p.Memory, p.Time, p.Threads)
		if err := load(limitArgon2, params, cfg.Concurrency, same(func(context.Context) (int, error) {
			_ = argon2.IDKey(pw, salt, p.Time, p.Memory, p.Threads, p.KeyLen)
			return 0, nil
		})); err != nil {
			return err
		}
	}

	algorithms := cfg.Algorithms
	if len(cfg.Only) > 0 {
		algorithms = []string{"RS256", "ES256", "EdDSA"}
	}
	for _, alg := range algorithms {
		if !cfg.want(signLimit(alg)) && !cfg.want(verifyLimit(alg)) {
			continue
		}
		signer, pub, err := newLimitSigner(alg)
		if err != nil {
			return err
		}
		claims := sampleClaims()
		if cfg.want(signLimit(alg)) {
			if err := load(signLimit(alg), keyDescription(alg), cfg.Concurrency, same(func(context.Context) (int, error) {
				_, err := signJWT(signer, claims)
				return 0, err
			})); err != nil {
				return err
			}
		}
		if !cfg.want(verifyLimit(alg)) {
			continue
		}
		tok, err := signJWT(signer, claims)
		if err != nil {
			return err
		}
		algs := []jose.SignatureAlgorithm{jose.SignatureAlgorithm(alg)}
		if err := load(verifyLimit(alg), keyDescription(alg), cfg.Concurrency, same(func(context.Context) (int, error) {
			return 0, verifyJWT(tok, algs, pub)
		})); err != nil {
			return err
		}
	}

	if cfg.HTTPConcurrency > 0 && cfg.want(limitHTTP) {
		if err := httpLimit(ctx, cfg.HTTPConcurrency, load); err != nil {
			return err
		}
	}
	return nil
}

// httpLimit serves a trivial handler on loopback in this process and loads
// it through the same transport and generator as the scenarios.
func httpLimit(ctx context.Context, conc int, load func(name, params string, conc int, f opFactory) error) error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("limit http: %w", err)
	}
	body := []byte(`{"status":"ok"}` + "\n")
	hs := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write(body)
		}),
		ReadHeaderTimeout: 5 * time.Second,
	}
	go func() { _ = hs.Serve(ln) }()
	defer hs.Close()
	tr := newTransport(conc)
	defer tr.CloseIdleConnections()
	t := &target{base: "http://" + ln.Addr().String(), client: &http.Client{Transport: tr}}
	return load(limitHTTP, "GET, 16-byte body", conc, func(context.Context, int) (op, error) {
		return func(ctx context.Context) (int, error) {
			status, _, err := t.request(ctx, http.MethodGet, "/", "", nil, false)
			return status, err
		}, nil
	})
}

// keyDescription names the key of an algorithm's limit.
func keyDescription(alg string) string {
	switch alg {
	case "RS256":
		return "RSA 2048"
	case "ES256":
		return "P-256"
	case "EdDSA":
		return "Ed25519"
	}
	return ""
}

// newLimitSigner creates a fresh key of alg and its go-jose v4 signer.
func newLimitSigner(alg string) (jose.Signer, crypto.PublicKey, error) {
	var priv crypto.Signer
	var err error
	switch alg {
	case "RS256":
		priv, err = rsa.GenerateKey(rand.Reader, 2048)
	case "ES256":
		priv, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case "EdDSA":
		_, priv, err = ed25519.GenerateKey(rand.Reader)
	default:
		return nil, nil, fmt.Errorf("unknown algorithm %q (want RS256, ES256 or EdDSA)", alg)
	}
	if err != nil {
		return nil, nil, err
	}
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.SignatureAlgorithm(alg), Key: priv},
		(&jose.SignerOptions{}).WithType("at+jwt").WithHeader("kid", "limit-key"))
	if err != nil {
		return nil, nil, err
	}
	return s, priv.Public(), nil
}

// accessClaims is the shape of the server's access tokens (RFC 9068).
type accessClaims struct {
	Issuer   string   `json:"iss"`
	Subject  string   `json:"sub"`
	Audience []string `json:"aud"`
	Expiry   int64    `json:"exp"`
	IssuedAt int64    `json:"iat"`
	JTI      string   `json:"jti"`
	ClientID string   `json:"client_id"`
	Scope    string   `json:"scope,omitempty"`
	Roles    []string `json:"roles,omitempty"`
	Name     string   `json:"name,omitempty"`
	Email    string   `json:"email,omitempty"`
}

// sampleClaims are claims of the size the server issues.
func sampleClaims() accessClaims {
	now := time.Now().Unix()
	return accessClaims{
		Issuer: "http://127.0.0.1:8080", Subject: "a05b159207ceefbe2f56651d20823df2",
		Audience: []string{"http://127.0.0.1:8080/api"}, Expiry: now + 900, IssuedAt: now,
		JTI: "xZEhoEXWfysoRHWOe0SpNQ", ClientID: "bench", Scope: "read write",
		Roles: []string{"user"}, Name: "Bench 0", Email: "bench-0@example.com",
	}
}

// signJWT encodes and signs claims as a compact JWS, as a token endpoint does.
func signJWT(s jose.Signer, c accessClaims) (string, error) {
	payload, err := json.Marshal(c)
	if err != nil {
		return "", err
	}
	jws, err := s.Sign(payload)
	if err != nil {
		return "", err
	}
	return jws.CompactSerialize()
}

// verifyJWT parses and verifies a compact JWS and decodes its claims: the
// least a verifier of our access tokens does.
func verifyJWT(tok string, algs []jose.SignatureAlgorithm, pub crypto.PublicKey) error {
	jws, err := jose.ParseSignedCompact(tok, algs)
	if err != nil {
		return err
	}
	payload, err := jws.Verify(pub)
	if err != nil {
		return err
	}
	var c accessClaims
	if err := json.Unmarshal(payload, &c); err != nil {
		return err
	}
	if c.Subject == "" {
		return errors.New("no subject")
	}
	return nil
}
