package authserver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/ory/fosite"

	"github.com/oauthkit/authserver/storage"
)

// Grant types offered at the token endpoint.
const (
	grantPassword          = "password"
	grantRefreshToken      = "refresh_token"
	grantClientCredentials = "client_credentials"
)

// SupportedGrantTypes lists the grant types the token endpoint offers.
var SupportedGrantTypes = []string{grantAuthorizationCode, grantPassword, grantRefreshToken, grantClientCredentials, grantTokenExchange, grantDeviceCode, grantJWTBearer}

// requestState carries what our fosite hooks learn during one token request.
type requestState struct {
	client *storage.Client
	// clientAuthenticated is set when the endpoint authenticated client
	// before calling fosite, which then must not do it again (a client
	// assertion's jti is single-use).
	clientAuthenticated bool
	user                *storage.User
	refreshRace         bool
	// codeReuse is set when the presented code had already been exchanged
	// (fosite then revokes the tokens issued from it).
	codeReuse bool
	// code is the authorization code's record as first read in this
	// request: fosite reads the code three times in one exchange (its
	// token handler twice, the PKCE handler once), and the record does not
	// change in between except through the exchange's own compare-and-swap,
	// which runs at commit and decides on its own.
	code *storage.Token
	// codeRequest is the code's request with a session of its own (empty
	// when it comes from the first read, see keepCodeRequest), shared by
	// the PKCE check and the code handler's second read, which only read
	// its form, scopes, audience, client and ID.
	codeRequest *fosite.Request
	// buffer defers token record writes to one transaction at the end of
	// the request (password and client_credentials grants), together with
	// the throttling counters' release: one commit per token response.
	buffer bool
	// guard is the refresh rotation's compare-and-swap; writes are the
	// response's other writes. Both run in the committer's transaction.
	guard  func(ctx context.Context) error
	writes []func(ctx context.Context) error
	// deviceMarked: a device code poll whose approval has a mark, which
	// the poll's compare-and-swap consumes (device.go).
	deviceMarked bool
	// grant is what the guard and writes lock first (committer key): the
	// grant's request ID, or the device code's signature. late are the
	// writes of rows locked in key order across a batch (commitReq).
	grant string
	late  []lateWrite
	// arrived withdraws the response's announcement to the committer (see
	// committer.expect); nil before the response phase, a no-op once called.
	arrived func()
	// For the refresh grace window: the signature of the presented refresh
	// token, and the new pair and its facts as they are generated.
	presentedSig string
	graceHit     bool
	newAccess    string
	newRefresh   string
	scope        string
	accessExpiry time.Time
	// ip is the caller's address, for throttling and the audit log.
	ip string
	// oidcGrant is set for a grant with the openid scope: it gets a refresh
	// token only with offline_access (see providerConfig).
	oidcGrant bool
	// exchangeExpiry caps an exchanged token's expiry (see exchange.go).
	exchangeExpiry time.Time
	// passwordChange: the password grant's user must change the password
	// (an administrator's reset with force_change).
	passwordChange bool
	// jkt is the thumbprint of the request's DPoP proof key (dpop.go).
	jkt string
}

type stateKey struct{}

func withState(ctx context.Context, st *requestState) context.Context {
	return context.WithValue(ctx, stateKey{}, st)
}

func stateFrom(ctx context.Context) *requestState {
	st, _ := ctx.Value(stateKey{}).(*requestState)
	return st
}

// handleToken serves the token endpoint (RFC 6749 §3.2). Requests are
// validated here before fosite sees them, and every response is written here,
// so that the wire format is exactly RFC 6749 §5.1/§5.2.
func (s *Server) handleToken(w http.ResponseWriter, r *http.Request) {
	noStore(w)
	s.setDPoPNonce(w)
	resp, oerr := s.token(w, r)
	if oerr != nil {
		s.logError(r, "token request failed", oerr)
		writeOAuthError(w, oerr)
		return
	}
	writeJSON(w, http.StatusOK, resp)
}

// tokenResponse is the RFC 6749 §5.1 success body.
type tokenResponse struct {
	AccessToken  string `json:"access_token"`
	TokenType    string `json:"token_type"`
	ExpiresIn    int64  `json:"expires_in"`
	RefreshToken string `json:"refresh_token,omitempty"`
	Scope        string `json:"scope,omitempty"`
	IDToken      string `json:"id_token,omitempty"`
	// IssuedTokenType is set by a token exchange (RFC 8693 §2.2.1).
	IssuedTokenType string `json:"issued_token_type,omitempty"`
}

