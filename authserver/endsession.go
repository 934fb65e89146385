package authserver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/oauthkit/authserver/authserver/ui"
	"github.com/oauthkit/authserver/storage"
)

// Logout for relying parties: OpenID Connect RP-Initiated Logout 1.0 at
// /end_session, and Back-Channel Logout 1.0 to every client that got a code
// for an ID token in the browser session that ends (here, at /logout, when
// another user signs in in the same browser, see startSession, or when an
// administrator ends it, see Server.EndBrowserSession).

// logoutTargetKind records that a client with a back-channel logout URI got
// tokens in a browser session: RequestID is the sid, ClientID the client,
// Subject the user, Payload a logoutTargetPayload.
const logoutTargetKind storage.TokenKind = "logout_target"

// logoutTargetPayload is the stored form of a logout target.
type logoutTargetPayload struct {
	// SID, when set, is the sid the client knows the session by, which is
	// then not the record's RequestID: the target was carried over from an
	// earlier session of the same user that a new sign-in replaced
	// (carryLogoutTargets). The logout token names this sid (§2.4).
	SID string `json:"sid,omitempty"`
}

// backchannelEvent is the events member of a logout token (§2.4).
const backchannelEvent = "http://schemas.openid.net/event/backchannel-logout"

// Back-channel delivery: each attempt is bounded, and so is their number;
// sign-out never waits for them.
const (
	backchannelTimeout  = 2 * time.Second
	backchannelAttempts = 3
	backchannelBackoff  = 500 * time.Millisecond
	logoutTokenTTL      = 2 * time.Minute
)

// ValidateBackchannelLogoutURI checks a back-channel logout URI for
// registration: an absolute https URI without a fragment, or http on a
// loopback address (Back-Channel Logout 1.0 §2.2).
func ValidateBackchannelLogoutURI(raw string) error {
	return validateCallURL("back-channel logout URI", raw)
}

func logoutTargetKey(sid, clientID string) string { return hashHandle(sid + "\x00" + clientID) }

// carriedLogoutTargetKey is the key of a target carried over to the session
// sid from an earlier one, which the client knows as knownSID.
func carriedLogoutTargetKey(sid, clientID, knownSID string) string {
	return hashHandle(sid + "\x00" + clientID + "\x00" + knownSID)
}

// rememberLogoutTarget records, for back-channel logout, that the client got
// a code in the browser session bs.
func (s *Server) rememberLogoutTarget(ctx context.Context, az *authzRequest, bs *browserSession) {
	if az.client.BackchannelLogoutURI == "" || bs.sid == "" || !slices.Contains(requestedScopes(az), scopeOpenID) {
		return
	}
	now := s.cfg.Now().UTC()
	err := s.store.CreateToken(ctx, storage.Token{Kind: logoutTargetKind, Signature: logoutTargetKey(bs.sid, az.client.ID),
		RequestID: bs.sid, ClientID: az.client.ID, Subject: bs.user.ID, Active: true, RequestedAt: now,
		ExpiresAt: now.Add(s.cfg.SessionTTL), Payload: []byte("{}")})
	if err != nil && !errors.Is(err, storage.ErrAlreadyExists) {
		s.log.WarnContext(ctx, "back-channel logout: recording the client of a session failed", "client_id", az.client.ID, "err", err)
	}
}

// logoutClaims is the payload of a logout token (Back-Channel Logout §2.4).
type logoutClaims struct {
	Issuer   string                    `json:"iss"`
	Subject  string                    `json:"sub"`
	Audience []string                  `json:"aud"`
	IssuedAt int64                     `json:"iat"`
	Expiry   int64                     `json:"exp"`
	ID       string                    `json:"jti"`
	SID      string                    `json:"sid"`
	Events   map[string]map[string]any `json:"events"`
}

// sessionLogoutTargets returns the logout targets of the browser session
// sid of the user.
func (s *Server) sessionLogoutTargets(ctx context.Context, userID, sid string) ([]storage.Token, error) {
	ts, err := s.store.ListTokens(ctx, logoutTargetKind, userID)
	if err != nil {
		return nil, fmt.Errorf("authserver: list the logout targets of %s: %w", userID, err)
	}
	return slices.DeleteFunc(ts, func(t storage.Token) bool { return t.RequestID != sid }), nil
}

// knownSID is the sid the client of the logout target t knows its session
// by (§2.4): the one it got in its ID token.
func knownSID(t storage.Token) string {
	var p logoutTargetPayload
	if json.Unmarshal(t.Payload, &p) == nil && p.SID != "" {
		return p.SID
	}
	return t.RequestID
}

