package authserver

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/ory/fosite"

	"github.com/oauthkit/authserver/storage"
)

// The device authorization grant (RFC 8628). A device asks
// /device_authorization for a device_code and a user_code; the user enters
// the user code at /device (device_page.go), signs in and allows or denies;
// the device polls the token endpoint with the device code (deviceHandler,
// a fosite.TokenEndpointHandler, as exchange.go is for token exchange).
//
// Storage: a DeviceCode record under the hash of the device code (active
// while pending; the decision is recorded with RotateToken, a
// compare-and-swap, and the record is consumed with DeleteToken, so that
// exactly one poll wins, across instances) and a UserCode record under the
// hash of the normalised user code pointing at it. Neither code is stored.
//
// A pending poll costs one GetToken by primary key. slow_down is decided per
// instance from memory (devicePolls), seeded from the record's issue time:
// an instance that has not seen the device code before measures its first
// poll from issuance. A client whose polls are spread over n instances can
// therefore poll up to n times faster than the interval before it is told to
// slow down; each instance still enforces the interval for what it sees.

// GrantDeviceCode is the grant type of the device authorization grant
// (RFC 8628 §3.4), as clients register it.
const GrantDeviceCode = grantDeviceCode

const (
	grantDeviceCode = "urn:ietf:params:oauth:grant-type:device_code"
	// RFC 8628 §3.5 error codes (errSlowDown is in errors.go).
	errAuthorizationPending = "authorization_pending"
	errExpiredToken         = "expired_token"

	// userCodeAlphabet is the base-20 alphabet of RFC 8628 §6.1: no vowels
	// (no words), no easily confused characters.
	userCodeAlphabet = "BCDFGHJKLMNPQRSTVWXZ"
	userCodeLen      = 8
	// slowDownStep is what each slow_down adds to the interval (§3.5).
	slowDownStep = 5 * time.Second
	// fieldUserCode is the user code's parameter and input name.
	fieldUserCode = "user_code"
	// maxDeviceCode bounds a presented device_code.
	maxDeviceCode = 128
	// maxDevicePolls bounds the per-instance poll tracker.
	maxDevicePolls = 100_000
)

// Defaults of Config.DeviceCodeTTL and Config.DevicePollInterval.
const (
	defaultDeviceCodeTTL      = 10 * time.Minute
	defaultDevicePollInterval = 5 * time.Second
)

// devicePayload is the stored form of a pending device authorization.
type devicePayload struct {
	Scopes    []string `json:"scopes"`
	Resources []string `json:"resources,omitempty"`
	// Interval is the polling interval given to the client, in seconds.
	Interval int64 `json:"interval"`
	// UserCode is the Signature of the UserCode record.
	UserCode string `json:"user_code"`
}

// deviceApprovalKind marks an approved device authorization with its user:
// Signature and RequestID are the DeviceCode record's, Subject the user
// who approved. The DeviceCode record has no subject (the user is not known
// when it is made), so a revocation of the user's tokens (storage
// RevokeTokens by subject, as a "sign out everywhere" or a password reset
// does) finds this record instead, and a poll that finds it gone gets
// access_denied rather than tokens for that user.
const deviceApprovalKind storage.TokenKind = "device_approval"

// recordDeviceDecision stores the decision d (encoded as b) on the device
// code record of pd, a compare-and-swap (storage.ErrNotFound when another
// decision came first), and for an approval, in the same transaction, its
// mark for the approving user, which lives as long as a device code can:
// only the winning decision's mark exists.
func (s *Server) recordDeviceDecision(ctx context.Context, pd *pendingDevice, d deviceDecision, b []byte) error {
	now := s.cfg.Now().UTC()
	tx, err := s.store.BeginTx(ctx)
	if err != nil {
		return err
	}
	err = s.store.RotateToken(tx, storage.DeviceCode, pd.sig, now, b)
	if err == nil && d.Marked {
		err = s.store.CreateToken(tx, storage.Token{Kind: deviceApprovalKind, Signature: pd.sig, RequestID: pd.sig,
			ClientID: pd.client.ID, Subject: d.Session.Subject, Active: true, RequestedAt: now,
			ExpiresAt: now.Add(s.cfg.DeviceCodeTTL), Payload: []byte("{}")})
	}
	if err != nil {
		_ = s.store.RollbackTx(tx)
		return err
	}
	return s.store.CommitTx(tx)
}

