package authserver

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/ory/fosite"

	"github.com/oauthkit/authserver/storage"
)

// Token exchange (RFC 8693). fosite has no handler for it: exchangeHandler
// is a fosite.TokenEndpointHandler, so that client authentication, access
// token minting, the token record and the audit are those of every grant.

const (
	grantTokenExchange = "urn:ietf:params:oauth:grant-type:token-exchange"
	// Token type identifiers (RFC 8693 §3).
	tokenTypeAccess = "urn:ietf:params:oauth:token-type:access_token"
	tokenTypeID     = "urn:ietf:params:oauth:token-type:id_token"
)

// actor is the act and may_act claim (RFC 8693 §4.1, §4.4): the outermost
// act is the current actor, nested ones the prior actors.
type actor struct {
	Subject  string `json:"sub"`
	ClientID string `json:"client_id,omitempty"`
	Act      *actor `json:"act,omitempty"`
}

// grantHandler is what the token endpoint handlers of the grants fosite
// lacks (token exchange, device code, JWT bearer) share: the server, its
// fosite storage and token strategy, and the grant type they handle. The
// client always authenticates (a public client by its client_id).
type grantHandler struct {
	s     *Server
	store *fositeStore
	tok   *tokenStrategy
	grant string
}

// CanSkipClientAuth implements fosite.TokenEndpointHandler.
func (grantHandler) CanSkipClientAuth(context.Context, fosite.AccessRequester) bool { return false }

// CanHandleTokenEndpointRequest implements fosite.TokenEndpointHandler.
func (h grantHandler) CanHandleTokenEndpointRequest(_ context.Context, r fosite.AccessRequester) bool {
	return r.GetGrantTypes().ExactOne(h.grant)
}

// PopulateTokenEndpointResponse implements fosite.TokenEndpointHandler for
// a grant that issues an access token only (no refresh token); fosite asks
// every handler, and only the handler's own grant is answered.
func (h grantHandler) PopulateTokenEndpointResponse(ctx context.Context, ar fosite.AccessRequester, resp fosite.AccessResponder) error {
	if !h.CanHandleTokenEndpointRequest(ctx, ar) {
		return fosite.ErrUnknownRequest
	}
	_, _, err := h.issueAccessToken(ctx, ar, resp)
	return err
}

// issueAccessToken mints the access token of ar, stores its record and
// puts it in resp; it returns the token and its signature (the key of its
// record).
func (h grantHandler) issueAccessToken(ctx context.Context, ar fosite.AccessRequester, resp fosite.AccessResponder) (token, sig string, err error) {
	token, sig, err = h.tok.GenerateAccessToken(ctx, ar)
	if err != nil {
		return "", "", err
	}
	if err := h.store.CreateAccessTokenSession(ctx, sig, ar.Sanitize(nil)); err != nil {
		return "", "", err
	}
	resp.SetAccessToken(token)
	resp.SetTokenType("bearer")
	return token, sig, nil
}

// grantClient returns the request's authenticated client, refused with
// unauthorized_client unless it is registered for the grant (and, unless
// public clients may use it, confidential).
func (h grantHandler) grantClient(ctx context.Context, allowPublic bool) (*storage.Client, error) {
	st := stateFrom(ctx)
	if st == nil || st.client == nil {
		return nil, serverError(errors.New("authserver: " + h.grant + " grant without an authenticated client"))
	}
	c := st.client
	if !slices.Contains(c.GrantTypes, h.grant) || (c.Public && !allowPublic) {
		return nil, newError(http.StatusBadRequest, errUnauthorizedClient, "The client is not allowed to use this grant type.")
	}
	return c, nil
}

// requestSession is the request's session, of the type newSession gives.
func requestSession(ar fosite.AccessRequester) (*session, error) {
	sess, ok := ar.GetSession().(*session)
	if !ok {
		return nil, serverError(errors.New("authserver: unexpected session type"))
	}
	return sess, nil
}

// exchangeHandler handles the token-exchange grant.
type exchangeHandler struct{ grantHandler }

var _ fosite.TokenEndpointHandler = exchangeHandler{}

// exchangeParty is what a verified subject or actor token says.
type exchangeParty struct {
	subject, clientID string
	scope, audience   []string
	act, mayAct       *actor
	expiry            time.Time
	// sess is the stored session of an access token (nil for an ID token).
	sess *session
	// idAudience is an ID token's aud: the clients it was issued to, and
	// sid the browser session it was issued in.
	idAudience []string
	sid        string
}

