package authserver

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/ory/fosite"
	"github.com/ory/fosite/handler/oauth2"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/oauthkit/authserver/internal/tracing"
	"github.com/oauthkit/authserver/keys"
)

// tokenStrategy issues RFC 9068 JWT access tokens signed with the active key
// and delegates refresh tokens (and codes) to fosite's HMAC strategy. It
// replaces fosite's DefaultJWTStrategy, which verifies with "the current key"
// (breaking every live token on rotation), keeps a stale iat on refresh
// (fosite#774) and omits typ, client_id and sub.
type tokenStrategy struct {
	*oauth2.HMACSHAStrategy
	keys    *keys.Manager
	issuer  string
	now     func() time.Time
	signers sync.Map // kid → jose.Signer
	// slots bounds the signatures computed at once (access tokens and
	// introspection responses) to GOMAXPROCS as it was at start. An RSA
	// signature is about a millisecond of CPU: with many token requests in
	// flight, unbounded signing would fill the run queue and every other
	// goroutine, the group committer first, would wait behind it for a core.
	slots chan struct{}
	// tracer, when tracing is on, records a span per signature.
	tracer trace.Tracer
	// pairwiseKey derives pairwise subjects (oidc_subject.go).
	pairwiseKey []byte
	// status allocates the access tokens' status list entries.
	status *statusAllocator
}

var _ oauth2.CoreStrategy = (*tokenStrategy)(nil)

// accessClaims is the JWT payload of an access token (RFC 9068 §2.2).
type accessClaims struct {
	Issuer    string   `json:"iss"`
	Subject   string   `json:"sub"`
	Audience  []string `json:"aud"`
	Expiry    int64    `json:"exp"`
	IssuedAt  int64    `json:"iat"`
	NotBefore int64    `json:"nbf,omitempty"`
	ID        string   `json:"jti"`
	ClientID  string   `json:"client_id"`
	Scope     string   `json:"scope,omitempty"`
	Roles     []string `json:"roles,omitempty"`
	Email     string   `json:"email,omitempty"`
	Name      string   `json:"name,omitempty"`
	Act       *actor   `json:"act,omitempty"`
	MayAct    *actor   `json:"may_act,omitempty"`
	// Cnf binds a DPoP-bound token to its key (RFC 9449 §6.1).
	Cnf *confirmation `json:"cnf,omitempty"`
	// Status is the Token Status List entry (statuslist.go).
	Status *statusClaim `json:"status,omitempty"`
}

// jwtSignature returns the signature segment of a compact JWS, or "".
func jwtSignature(token string) string {
	i := strings.LastIndexByte(token, '.')
	if i < 0 || strings.Count(token, ".") != 2 {
		return ""
	}
	return token[i+1:]
}

// AccessTokenSignature implements oauth2.AccessTokenStrategy.
func (t *tokenStrategy) AccessTokenSignature(_ context.Context, token string) string {
	return jwtSignature(token)
}

func newJTI() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// GenerateAccessToken implements oauth2.AccessTokenStrategy.
func (t *tokenStrategy) GenerateAccessToken(ctx context.Context, r fosite.Requester) (string, string, error) {
	s, ok := r.GetSession().(*session)
	if !ok {
		return "", "", fmt.Errorf("authserver: unexpected session type %T", r.GetSession())
	}
	now := s.IssuedAt
	if now.IsZero() {
		now = t.now().UTC().Truncate(time.Second)
		s.IssuedAt = now
	}
	s.JTI = newJTI()
	exp := s.GetExpiresAt(fosite.AccessToken)
	if exp.IsZero() {
		return "", "", errors.New("authserver: access token without expiry")
	}
	scope := s.AccessScope
	if scope == nil {
		scope = r.GetGrantedScopes()
	}
	aud := s.AccessAudience
	if aud == nil {
		aud = r.GetGrantedAudience()
	}
	c := accessClaims{
		Issuer:   t.issuer,
		Subject:  t.tokenSubject(ctx, s),
		Audience: aud,
		Expiry:   exp.Unix(),
		IssuedAt: now.Unix(),
		ID:       s.JTI,
		ClientID: r.GetClient().GetID(),
		Scope:    strings.Join(scope, " "),
		Act:      s.Act,
		MayAct:   s.MayAct,
		Cnf:      s.cnf(),
	}
	if t.status != nil {
		list, idx, err := t.status.next(ctx)
		if err != nil {
			return "", "", err
		}
		s.StatusList, s.StatusIndex = list, idx
		c.Status = &statusClaim{StatusList: statusListRef{Idx: idx,
			URI: t.issuer + statusListPath + strconv.FormatInt(list, 10)}}
	}
	if s.User {
		c.Roles, c.Email, c.Name = s.Roles, s.Username, s.Name
		if c.Roles == nil {
			c.Roles = []string{}
		}
	}
	token, err := t.sign(ctx, c, "at+jwt")
	if err != nil {
		return "", "", err
	}
	if st := stateFrom(ctx); st != nil {
		st.newAccess = token
	}
	return token, jwtSignature(token), nil
}

