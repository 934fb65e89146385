// Package dpop verifies and makes DPoP proofs (RFC 9449): the proof JWT's
// syntax, signature, htm/htu, iat window and ath, the RFC 7638 thumbprint of
// its key, and stateless server nonces. Replay detection of jti is the
// caller's, because its scope differs: the authorization server shares it
// through storage, a resource server keeps it per process.
//
// It imports only go-jose and the standard library, so that both the
// authorization server and the resource package use it.
package dpop

import (
	"bytes"
	"crypto"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// HeaderName is the request and response header of a proof (RFC 9449 §4.1).
const HeaderName = "DPoP"

// NonceHeaderName carries a server nonce (RFC 9449 §8).
const NonceHeaderName = "DPoP-Nonce"

// ProofType is the typ of a proof JWT (RFC 9449 §4.2).
const ProofType = "dpop+jwt"

// Algorithms are the proof signature algorithms accepted by default: every
// asymmetric JWS algorithm; none and the HMAC algorithms never are.
var Algorithms = []jose.SignatureAlgorithm{
	jose.ES256, jose.ES384, jose.ES512,
	jose.RS256, jose.RS384, jose.RS512,
	jose.PS256, jose.PS384, jose.PS512,
	jose.EdDSA,
}

// Default iat window: a proof may be this old, or this far in the future.
const (
	DefaultMaxAge    = 60 * time.Second
	DefaultMaxFuture = 5 * time.Second
)

// ErrInvalidProof is wrapped by every refusal of a proof.
var ErrInvalidProof = errors.New("dpop: invalid proof")

// Params are what a proof must match.
type Params struct {
	// Method is the request's method (htm).
	Method string
	// URL is the request's URL as the client addressed it (htu); it is
	// compared after Normalize.
	URL string
	// AccessToken, when set, must be hashed in ath (RFC 9449 §4.3 step 11).
	AccessToken string
	// Now is the current time; MaxAge and MaxFuture bound iat around it
	// (default DefaultMaxAge and DefaultMaxFuture).
	Now       time.Time
	MaxAge    time.Duration
	MaxFuture time.Duration
	// Algorithms is the allow-list; default Algorithms. Only asymmetric
	// algorithms may be listed.
	Algorithms []jose.SignatureAlgorithm
}

// Proof is a verified proof.
type Proof struct {
	// JKT is the base64url RFC 7638 SHA-256 thumbprint of the proof's key.
	JKT string
	// ID is the jti; IssuedAt the iat.
	ID       string
	IssuedAt time.Time
	// Nonce is the nonce claim, empty when absent; the caller checks it.
	Nonce string
}

type proofClaims struct {
	JTI   string   `json:"jti"`
	HTM   string   `json:"htm"`
	HTU   string   `json:"htu"`
	IAT   *float64 `json:"iat"`
	ATH   string   `json:"ath"`
	Nonce string   `json:"nonce"`
}

// maxProofSize bounds a proof before parsing.
const maxProofSize = 8 << 10

// Verify checks proof per RFC 9449 §4.3 (all steps but the nonce and the
// jti's uniqueness, which the caller checks with the returned Proof).
func Verify(proof string, p Params) (*Proof, error) {
	if proof == "" {
		return nil, fmt.Errorf("%w: empty", ErrInvalidProof)
	}
	if len(proof) > maxProofSize || strings.Count(proof, ".") != 2 {
		return nil, fmt.Errorf("%w: not a compact JWS", ErrInvalidProof)
	}
	algs := p.Algorithms
	if len(algs) == 0 {
		algs = Algorithms
	}
	// The allow-list refuses none and HS* (§4.3 step 5).
	jws, err := jose.ParseSignedCompact(proof, algs)
	if err != nil {
		// go-jose also refuses a jwk header with private members here.
		return nil, fmt.Errorf("%w: %w", ErrInvalidProof, err)
	}
	h := jws.Signatures[0].Protected
	if typ, _ := h.ExtraHeaders[jose.HeaderType].(string); typ != ProofType {
		return nil, fmt.Errorf("%w: typ %q is not %s", ErrInvalidProof, typ, ProofType)
	}
	jwk := h.JSONWebKey
	if jwk == nil || !jwk.Valid() {
		return nil, fmt.Errorf("%w: no valid jwk header", ErrInvalidProof)
	}
	if !jwk.IsPublic() {
		return nil, fmt.Errorf("%w: the jwk header holds a private key", ErrInvalidProof)
	}
	payload, err := jws.Verify(jwk)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidProof, err)
	}
	var c proofClaims
	if err := json.Unmarshal(payload, &c); err != nil {
		return nil, fmt.Errorf("%w: claims: %w", ErrInvalidProof, err)
	}
	if c.JTI == "" || len(c.JTI) > 256 {
		return nil, fmt.Errorf("%w: jti missing or too long", ErrInvalidProof)
	}
	if c.HTM != p.Method {
		return nil, fmt.Errorf("%w: htm does not match the request", ErrInvalidProof)
	}
	want, err := Normalize(p.URL)
	if err != nil {
		return nil, fmt.Errorf("dpop: request URL: %w", err)
	}
	if got, err := Normalize(c.HTU); err != nil || got != want {
		return nil, fmt.Errorf("%w: htu does not match the request", ErrInvalidProof)
	}
	if c.IAT == nil {
		return nil, fmt.Errorf("%w: iat missing", ErrInvalidProof)
	}
	maxAge, maxFuture := p.MaxAge, p.MaxFuture
	if maxAge <= 0 {
		maxAge = DefaultMaxAge
	}
	if maxFuture <= 0 {
		maxFuture = DefaultMaxFuture
	}
	iat := time.Unix(int64(*c.IAT), 0)
	if iat.Before(p.Now.Add(-maxAge)) {
		return nil, fmt.Errorf("%w: iat too old", ErrInvalidProof)
	}
	if iat.After(p.Now.Add(maxFuture)) {
		return nil, fmt.Errorf("%w: iat in the future", ErrInvalidProof)
	}
	if p.AccessToken != "" {
		if !hmac.Equal([]byte(c.ATH), []byte(ATH(p.AccessToken))) {
			return nil, fmt.Errorf("%w: ath does not match the access token", ErrInvalidProof)
		}
	}
	jkt, err := Thumbprint(jwk)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidProof, err)
	}
	return &Proof{JKT: jkt, ID: c.JTI, IssuedAt: iat, Nonce: c.Nonce}, nil
}

