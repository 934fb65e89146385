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
	"strconv"
	"time"

	"github.com/oauthkit/authserver/authserver/ui"
	"github.com/oauthkit/authserver/storage"
)

// The verification page of the device flow (RFC 8628 §3.3), /device.
//
//  1. GET shows the entry form (input user_code), prefilled from
//     verification_uri_complete's ?user_code=; the user still has to press
//     Continue (§5.4: a prefilled link may come from an attacker).
//  2. Its POST checks the code, throttled per address (§5.1: user codes
//     are short enough to guess). Without a browser session it goes through
//     the sign-in page of the code flow, which comes back to step 1.
//  3. Signed in, the user sees the client's name, the requested scopes and
//     the code to compare with the device's, and allows or denies. The
//     decision is stored on the device code record (a compare-and-swap).

// deviceSignIn reports the user code of a sign-in started by the device
// page (the sign-in form's user_code field, or its query), formatted; only
// a well-formed code counts.
func deviceSignIn(r *http.Request) (string, bool) {
	v := r.PostForm.Get(fieldUserCode)
	if v == "" {
		v = r.URL.Query().Get(fieldUserCode)
	}
	if v == "" {
		return "", false
	}
	c, ok := normalizeUserCode(v)
	return formatUserCode(c), ok
}

// handleDevice serves GET and POST /device.
func (s *Server) handleDevice(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		prefill := limitString(r.URL.Query().Get(fieldUserCode), 20)
		if c, ok := normalizeUserCode(prefill); ok {
			prefill = formatUserCode(c)
		}
		s.renderDeviceEntry(w, r, http.StatusOK, prefill, "")
		return
	}
	form := readPageForm(w, r)
	if form == nil {
		s.errorPage(w, http.StatusBadRequest, errInvalidRequest, "The form could not be read.")
		return
	}
	if form.Has("decision") {
		s.deviceDecide(w, r, form)
		return
	}
	s.deviceEnter(w, r, form)
}

func (s *Server) renderDeviceEntry(w http.ResponseWriter, r *http.Request, status int, code, msg string) {
	binding, err := s.csrfBinding(w, r)
	if err != nil {
		s.errorPage(w, http.StatusInternalServerError, errServerError, genericServerErrorDetail)
		return
	}
	d := ui.Device{Action: s.path("/device"), CSRF: s.csrf.Token("device", binding), UserCode: code, Error: msg}
	s.pages.Render(w, status, ui.PageDevice, d)
}

// pendingDevice is a pending device authorization found by its user code.
type pendingDevice struct {
	code    string // normalised user code
	sig     string // the DeviceCode record's Signature
	payload devicePayload
	client  storage.Client
}

// lookupUserCode finds the pending device authorization of a normalised
// user code; storage.ErrNotFound when there is none (wrong, expired or
// already decided).
func (s *Server) lookupUserCode(ctx context.Context, code string) (*pendingDevice, error) {
	now := s.cfg.Now()
	uc, err := s.store.GetToken(ctx, storage.UserCode, s.userCodeKey(code))
	if err != nil {
		return nil, err
	}
	if !uc.ExpiresAt.After(now) {
		return nil, storage.ErrNotFound
	}
	t, err := s.store.GetToken(ctx, storage.DeviceCode, uc.RequestID)
	if err != nil {
		return nil, err
	}
	if !t.Active || !t.ExpiresAt.After(now) {
		return nil, storage.ErrNotFound
	}
	pd := &pendingDevice{code: code, sig: t.Signature}
	if err := json.Unmarshal(t.Payload, &pd.payload); err != nil {
		return nil, fmt.Errorf("authserver: device record: %w", err)
	}
	if pd.client, err = s.store.GetClient(ctx, t.ClientID); err != nil {
		return nil, err
	}
	return pd, nil
}

// deviceEnter takes the entry form: a throttled check of the user code.
func (s *Server) deviceEnter(w http.ResponseWriter, r *http.Request, form url.Values) {
	ctx := r.Context()
	if !s.csrf.Valid(form.Get(fieldCSRF), "device", s.cookieValue(r, csrfCookieName)) {
		s.csrfRejected(ctx, w, "device")
		return
	}
	raw := limitString(form.Get(fieldUserCode), 20)
	ip := s.clientIP(r)
	ctx = withState(ctx, &requestState{ip: ip})
	// Per address, an IPv6 /64 counting as one (limitKey): user codes have
	// no account whose failures could be counted instead (RFC 8628 §5.1).
	key := "user-code:" + limitKey(ip)
	if wait, err := s.userCodeThrottled(ctx, key); err != nil {
		s.unavailablePage(w, r, "user code throttle unavailable", err)
		return
	} else if wait > 0 {
		secs := retrySeconds(wait)
		w.Header().Set("Retry-After", strconv.Itoa(secs))
		s.metrics.throttled.WithLabelValues("user_code").Inc()
		s.audit(ctx, "user_code_throttled", slog.String("retry_after", retryAfter(wait)))
		s.renderDeviceEntry(w, r, http.StatusTooManyRequests, raw,
			"Too many wrong codes from your network. Wait "+seconds(secs)+" and try again.")
		return
	}
	code, ok := normalizeUserCode(raw)
	var pd *pendingDevice
	err := storage.ErrNotFound
	if ok {
		pd, err = s.lookupUserCode(ctx, code)
	}
	if errors.Is(err, storage.ErrNotFound) {
		if s.throttle != nil {
			s.throttle.failed(ctx, key, s.cfg.Throttle.IP)
		}
		s.audit(ctx, "user_code_wrong")
		s.renderDeviceEntry(w, r, http.StatusBadRequest, raw, "That code is not valid or has expired. Check the code shown on your device and try again.")
		return
	}
	if err != nil {
		s.unavailablePage(w, r, "user code lookup failed", err)
		return
	}
	bs, err := s.currentSession(ctx, r)
	if err != nil {
		s.unavailablePage(w, r, "reading the browser session failed", err)
		return
	}
	if bs == nil {
		seeOther(w, s.path("/login?"+url.Values{fieldUserCode: {formatUserCode(code)}}.Encode()))
		return
	}
	s.renderDeviceConfirm(w, pd, bs)
}