// GenerateRefreshToken implements oauth2.RefreshTokenStrategy, remembering
// the token for the refresh grace window.
func (t *tokenStrategy) GenerateRefreshToken(ctx context.Context, r fosite.Requester) (string, string, error) {
	token, sig, err := t.HMACSHAStrategy.GenerateRefreshToken(ctx, r)
	if err == nil {
		if st := stateFrom(ctx); st != nil {
			st.newRefresh = token
		}
	}
	return token, sig, err
}

// sign signs claims with the active key, with typ and kid in the header.
func (t *tokenStrategy) sign(ctx context.Context, claims any, typ string) (string, error) {
	cur, err := t.keys.Current()
	if err != nil {
		return "", fmt.Errorf("authserver: no signing key: %w", err)
	}
	return t.signWith(ctx, cur, claims, typ)
}

// signWith signs claims with the key cur, with typ and kid in the header.
func (t *tokenStrategy) signWith(ctx context.Context, cur keys.Signer, claims any, typ string) (string, error) {
	var err error
	cacheKey := cur.KeyID + "\x00" + typ
	var signer jose.Signer
	if v, ok := t.signers.Load(cacheKey); ok {
		signer = v.(jose.Signer)
	} else {
		opts := (&jose.SignerOptions{}).WithType(jose.ContentType(typ)).WithHeader(jose.HeaderKey("kid"), cur.KeyID)
		signer, err = jose.NewSigner(jose.SigningKey{Algorithm: jose.SignatureAlgorithm(cur.Algorithm), Key: cur.Key}, opts)
		if err != nil {
			return "", fmt.Errorf("authserver: signer for key %s: %w", cur.KeyID, err)
		}
		t.signers.Store(cacheKey, signer)
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		return "", fmt.Errorf("authserver: encode claims: %w", err)
	}
	var jws *jose.JSONWebSignature
	if t.tracer == nil { // tracing off: not even the span's attributes
		jws, err = t.signSlot(ctx, signer, payload)
	} else {
		var span trace.Span
		ctx, span = tracing.Start(ctx, t.tracer, "sign", attribute.String("jwt.typ", typ),
			attribute.String("jwt.alg", cur.Algorithm), attribute.String("jwt.kid", cur.KeyID))
		jws, err = t.signSlot(ctx, signer, payload)
		tracing.End(span, err)
	}
	if err != nil {
		return "", fmt.Errorf("authserver: sign: %w", err)
	}
	return jws.CompactSerialize()
}

// signSlot signs payload in one of t.slots, waiting for one no longer than
// ctx allows; the slot is given back even if the signer panics.
func (t *tokenStrategy) signSlot(ctx context.Context, signer jose.Signer, payload []byte) (*jose.JSONWebSignature, error) {
	if t.slots != nil {
		select {
		case t.slots <- struct{}{}:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		defer func() { <-t.slots }()
	}
	return signer.Sign(payload)
}

// errTokenInvalid is returned for any access token that fails verification.
var errTokenInvalid = errors.New("authserver: invalid access token")

// verifyAccessToken checks an access token's signature with the key named by
// its kid, its typ and its expiry, and returns its claims. It does not check
// revocation.
func (t *tokenStrategy) verifyAccessToken(token string) (*accessClaims, error) {
	c, _, err := t.verifyAccessTokenKey(token)
	return c, err
}

// verifyAccessTokenKey is verifyAccessToken that also returns the key ID.
func (t *tokenStrategy) verifyAccessTokenKey(token string) (*accessClaims, string, error) {
	if len(token) > maxTokenLength {
		return nil, "", errTokenInvalid
	}
	jws, err := jose.ParseSignedCompact(token, signatureAlgorithms)
	if err != nil || len(jws.Signatures) != 1 {
		return nil, "", errTokenInvalid
	}
	h := jws.Signatures[0].Protected
	if typ, _ := h.ExtraHeaders[jose.HeaderType].(string); !strings.EqualFold(typ, "at+jwt") {
		return nil, "", errTokenInvalid
	}
	key, ok := t.keys.PublicKey(h.KeyID)
	if !ok || key.Algorithm != h.Algorithm {
		return nil, "", errTokenInvalid
	}
	raw, err := jws.Verify(key)
	if err != nil {
		return nil, "", errTokenInvalid
	}
	var c accessClaims
	if err := json.Unmarshal(raw, &c); err != nil {
		return nil, "", errTokenInvalid
	}
	now := t.now().Unix()
	if c.Expiry <= now || c.Issuer != t.issuer || (c.NotBefore != 0 && c.NotBefore > now+5) {
		return nil, "", errTokenInvalid
	}
	return &c, h.KeyID, nil
}

// maxTokenLength bounds the tokens we parse.
const maxTokenLength = 8 << 10

var signatureAlgorithms = []jose.SignatureAlgorithm{jose.RS256, jose.ES256, jose.EdDSA}

// ValidateAccessToken implements oauth2.AccessTokenStrategy.
func (t *tokenStrategy) ValidateAccessToken(_ context.Context, _ fosite.Requester, token string) error {
	if _, err := t.verifyAccessToken(token); err != nil {
		return fosite.ErrTokenSignatureMismatch.WithWrap(err)
	}
	return nil
}