func (s *Server) token(w http.ResponseWriter, r *http.Request) (*tokenResponse, *oauthError) {
	form, oerr := s.parseForm(w, r, "resource", "audience")
	if oerr != nil {
		return nil, oerr
	}
	gt, ok := form["grant_type"]
	if !ok || gt[0] == "" {
		return nil, invalidRequest("The grant_type parameter is missing.")
	}
	if !slices.Contains(SupportedGrantTypes, gt[0]) {
		return nil, newError(http.StatusBadRequest, errUnsupportedGrantType, "The grant type is not supported.")
	}
	grant := gt[0]
	switch grant {
	case grantPassword:
		if form.Get("username") == "" || form.Get("password") == "" {
			return nil, invalidRequest("The username and password parameters are required.")
		}
	case grantRefreshToken:
		if form.Get("refresh_token") == "" {
			return nil, invalidRequest("The refresh_token parameter is missing.")
		}
	case grantDeviceCode:
		if form.Get("device_code") == "" {
			return nil, invalidRequest("The device_code parameter is missing.")
		}
	case grantAuthorizationCode:
		if form.Get("code") == "" {
			return nil, invalidRequest("The code parameter is missing.")
		}
		if form.Get("code_verifier") == "" {
			return nil, invalidRequest("The code_verifier parameter is missing (PKCE is required).")
		}
	}

	st := &requestState{ip: s.clientIP(r)}
	ctx := withState(r.Context(), st)
	// A correct password whose request fails afterwards (a reset password
	// to change, a refused resource or DPoP binding, a failed commit) still
	// releases its reservation: it is not counted as a failure.
	defer func() { s.runLate(ctx, st.late) }()
	jkt, oerr := s.dpopProof(ctx, r, "/token", "", "")
	if oerr != nil {
		return nil, oerr
	}
	st.jkt = jkt
	sess := newSession()
	if grant == grantRefreshToken {
		st.presentedSig = s.strategy.RefreshTokenSignature(ctx, form.Get("refresh_token"))
	}
	ar, err := s.provider.NewAccessRequest(ctx, r, sess)
	if err != nil && st.graceHit {
		return s.replayOrFail(ctx, st, err)
	}
	if err != nil && st.client != nil && !slices.Contains(st.client.GrantTypes, grant) {
		// The registration is the policy; fosite words some cases (a public
		// client asking for client_credentials) as invalid_grant.
		err = newError(http.StatusBadRequest, errUnauthorizedClient, "The client is not allowed to use this grant type.")
	}
	if err != nil && st.passwordChange {
		err = newError(http.StatusBadRequest, errInvalidGrant, descPasswordChange)
	}
	if err != nil {
		oe := toOAuthError(err)
		if grant == grantRefreshToken && errors.Is(err, fosite.ErrInactiveToken) {
			s.metrics.refreshReuse.Inc()
			s.syncRevocations(ctx) // the grant's tokens were revoked: answer so here at once
			s.audit(ctx, "refresh_reuse_detected", slog.String("client_id", clientID(st)))
		}
		if grant == grantAuthorizationCode && st.codeReuse {
			s.syncRevocations(ctx)
			s.audit(ctx, "code_reuse_detected", slog.String("client_id", clientID(st)), slog.String("reason", "already_used"))
		}
		return nil, oe
	}
	client := st.client
	if client == nil {
		return nil, serverError(errors.New("authserver: client not authenticated"))
	}
	// fosite checks the grant type per handler; the client's registration is
	// the policy (a public client is never registered for client_credentials).
	if !slices.Contains(client.GrantTypes, grant) {
		return nil, newError(http.StatusBadRequest, errUnauthorizedClient, "The client is not allowed to use this grant type.")
	}
	sess, ok = ar.GetSession().(*session)
	if !ok {
		return nil, serverError(errors.New("authserver: unexpected session type"))
	}
	requested := ar.GetRequestedScopes()
	switch grant {
	case grantPassword:
		u := st.user
		if u == nil {
			return nil, serverError(errors.New("authserver: user not authenticated"))
		}
		fillUserSession(sess, *u)
		grantScopes(ar, requested, client.Scopes)
	case grantClientCredentials:
		sess.Subject = client.ID
		sess.User = false
		grantScopes(ar, requested, client.Scopes)
	case grantRefreshToken:
		if oe := s.refreshSession(ctx, sess, ar, form); oe != nil {
			return nil, oe
		}
	case grantAuthorizationCode:
		if oe := s.codeSession(ctx, sess); oe != nil {
			return nil, oe
		}
	}
	if oe := bindDPoP(client, grant, jkt, sess); oe != nil {
		return nil, oe
	}
	if grant != grantTokenExchange { // the exchange sets its own (exchange.go)
		if oe := s.tokenAudience(client, grant, sess, ar, form["resource"]); oe != nil {
			return nil, oe
		}
	}
	// One issuance instant for iat, exp and expires_in.
	now := s.cfg.Now().UTC().Truncate(time.Second)
	sess.IssuedAt = now
	sess.SetExpiresAt(fosite.AccessToken, now.Add(s.cfg.AccessTokenTTL))
	if grant != grantClientCredentials {
		sess.SetExpiresAt(fosite.RefreshToken, now.Add(s.cfg.RefreshTokenTTL))
	}

	st.buffer = true
	st.oidcGrant = sess.OIDC != nil
	st.accessExpiry = sess.GetExpiresAt(fosite.AccessToken)
	if sess.AccessScope != nil {
		st.scope = strings.Join(sess.AccessScope, " ")
	} else {
		st.scope = strings.Join(ar.GetGrantedScopes(), " ")
	}
	st.arrived = s.committer.expect()
	defer st.arrived() // also if fosite panics: a stale announcement would make every commit linger
	resp, err := s.provider.NewAccessResponse(ctx, ar)
	if err == nil {
		err = s.flush(ctx, st)
	}
	st.arrived()
	if err != nil {
		oe := toOAuthError(err)
		if grant == grantAuthorizationCode && (st.refreshRace || errors.Is(err, fosite.ErrInvalidatedAuthorizeCode)) {
			// A concurrent exchange consumed this code first: this is a
			// second use, and every token issued from the code is revoked.
			return nil, s.codeReused(ctx, ar.GetID())
		}
		if grant == grantDeviceCode && errors.Is(err, errApprovalRevoked) {
			// A revocation of the user committed since the poll read the mark.
			return nil, approvalRevoked()
		}
		if grant == grantDeviceCode && st.refreshRace {
			// A concurrent poll consumed the approved device code first.
			return nil, newError(http.StatusBadRequest, errInvalidGrant, "The device_code is invalid or was already used.")
		}
		if st.refreshRace {
			// A concurrent request consumed this refresh token first: within
			// a grace window it gets that request's pair.
			return s.replayOrFail(ctx, st, err)
		}
		return nil, oe
	}
	out := &tokenResponse{
		AccessToken: resp.GetAccessToken(),
		TokenType:   "Bearer",
		ExpiresIn:   int64(s.cfg.AccessTokenTTL / time.Second),
	}
	if sess.JKT != "" {
		out.TokenType = tokenTypeDPoP
	}
	if rt, ok := resp.GetExtra("refresh_token").(string); ok {
		out.RefreshToken = rt
	}
	if it, ok := resp.GetExtra("id_token").(string); ok {
		out.IDToken = it
	}
	if it, ok := resp.GetExtra("issued_token_type").(string); ok {
		out.IssuedTokenType = it
		out.ExpiresIn = int64(sess.GetExpiresAt(fosite.AccessToken).Sub(now) / time.Second)
	}
	scope := sess.AccessScope
	if scope == nil {
		scope = ar.GetGrantedScopes()
	}
	out.Scope = strings.Join(scope, " ")
	s.metrics.tokens.WithLabelValues(grant).Inc()
	s.audit(ctx, "token_issued", slog.String("grant", grant), slog.String("client_id", client.ID), slog.String("sub", sess.Subject))
	return out, nil
}