// carryLogoutTargets moves the logout targets of the user's session oldSID,
// which a new sign-in of the same user in the same browser replaced, to the
// new session bs. The OP session goes on under a new sid, so the clients
// that got ID tokens in the old one are notified when it ends; each logout
// token names the sid the client got (Back-Channel Logout 1.0 §2.4, §2.6:
// the client looks its session up by that sid, and a token with the new sid
// would match nothing). Notifying them now instead would sign the user out
// of those clients while the OP session continues.
func (s *Server) carryLogoutTargets(ctx context.Context, oldSID string, bs *browserSession, expires time.Time) {
	ts, err := s.sessionLogoutTargets(ctx, bs.user.ID, oldSID)
	if err != nil {
		s.log.WarnContext(ctx, "back-channel logout: carrying the clients of a replaced session over failed", "err", err)
		return
	}
	for _, t := range ts {
		sid := knownSID(t)
		b, err := json.Marshal(logoutTargetPayload{SID: sid})
		if err == nil {
			err = s.store.CreateToken(ctx, storage.Token{Kind: logoutTargetKind, Signature: carriedLogoutTargetKey(bs.sid, t.ClientID, sid),
				RequestID: bs.sid, ClientID: t.ClientID, Subject: bs.user.ID, Active: true, RequestedAt: t.RequestedAt,
				ExpiresAt: expires, Payload: b})
		}
		if err != nil && !errors.Is(err, storage.ErrAlreadyExists) {
			s.log.WarnContext(ctx, "back-channel logout: carrying a client of a replaced session over failed", "client_id", t.ClientID, "err", err)
			continue
		}
		if err := s.store.DeleteToken(ctx, logoutTargetKind, t.Signature); err != nil && !errors.Is(err, storage.ErrNotFound) {
			s.log.WarnContext(ctx, "back-channel logout: deleting a carried-over target failed", "client_id", t.ClientID, "err", err)
		}
	}
}

// Reasons of a signed_out audit event other than the user's own sign-out.
const (
	endedByOtherUser = "other_user_signed_in"
	endedByAdmin     = "admin"
)

// sessionEnded records that the user's browser session sid has ended (a
// signed_out audit event) and notifies its clients (backchannelLogout).
func (s *Server) sessionEnded(ctx context.Context, sid, userID, reason string) {
	s.auditSignedOut(ctx, userID, reason)
	s.backchannelLogout(context.WithoutCancel(ctx), userID, sid)
}

// auditSignedOut writes the signed_out audit event of a browser session of
// the user; reason is "" for the user's own sign-out.
func (s *Server) auditSignedOut(ctx context.Context, userID, reason string) {
	attrs := []slog.Attr{slog.String("sub", userID)}
	if reason != "" {
		attrs = append(attrs, slog.String("reason", reason))
	}
	s.audit(ctx, "signed_out", attrs...)
}

// backchannelLogout notifies, in the background, every client that got
// tokens in the user's ended session sid (notifyTargets).
func (s *Server) backchannelLogout(ctx context.Context, userID, sid string) {
	if sid == "" {
		return
	}
	ts, err := s.sessionLogoutTargets(ctx, userID, sid)
	if err != nil {
		s.log.WarnContext(ctx, "back-channel logout: listing the clients of the session failed", "err", err)
		return
	}
	s.notifyTargets(ctx, userID, ts)
}

