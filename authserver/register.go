package authserver

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gorilla/mux"

	"github.com/oauthkit/authserver/internal/password"
	"github.com/oauthkit/authserver/storage"
)

// Error codes of dynamic client registration (RFC 7591 §3.2.2).
const (
	errInvalidRedirectURI    = "invalid_redirect_uri"
	errInvalidClientMetadata = "invalid_client_metadata"
)

// Token endpoint authentication methods (RFC 7591 §2, RFC 7523 §2.2).
const (
	authMethodNone          = "none"
	authMethodSecretBasic   = "client_secret_basic"
	authMethodSecretPost    = "client_secret_post"
	authMethodSecretJWT     = "client_secret_jwt"
	authMethodPrivateKeyJWT = "private_key_jwt"
)

// RegistrationConfig configures dynamic client registration (RFC 7591) and
// management (RFC 7592) at /register. Registration needs an initial access
// token (CreateInitialAccessToken) unless Open is set.
type RegistrationConfig struct {
	// Open lets anyone register a client without an initial access token.
	// Off by default; the server logs a warning when it is on.
	Open bool
	// Scopes are the scopes a dynamically registered client may register
	// (default: the OpenID Connect scopes openid, profile, email and
	// offline_access). A client registered by an operator is not limited.
	Scopes []string
	// RatePerMinute and Burst size the token bucket that limits requests to
	// /register and /register/{client_id} per address (defaults 20 and 10).
	RatePerMinute float64
	Burst         int
}

func (c *RegistrationConfig) setDefaults() {
	if len(c.Scopes) == 0 {
		c.Scopes = slices.Clone(oidcScopes)
	}
	if c.RatePerMinute <= 0 {
		c.RatePerMinute = 20
	}
	if c.Burst <= 0 {
		c.Burst = 10
	}
}

// InitialAccessToken describes an initial access token to create.
type InitialAccessToken struct {
	// TTL is how long the token can register clients. Required.
	TTL time.Duration
	// MaxUses bounds how many clients the token can register (0: no limit).
	// The limit holds across instances sharing the store.
	MaxUses int
	// SecretTTL, when positive, makes the secret of every client registered
	// with the token expire after this long (client_secret_expires_at).
	SecretTTL time.Duration
}

// initialTokenPayload is the stored payload of an initial access token.
type initialTokenPayload struct {
	MaxUses   int   `json:"max_uses,omitempty"`
	SecretTTL int64 `json:"secret_ttl_seconds,omitempty"`
}

// maxInitialTokenUses bounds --max-uses.
const maxInitialTokenUses = 1_000_000

// CreateInitialAccessToken creates an initial access token for /register
// (RFC 7591 §3) and returns it with its expiry. Only its hash is stored:
// the token cannot be shown again.
func CreateInitialAccessToken(ctx context.Context, tokens storage.Tokens, spec InitialAccessToken, now time.Time) (string, time.Time, error) {
	if spec.TTL <= 0 {
		return "", time.Time{}, errors.New("authserver: an initial access token needs a positive TTL")
	}
	if spec.MaxUses < 0 || spec.MaxUses > maxInitialTokenUses {
		return "", time.Time{}, fmt.Errorf("authserver: max uses must be between 0 (no limit) and %d", maxInitialTokenUses)
	}
	tok, err := randomToken()
	if err != nil {
		return "", time.Time{}, err
	}
	payload, err := json.Marshal(initialTokenPayload{MaxUses: spec.MaxUses, SecretTTL: int64(spec.SecretTTL / time.Second)})
	if err != nil {
		return "", time.Time{}, fmt.Errorf("authserver: initial access token payload: %w", err)
	}
	now = now.UTC()
	exp := now.Add(spec.TTL).Truncate(time.Second)
	err = tokens.CreateToken(ctx, storage.Token{Kind: storage.InitialAccessToken, Signature: hashHandle(tok),
		RequestID: "initial-access-token", Active: true, RequestedAt: now, ExpiresAt: exp, Payload: payload})
	if err != nil {
		return "", time.Time{}, fmt.Errorf("authserver: store initial access token: %w", err)
	}
	return tok, exp, nil
}