// HandleTokenEndpointRequest validates the exchange (RFC 8693 §2.1) and
// fills the session of the token to issue.
func (h exchangeHandler) HandleTokenEndpointRequest(ctx context.Context, ar fosite.AccessRequester) error {
	if !h.CanHandleTokenEndpointRequest(ctx, ar) {
		return fosite.ErrUnknownRequest
	}
	s := h.s
	c, err := h.grantClient(ctx, false)
	if err != nil {
		return err
	}
	st := stateFrom(ctx)
	form := ar.GetRequestForm()
	if form.Get("subject_token") == "" || form.Get("subject_token_type") == "" {
		return invalidRequest("The subject_token and subject_token_type parameters are required.")
	}
	if (form.Get("actor_token") == "") != (form.Get("actor_token_type") == "") {
		return invalidRequest("The actor_token and actor_token_type parameters go together.")
	}
	if t := form.Get("requested_token_type"); t != "" && t != tokenTypeAccess {
		return invalidRequest("Only access tokens can be requested.")
	}
	sub, oe := h.verify(ctx, form.Get("subject_token"), form.Get("subject_token_type"), "subject_token")
	if oe != nil {
		return oe
	}
	sess, err := requestSession(ar)
	if err != nil {
		return err
	}
	if sub.sess != nil {
		fillFrom := *sub.sess
		sess.Subject, sess.User, sess.Username, sess.Name, sess.Roles = fillFrom.Subject, fillFrom.User, fillFrom.Username, fillFrom.Name, slices.Clone(fillFrom.Roles)
	} else {
		// An ID token names a user and carries no scope: only a client it
		// was issued to may exchange it (another party holding it is not the
		// relying party the user signed in to), only while the sign-in it
		// came from lives, and for no more than the user consented to.
		if !slices.Contains(sub.idAudience, c.ID) {
			return invalidRequest("The subject_token was not issued to this client.")
		}
		if oe := h.idTokenSession(ctx, c, sub); oe != nil {
			return oe
		}
		sess.Subject, sess.User = sub.subject, true
		if sub.scope, oe = h.idTokenScope(ctx, c, sub.subject); oe != nil {
			return oe
		}
	}
	if sess.User {
		if oe := s.refreshUser(ctx, sess, errSubjectToken["subject_token"]); oe != nil {
			if oe.Code == errInvalidGrant {
				oe.Code = errInvalidRequest // RFC 8693 §2.2.2
			}
			return oe
		}
	}
	// Delegation: the actor becomes the outermost act over the subject
	// token's own chain. Impersonation (no actor) carries no act.
	if at := form.Get("actor_token"); at != "" {
		act, oe := h.verify(ctx, at, form.Get("actor_token_type"), "actor_token")
		if oe != nil {
			return oe
		}
		if m := sub.mayAct; m != nil && (m.Subject != act.subject || (m.ClientID != "" && m.ClientID != act.clientID)) {
			return invalidRequest("The actor is not allowed to act for the subject (may_act).")
		}
		sess.Act = &actor{Subject: act.subject, ClientID: act.clientID, Act: sub.act}
	} else if m := sub.mayAct; m != nil && m.Subject != c.ID {
		return invalidRequest("The client is not allowed to act for the subject (may_act).")
	}
	// Scopes only shrink: the result has at most the subject token's scope
	// that the client is registered for (as every other grant caps its
	// result at the client's registration); without a scope parameter, all
	// of that.
	allowed := slices.DeleteFunc(slices.Clone(sub.scope), func(sc string) bool { return !slices.Contains(c.Scopes, sc) })
	requested := ar.GetRequestedScopes()
	if len(requested) == 0 {
		if len(allowed) == 0 {
			return newError(http.StatusBadRequest, errInvalidScope, "The subject token has no scope the client is registered for.")
		}
		requested = allowed
	}
	for _, sc := range requested {
		if !slices.Contains(allowed, sc) {
			return newError(http.StatusBadRequest, errInvalidScope, "The requested scope exceeds the subject token's scope or the client's registered scopes.")
		}
		ar.GrantScope(sc)
	}
	// audience and resource narrow the result to targets the client may
	// exchange for; without either, the subject token's audience stays.
	targets := slices.Concat(form["audience"], form["resource"])
	for _, r := range form["resource"] {
		if ValidateResource(r) != nil {
			return newError(http.StatusBadRequest, errInvalidTarget, "The resource parameter must be an absolute URI without a fragment.")
		}
	}
	for _, t := range targets {
		if t == "" || !slices.Contains(c.ExchangeAudiences, t) {
			return newError(http.StatusBadRequest, errInvalidTarget, "The client may not exchange tokens for this audience.")
		}
	}
	if len(targets) == 0 {
		targets = sub.audience
	}
	slices.Sort(targets)
	targets = slices.Compact(targets)
	sess.Resources, sess.AccessAudience, sess.AccessScope = targets, nil, nil
	for _, t := range targets {
		ar.GrantAudience(t)
	}
	st.exchangeExpiry = sub.expiry
	return nil
}

// PopulateTokenEndpointResponse mints the access token; it never outlives
// the subject token. No refresh token is issued.
func (h exchangeHandler) PopulateTokenEndpointResponse(ctx context.Context, ar fosite.AccessRequester, resp fosite.AccessResponder) error {
	// fosite asks every handler; only an exchange is ours.
	if !h.CanHandleTokenEndpointRequest(ctx, ar) {
		return fosite.ErrUnknownRequest
	}
	sess, err := requestSession(ar)
	if err != nil {
		return err
	}
	if st := stateFrom(ctx); st != nil && !st.exchangeExpiry.IsZero() && st.exchangeExpiry.Before(sess.GetExpiresAt(fosite.AccessToken)) {
		sess.SetExpiresAt(fosite.AccessToken, st.exchangeExpiry)
		st.accessExpiry = st.exchangeExpiry
	}
	if _, _, err := h.issueAccessToken(ctx, ar, resp); err != nil {
		return err
	}
	resp.SetExtra("issued_token_type", tokenTypeAccess)
	return nil
}

