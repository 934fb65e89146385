package resource

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/oauthkit/authserver/internal/dpop"
)

// DPoP (RFC 9449 §7): a token with a cnf.jkt claim is accepted only as
// "Authorization: DPoP <token>" with a DPoP proof made with that key, for
// this request (htm, htu), this token (ath), recent (iat) and not replayed
// (jti, remembered per process).

// Error codes of RFC 9449 §7.1.
const (
	// CodeInvalidDPoPProof: the DPoP proof is missing, invalid, or made
	// with another key than the token is bound to. Status 401.
	CodeInvalidDPoPProof ErrorCode = "invalid_dpop_proof"
	// CodeUseDPoPNonce: the proof must carry the nonce sent in the
	// DPoP-Nonce header (RFC 9449 §9). Status 401.
	CodeUseDPoPNonce ErrorCode = "use_dpop_nonce"
)

// DefaultDPoPReplayCacheSize bounds the jti replay cache when
// DPoPConfig.ReplayCacheSize is zero.
const DefaultDPoPReplayCacheSize = 100_000

// DPoPConfig configures the checks of DPoP-bound tokens.
type DPoPConfig struct {
	// ExternalURL is the scheme, host and optional path prefix clients use
	// to reach this API, such as "https://api.example" behind a reverse
	// proxy: a proof's htu must be ExternalURL followed by the request's
	// path. Default: the URL the request arrived at (r.TLS and r.Host).
	ExternalURL string
	// Algorithms are the accepted proof algorithms (asymmetric only);
	// default every asymmetric JWS algorithm (ES*, RS*, PS*, EdDSA).
	Algorithms []jose.SignatureAlgorithm
	// MaxAge and MaxFuture bound a proof's iat around the clock; default
	// 60s and 5s.
	MaxAge    time.Duration
	MaxFuture time.Duration
	// ReplayCacheSize bounds the remembered proof identifiers; default
	// DefaultDPoPReplayCacheSize. The cache lives in this process: a
	// proof replayed to another instance of the API is not detected, and
	// once the cache is full the oldest entries go first, so it detects
	// every replay only while fewer than ReplayCacheSize proofs arrive per
	// MaxAge+MaxFuture. Requiring nonces shortens the useful life of a
	// stolen proof further.
	ReplayCacheSize int
	// NonceKey, when set, requires a server nonce in every proof (RFC 9449
	// §9): an HMAC of a time step under this key (at least 32 bytes; give
	// every instance the same key so that they accept each other's
	// nonces). NonceRotation is the step, default one minute.
	NonceKey      []byte
	NonceRotation time.Duration
}

type dpopVerifier struct {
	external  string
	algs      []jose.SignatureAlgorithm
	algList   string // for the challenge
	maxAge    time.Duration
	maxFuture time.Duration
	nonces    *dpop.Nonces
	replay    *replayCache
	now       func() time.Time
}

func newDPoPVerifier(cfg DPoPConfig, now func() time.Time) (*dpopVerifier, error) {
	algs := cfg.Algorithms
	if len(algs) == 0 {
		algs = dpop.Algorithms
	}
	if err := checkAlgorithms(algs); err != nil {
		return nil, err
	}
	if cfg.ExternalURL != "" {
		if _, err := dpop.Normalize(cfg.ExternalURL); err != nil {
			return nil, fmt.Errorf("resource: DPoP.ExternalURL: %w", err)
		}
	}
	if cfg.NonceKey != nil && len(cfg.NonceKey) < 32 {
		return nil, errors.New("resource: DPoP.NonceKey must be at least 32 bytes")
	}
	v := &dpopVerifier{
		external:  strings.TrimRight(cfg.ExternalURL, "/"),
		algs:      append([]jose.SignatureAlgorithm(nil), algs...),
		maxAge:    cfg.MaxAge,
		maxFuture: cfg.MaxFuture,
		now:       now,
	}
	if v.maxAge <= 0 {
		v.maxAge = dpop.DefaultMaxAge
	}
	if v.maxFuture <= 0 {
		v.maxFuture = dpop.DefaultMaxFuture
	}
	names := make([]string, len(algs))
	for i, a := range algs {
		names[i] = string(a)
	}
	v.algList = strings.Join(names, " ")
	if cfg.NonceKey != nil {
		v.nonces = dpop.NewNonces(cfg.NonceKey, cfg.NonceRotation)
	}
	size := cfg.ReplayCacheSize
	if size <= 0 {
		size = DefaultDPoPReplayCacheSize
	}
	v.replay = newReplayCache(size)
	return v, nil
}

// dpopError is a refusal with a DPoP challenge.
func dpopError(code ErrorCode, desc string, err error) *Error {
	return &Error{Status: http.StatusUnauthorized, Code: code, Description: desc, Err: err, dpop: true}
}

// dpopToken reads "Authorization: DPoP <token>". ok reports whether the
// request uses the DPoP scheme at all; a refusal of a DPoP-scheme request
// is an *Error with a DPoP challenge (RFC 9449 §7.1): 400 invalid_request
// for a missing or ill-formed token, 401 invalid_token for one over
// maxSize.
func dpopToken(r *http.Request, maxSize int) (token string, ok bool, err error) {
	values := r.Header.Values("Authorization")
	if len(values) != 1 {
		return "", false, nil // none, or several: bearerToken refuses those
	}
	h := values[0]
	const scheme = "dpop "
	if len(h) < len(scheme) || !asciiEqualFold(h[:len(scheme)], scheme) {
		return "", false, nil
	}
	token = strings.TrimLeft(h[len(scheme):], " ")
	if token == "" {
		e := dpopError(CodeInvalidRequest, "the DPoP access token is empty", nil)
		e.Status = http.StatusBadRequest
		return "", true, e
	}
	if err := checkB64Token(token, maxSize); err != nil {
		// ErrMalformedRequest (400) or, over maxSize, ErrInvalidToken (401).
		e := errorFor(err)
		e.dpop = true
		return "", true, e
	}
	return token, true, nil
}