// userCodeThrottled reports how long the address behind key must wait
// before its next user code: the per-address policy of the password and
// client secret checks, counted on its own key and shared by instances.
func (s *Server) userCodeThrottled(ctx context.Context, key string) (time.Duration, error) {
	if s.throttle == nil {
		return 0, nil
	}
	if wait := s.throttle.isBlocked(key); wait > 0 {
		return wait, nil
	}
	err := s.throttle.reserve(ctx, key, s.cfg.Throttle.IP, false)
	var te *errThrottled
	if errors.As(err, &te) {
		s.throttle.block(key, te.wait)
		return te.wait, nil
	}
	return 0, err
}

func (s *Server) renderDeviceConfirm(w http.ResponseWriter, pd *pendingDevice, bs *browserSession) {
	shown := formatUserCode(pd.code)
	d := ui.Device{
		Confirm:    true,
		Action:     s.path("/device"),
		CSRF:       s.csrf.Token("device-consent", bs.id, pd.code),
		UserCode:   shown,
		ClientName: clientDisplayName(pd.client),
		ClientID:   pd.client.ID,
		UserName:   bs.user.Email,
		Hidden:     []ui.Field{{Name: fieldUserCode, Value: shown}},
	}
	for _, sc := range pd.payload.Scopes {
		d.Scopes = append(d.Scopes, ui.Scope{Name: sc, Description: scopeDescriptions[sc]})
	}
	s.pages.Render(w, http.StatusOK, ui.PageDevice, d)
}

// deviceDecide records the signed-in user's Allow or Deny on the device
// code record; only the first decision counts.
func (s *Server) deviceDecide(w http.ResponseWriter, r *http.Request, form url.Values) {
	ctx := r.Context()
	code, ok := normalizeUserCode(form.Get(fieldUserCode))
	if !ok {
		s.errorPage(w, http.StatusBadRequest, errInvalidRequest, "The form could not be read.")
		return
	}
	bs, err := s.currentSession(ctx, r)
	if err != nil {
		s.unavailablePage(w, r, "reading the browser session failed", err)
		return
	}
	if bs == nil || !s.csrf.Valid(form.Get(fieldCSRF), "device-consent", bs.id, code) {
		s.csrfRejected(ctx, w, "device")
		return
	}
	pd, err := s.lookupUserCode(ctx, code)
	if errors.Is(err, storage.ErrNotFound) {
		s.errorPage(w, http.StatusBadRequest, errInvalidRequest, "This code has expired or was already used. Start again on your device.")
		return
	}
	if err != nil {
		s.unavailablePage(w, r, "user code lookup failed", err)
		return
	}
	var d deviceDecision
	switch form.Get("decision") {
	case "allow":
		sess := newSession()
		fillUserSession(sess, bs.user)
		sess.AuthTime = bs.authTime
		sess.SessionID = bs.sid
		sess.Resources = pd.payload.Resources
		if slices.Contains(pd.payload.Scopes, scopeOpenID) {
			sess.OIDC = &oidcFacts{AMR: []string{"pwd"}}
		}
		d = deviceDecision{Session: sess, Scopes: pd.payload.Scopes, Marked: true}
	case "deny":
		d = deviceDecision{Denied: true}
	default:
		s.errorPage(w, http.StatusBadRequest, errInvalidRequest, "Choose Allow or Deny.")
		return
	}
	b, err := json.Marshal(d)
	if err == nil {
		err = s.recordDeviceDecision(ctx, pd, d, b)
	}
	if errors.Is(err, storage.ErrNotFound) {
		s.errorPage(w, http.StatusBadRequest, errInvalidRequest, "This code was already used. Start again on your device.")
		return
	}
	if err != nil {
		s.unavailablePage(w, r, "could not record a device decision", err)
		return
	}
	if err := s.store.DeleteToken(ctx, storage.UserCode, pd.payload.UserCode); err != nil && !errors.Is(err, storage.ErrNotFound) {
		s.log.Warn("could not delete a used user code", "err", err)
	}
	name := clientDisplayName(pd.client)
	if d.Denied {
		s.audit(ctx, "device_denied", slog.String("client_id", pd.client.ID), slog.String("sub", bs.user.ID))
		s.pages.Render(w, http.StatusOK, ui.PageMessage, ui.Message{Title: "Access denied", Text: name + " was not given access. You can close this page."})
		return
	}
	s.audit(ctx, "device_approved", slog.String("client_id", pd.client.ID), slog.String("sub", bs.user.ID))
	s.pages.Render(w, http.StatusOK, ui.PageMessage, ui.Message{Title: "Device connected", Text: name + " now has access. You can return to your device."})
}