// errApprovalRevoked is the poll's answer when the approval's mark is gone.
var errApprovalRevoked = fmt.Errorf("authserver: device approval revoked: %w", storage.ErrNotFound)

// approvalRevoked is the poll's error when the approval was revoked.
func approvalRevoked() *oauthError {
	return newError(http.StatusBadRequest, errAccessDenied, "The approval was revoked.")
}

// deviceDecision is the user's decision, the DeviceCode record's Successor.
type deviceDecision struct {
	Denied bool `json:"denied,omitempty"`
	// Session is the grant's session (user, resources, OpenID Connect
	// facts) and Scopes its granted scopes, when allowed.
	Session *session `json:"session,omitempty"`
	Scopes  []string `json:"scopes,omitempty"`
	// Marked: the approval has a deviceApprovalKind mark, which a poll
	// requires (an approval recorded before marks existed has none).
	Marked bool `json:"marked,omitempty"`
}

// deviceAuthResponse is the RFC 8628 §3.2 response.
type deviceAuthResponse struct {
	DeviceCode              string `json:"device_code"`
	UserCode                string `json:"user_code"`
	VerificationURI         string `json:"verification_uri"`
	VerificationURIComplete string `json:"verification_uri_complete"`
	ExpiresIn               int64  `json:"expires_in"`
	Interval                int64  `json:"interval"`
}

// handleDeviceAuthorization serves the device authorization endpoint
// (RFC 8628 §3.1); errors are those of RFC 6749 §5.2.
func (s *Server) handleDeviceAuthorization(w http.ResponseWriter, r *http.Request) {
	noStore(w)
	resp, oerr := s.deviceAuthorization(w, r)
	if oerr != nil {
		s.logError(r, "device authorization failed", oerr)
		writeOAuthError(w, oerr)
		return
	}
	writeJSON(w, http.StatusOK, resp)
}

func (s *Server) deviceAuthorization(w http.ResponseWriter, r *http.Request) (*deviceAuthResponse, *oauthError) {
	form, oerr := s.parseForm(w, r, "resource")
	if oerr != nil {
		return nil, oerr
	}
	ctx := withState(r.Context(), &requestState{ip: s.clientIP(r)})
	// Confidential clients authenticate as at the token endpoint; public
	// clients name themselves with client_id (§3.1).
	c, oerr := s.authenticateClient(ctx, r, form)
	if oerr != nil {
		return nil, oerr
	}
	if !slices.Contains(c.GrantTypes, grantDeviceCode) {
		return nil, newError(http.StatusBadRequest, errUnauthorizedClient, "The client is not allowed to use the device authorization grant.")
	}
	scopes := strings.Fields(form.Get("scope"))
	for _, sc := range scopes {
		if !slices.Contains(c.Scopes, sc) {
			return nil, newError(http.StatusBadRequest, errInvalidScope, "The client is not allowed to request the scope '"+safeParam(sc)+"'.")
		}
	}
	if len(scopes) == 0 {
		scopes = slices.Clone(c.Scopes)
	}
	slices.Sort(scopes)
	scopes = slices.Compact(scopes)
	res, oerr := s.resourcesFor(c, form["resource"], nil)
	if oerr != nil {
		return nil, oerr
	}
	deviceCode, err := randomHandle()
	if err != nil {
		return nil, serverError(err)
	}
	now := s.cfg.Now().UTC()
	exp := now.Add(s.cfg.DeviceCodeTTL)
	interval := int64(s.cfg.DevicePollInterval / time.Second)
	devSig := hashHandle(deviceCode)
	// A user code collides with a live one about once in 20^8/live codes:
	// CreateToken's ErrAlreadyExists says so, and another is drawn.
	var userCode string
	for range 5 {
		if userCode, err = newUserCode(); err != nil {
			return nil, serverError(err)
		}
		err = s.store.CreateToken(ctx, storage.Token{Kind: storage.UserCode, Signature: s.userCodeKey(userCode),
			RequestID: devSig, ClientID: c.ID, Active: true, RequestedAt: now, ExpiresAt: exp})
		if !errors.Is(err, storage.ErrAlreadyExists) {
			break
		}
	}
	if err != nil {
		return nil, unavailable(err)
	}
	b, err := json.Marshal(devicePayload{Scopes: scopes, Resources: res, Interval: interval, UserCode: s.userCodeKey(userCode)})
	if err != nil {
		return nil, serverError(err)
	}
	if err := s.store.CreateToken(ctx, storage.Token{Kind: storage.DeviceCode, Signature: devSig, RequestID: devSig,
		ClientID: c.ID, Active: true, RequestedAt: now, ExpiresAt: exp, Payload: b}); err != nil {
		return nil, unavailable(err)
	}
	shown := formatUserCode(userCode)
	verification := s.cfg.Issuer + "/device"
	s.audit(ctx, "device_authorization", slog.String("client_id", c.ID))
	return &deviceAuthResponse{
		DeviceCode:              deviceCode,
		UserCode:                shown,
		VerificationURI:         verification,
		VerificationURIComplete: verification + "?" + url.Values{fieldUserCode: {shown}}.Encode(),
		ExpiresIn:               int64(s.cfg.DeviceCodeTTL / time.Second),
		Interval:                interval,
	}, nil
}