// grantScopes grants the requested scopes (fosite has already checked them
// against the client's), or the client's whole set when none was requested
// (RFC 6749 §3.3 lets the server apply a default).
func clientID(st *requestState) string {
	if st != nil && st.client != nil {
		return st.client.ID
	}
	return ""
}

func grantScopes(ar fosite.AccessRequester, requested, allowed []string) {
	if len(requested) == 0 {
		requested = allowed
	}
	for _, sc := range requested {
		ar.GrantScope(sc)
	}
}

func fillUserSession(sess *session, u storage.User) {
	sess.Subject = u.ID
	sess.User = true
	sess.Username = u.Email
	sess.Name = u.Name
	sess.Roles = slices.Clone(u.Roles)
}

// refreshSession refreshes the user's facts (a disabled or deleted user
// cannot refresh; role changes take effect) and applies a narrower scope
// (RFC 6749 §6): the access token gets the requested scope, the new refresh
// token keeps the grant's.
func (s *Server) refreshSession(ctx context.Context, sess *session, ar fosite.AccessRequester, form map[string][]string) *oauthError {
	if sess.User {
		if oe := s.refreshUser(ctx, sess, "The refresh token is invalid, expired or revoked."); oe != nil {
			return oe
		}
	}
	sess.AccessScope, sess.AccessAudience = nil, nil
	if v, ok := form["scope"]; ok {
		req := strings.Fields(v[0])
		granted := ar.GetGrantedScopes()
		for _, sc := range req {
			if !slices.Contains(granted, sc) {
				return newError(http.StatusBadRequest, errInvalidScope, "The requested scope exceeds the scope granted by the resource owner.")
			}
		}
		if len(req) > 0 {
			sess.AccessScope = req
		}
	}
	return nil
}

