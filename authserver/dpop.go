package authserver

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/oauthkit/authserver/internal/dpop"
	"github.com/oauthkit/authserver/resource"
	"github.com/oauthkit/authserver/storage"
)

// DPoP (RFC 9449) at the token endpoint: a proof in the DPoP header binds
// the issued access token to the proof's key (cnf.jkt, token_type DPoP);
// a public client's refresh token is bound to it as well (§5), and an
// authorization code to the dpop_jkt of its request (§10).

// Error codes of RFC 9449 §5 and §8.
const (
	errInvalidDPoPProof = "invalid_dpop_proof"
	errUseDPoPNonce     = "use_dpop_nonce"
	tokenTypeDPoP       = "DPoP"
)

// DPoPAlgorithms are the proof algorithms the server accepts, as advertised
// in dpop_signing_alg_values_supported.
var DPoPAlgorithms = dpop.Algorithms

// DPoPConfig configures DPoP proof checking.
type DPoPConfig struct {
	// Nonce requires a server nonce in every proof at the token endpoint
	// (RFC 9449 §8). Nonces are stateless (an HMAC of a time step under a
	// key derived from Config.Secret), so every instance accepts them.
	Nonce bool
	// NonceRotation is how often the nonce changes (default 1 minute); a
	// nonce is accepted in its step and the next.
	NonceRotation time.Duration
	// MaxAge and MaxFuture bound a proof's iat around the server's clock
	// (default 60s and 5s). A proof's jti is remembered for their sum.
	MaxAge    time.Duration
	MaxFuture time.Duration
}

// confirmation is the cnf claim (RFC 7800 §3.1) of a DPoP-bound token.
type confirmation struct {
	JKT string `json:"jkt"`
}

// jktRE is a base64url SHA-256 thumbprint.
var jktRE = regexp.MustCompile(`^[A-Za-z0-9_-]{43}$`)

type dpopChecker struct {
	cfg    DPoPConfig
	nonces *dpop.Nonces // nil without nonces
}

func newDPoPChecker(cfg DPoPConfig, secret []byte) *dpopChecker {
	if cfg.MaxAge <= 0 {
		cfg.MaxAge = dpop.DefaultMaxAge
	}
	if cfg.MaxFuture <= 0 {
		cfg.MaxFuture = dpop.DefaultMaxFuture
	}
	d := &dpopChecker{cfg: cfg}
	if cfg.Nonce {
		d.nonces = dpop.NewNonces(deriveKey(secret, "dpop-nonce"), cfg.NonceRotation)
	}
	return d
}

func dpopError(desc string) *oauthError {
	return newError(http.StatusBadRequest, errInvalidDPoPProof, desc)
}

// setDPoPNonce sends a fresh nonce when nonces are on (§8.2: every
// response may carry the next one).
func (s *Server) setDPoPNonce(w http.ResponseWriter) {
	if s.dpop.nonces != nil {
		w.Header().Set(dpop.NonceHeaderName, s.dpop.nonces.Current(s.cfg.Now()))
	}
}

