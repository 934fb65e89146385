package authserver

import (
	"log/slog"
	"net/http"
)

// handlePAR serves the pushed authorization request endpoint (RFC 9126).
// The client authenticates as at the token endpoint (a public client sends
// its client_id); the request is validated exactly as at /authorize, and
// stored by fosite's PAR handler under a single-use request_uri.
func (s *Server) handlePAR(w http.ResponseWriter, r *http.Request) {
	noStore(w)
	oerr := s.pushAuthorize(w, r)
	if oerr != nil {
		s.logError(r, "pushed authorization request refused", oerr)
		writeOAuthError(w, oerr)
	}
}

func (s *Server) pushAuthorize(w http.ResponseWriter, r *http.Request) *oauthError {
	form, oerr := s.parseForm(w, r, "resource")
	if oerr != nil {
		return oerr
	}
	st := &requestState{ip: s.clientIP(r)}
	ctx := withState(r.Context(), st)
	c, oerr := s.authenticateClient(ctx, r, form)
	if oerr != nil {
		return oerr
	}
	st.client, st.clientAuthenticated = &c, true
	if form.Has("request_uri") {
		return invalidRequest("A pushed authorization request must not contain request_uri.")
	}
	for _, vs := range form {
		for _, v := range vs {
			if len(v) > maxAuthorizeParam {
				return invalidRequest("A parameter of the authorization request is too long.")
			}
		}
	}
	if !form.Has("client_id") {
		form.Set("client_id", c.ID)
	}
	if oerr := s.pushedDPoP(ctx, r, form); oerr != nil {
		return oerr
	}
	if _, aerr := s.validateAuthorize(ctx, form, true, false); aerr != nil {
		status := aerr.status
		if status == 0 || (status < 500 && status != http.StatusBadRequest) {
			status = http.StatusBadRequest
		}
		return &oauthError{Code: aerr.code, Description: aerr.desc, Status: status, Cause: aerr.cause}
	}
	r.Form, r.PostForm = form, form
	ar, err := s.provider.NewPushedAuthorizeRequest(ctx, r)
	if err != nil {
		return toOAuthError(err)
	}
	// Client credentials never reach the stored request.
	for _, k := range []string{"client_secret", "client_assertion", "client_assertion_type"} {
		ar.GetRequestForm().Del(k)
	}
	resp, err := s.provider.NewPushedAuthorizeResponse(ctx, ar, newSession())
	if err != nil {
		return toOAuthError(err)
	}
	s.audit(ctx, "authorization_request_pushed", slog.String("client_id", c.ID))
	writeJSON(w, http.StatusCreated, struct {
		RequestURI string `json:"request_uri"`
		ExpiresIn  int    `json:"expires_in"`
	}{resp.GetRequestURI(), resp.GetExpiresIn()})
	return nil
}
