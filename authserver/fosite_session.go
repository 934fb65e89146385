package authserver

import (
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"time"

	"github.com/ory/fosite"
	"github.com/ory/fosite/token/jwt"
)

// session is the one fosite.Session type used everywhere. It holds the facts
// the access token is built from; it is stored (as JSON, inside payload) with
// every token record.
type session struct {
	// Subject is the user ID, or the client ID for client_credentials.
	Subject  string   `json:"sub"`
	Username string   `json:"username,omitempty"` // the user's email
	Name     string   `json:"name,omitempty"`
	Roles    []string `json:"roles,omitempty"`
	// User is true for tokens issued to a user (password grant).
	User      bool                           `json:"user,omitempty"`
	ExpiresAt map[fosite.TokenType]time.Time `json:"expires_at,omitempty"`
	// AccessScope, when set, narrows the access token's scope below the
	// grant's (a refresh with a smaller scope, RFC 6749 §6); the refresh
	// token keeps the grant's scope.
	AccessScope []string `json:"access_scope,omitempty"`
	// Resources are the grant's audiences (RFC 8707); AccessAudience, when
	// set, narrows one access token's audience below them.
	Resources      []string `json:"resources,omitempty"`
	AccessAudience []string `json:"access_aud,omitempty"`
	// AuthTime is when the user signed in, and SessionID the browser
	// session, for tokens of the authorization code flow.
	AuthTime  time.Time `json:"auth_time,omitempty"`
	SessionID string    `json:"sid,omitempty"`
	// JTI and IssuedAt describe the access token issued with this session.
	JTI      string    `json:"jti,omitempty"`
	IssuedAt time.Time `json:"iat,omitempty"`
	// StatusList and StatusIndex are the access token's Token Status List
	// entry (statuslist.go).
	StatusList  int64 `json:"status_list,omitempty"`
	StatusIndex int64 `json:"status_idx,omitempty"`
	// OIDC holds the OpenID Connect facts of a grant with the openid scope
	// (oidc.go); idClaims is what fosite's ID token handlers amend.
	OIDC     *oidcFacts `json:"oidc,omitempty"`
	idClaims *jwt.IDTokenClaims
	// Act is the delegation chain of an exchanged token (RFC 8693 §4.1);
	// MayAct, who may act for the subject (§4.4).
	Act    *actor `json:"act,omitempty"`
	MayAct *actor `json:"may_act,omitempty"`
	// DPoP bindings (dpop.go): JKT binds the access token issued with this
	// session, RefreshJKT a public client's refresh token, CodeJKT the
	// authorization code (dpop_jkt).
	JKT        string `json:"jkt,omitempty"`
	RefreshJKT string `json:"refresh_jkt,omitempty"`
	CodeJKT    string `json:"code_jkt,omitempty"`
}

var _ fosite.Session = (*session)(nil)

func newSession() *session { return &session{ExpiresAt: map[fosite.TokenType]time.Time{}} }

func (s *session) SetExpiresAt(key fosite.TokenType, exp time.Time) {
	if s.ExpiresAt == nil {
		s.ExpiresAt = map[fosite.TokenType]time.Time{}
	}
	s.ExpiresAt[key] = exp
}

func (s *session) GetExpiresAt(key fosite.TokenType) time.Time { return s.ExpiresAt[key] }
func (s *session) GetUsername() string                         { return s.Username }
func (s *session) GetSubject() string                          { return s.Subject }

// SetSubject is called by fosite's password handler with Authenticate's result.
func (s *session) SetSubject(sub string) { s.Subject = sub }

func (s *session) Clone() fosite.Session {
	if s == nil {
		return nil
	}
	c := *s
	c.idClaims = nil
	c.Roles = slices.Clone(s.Roles)
	c.AccessScope = slices.Clone(s.AccessScope)
	c.Resources = slices.Clone(s.Resources)
	c.AccessAudience = slices.Clone(s.AccessAudience)
	c.ExpiresAt = make(map[fosite.TokenType]time.Time, len(s.ExpiresAt))
	for k, v := range s.ExpiresAt {
		c.ExpiresAt[k] = v
	}
	return &c
}

// payload is the JSON form of a stored fosite request. The client is stored
// by ID only: handlers that need the client's registration use the
// authenticated client of the current request.
type payload struct {
	ID                string     `json:"id"`
	RequestedAt       time.Time  `json:"requested_at"`
	ClientID          string     `json:"client_id"`
	RequestedScope    []string   `json:"requested_scope,omitempty"`
	GrantedScope      []string   `json:"granted_scope,omitempty"`
	RequestedAudience []string   `json:"requested_audience,omitempty"`
	GrantedAudience   []string   `json:"granted_audience,omitempty"`
	Form              url.Values `json:"form,omitempty"`
	Session           *session   `json:"session"`
}

func encodePayload(r fosite.Requester) ([]byte, *session, error) {
	s, ok := r.GetSession().(*session)
	if !ok {
		return nil, nil, fmt.Errorf("authserver: unexpected session type %T", r.GetSession())
	}
	form := r.GetRequestForm()
	for _, k := range secretParams {
		if form.Has(k) {
			form = cloneWithout(form, secretParams)
			break
		}
	}
	p := payload{
		ID:                r.GetID(),
		RequestedAt:       r.GetRequestedAt(),
		ClientID:          r.GetClient().GetID(),
		RequestedScope:    r.GetRequestedScopes(),
		GrantedScope:      r.GetGrantedScopes(),
		RequestedAudience: r.GetRequestedAudience(),
		GrantedAudience:   r.GetGrantedAudience(),
		Form:              form,
		Session:           s,
	}
	b, err := json.Marshal(p)
	if err != nil {
		return nil, nil, fmt.Errorf("authserver: encode token payload: %w", err)
	}
	return b, s, nil
}

// decodePayload rebuilds the request. When into is a *session, the stored
// session is decoded into it (fosite passes the prototype it wants filled).
func decodePayload(b []byte, into fosite.Session) (*fosite.Request, error) {
	s, _ := into.(*session)
	if s == nil {
		s = newSession()
	}
	p := payload{Session: s}
	if err := json.Unmarshal(b, &p); err != nil {
		return nil, fmt.Errorf("authserver: decode token payload: %w", err)
	}
	return &fosite.Request{
		ID:                p.ID,
		RequestedAt:       p.RequestedAt,
		Client:            &fosite.DefaultClient{ID: p.ClientID},
		RequestedScope:    p.RequestedScope,
		GrantedScope:      p.GrantedScope,
		RequestedAudience: p.RequestedAudience,
		GrantedAudience:   p.GrantedAudience,
		Form:              p.Form,
		Session:           s,
	}, nil
}

// secretParams are request parameters that are never stored.
var secretParams = []string{"password", "client_secret", "client_assertion", "code_verifier"}

func cloneWithout(form url.Values, drop []string) url.Values {
	out := make(url.Values, len(form))
	for k, v := range form {
		if !slices.Contains(drop, k) {
			out[k] = v
		}
	}
	return out
}