// newUserCode draws userCodeLen characters of userCodeAlphabet from
// crypto/rand, without modulo bias.
func newUserCode() (string, error) {
	out := make([]byte, 0, userCodeLen)
	buf := make([]byte, 16)
	for len(out) < userCodeLen {
		if _, err := rand.Read(buf); err != nil {
			return "", fmt.Errorf("authserver: random: %w", err)
		}
		for _, b := range buf {
			// 240 = 12·20: bytes at or above it would favour the first
			// characters.
			if b < 240 && len(out) < userCodeLen {
				out = append(out, userCodeAlphabet[b%20])
			}
		}
	}
	return string(out), nil
}

// normalizeUserCode applies §6.1: case, dashes and spaces are ignored. ok
// is false when the rest is not userCodeLen characters of the alphabet.
func normalizeUserCode(in string) (string, bool) {
	if len(in) > 64 {
		return "", false
	}
	var b strings.Builder
	for _, r := range strings.ToUpper(in) {
		switch {
		case r == '-' || r == ' ' || r == '\t':
		case r < 128 && strings.ContainsRune(userCodeAlphabet, r):
			b.WriteRune(r)
		default:
			return "", false
		}
	}
	if b.Len() != userCodeLen {
		return "", false
	}
	return b.String(), true
}

// formatUserCode shows a normalised user code as XXXX-XXXX.
func formatUserCode(c string) string {
	if len(c) != userCodeLen {
		return c
	}
	return c[:4] + "-" + c[4:]
}

// userCodeKey is the UserCode record's Signature for a normalised code: an
// HMAC under a key derived from the server secret, since a user code is too
// short for a plain hash to hide it.
func (s *Server) userCodeKey(c string) string {
	m := hmac.New(sha256.New, s.userCodeMAC)
	m.Write([]byte(c))
	return hex.EncodeToString(m.Sum(nil))
}

// deviceHandler handles the device_code grant at the token endpoint.
type deviceHandler struct{ grantHandler }

var _ fosite.TokenEndpointHandler = deviceHandler{}