// randomToken returns 256 random bits, base64url-encoded.
func randomToken() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("authserver: random token: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// clientMetadata is the client metadata of RFC 7591 §2 that this server
// supports, as registered and as echoed. Other members are ignored (§2).
type clientMetadata struct {
	RedirectURIs            []string        `json:"redirect_uris,omitempty"`
	TokenEndpointAuthMethod string          `json:"token_endpoint_auth_method,omitempty"`
	GrantTypes              []string        `json:"grant_types,omitempty"`
	ResponseTypes           []string        `json:"response_types,omitempty"`
	ClientName              string          `json:"client_name,omitempty"`
	Scope                   string          `json:"scope,omitempty"`
	JWKSURI                 string          `json:"jwks_uri,omitempty"`
	JWKS                    json.RawMessage `json:"jwks,omitempty"`
	// OpenID Connect RP-Initiated Logout, Back-Channel Logout and Core §8.
	PostLogoutRedirectURIs []string `json:"post_logout_redirect_uris,omitempty"`
	BackchannelLogoutURI   string   `json:"backchannel_logout_uri,omitempty"`
	SubjectType            string   `json:"subject_type,omitempty"`
	// RFC 9449 §5.2 and RFC 9126 §6.
	DPoPBoundAccessTokens bool `json:"dpop_bound_access_tokens,omitempty"`
	RequirePAR            bool `json:"require_pushed_authorization_requests,omitempty"`
}

// registrationRequest is the body of POST /register and PUT
// /register/{client_id}; client_id and client_secret only in a PUT
// (RFC 7592 §2.2).
type registrationRequest struct {
	clientMetadata
	ClientID     string `json:"client_id,omitempty"`
	ClientSecret string `json:"client_secret,omitempty"`
	// Members of the client information response that an update request
	// must not carry (RFC 7592 §2.2); only their presence is checked.
	RegistrationAccessToken json.RawMessage `json:"registration_access_token,omitempty"`
	RegistrationClientURI   json.RawMessage `json:"registration_client_uri,omitempty"`
	ClientSecretExpiresAt   json.RawMessage `json:"client_secret_expires_at,omitempty"`
	ClientIDIssuedAt        json.RawMessage `json:"client_id_issued_at,omitempty"`
}

// registrationResponse is the client information response (RFC 7591
// §3.2.1, RFC 7592 §3).
type registrationResponse struct {
	ClientID         string `json:"client_id"`
	ClientSecret     string `json:"client_secret,omitempty"`
	ClientIDIssuedAt int64  `json:"client_id_issued_at"`
	// ClientSecretExpiresAt is present for a client with a secret: 0 when
	// it does not expire.
	ClientSecretExpiresAt   *int64 `json:"client_secret_expires_at,omitempty"`
	RegistrationAccessToken string `json:"registration_access_token"`
	RegistrationClientURI   string `json:"registration_client_uri"`
	clientMetadata
}

// regNames are the registration fields as RFC 7591 names them.
var regNames = RegistrationNames{ID: "client_id", Grant: "grant_types entry", RedirectURI: "redirect_uris",
	PostLogoutRedirectURI: "post_logout_redirect_uris", ExchangeAudience: "exchange_audiences"}

func metadataError(code, desc string) *oauthError {
	return newError(http.StatusBadRequest, code, descriptionChars(desc))
}

func invalidToken(desc string) *oauthError {
	e := newError(http.StatusUnauthorized, errInvalidToken, desc)
	e.bearer = true
	return e
}

// tokenMissing is invalidToken for a request without any token: its
// challenge carries no error code (RFC 6750 §3.1).
func tokenMissing(desc string) *oauthError {
	e := invalidToken(desc)
	e.noCredentials = true
	return e
}

// UsesSecret reports whether client c authenticates with a client secret:
// a confidential client whose method (RFC 7591 §2 default included) is
// client_secret_basic, client_secret_post or client_secret_jwt.
func UsesSecret(c storage.Client) bool {
	if c.Public {
		return false
	}
	switch AuthMethodOf(c) {
	case authMethodSecretBasic, authMethodSecretPost, AuthMethodSecretJWT:
		return true
	}
	return false
}

// CompactJWKS returns a client's JWK Set as stored: compact JSON, or nil
// when raw is empty or JSON null. It fails when raw is not JSON.
func CompactJWKS(raw []byte) ([]byte, error) {
	if len(raw) == 0 || bytes.Equal(bytes.TrimSpace(raw), []byte("null")) {
		return nil, nil
	}
	var compact bytes.Buffer
	if err := json.Compact(&compact, raw); err != nil {
		return nil, err
	}
	return compact.Bytes(), nil
}

// applyMetadata validates the metadata and writes it into c, replacing
// every registration field (RFC 7592 §2.2: omitted fields are cleared). The
// rules are the CLI's (ValidateClient, which checks the authentication
// method and the keys as `clients add` does), those of RFC 7591 §2, and
// what only a dynamically registered client is held to: the registration
// scopes, no password grant, a jwks_uri over https, and the outbound-URL
// policy for the URLs the server calls (outbound.go).
func (s *Server) applyMetadata(md clientMetadata, c *storage.Client) *oauthError {
	method := md.TokenEndpointAuthMethod
	switch method {
	case "", authMethodSecretBasic, authMethodSecretPost, authMethodSecretJWT, authMethodNone, authMethodPrivateKeyJWT:
	default:
		return metadataError(errInvalidClientMetadata, fmt.Sprintf("Unsupported token_endpoint_auth_method %q.", method))
	}
	grants := md.GrantTypes
	if grants == nil {
		grants = []string{grantAuthorizationCode} // RFC 7591 §2 default
	}
	if slices.Contains(grants, grantPassword) {
		return metadataError(errInvalidClientMetadata, "The password grant is not available to dynamically registered clients.")
	}
	for _, rt := range md.ResponseTypes {
		if rt != responseTypeCode {
			return metadataError(errInvalidClientMetadata, fmt.Sprintf("Unsupported response_types value %q (only code).", rt))
		}
	}
	// RFC 7591 §2.1: response type code goes with the authorization_code grant.
	if len(md.ResponseTypes) > 0 && !slices.Contains(grants, grantAuthorizationCode) {
		return metadataError(errInvalidClientMetadata, "response_types code needs the authorization_code grant.")
	}
	scopes := strings.Fields(md.Scope)
	for _, sc := range scopes {
		if !slices.Contains(s.cfg.Registration.Scopes, sc) {
			return metadataError(errInvalidClientMetadata, fmt.Sprintf("The scope %q is not available to dynamically registered clients.", sc))
		}
	}
	if md.JWKSURI != "" {
		if u, err := url.Parse(md.JWKSURI); err != nil || u.Scheme != "https" {
			return metadataError(errInvalidClientMetadata, "jwks_uri must be an absolute https URL.")
		}
	}
	if !s.cfg.InsecureAllowPrivateClientURLs {
		for _, f := range [...]struct{ name, url string }{{"jwks_uri", md.JWKSURI}, {"backchannel_logout_uri", md.BackchannelLogoutURI}} {
			if f.url == "" {
				continue
			}
			if err := checkClientURLHost(f.url); err != nil {
				return metadataError(errInvalidClientMetadata, f.name+": "+err.Error())
			}
		}
	}
	jwks, err := CompactJWKS(md.JWKS)
	if err != nil {
		return metadataError(errInvalidClientMetadata, "jwks is not valid JSON.")
	}
	for _, u := range md.RedirectURIs {
		if err := ValidateRedirectURI(u); err != nil {
			return metadataError(errInvalidRedirectURI, err.Error())
		}
	}
	for _, u := range md.PostLogoutRedirectURIs {
		if err := ValidateRedirectURI(u); err != nil {
			return metadataError(errInvalidRedirectURI, "post_logout_redirect_uris: "+err.Error())
		}
	}
	code := slices.Contains(grants, grantAuthorizationCode)
	if code && len(md.RedirectURIs) == 0 {
		return metadataError(errInvalidRedirectURI, "The authorization_code grant needs at least one redirect_uris entry.")
	}
	if !code && len(md.RedirectURIs) > 0 {
		return metadataError(errInvalidRedirectURI, "redirect_uris are only for clients with the authorization_code grant.")
	}
	c.Public = method == authMethodNone
	c.TokenEndpointAuthMethod = method
	if method == authMethodNone {
		c.TokenEndpointAuthMethod = ""
	}
	c.GrantTypes, c.Scopes, c.Name = grants, scopes, md.ClientName
	c.RedirectURIs, c.PostLogoutRedirectURIs = md.RedirectURIs, md.PostLogoutRedirectURIs
	c.BackchannelLogoutURI, c.SubjectType = md.BackchannelLogoutURI, md.SubjectType
	c.JWKSURI, c.JWKS = md.JWKSURI, jwks
	c.RequireDPoP, c.RequirePAR = md.DPoPBoundAccessTokens, md.RequirePAR
	// Never granted to a dynamically registered client.
	c.Introspect, c.SkipConsent, c.Resources, c.ExchangeAudiences = false, false, nil, nil
	if err := ValidateClient(*c, regNames); err != nil {
		return metadataError(errInvalidClientMetadata, err.Error())
	}
	return nil
}

// jwtSecretBytes is the entropy of a generated client_secret_jwt secret: 64
// bytes, so that HS512 (whose key must have at least 64 bytes) works.
const jwtSecretBytes = 64

// NewClientSecret generates a secret for the confidential client c and
// makes it the client's only secret: c.SecretHashes gets its hash and, for
// client_secret_jwt, whose HMAC needs the secret itself, c.SecretCiphertext
// the secret sealed with the server secret for c.ID (as `clients add
// --auth-method client_secret_jwt` keeps it); for any other method
// SecretCiphertext is cleared. c.ID and c.TokenEndpointAuthMethod must be
// set. The secret is returned to be shown once; it is never stored in the
// clear.
func (s *Server) NewClientSecret(c *storage.Client) (string, error) {
	secret, err := GenerateClientSecret(AuthMethodOf(*c))
	if err != nil {
		return "", err
	}
	c.SecretHashes, c.SecretCiphertext = []string{password.HashSecret(secret)}, nil
	if AuthMethodOf(*c) == AuthMethodSecretJWT {
		sealed, err := s.secretBox.Seal(c.ID, []byte(secret))
		if err != nil {
			return "", fmt.Errorf("authserver: seal client secret: %w", err)
		}
		c.SecretCiphertext = sealed
	}
	return secret, nil
}

// GenerateClientSecret returns a new random secret for a client that
// authenticates with method: 64 bytes of entropy for client_secret_jwt, so
// that HS512 (whose key must have at least 64 bytes) works, otherwise
// password.GenerateSecret's.
func GenerateClientSecret(method string) (string, error) {
	if method != AuthMethodSecretJWT {
		return password.GenerateSecret()
	}
	b := make([]byte, jwtSecretBytes)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("authserver: generate secret: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// registrationView is the client information response for c: only what
// was stored, and no secret.
func (s *Server) registrationView(c storage.Client, rat string) registrationResponse {
	method := AuthMethodOf(c)
	if c.Public {
		method = authMethodNone
	}
	v := registrationResponse{
		ClientID:                c.ID,
		ClientIDIssuedAt:        c.CreatedAt.Unix(),
		RegistrationAccessToken: rat,
		RegistrationClientURI:   s.cfg.Issuer + "/register/" + url.PathEscape(c.ID),
		clientMetadata: clientMetadata{
			RedirectURIs: c.RedirectURIs, TokenEndpointAuthMethod: method, GrantTypes: c.GrantTypes,
			ClientName: c.Name, Scope: strings.Join(c.Scopes, " "), JWKSURI: c.JWKSURI, JWKS: c.JWKS,
			PostLogoutRedirectURIs: c.PostLogoutRedirectURIs, BackchannelLogoutURI: c.BackchannelLogoutURI,
			SubjectType: c.SubjectType, DPoPBoundAccessTokens: c.RequireDPoP, RequirePAR: c.RequirePAR,
		},
	}
	if slices.Contains(c.GrantTypes, grantAuthorizationCode) {
		v.ResponseTypes = []string{responseTypeCode}
	}
	if len(c.SecretHashes) > 0 {
		exp := unixOrZero(c.SecretExpiresAt)
		v.ClientSecretExpiresAt = &exp
	}
	return v
}

func unixOrZero(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.Unix()
}

// readRegistration reads a JSON registration request. A body that is not
// a JSON object, or a supported member of the wrong type, is
// invalid_client_metadata (RFC 7591 §3.2.2).
func (s *Server) readRegistration(w http.ResponseWriter, r *http.Request) (registrationRequest, *oauthError) {
	var req registrationRequest
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/json" {
		return req, metadataError(errInvalidClientMetadata, "The request body must be application/json.")
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.cfg.MaxBodyBytes))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return req, newError(http.StatusRequestEntityTooLarge, errInvalidClientMetadata, "The request body is too large.")
		}
		return req, metadataError(errInvalidClientMetadata, "The request body could not be read.")
	}
	if err := json.Unmarshal(body, &req); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field != "" {
			// te.Field is the Go path: members of the embedded
			// clientMetadata carry its name first.
			return req, metadataError(errInvalidClientMetadata, "The member '"+safeParam(strings.TrimPrefix(te.Field, "clientMetadata."))+"' has the wrong type.")
		}
		return req, metadataError(errInvalidClientMetadata, "The request body must be a JSON object.")
	}
	return req, nil
}