// errSubjectToken are the descriptions of a refused subject or actor token.
// Every such refusal is invalid_request: "If either the subject_token or
// actor_token are invalid for any reason, or are unacceptable based on
// policy, ... the error parameter MUST be the invalid_request error code"
// (RFC 8693 §2.2.2).
var errSubjectToken = map[string]string{
	"subject_token": "The subject_token is invalid, expired or revoked.",
	"actor_token":   "The actor_token is invalid, expired or revoked.",
}

// verify checks a subject or actor token of the given type: our access
// tokens (signature, expiry, not revoked) or ID tokens signed by our keys
// with our issuer (whose browser session HandleTokenEndpointRequest checks).
func (h exchangeHandler) verify(ctx context.Context, token, typ, param string) (*exchangeParty, *oauthError) {
	bad := invalidRequest(errSubjectToken[param])
	switch typ {
	case tokenTypeAccess:
		c, err := h.tok.verifyAccessToken(token)
		if err != nil {
			return nil, bad
		}
		rec, err := h.s.liveAccessRecord(ctx, jwtSignature(token))
		if errors.Is(err, storage.ErrNotFound) {
			return nil, bad
		}
		if err != nil {
			return nil, unavailable(err)
		}
		req, err := decodePayload(rec.Payload, nil)
		if err != nil {
			return nil, serverError(err)
		}
		sess, _ := req.Session.(*session)
		var extra struct {
			Act    *actor `json:"act"`
			MayAct *actor `json:"may_act"`
		}
		if sess != nil {
			extra.Act, extra.MayAct = sess.Act, sess.MayAct
		}
		return &exchangeParty{subject: c.Subject, clientID: c.ClientID, scope: strings.Fields(c.Scope),
			audience: c.Audience, act: extra.Act, mayAct: extra.MayAct, expiry: time.Unix(c.Expiry, 0), sess: sess}, nil
	case tokenTypeID:
		c, ok := h.s.verifyIDToken(token)
		if !ok || c.Expiry <= h.s.cfg.Now().Unix() {
			return nil, bad
		}
		return &exchangeParty{subject: c.Subject, mayAct: c.MayAct, audience: []string{h.s.cfg.Audience},
			expiry: time.Unix(c.Expiry, 0), idAudience: c.Audience, sid: c.SID}, nil
	case "":
		return nil, invalidRequest("The " + param + "_type parameter is missing.")
	default:
		return nil, invalidRequest("The " + param + "_type is not supported.")
	}
}

// idTokenSession checks that the browser session an ID token was issued in
// (its sid) is still live: signing out, a revocation of the user's tokens
// ("sign out everywhere", tokens revoke --user) and the session's expiry
// end it, and with it the ID token's use as a subject token. ID tokens of
// the code flow, of the device flow and of a refresh of either carry the
// sid of the sign-in; one without a sid is refused.
//
// The session is found among the user's (ListTokens by subject), so the
// ID token's sub must be the user ID: an ID token of a client with
// pairwise subjects names the user by a pseudonym that cannot be reversed,
// and the storage has no lookup of a session by its sid, so such tokens
// are refused (the client can exchange its access token instead).
func (h exchangeHandler) idTokenSession(ctx context.Context, c *storage.Client, sub *exchangeParty) *oauthError {
	if c.SubjectType == SubjectPairwise {
		return invalidRequest("The ID tokens of a client with pairwise subjects cannot be exchanged; exchange its access token instead.")
	}
	if sub.sid == "" {
		return invalidRequest("The subject_token has no sid: it was not issued in a browser session.")
	}
	sessions, err := h.s.store.ListTokens(ctx, storage.BrowserSession, sub.subject)
	if err != nil {
		return unavailable(err)
	}
	now := h.s.cfg.Now()
	for _, t := range sessions {
		if t.Active && t.ExpiresAt.After(now) && sessionHasSID(t, sub.sid) {
			return nil
		}
	}
	return invalidRequest("The browser session the subject_token was issued in has ended.")
}

// idTokenScope is the most an exchanged ID token may yield: the registered
// scopes of a first-party client (SkipConsent), otherwise those the user
// consented to for the client (its remembered consent) that it is still
// registered for. Without a consent record the ID token is refused. Public
// clients cannot use the grant at all (grantClient); their consents are
// stored like any other, so this would hold for them too.
func (h exchangeHandler) idTokenScope(ctx context.Context, c *storage.Client, userID string) ([]string, *oauthError) {
	if c.SkipConsent {
		return slices.Clone(c.Scopes), nil
	}
	consented, err := h.s.consentedScopes(ctx, userID, c.ID)
	if err != nil {
		return nil, unavailable(err)
	}
	if consented == nil {
		return nil, invalidRequest("The user has not consented to this client, so its ID token cannot be exchanged.")
	}
	return consented, nil // capped at the client's registration by the caller
}
