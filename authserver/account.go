package authserver

import (
	"log/slog"
	"net/http"
	"net/url"
	"strings"

	"github.com/oauthkit/authserver/authserver/ui"
)

// handleConsents lets a signed-in user see the applications they gave
// access to and revoke that consent (GET lists, POST revokes one): a
// consent is remembered until the user or an administrator revokes it.
func (s *Server) handleConsents(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	bs, err := s.currentSession(ctx, r)
	if err != nil {
		s.unavailablePage(w, r, "reading the browser session failed", err)
		return
	}
	if bs == nil {
		if r.Method == http.MethodPost {
			s.errorPage(w, http.StatusForbidden, errInvalidRequest, "Your session has ended. Sign in and try again.")
			return
		}
		seeOther(w, s.path("/login"))
		return
	}
	if r.Method == http.MethodPost {
		form := readPageForm(w, r)
		if form == nil || !s.csrf.Valid(form.Get(fieldCSRF), "consents", bs.id) {
			s.csrfRejected(ctx, w, "consents")
			return
		}
		clientID := form.Get("client_id")
		if clientID == "" {
			s.errorPage(w, http.StatusBadRequest, errInvalidRequest, "Choose an application.")
			return
		}
		n, err := RevokeConsents(ctx, s.store, bs.user.ID, clientID)
		if err != nil {
			s.unavailablePage(w, r, "revoking consents failed", err)
			return
		}
		if n > 0 {
			s.audit(ctx, "consent_revoked", slog.String("client_id", safeParam(clientID)), slog.String("sub", bs.user.ID))
		}
		// Post/redirect/get keeps a reload from resubmitting.
		seeOther(w, s.path("/consents?"+url.Values{"done": {"1"}}.Encode()))
		return
	}
	msg := ""
	if r.URL.Query().Get("done") != "" {
		msg = "Access revoked."
	}
	cs, err := ListConsents(ctx, s.store, bs.user.ID)
	if err != nil {
		s.unavailablePage(w, r, "listing consents failed", err)
		return
	}
	d := ui.Consents{UserName: bs.user.Email, Action: s.path("/consents"), CSRF: s.csrf.Token("consents", bs.id), Message: msg}
	for _, c := range cs {
		name := c.ClientID
		if cl, err := s.store.GetClient(ctx, c.ClientID); err == nil {
			name = clientDisplayName(cl)
		}
		d.Consents = append(d.Consents, ui.ConsentEntry{ClientID: c.ClientID, ClientName: name, Scopes: strings.Join(c.Scopes, " ")})
	}
	s.pages.Render(w, http.StatusOK, ui.PageConsents, d)
}