// bearerToken returns the token of an Authorization: Bearer header (RFC 6750
// §2.1), or "" when there is none.
func bearerToken(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	if h == "" {
		return "", false
	}
	scheme, tok, _ := strings.Cut(h, " ")
	tok = strings.TrimSpace(tok)
	if !strings.EqualFold(scheme, "Bearer") || tok == "" {
		return "", true
	}
	return tok, true
}

// handleRegister serves POST /register (RFC 7591 §3).
func (s *Server) handleRegister(w http.ResponseWriter, r *http.Request) {
	noStore(w)
	resp, oerr := s.register(w, r)
	if oerr != nil {
		s.logError(r, "client registration failed", oerr)
		writeOAuthError(w, oerr)
		return
	}
	w.Header().Set("Location", resp.RegistrationClientURI)
	writeJSON(w, http.StatusCreated, resp)
}

func (s *Server) register(w http.ResponseWriter, r *http.Request) (*registrationResponse, *oauthError) {
	ip := s.clientIP(r)
	ctx := withState(r.Context(), &requestState{ip: ip})
	if oe := s.regLimit(ctx, ip); oe != nil {
		return nil, oe
	}
	iat, hasAuth := bearerToken(r)
	var grant *initialGrant
	switch {
	case hasAuth:
		g, oe := s.checkInitialToken(ctx, iat)
		if oe != nil {
			return nil, oe
		}
		grant = g
	case !s.cfg.Registration.Open:
		s.audit(ctx, "client_registration_refused", slog.String("reason", "no_initial_access_token"))
		return nil, tokenMissing("An initial access token is required.")
	}
	req, oe := s.readRegistration(w, r)
	if oe != nil {
		return nil, oe
	}
	id, err := randomToken()
	if err != nil {
		return nil, serverError(err)
	}
	c := storage.Client{ID: id[:22]}
	if oe := s.applyMetadata(req.clientMetadata, &c); oe != nil {
		s.audit(ctx, "client_registration_refused", slog.String("reason", oe.Code))
		return nil, oe
	}
	now := s.cfg.Now().UTC()
	c.CreatedAt, c.UpdatedAt = now, now
	var secret string
	if UsesSecret(c) {
		if secret, err = s.NewClientSecret(&c); err != nil {
			return nil, serverError(err)
		}
		if grant != nil && grant.secretTTL > 0 {
			c.SecretExpiresAt = now.Add(grant.secretTTL).Truncate(time.Second)
		}
	}
	rat, err := randomToken()
	if err != nil {
		return nil, serverError(err)
	}
	c.RegistrationTokenHash = hashHandle(rat)
	// The use is consumed last, once the metadata is known to be valid.
	if grant != nil {
		if oe := s.consumeInitialToken(ctx, grant); oe != nil {
			return nil, oe
		}
	}
	if err := s.store.CreateClient(ctx, c); err != nil {
		return nil, unavailable(err)
	}
	s.audit(ctx, "client_registered", slog.String("client_id", c.ID), slog.Bool("open", grant == nil))
	v := s.registrationView(c, rat)
	v.ClientSecret = secret
	return &v, nil
}