// HandleTokenEndpointRequest answers a poll (RFC 8628 §3.4, §3.5): pending,
// slow_down, access_denied, expired_token, or, once, the approved grant's
// session.
func (h deviceHandler) HandleTokenEndpointRequest(ctx context.Context, ar fosite.AccessRequester) error {
	if !h.CanHandleTokenEndpointRequest(ctx, ar) {
		return fosite.ErrUnknownRequest
	}
	s := h.s
	c, err := h.grantClient(ctx, true)
	if err != nil {
		return err
	}
	code := ar.GetRequestForm().Get("device_code")
	if code == "" {
		return invalidRequest("The device_code parameter is missing.")
	}
	bad := newError(http.StatusBadRequest, errInvalidGrant, "The device_code is invalid or was already used.")
	if len(code) > maxDeviceCode {
		return bad
	}
	sig := hashHandle(code)
	t, err := s.store.GetToken(ctx, storage.DeviceCode, sig)
	if errors.Is(err, storage.ErrNotFound) || (err == nil && t.ClientID != c.ID) {
		return bad
	}
	if err != nil {
		return unavailable(err)
	}
	now := s.cfg.Now()
	if !t.ExpiresAt.After(now) {
		s.devicePolls.forget(sig)
		return newError(http.StatusBadRequest, errExpiredToken, "The device_code has expired; start again.")
	}
	if t.Active {
		var p devicePayload
		if err := json.Unmarshal(t.Payload, &p); err != nil {
			return serverError(fmt.Errorf("authserver: device record: %w", err))
		}
		if s.devicePolls.slowDown(sig, now, t.RequestedAt, t.ExpiresAt, time.Duration(p.Interval)*time.Second) {
			return newError(http.StatusBadRequest, errSlowDown, "Polling too fast; add 5 seconds to the interval.")
		}
		return newError(http.StatusBadRequest, errAuthorizationPending, "The user has not yet completed the authorization.")
	}
	var d deviceDecision
	if err := json.Unmarshal(t.Successor, &d); err != nil {
		return serverError(fmt.Errorf("authserver: device decision: %w", err))
	}
	if d.Denied || d.Session == nil {
		s.devicePolls.forget(sig)
		return newError(http.StatusBadRequest, errAccessDenied, "The user denied the request.")
	}
	if d.Marked {
		// Checked again, atomically, when the grant commits (consume).
		m, err := s.store.GetToken(ctx, deviceApprovalKind, sig)
		if errors.Is(err, storage.ErrNotFound) {
			// Revoked, or consumed with the code by a concurrent poll
			// since the code was read.
			if _, err := s.store.GetToken(ctx, storage.DeviceCode, sig); errors.Is(err, storage.ErrNotFound) {
				return bad
			}
			s.devicePolls.forget(sig)
			return approvalRevoked()
		}
		if err != nil {
			return unavailable(err)
		}
		if m.Subject != d.Session.Subject {
			s.devicePolls.forget(sig)
			return approvalRevoked()
		}
		if st := stateFrom(ctx); st != nil {
			st.deviceMarked = true
		}
	}
	sess, err := requestSession(ar)
	if err != nil {
		return err
	}
	exp := sess.ExpiresAt
	*sess = *d.Session
	sess.ExpiresAt = exp
	if oe := s.refreshUser(ctx, sess, "The device_code is invalid, expired or revoked."); oe != nil {
		return oe
	}
	for _, sc := range d.Scopes {
		ar.GrantScope(sc)
	}
	return nil
}