// dpopProof checks the request's DPoP proof for the endpoint at path
// (relative to the issuer: behind a proxy, the issuer URL is what clients
// address) and records its jti. It returns the proof key's thumbprint, or
// "" when the request has no proof. bound, if set, is the thumbprint the
// presented access token is bound to: a proof made with another key is
// refused before its jti is recorded.
func (s *Server) dpopProof(ctx context.Context, r *http.Request, path, accessToken, bound string) (string, *oauthError) {
	values := r.Header.Values(dpop.HeaderName)
	switch len(values) {
	case 0:
		return "", nil
	case 1:
	default:
		return "", dpopError("The request must carry exactly one DPoP proof.")
	}
	now := s.cfg.Now()
	p, err := dpop.Verify(values[0], dpop.Params{
		Method: r.Method, URL: s.cfg.Issuer + path, AccessToken: accessToken, Now: now,
		MaxAge: s.dpop.cfg.MaxAge, MaxFuture: s.dpop.cfg.MaxFuture, Algorithms: DPoPAlgorithms,
	})
	if err != nil {
		oe := dpopError("The DPoP proof is invalid.")
		oe.Cause = err
		return "", oe
	}
	if bound != "" && p.JKT != bound {
		return "", dpopError("The DPoP proof is not made with the key the access token is bound to.")
	}
	if s.dpop.nonces != nil && !s.dpop.nonces.Valid(p.Nonce, now) {
		return "", newError(http.StatusBadRequest, errUseDPoPNonce, "The authorization server requires a nonce in the DPoP proof.")
	}
	// Single use, shared by every instance; the record is collected once
	// the proof could no longer pass the iat window.
	err = s.useJTI(ctx, nil, "dpop:", p.JKT+"|"+p.ID, p.IssuedAt.Add(s.dpop.cfg.MaxAge+s.dpop.cfg.MaxFuture), "", "")
	if errors.Is(err, errReplayed) {
		return "", dpopError("The DPoP proof was already used.")
	}
	if err != nil {
		return "", unavailable(err)
	}
	return p.JKT, nil
}

// bindDPoP applies the proof (jkt, "" without one) to a token request of
// client whose session is sess: the client's registration may require a
// proof, a bound refresh token or code requires the same key, and the new
// access token (and a public client's new grant) is bound to it.
func bindDPoP(client *storage.Client, grant, jkt string, sess *session) *oauthError {
	if jkt == "" && client.RequireDPoP {
		// RFC 9449 §5.2: such a client's token requests without a DPoP
		// header are rejected.
		return dpopError("This client must send a DPoP proof.")
	}
	switch grant {
	case grantRefreshToken:
		if sess.RefreshJKT != "" && sess.RefreshJKT != jkt {
			// §5: a public client's refresh token is used with a proof of
			// the key it was bound to.
			return dpopError("The refresh token is bound to a DPoP key; send a proof made with it.")
		}
	case grantAuthorizationCode:
		if sess.CodeJKT != "" && sess.CodeJKT != jkt {
			// §10: the code is bound to the dpop_jkt of its request.
			return dpopError("The authorization code is bound to another DPoP key.")
		}
	}
	sess.JKT = jkt
	if client.Public && grant != grantRefreshToken {
		sess.RefreshJKT = jkt
	}
	return nil
}

// cnf is the access token's confirmation claim, nil for an unbound token.
func (s *session) cnf() *confirmation {
	if s.JKT == "" {
		return nil
	}
	return &confirmation{JKT: s.JKT}
}

// validateDPoPJKT checks the dpop_jkt authorization request parameter
// (RFC 9449 §10).
func validateDPoPJKT(form url.Values) *authzError {
	if v, ok := form["dpop_jkt"]; ok && !jktRE.MatchString(v[0]) {
		return redirectError(errInvalidRequest, "The dpop_jkt parameter must be a base64url SHA-256 JWK thumbprint.")
	}
	return nil
}

// pushedDPoP binds a pushed authorization request to the key of its DPoP
// proof, if any (RFC 9449 §10.1): dpop_jkt, when also sent, must match.
func (s *Server) pushedDPoP(ctx context.Context, r *http.Request, form url.Values) *oauthError {
	jkt, oe := s.dpopProof(ctx, r, "/par", "", "")
	if oe != nil || jkt == "" {
		return oe
	}
	if v := form.Get("dpop_jkt"); v != "" && v != jkt {
		return dpopError("The dpop_jkt parameter does not match the DPoP proof's key.")
	}
	form.Set("dpop_jkt", jkt)
	return nil
}

// demoAPIDPoP configures DPoP at the in-process API: proofs name the
// issuer's origin and path (the API is mounted under it), and the API
// requires the token endpoint's nonces when they are on.
func (s *Server) demoAPIDPoP() resource.DPoPConfig {
	c := resource.DPoPConfig{ExternalURL: s.cfg.Issuer, Algorithms: DPoPAlgorithms,
		MaxAge: s.dpop.cfg.MaxAge, MaxFuture: s.dpop.cfg.MaxFuture, NonceRotation: s.dpop.cfg.NonceRotation}
	if s.dpop.nonces != nil {
		c.NonceKey = deriveKey(s.cfg.Secret, "dpop-nonce")
	}
	return c
}