// initialGrant is a verified initial access token.
type initialGrant struct {
	tok       storage.Token
	maxUses   int
	secretTTL time.Duration
}

// checkInitialToken verifies an initial access token without using it.
func (s *Server) checkInitialToken(ctx context.Context, tok string) (*initialGrant, *oauthError) {
	if tok == "" {
		return nil, invalidToken("The initial access token is invalid.")
	}
	rec, err := s.store.GetToken(ctx, storage.InitialAccessToken, hashHandle(tok))
	if errors.Is(err, storage.ErrNotFound) {
		s.audit(ctx, "client_registration_refused", slog.String("reason", "unknown_initial_access_token"))
		return nil, invalidToken("The initial access token is invalid.")
	}
	if err != nil {
		return nil, unavailable(err)
	}
	// A use record has the same kind; it never matches a hash of a token.
	var p initialTokenPayload
	if err := json.Unmarshal(rec.Payload, &p); err != nil {
		return nil, serverError(fmt.Errorf("initial access token payload: %w", err))
	}
	if !rec.Active || !s.cfg.Now().Before(rec.ExpiresAt) {
		s.audit(ctx, "client_registration_refused", slog.String("reason", "expired_initial_access_token"))
		return nil, invalidToken("The initial access token has expired.")
	}
	return &initialGrant{tok: rec, maxUses: p.MaxUses, secretTTL: time.Duration(p.SecretTTL) * time.Second}, nil
}