// PopulateTokenEndpointResponse mints the tokens of an approved device
// grant as the code flow does: the access token, a refresh token when the
// client may refresh (with offline_access for an OpenID Connect grant) and
// an ID token with openid.
func (h deviceHandler) PopulateTokenEndpointResponse(ctx context.Context, ar fosite.AccessRequester, resp fosite.AccessResponder) error {
	if !h.CanHandleTokenEndpointRequest(ctx, ar) {
		return fosite.ErrUnknownRequest
	}
	sess, err := requestSession(ar)
	if err != nil {
		return err
	}
	// Deleting the record is the compare-and-swap that makes the device
	// code single-use: of concurrent polls (on any instance) one wins. It
	// commits with the tokens, so a poll that fails after the user's
	// approval (a refused resource or DPoP proof, storage down) leaves the
	// approval for the next poll.
	codeSig := hashHandle(ar.GetRequestForm().Get("device_code"))
	st := stateFrom(ctx)
	marked := st != nil && st.deviceMarked
	consume := func(tx context.Context) error {
		// The approval's mark first: a revocation of the user that
		// committed since the poll read it has deleted it. A lost
		// compare-and-swap changes nothing, so when the mark is gone the
		// code only tells which it was.
		if marked {
			err := h.s.store.DeleteToken(tx, deviceApprovalKind, codeSig)
			if errors.Is(err, storage.ErrNotFound) {
				if _, err := h.s.store.GetToken(tx, storage.DeviceCode, codeSig); err != nil {
					return err // storage.ErrNotFound: a concurrent poll won
				}
				return errApprovalRevoked
			}
			if err != nil {
				return err
			}
		}
		if err := h.s.store.DeleteToken(tx, storage.DeviceCode, codeSig); err != nil {
			return err // storage.ErrNotFound: a concurrent poll won
		}
		h.s.devicePolls.forget(codeSig)
		return nil
	}
	if st != nil && st.buffer {
		st.guard, st.grant = consume, codeSig
	} else if err := consume(ctx); errors.Is(err, errApprovalRevoked) {
		return approvalRevoked()
	} else if errors.Is(err, storage.ErrNotFound) {
		return newError(http.StatusBadRequest, errInvalidGrant, "The device_code is invalid or was already used.")
	} else if err != nil {
		return unavailable(err)
	}
	token, sig, err := h.issueAccessToken(ctx, ar, resp)
	if err != nil {
		return err
	}
	if refreshScopes := (providerConfig{}).GetRefreshTokenScopes(ctx); len(refreshScopes) == 0 || ar.GetGrantedScopes().HasOneOf(refreshScopes...) {
		rt, rsig, err := h.tok.GenerateRefreshToken(ctx, ar)
		if err != nil {
			return err
		}
		if err := h.store.CreateRefreshTokenSession(ctx, rsig, sig, ar.Sanitize(nil)); err != nil {
			return err
		}
		resp.SetExtra("refresh_token", rt)
	}
	if sess.OIDC != nil && ar.GetGrantedScopes().Has(scopeOpenID) {
		sum := sha256.Sum256([]byte(token))
		sess.IDTokenClaims().AccessTokenHash = base64.RawURLEncoding.EncodeToString(sum[:len(sum)/2])
		idt, err := h.tok.GenerateIDToken(ctx, h.s.cfg.AccessTokenTTL, ar)
		if err != nil {
			return err
		}
		resp.SetExtra("id_token", idt)
	}
	return nil
}

// devicePolls remembers, per instance, when each device code was last
// polled and the interval its client must keep (grown by slow_down).
type devicePolls struct {
	mu        sync.Mutex
	m         map[string]*devicePoll
	lastSweep time.Time
}

type devicePoll struct {
	last, expires time.Time
	interval      time.Duration
}

func newDevicePolls() *devicePolls { return &devicePolls{m: map[string]*devicePoll{}} }

// slowDown records a poll at now and reports whether it came too early: a
// poll is due interval after the previous one seen here (or after issue, for
// the first one this instance sees), with a tenth of the interval of
// tolerance for network jitter. Each slow_down adds 5 s to the interval
// expected from then on (RFC 8628 §3.5).
func (d *devicePolls) slowDown(sig string, now, issued, expires time.Time, interval time.Duration) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if now.Sub(d.lastSweep) > time.Minute || len(d.m) >= maxDevicePolls {
		for k, p := range d.m {
			if !p.expires.After(now) {
				delete(d.m, k)
			}
		}
		d.lastSweep = now
	}
	p := d.m[sig]
	if p == nil {
		p = &devicePoll{last: issued, expires: expires, interval: interval}
		if len(d.m) < maxDevicePolls {
			d.m[sig] = p
		}
	}
	fast := now.Sub(p.last) < p.interval-p.interval/10
	p.last = now
	if fast {
		p.interval += slowDownStep
	}
	return fast
}

// forget drops a device code that needs no more polling.
func (d *devicePolls) forget(sig string) {
	d.mu.Lock()
	delete(d.m, sig)
	d.mu.Unlock()
}