// dpopAlgNames lists DPoPAlgorithms for the metadata.
func dpopAlgNames() []string {
	out := make([]string, len(DPoPAlgorithms))
	for i, a := range DPoPAlgorithms {
		out[i] = string(a)
	}
	return out
}

// userinfoToken reads the UserInfo request's access token: with the DPoP
// scheme (dpopScheme true) or as a bearer token (RFC 6750). It answers the
// request itself and returns ok false when there is none or it is
// malformed.
func (s *Server) userinfoToken(w http.ResponseWriter, r *http.Request) (token string, dpopScheme, ok bool) {
	if vs := r.Header.Values("Authorization"); len(vs) == 1 {
		if scheme, tok, _ := strings.Cut(vs[0], " "); strings.EqualFold(scheme, tokenTypeDPoP) {
			tok = strings.TrimSpace(tok)
			if tok == "" {
				dpopChallengeError(w, http.StatusBadRequest, errInvalidRequest, "The Authorization header must be 'DPoP <token>'.")
				return "", false, false
			}
			return tok, true, true
		}
	}
	token, ok = s.bearerToken(w, r)
	return token, false, ok
}

// userinfoBinding enforces a token's DPoP binding at the UserInfo endpoint
// (RFC 9449 §7): a bound token needs the DPoP scheme and a proof made with
// its key, for this request and token; an unbound one the Bearer scheme.
// It answers the request itself and returns false when refused.
func (s *Server) userinfoBinding(w http.ResponseWriter, r *http.Request, token string, cnf *confirmation, dpopScheme bool) bool {
	switch {
	case cnf == nil && !dpopScheme:
		return true
	case cnf == nil:
		dpopChallengeError(w, http.StatusUnauthorized, errInvalidToken, "The access token is not DPoP-bound.")
		return false
	case !dpopScheme:
		bearerError(w, http.StatusUnauthorized, errInvalidToken, "The access token is DPoP-bound; send it with the DPoP scheme and a proof.")
		return false
	}
	if len(r.Header.Values(dpop.HeaderName)) == 0 {
		dpopChallengeError(w, http.StatusUnauthorized, errInvalidDPoPProof, "A DPoP proof is required.")
		return false
	}
	_, oe := s.dpopProof(r.Context(), r, "/userinfo", token, cnf.JKT)
	if oe != nil {
		if oe.Status >= 500 {
			writeOAuthError(w, oe)
			return false
		}
		s.setDPoPNonce(w)
		dpopChallengeError(w, http.StatusUnauthorized, oe.Code, oe.Description)
		return false
	}
	return true
}

// dpopChallengeError is a refusal with a DPoP challenge (RFC 9449 §7.1).
func dpopChallengeError(w http.ResponseWriter, status int, code, desc string) {
	w.Header().Set("WWW-Authenticate", `DPoP realm="`+realm+`", error="`+code+`", error_description="`+descriptionChars(desc)+`", algs="`+strings.Join(dpopAlgNames(), " ")+`"`)
	writeJSON(w, status, map[string]string{"error": code, "error_description": desc})
}

// graceDPoP decides whether a retried refresh may get the pair issued to
// the first attempt (grace.go): when that access token is DPoP-bound, only
// a retry with a proof of the same key may, and the answer says DPoP.
func (s *Server) graceDPoP(st *requestState, accessToken string) (tokenType string, ok bool) {
	c, err := s.strategy.verifyAccessToken(accessToken)
	if err != nil {
		return "", false
	}
	if c.Cnf == nil {
		return "Bearer", true
	}
	return tokenTypeDPoP, st.jkt == c.Cnf.JKT
}