// consumeInitialToken uses the initial access token once. With a use limit
// N, use i (0 ≤ i < N) is a token record under the token's hash and i;
// creating it is the atomic claim (CreateToken's ErrAlreadyExists), so of
// any number of concurrent registrations on any number of instances exactly
// N succeed. Claims are made in order, so the first free use is found by a
// binary search over the existing records, then claimed upwards.
func (s *Server) consumeInitialToken(ctx context.Context, g *initialGrant) *oauthError {
	if g.maxUses == 0 {
		return nil
	}
	useSig := func(i int) string { return g.tok.Signature + "/" + strconv.Itoa(i) }
	lo, hi := 0, g.maxUses
	for lo < hi {
		mid := (lo + hi) / 2
		_, err := s.store.GetToken(ctx, storage.InitialAccessToken, useSig(mid))
		switch {
		case err == nil:
			lo = mid + 1
		case errors.Is(err, storage.ErrNotFound):
			hi = mid
		default:
			return unavailable(err)
		}
	}
	now := s.cfg.Now().UTC()
	for i := lo; i < g.maxUses; i++ {
		err := s.store.CreateToken(ctx, storage.Token{Kind: storage.InitialAccessToken, Signature: useSig(i),
			RequestID: g.tok.Signature, Active: true, RequestedAt: now, ExpiresAt: g.tok.ExpiresAt, Payload: []byte("{}")})
		if err == nil {
			return nil
		}
		if !errors.Is(err, storage.ErrAlreadyExists) {
			return unavailable(err)
		}
	}
	s.audit(ctx, "client_registration_refused", slog.String("reason", "initial_access_token_used_up"))
	return invalidToken("The initial access token has been used up.")
}