// credentials verifies the request's token: a DPoP-bound one with its
// proof, or a bearer token that is not DPoP-bound. So the claims it
// returns have a JKT exactly when the request used the DPoP scheme, and
// later refusals (a scope check) answer with that scheme's challenge.
func (a *Authenticator) credentials(w http.ResponseWriter, r *http.Request) (*Claims, error) {
	token, isDPoP, err := dpopToken(r, a.maxSize)
	if err != nil {
		return nil, err
	}
	if isDPoP {
		return a.verifyDPoP(w, r, token)
	}
	raw, err := bearerToken(r, a.allowForm, a.maxSize)
	if err != nil {
		return nil, err
	}
	c, err := a.Verify(r.Context(), raw)
	if err != nil {
		return nil, err
	}
	if c.JKT != "" {
		// RFC 9449 §7.2: a bound token is worthless without its key.
		return nil, &Error{Status: http.StatusUnauthorized, Code: CodeInvalidToken, Description: "the access token is DPoP-bound; send it with the DPoP scheme and a proof"}
	}
	return c, nil
}

// verifyDPoP checks a DPoP-scheme request (RFC 9449 §7.1 and §4.3).
func (a *Authenticator) verifyDPoP(w http.ResponseWriter, r *http.Request, token string) (*Claims, error) {
	v := a.dpop
	proofs := r.Header.Values(dpop.HeaderName)
	if len(proofs) != 1 {
		return nil, dpopError(CodeInvalidDPoPProof, "exactly one DPoP proof is required", nil)
	}
	c, err := a.Verify(r.Context(), token)
	if err != nil {
		e := errorFor(err)
		e.dpop = true
		return nil, e
	}
	if c.JKT == "" {
		return nil, dpopError(CodeInvalidToken, "the access token is not DPoP-bound", nil)
	}
	now := v.now()
	p, err := dpop.Verify(proofs[0], dpop.Params{
		Method: r.Method, URL: v.requestURL(r), AccessToken: token, Now: now,
		MaxAge: v.maxAge, MaxFuture: v.maxFuture, Algorithms: v.algs,
	})
	if err != nil {
		return nil, dpopError(CodeInvalidDPoPProof, "the DPoP proof is invalid", err)
	}
	if p.JKT != c.JKT {
		return nil, dpopError(CodeInvalidDPoPProof, "the DPoP proof is not signed with the key the access token is bound to", nil)
	}
	if v.nonces != nil {
		w.Header().Set(dpop.NonceHeaderName, v.nonces.Current(now))
		if !v.nonces.Valid(p.Nonce, now) {
			return nil, dpopError(CodeUseDPoPNonce, "a DPoP nonce is required", nil)
		}
	}
	if !v.replay.add(p.JKT+"|"+p.ID, p.IssuedAt.Add(v.maxAge+v.maxFuture), now) {
		return nil, dpopError(CodeInvalidDPoPProof, "the DPoP proof was already used", nil)
	}
	return c, nil
}

// requestURL is the URL the client addressed: ExternalURL and the path,
// or the request's own scheme and host.
func (v *dpopVerifier) requestURL(r *http.Request) string {
	if v.external != "" {
		return v.external + r.URL.EscapedPath()
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host + r.URL.EscapedPath()
}

// dpopChallenge is the DPoP challenge of RFC 9449 §7.1: the RFC 6750 §3
// parameters (error, error_description, scope for a failed scope check),
// then algs.
func dpopChallenge(realm, algs string, e *Error) string {
	return authChallenge("DPoP", realm, e, "algs", algs)
}

// setChallenges writes the WWW-Authenticate header(s) of a refusal: the
// scheme the request used, and both when it carried no token (§7.1).
func (a *Authenticator) setChallenges(w http.ResponseWriter, e *Error) {
	h := w.Header()
	if e.dpop {
		h.Set("WWW-Authenticate", dpopChallenge(a.realm, a.dpop.algList, e))
		return
	}
	h.Set("WWW-Authenticate", challenge(a.realm, a.resMeta, e))
	if e.Code == "" {
		h.Add("WWW-Authenticate", dpopChallenge(a.realm, a.dpop.algList, nil))
	}
}

// replayCache remembers proof identifiers until they expire, bounded in
// size: when full, expired entries are dropped, then the oldest.
type replayCache struct {
	mu      sync.Mutex
	max     int
	entries map[[32]byte]time.Time
	order   [][32]byte // insertion order, a ring once full
	next    int
}

func newReplayCache(max int) *replayCache {
	return &replayCache{max: max, entries: make(map[[32]byte]time.Time)}
}

// add records id until exp and reports whether it was new.
func (c *replayCache) add(id string, exp, now time.Time) bool {
	k := sha256.Sum256([]byte(id))
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.entries[k]; ok {
		if e.After(now) {
			return false
		}
		c.entries[k] = exp // already in order
		return true
	}
	if len(c.order) < c.max {
		c.order = append(c.order, k)
	} else {
		delete(c.entries, c.order[c.next])
		c.order[c.next] = k
		c.next = (c.next + 1) % c.max
	}
	c.entries[k] = exp
	return true
}