// Thumbprint returns the base64url RFC 7638 SHA-256 thumbprint of key.
func Thumbprint(key *jose.JSONWebKey) (string, error) {
	tp, err := key.Thumbprint(crypto.SHA256)
	if err != nil {
		return "", fmt.Errorf("dpop: thumbprint: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(tp), nil
}

// ATH is the ath claim for an access token: base64url SHA-256 of its ASCII
// form (RFC 9449 §4.2).
func ATH(accessToken string) string {
	sum := sha256.Sum256([]byte(accessToken))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// Normalize returns the htu form of raw for comparison (RFC 9449 §4.3 step
// 9): the syntax-based normalization of RFC 3986 §6.2.2 and the
// scheme-based one of §6.2.3. That is a lower-case scheme and host, the
// default port dropped, in the path percent-encoded unreserved characters
// decoded ("%7E" is "~") and the hex digits of the other escapes upper-case
// ("%2f" is "%2F"), dot segments removed (§5.2.4), an empty path as "/",
// and no query or fragment. Reserved characters stay as they are, encoded
// or not: "%2F" is not "/", and "//" is not "/". A URL with userinfo is
// refused. The proof's htu and the request's URL both go through it.
func Normalize(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", fmt.Errorf("dpop: htu: %w", err)
	}
	if !u.IsAbs() || u.Host == "" || u.Opaque != "" {
		return "", errors.New("dpop: htu is not an absolute http(s) URL")
	}
	if u.User != nil {
		// Userinfo is part of the authority (RFC 3986 §3.2): dropping it
		// would make "https://x@as.example/token" the URL of a request to
		// "https://as.example/token". No request URL carries one.
		return "", errors.New("dpop: the URL has userinfo")
	}
	scheme := strings.ToLower(u.Scheme)
	host := strings.ToLower(u.Hostname())
	port := u.Port()
	if scheme == "https" && port == "443" || scheme == "http" && port == "80" {
		port = ""
	}
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	if port != "" {
		host += ":" + port
	}
	path := normalizePath(u.EscapedPath())
	if path == "" {
		path = "/"
	}
	return scheme + "://" + host + path, nil
}

// normalizePath applies RFC 3986 §6.2.2.1 (upper-case hex digits),
// §6.2.2.2 (decode unreserved characters) and then §6.2.2.3 (remove dot
// segments) to p, a validly escaped path.
func normalizePath(p string) string {
	if !strings.Contains(p, "%") && !strings.Contains(p, "/.") && !strings.HasPrefix(p, ".") {
		return p // the usual case: nothing to do
	}
	var b strings.Builder
	b.Grow(len(p))
	for i := 0; i < len(p); i++ {
		c := p[i]
		if c != '%' || i+2 >= len(p) || !isHex(p[i+1]) || !isHex(p[i+2]) {
			b.WriteByte(c)
			continue
		}
		d := unhex(p[i+1])<<4 | unhex(p[i+2])
		if isUnreserved(d) {
			b.WriteByte(d)
		} else {
			b.WriteByte('%')
			b.WriteByte(upperHex(p[i+1]))
			b.WriteByte(upperHex(p[i+2]))
		}
		i += 2
	}
	return removeDotSegments(b.String())
}

// removeDotSegments is the algorithm of RFC 3986 §5.2.4: "." and ".."
// segments are resolved, every other segment kept as it is, empty ones
// included.
func removeDotSegments(in string) string {
	out := make([]byte, 0, len(in))
	popSegment := func() {
		if i := bytes.LastIndexByte(out, '/'); i >= 0 {
			out = out[:i]
		} else {
			out = out[:0]
		}
	}
	for in != "" {
		switch {
		case strings.HasPrefix(in, "../"): // A
			in = in[3:]
		case strings.HasPrefix(in, "./"): // A
			in = in[2:]
		case strings.HasPrefix(in, "/./"): // B
			in = in[2:]
		case in == "/.": // B
			in = "/"
		case strings.HasPrefix(in, "/../"): // C
			in = in[3:]
			popSegment()
		case in == "/..": // C
			in = "/"
			popSegment()
		case in == "." || in == "..": // D
			in = ""
		default: // E: move the first segment, with its leading "/"
			n := strings.IndexByte(in[1:], '/') + 1
			if n == 0 {
				n = len(in)
			}
			out = append(out, in[:n]...)
			in = in[n:]
		}
	}
	return string(out)
}

// isUnreserved reports whether c is an RFC 3986 §2.3 unreserved character.
func isUnreserved(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		c == '-' || c == '.' || c == '_' || c == '~'
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c >= 'a':
		return c - 'a' + 10
	}
	return c - 'A' + 10
}

func upperHex(c byte) byte {
	if 'a' <= c && c <= 'f' {
		return c - 'a' + 'A'
	}
	return c
}

// Nonces issues and checks stateless server nonces (RFC 9449 §8): the
// HMAC of a time step under a key every instance shares, so any instance
// accepts another's nonce without storage. A nonce is valid in the step it
// was issued in and the next one.
type Nonces struct {
	key  []byte
	step time.Duration
}

// NewNonces returns a nonce source keyed by key (at least 32 bytes, shared
// by every instance), rotating every step (default one minute).
func NewNonces(key []byte, step time.Duration) *Nonces {
	if step <= 0 {
		step = time.Minute
	}
	return &Nonces{key: key, step: step}
}

func (n *Nonces) at(step int64) string {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(step))
	m := hmac.New(sha256.New, n.key)
	m.Write(b[:])
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil)[:18])
}