// notifyTargets sends a logout token to the client of each of the user's
// logout targets ts, each naming the sid its client knows. It returns once
// the tokens are signed; delivery runs in the background (see
// WaitBackchannel).
func (s *Server) notifyTargets(ctx context.Context, userID string, ts []storage.Token) {
	if len(ts) == 0 {
		return
	}
	// The key first: without one, no target is claimed (deleted) with no
	// token sent for it.
	signer, err := s.keys.CurrentFor(idTokenAlg)
	if err != nil {
		signer, err = s.keys.Current()
	}
	if err != nil {
		s.log.ErrorContext(ctx, "back-channel logout: no signing key", "err", err)
		return
	}
	for _, t := range ts {
		// Deleting the record claims it: of two requests ending the same
		// session, one sends the logout token.
		if err := s.store.DeleteToken(ctx, logoutTargetKind, t.Signature); errors.Is(err, storage.ErrNotFound) {
			continue
		} else if err != nil {
			s.log.WarnContext(ctx, "back-channel logout: deleting a logout target failed", "client_id", t.ClientID, "err", err)
		}
		c, err := s.clientRegistration(ctx, t.ClientID)
		if err != nil || c.BackchannelLogoutURI == "" {
			continue // deleted, or no longer registered for back-channel logout
		}
		now := s.cfg.Now().UTC().Truncate(time.Second)
		claims := logoutClaims{Issuer: s.cfg.Issuer, Subject: subjectFor(s.strategy.pairwiseKey, &c, userID), Audience: []string{c.ID}, IssuedAt: now.Unix(),
			Expiry: now.Add(logoutTokenTTL).Unix(), ID: newJTI(), SID: knownSID(t),
			Events: map[string]map[string]any{backchannelEvent: {}}}
		token, err := s.strategy.signWith(ctx, signer, claims, "logout+jwt")
		if err != nil {
			s.log.ErrorContext(ctx, "back-channel logout: signing failed", "err", err)
			continue
		}
		s.backchannel.Add(1)
		go func(clientID, uri string) {
			defer s.backchannel.Done()
			s.deliverLogoutToken(clientID, uri, token)
		}(c.ID, c.BackchannelLogoutURI)
	}
}

// deliverLogoutToken POSTs a logout token, retrying a bounded number of
// times on network errors and 5xx answers (§2.8).
func (s *Server) deliverLogoutToken(clientID, uri, token string) {
	body := url.Values{"logout_token": {token}}.Encode()
	for attempt := 1; attempt <= backchannelAttempts; attempt++ {
		ctx, cancel := context.WithTimeout(context.Background(), backchannelTimeout)
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, uri, strings.NewReader(body))
		if err != nil {
			cancel()
			s.log.Warn("back-channel logout: bad URI", "client_id", clientID, "err", withoutURL(err))
			return
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		resp, err := s.backchannelHTTP.Do(req)
		status := 0
		if err == nil {
			status = resp.StatusCode
			resp.Body.Close()
		}
		cancel()
		if errors.Is(err, errNonPublicAddress) {
			// The outbound-URL policy refused the address: no retry helps.
			s.log.Warn("back-channel logout: the client's URI is not on a public address; not delivered", "client_id", clientID, "err", withoutURL(err))
			return
		}
		if err == nil && status < 500 {
			if status >= 300 {
				s.log.Warn("back-channel logout refused", "client_id", clientID, "status", status)
			}
			return
		}
		if attempt < backchannelAttempts {
			time.Sleep(backchannelBackoff * time.Duration(attempt))
		}
	}
	s.log.Warn("back-channel logout: client unreachable, gave up", "client_id", clientID, "attempts", backchannelAttempts)
}

// WaitBackchannel waits until every back-channel logout delivery started so
// far has finished (each is bounded: at most backchannelAttempts attempts of
// backchannelTimeout).
func (s *Server) WaitBackchannel() { s.backchannel.Wait() }

// endSessionRequest is a validated RP-initiated logout request.
type endSessionRequest struct {
	client *storage.Client
	// hint is the verified id_token_hint; nil without one, and for a hint
	// whose key is gone (checkIDToken).
	hint        *idTokenClaims
	redirectURI string
	state       string
}

// hintForSession reports whether the request's id_token_hint belongs to the
// browser session bs with the client: an ID token of bs's user issued in bs
// (its sid) or in a session of the same user that bs carried on after a
// new sign-in, to the client named by client_id if any (validateEndSession
// checked the audience). Only then does the OP sign out without asking
// (RP-Initiated Logout 1.0 §2: it MUST ask when the ID token "does not
// belong to the current OP session with the RP"). An ID token of a session
// that ended (signed out, then signed in again) does not.
func (req endSessionRequest) hintForSession(pairwiseKey []byte, bs *browserSession) bool {
	h := req.hint
	return h != nil && bs.hasSID(h.SID) && h.Subject == subjectFor(pairwiseKey, req.client, bs.user.ID)
}