// handleRegistration serves the client configuration endpoint
// /register/{client_id} (RFC 7592): GET reads, PUT replaces and DELETE
// removes the registration. Each GET and PUT rotates the registration
// access token (RFC 7592 §3: the response carries the token to use next).
func (s *Server) handleRegistration(w http.ResponseWriter, r *http.Request) {
	noStore(w)
	ip := s.clientIP(r)
	ctx := withState(r.Context(), &requestState{ip: ip})
	var resp *registrationResponse
	oe := s.regLimit(ctx, ip)
	if oe == nil {
		resp, oe = s.manageRegistration(ctx, w, r)
	}
	switch {
	case oe != nil:
		s.logError(r, "client configuration request failed", oe)
		writeOAuthError(w, oe)
	case resp == nil:
		w.WriteHeader(http.StatusNoContent)
	default:
		writeJSON(w, http.StatusOK, resp)
	}
}

func (s *Server) manageRegistration(ctx context.Context, w http.ResponseWriter, r *http.Request) (*registrationResponse, *oauthError) {
	id := mux.Vars(r)["client_id"]
	tok, hasAuth := bearerToken(r)
	if !hasAuth {
		return nil, tokenMissing("A registration access token is required.")
	}
	// RFC 7592 §2: an unknown client and a wrong token are both 401.
	c, err := s.store.GetClient(ctx, id)
	if err != nil && !storage.Absent(err) {
		return nil, unavailable(err)
	}
	if err != nil || !registrationTokenMatches(c, tok) {
		s.audit(ctx, "client_registration_refused", slog.String("client_id", safeParam(id)), slog.String("reason", "invalid_registration_access_token"))
		return nil, invalidToken("The registration access token is invalid.")
	}
	switch r.Method {
	case http.MethodDelete:
		if _, err := s.store.RevokeTokens(ctx, storage.TokenFilter{ClientID: id}); err != nil {
			return nil, unavailable(err)
		}
		if err := s.store.DeleteClient(ctx, id); err != nil && !errors.Is(err, storage.ErrNotFound) {
			return nil, unavailable(err)
		}
		s.clientCache.forget(id)
		s.audit(ctx, "client_registration_deleted", slog.String("client_id", id))
		return nil, nil
	case http.MethodPut:
		req, oe := s.readRegistration(w, r)
		if oe != nil {
			return nil, oe
		}
		if req.ClientID != id {
			return nil, invalidRequest("The client_id member must be present and match the client.")
		}
		if req.RegistrationAccessToken != nil || req.RegistrationClientURI != nil || req.ClientSecretExpiresAt != nil || req.ClientIDIssuedAt != nil {
			return nil, invalidRequest("An update must not carry registration_access_token, registration_client_uri, client_secret_expires_at or client_id_issued_at (RFC 7592 §2.2).")
		}
		return s.updateRegistration(ctx, id, tok, &req)
	default:
		return s.updateRegistration(ctx, id, tok, nil)
	}
}