// Current returns the nonce of now's time step.
func (n *Nonces) Current(now time.Time) string {
	return n.at(now.UnixNano() / int64(n.step))
}

// Valid reports whether nonce is the current or the previous step's.
func (n *Nonces) Valid(nonce string, now time.Time) bool {
	s := now.UnixNano() / int64(n.step)
	return nonce != "" && (hmac.Equal([]byte(nonce), []byte(n.at(s))) || hmac.Equal([]byte(nonce), []byte(n.at(s-1))))
}

// Signer makes proofs: for clients, and for tests.
type Signer struct {
	signer jose.Signer
	jwk    jose.JSONWebKey
	jkt    string
}

// NewSigner returns a Signer for key (an *ecdsa.PrivateKey, *rsa.PrivateKey
// or ed25519.PrivateKey) with alg.
func NewSigner(key crypto.Signer, alg jose.SignatureAlgorithm) (*Signer, error) {
	opts := (&jose.SignerOptions{EmbedJWK: true}).WithType(ProofType)
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: key}, opts)
	if err != nil {
		return nil, fmt.Errorf("dpop: signer: %w", err)
	}
	pub := jose.JSONWebKey{Key: key.Public()}
	jkt, err := Thumbprint(&pub)
	if err != nil {
		return nil, err
	}
	return &Signer{signer: s, jwk: pub, jkt: jkt}, nil
}

// JKT returns the thumbprint of the signer's key.
func (s *Signer) JKT() string { return s.jkt }

// ProofClaims are the claims of a proof to make; zero IssuedAt is now and
// an empty ID a random one.
type ProofClaims struct {
	Method, URL, AccessToken, Nonce, ID string
	IssuedAt                            time.Time
}

// Proof makes a proof for c.
func (s *Signer) Proof(c ProofClaims) (string, error) {
	if c.IssuedAt.IsZero() {
		c.IssuedAt = time.Now()
	}
	if c.ID == "" {
		c.ID = randomID()
	}
	m := map[string]any{"jti": c.ID, "htm": c.Method, "htu": c.URL, "iat": c.IssuedAt.Unix()}
	if c.AccessToken != "" {
		m["ath"] = ATH(c.AccessToken)
	}
	if c.Nonce != "" {
		m["nonce"] = c.Nonce
	}
	b, err := json.Marshal(m)
	if err != nil {
		return "", fmt.Errorf("dpop: proof claims: %w", err)
	}
	jws, err := s.signer.Sign(b)
	if err != nil {
		return "", fmt.Errorf("dpop: sign proof: %w", err)
	}
	return jws.CompactSerialize()
}

func randomID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}