// handleEndSession serves GET and POST /end_session (RP-Initiated Logout
// 1.0 §2). With a valid id_token_hint issued in the current browser session
// it signs out at once; otherwise it asks for confirmation. It then returns
// to a registered post_logout_redirect_uri with state, or shows a page.
func (s *Server) handleEndSession(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	noStore(w)
	var form url.Values
	if r.Method == http.MethodPost {
		if form = readPageForm(w, r); form == nil {
			s.errorPage(w, http.StatusBadRequest, errInvalidRequest, "The form could not be read.")
			return
		}
	} else {
		form = r.URL.Query()
	}
	for k, v := range form {
		if len(v) > 1 || len(v[0]) > maxAuthorizeParam {
			s.errorPage(w, http.StatusBadRequest, errInvalidRequest, "The parameter '"+safeParam(k)+"' is repeated or too long.")
			return
		}
	}
	req, msg := s.validateEndSession(ctx, form)
	if msg != "" {
		s.errorPage(w, http.StatusBadRequest, errInvalidRequest, msg)
		return
	}
	bs, err := s.currentSession(ctx, r)
	if err != nil {
		s.unavailablePage(w, r, "reading the browser session failed", err)
		return
	}
	// A POST carrying csrf_token answers our confirmation page; any other
	// request is the relying party's (GET or an auto-submitted POST).
	answer := r.Method == http.MethodPost && form.Has(fieldCSRF)
	confirmed := answer && bs != nil && s.csrf.Valid(form.Get(fieldCSRF), "end_session", bs.id)
	if answer && bs != nil && !confirmed {
		s.csrfRejected(ctx, w, "end_session")
		return
	}
	if bs != nil && !confirmed && !req.hintForSession(s.strategy.pairwiseKey, bs) {
		// Without proof that the client speaks for this session, ask (§2, §6).
		var hidden []ui.Field
		for _, k := range []string{"client_id", "post_logout_redirect_uri", "state", "id_token_hint"} {
			if v := form.Get(k); v != "" {
				hidden = append(hidden, ui.Field{Name: k, Value: v})
			}
		}
		var targets []string
		if req.redirectURI != "" {
			targets = append(targets, formTarget(req.redirectURI))
		}
		s.pages.Render(w, http.StatusOK, ui.PageLogout, ui.Logout{UserName: bs.user.Email, Action: s.path("/end_session"),
			Hidden: hidden, CSRF: s.csrf.Token("end_session", bs.id)}, targets...)
		return
	}
	if bs != nil {
		if err := s.endSession(ctx, w, r); err != nil {
			s.unavailablePage(w, r, "ending the session failed", err)
			return
		}
		s.sessionEnded(ctx, bs.sid, bs.user.ID, "")
	}
	if req.redirectURI != "" {
		u := req.redirectURI
		if req.state != "" {
			sep := "?"
			if strings.Contains(u, "?") {
				sep = "&"
			}
			u += sep + url.Values{"state": {req.state}}.Encode()
		}
		seeOther(w, u)
		return
	}
	s.pages.Render(w, http.StatusOK, ui.PageMessage, ui.Message{Title: "Signed out", Text: "You have been signed out."})
}

// validateEndSession checks the parameters; msg is the error for the user.
//
// An id_token_hint that names a key no longer published (retired and
// deleted after a rotation; see checkIDToken) is treated as absent: the
// relying party's own ID token, kept since sign-in, must not lock the user
// out of signing out. The user is asked, and a post_logout_redirect_uri is
// honoured only with client_id, as without a hint; without client_id it
// cannot be checked and is ignored (§4: no redirection then).
func (s *Server) validateEndSession(ctx context.Context, form url.Values) (endSessionRequest, string) {
	var req endSessionRequest
	clientID := form.Get("client_id")
	ignoreRedirect := false
	if hint := form.Get("id_token_hint"); hint != "" {
		c, keyGone := s.checkIDToken(hint)
		ok := c != nil
		switch {
		case keyGone:
			s.log.DebugContext(ctx, "end_session: the id_token_hint's key is no longer published; treated as absent")
			ignoreRedirect = clientID == ""
		case !ok:
			return req, "The id_token_hint is not an ID token issued by this server."
		case clientID != "" && !slices.Contains(c.Audience, clientID):
			return req, "The id_token_hint was not issued to this client_id."
		default:
			if clientID == "" {
				clientID = c.Audience[0]
			}
			req.hint = c
		}
	}
	if clientID != "" {
		c, err := s.store.GetClient(ctx, clientID)
		if err != nil {
			return req, "The application is not registered with this server."
		}
		req.client = &c
	}
	if uri := form.Get("post_logout_redirect_uri"); uri != "" && !ignoreRedirect {
		if req.client == nil {
			return req, "A post_logout_redirect_uri needs client_id or id_token_hint."
		}
		if !slices.Contains(req.client.PostLogoutRedirectURIs, uri) {
			return req, "The post_logout_redirect_uri is not registered for this application."
		}
		req.redirectURI = uri
		req.state = form.Get("state")
	}
	return req, ""
}