// registrationTokenMatches compares a presented registration access token
// with the stored hash in constant time.
func registrationTokenMatches(c storage.Client, tok string) bool {
	if c.RegistrationTokenHash == "" || tok == "" {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(hashHandle(tok)), []byte(c.RegistrationTokenHash)) == 1
}

// errRegistrationRace is returned by an updater that finds the registration
// access token rotated by a concurrent request.
var errRegistrationRace = errors.New("authserver: registration access token rotated concurrently")

// updateRegistration rotates the registration access token and, for a PUT
// (req non-nil), replaces the metadata. Changing to a method with a secret
// issues a new secret, and so does changing to client_secret_jwt from a
// method whose secret was kept only hashed (the HMAC needs the secret
// itself); changing to a method without a secret removes it.
func (s *Server) updateRegistration(ctx context.Context, id, tok string, req *registrationRequest) (*registrationResponse, *oauthError) {
	rat, err := randomToken()
	if err != nil {
		return nil, serverError(err)
	}
	var issued string
	var oe *oauthError
	c, err := s.store.UpdateClient(ctx, id, func(c storage.Client) (storage.Client, error) {
		issued, oe = "", nil
		if !registrationTokenMatches(c, tok) {
			return c, errRegistrationRace
		}
		if req != nil {
			if req.ClientSecret != "" && !secretMatches(c, req.ClientSecret) {
				oe = invalidRequest("The client_secret member does not match the client's secret.")
				return c, oe
			}
			if oe = s.applyMetadata(req.clientMetadata, &c); oe != nil {
				return c, oe
			}
			jwtSecret := AuthMethodOf(c) == AuthMethodSecretJWT
			switch wants := UsesSecret(c); {
			case wants && (len(c.SecretHashes) == 0 || (jwtSecret && len(c.SecretCiphertext) == 0)):
				// A secret issued by an update keeps the expiry the
				// registration's secrets had (client_secret_expires_at,
				// RFC 7591 §3.2.1): changing the method is no way to a
				// secret that outlives it.
				if !c.SecretExpiresAt.IsZero() && !s.cfg.Now().Before(c.SecretExpiresAt) {
					oe = metadataError(errInvalidClientMetadata, "The client's secret has expired: an update issues no new one. Register the client again.")
					return c, oe
				}
				secret, err := s.NewClientSecret(&c)
				if err != nil {
					oe = serverError(err)
					return c, oe
				}
				issued = secret
			case !wants:
				// SecretExpiresAt stays: a secret issued later by another
				// update expires with it.
				c.SecretHashes, c.SecretCiphertext = nil, nil
			case !jwtSecret:
				// The HMAC key of client_secret_jwt is no longer needed.
				c.SecretCiphertext = nil
			}
			c.UpdatedAt = s.cfg.Now().UTC()
		}
		c.RegistrationTokenHash = hashHandle(rat)
		return c, nil
	})
	switch {
	case oe != nil:
		return nil, oe
	case errors.Is(err, errRegistrationRace), errors.Is(err, storage.ErrNotFound):
		return nil, invalidToken("The registration access token is invalid.")
	case err != nil:
		return nil, unavailable(err)
	}
	s.clientCache.forget(id)
	if req != nil {
		s.audit(ctx, "client_registration_updated", slog.String("client_id", id), slog.Bool("secret_issued", issued != ""))
	}
	v := s.registrationView(c, rat)
	v.ClientSecret = issued
	return &v, nil
}

// secretMatches reports whether secret is one of the client's secrets; every
// hash is checked, in constant time.
func secretMatches(c storage.Client, secret string) bool {
	ok := false
	for _, h := range c.SecretHashes {
		if password.VerifySecret(secret, h) {
			ok = true
		}
	}
	return ok
}