// runLate runs late writes (throttling releases) on their own, outside
// any group commit, each in a transaction of its own (which the store may
// commit lazily: storage.Throttle). A release that is lost leaves a failure
// counted, never one forgotten.
func (s *Server) runLate(ctx context.Context, late []lateWrite) {
	ctx = context.WithoutCancel(ctx)
	for _, w := range late {
		if err := w.fn(ctx); err != nil {
			s.log.Warn("throttle release failed", "err", err)
		}
	}
}

// flush writes the buffered writes in one transaction, shared with
// concurrent requests (see committer). Nothing is returned to the client
// unless it commits. A refresh has already flushed at fosite's Commit.
func (s *Server) flush(ctx context.Context, st *requestState) error {
	if st.guard == nil && len(st.writes) == 0 && len(st.late) == 0 {
		return nil
	}
	err := s.committer.submit(ctx, st.arrived, st.grant, st.late, st.guard, st.writes...)
	st.guard, st.writes = nil, nil
	if err == nil {
		st.late = nil // committed; on failure token runs them on its own
	}
	if errors.Is(err, storage.ErrNotFound) {
		st.refreshRace = true
		return fmt.Errorf("%w: %w", fosite.ErrNotFound, err)
	}
	if err != nil {
		return unavailable(err)
	}
	return nil
}

// codeSession refreshes the user's facts when a code is exchanged: a user
// disabled or deleted since the sign-in gets no tokens.
func (s *Server) codeSession(ctx context.Context, sess *session) *oauthError {
	return s.refreshUser(ctx, sess, "The authorization code is invalid, expired or revoked.")
}

// refreshUser reloads the facts of the session's user into it (roles, name
// and email as they are now); a user deleted or disabled since the grant
// gets invalid_grant with desc.
func (s *Server) refreshUser(ctx context.Context, sess *session, desc string) *oauthError {
	u, err := s.store.GetUser(ctx, sess.Subject)
	if errors.Is(err, storage.ErrNotFound) || (err == nil && u.Disabled) {
		return newError(http.StatusBadRequest, errInvalidGrant, desc)
	}
	if err != nil {
		return unavailable(err)
	}
	fillUserSession(sess, u)
	return nil
}

// codeReused revokes every token issued from a code that was used twice
// (RFC 6749 §4.1.2) and returns the error of the second use.
func (s *Server) codeReused(ctx context.Context, requestID string) *oauthError {
	for _, kind := range []storage.TokenKind{storage.AccessToken, storage.RefreshToken} {
		if _, err := s.store.DeleteTokens(ctx, kind, requestID); err != nil {
			s.log.Error("revoking the tokens of a reused code failed", "err", err)
		}
	}
	s.syncRevocations(ctx)
	s.audit(ctx, "code_reuse_detected", slog.String("client_id", clientID(stateFrom(ctx))), slog.String("reason", "concurrent_exchange"))
	return newError(http.StatusBadRequest, errInvalidGrant, "The authorization code has already been used.")
}

// tokenAudience sets the access token's audience from the resource
// parameters (RFC 8707 §2.2). A new grant (password, client_credentials)
// picks among the client's allowed resources, the default audience without
// the parameter; a code exchange or a refresh may only narrow the grant's
// audience, which the refresh token keeps.
func (s *Server) tokenAudience(c *storage.Client, grant string, sess *session, ar fosite.AccessRequester, requested []string) *oauthError {
	switch grant {
	case grantPassword, grantClientCredentials, grantJWTBearer:
		res, oe := s.resourcesFor(*c, requested, nil)
		if oe != nil {
			return oe
		}
		sess.Resources = res
	default:
		if sess.Resources == nil {
			// A grant from before resource indicators: the default audience.
			sess.Resources = []string{s.cfg.Audience}
		}
		if len(requested) > 0 {
			res, oe := s.resourcesFor(*c, requested, sess.Resources)
			if oe != nil {
				return oe
			}
			sess.AccessAudience = res
		}
	}
	for _, aud := range sess.Resources {
		ar.GrantAudience(aud)
	}
	return nil
}
