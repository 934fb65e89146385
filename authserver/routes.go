package authserver

import (
	"net/http"

	"github.com/gorilla/mux"

	"github.com/oauthkit/authserver/authserver/ui"
	"github.com/oauthkit/authserver/internal/allow"
	"github.com/oauthkit/authserver/internal/tracing"
)

// Handler returns the server's HTTP handler. Every route is listed here.
func (s *Server) Handler() http.Handler {
	r := mux.NewRouter()
	m := func(endpoint string, h http.Handler) http.Handler {
		return tracing.Handler(s.cfg.TracerProvider, endpoint, s.metrics.instrument(endpoint, h))
	}
	r.Handle("/token", m("token", s.cors(http.HandlerFunc(s.handleToken))))
	r.Handle("/introspect", m("introspect", http.HandlerFunc(s.handleIntrospect)))
	r.Handle("/revoke", m("revoke", s.cors(http.HandlerFunc(s.handleRevoke))))
	r.Handle("/authorize", m("authorize", http.HandlerFunc(s.handleAuthorize))).Methods(http.MethodGet, http.MethodPost)
	r.Handle("/device_authorization", m("device_authorization", s.cors(http.HandlerFunc(s.handleDeviceAuthorization))))
	r.Handle("/device", m("device", http.HandlerFunc(s.handleDevice))).Methods(http.MethodGet, http.MethodPost)
	r.Handle("/par", m("par", s.cors(http.HandlerFunc(s.handlePAR))))
	r.Handle("/register", m("register", http.HandlerFunc(s.handleRegister))).Methods(http.MethodPost)
	r.Handle("/register/{client_id}", m("register", http.HandlerFunc(s.handleRegistration))).Methods(http.MethodGet, http.MethodPut, http.MethodDelete)
	r.Handle("/login", m("login", http.HandlerFunc(s.handleLogin))).Methods(http.MethodGet, http.MethodPost)
	r.Handle("/consent", m("consent", http.HandlerFunc(s.handleConsent))).Methods(http.MethodGet, http.MethodPost)
	r.Handle("/consents", m("consents", http.HandlerFunc(s.handleConsents))).Methods(http.MethodGet, http.MethodPost)
	r.Handle("/logout", m("logout", http.HandlerFunc(s.handleLogout))).Methods(http.MethodGet, http.MethodPost)
	r.Handle("/end_session", m("end_session", http.HandlerFunc(s.handleEndSession))).Methods(http.MethodGet, http.MethodPost)
	r.PathPrefix(ui.StaticPrefix).Handler(s.pages.StaticHandler()).Methods(http.MethodGet, http.MethodHead)
	r.Handle(statusAggregationPath, m("statuslist", http.HandlerFunc(s.handleStatusAggregation))).Methods(http.MethodGet, http.MethodHead)
	r.Handle(statusListPath+"{id}", m("statuslist", http.HandlerFunc(s.handleStatusList))).Methods(http.MethodGet, http.MethodHead)
	r.Handle("/.well-known/jwks.json", m("jwks", s.keys.JWKSHandler())).Methods(http.MethodGet, http.MethodHead)
	r.Handle("/.well-known/oauth-authorization-server", m("metadata", http.HandlerFunc(s.handleMetadata))).Methods(http.MethodGet, http.MethodHead)
	r.Handle("/.well-known/openid-configuration", m("metadata", http.HandlerFunc(s.handleMetadata))).Methods(http.MethodGet, http.MethodHead)
	r.Handle("/userinfo", m("userinfo", s.cors(http.HandlerFunc(s.handleUserinfo), http.MethodGet, http.MethodPost))).Methods(http.MethodGet, http.MethodPost, http.MethodOptions)
	r.HandleFunc("/healthz", s.handleHealthz).Methods(http.MethodGet, http.MethodHead)
	r.HandleFunc("/readyz", s.handleReadyz).Methods(http.MethodGet, http.MethodHead)
	if s.cfg.MetricsOnMainHandler {
		r.Handle("/metrics", s.MetricsHandler()).Methods(http.MethodGet)
	}
	for _, e := range s.extra {
		if e.exact {
			r.Handle(e.pattern, m("metadata", e.h)).Methods(http.MethodGet, http.MethodHead)
			continue
		}
		r.PathPrefix(e.pattern).Handler(m("api", e.h))
	}
	r.NotFoundHandler = http.HandlerFunc(notFound)
	r.MethodNotAllowedHandler = http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if allow := allow.Methods(r, req); allow != "" {
			w.Header().Set("Allow", allow)
		}
		methodNotAllowed(w, req)
	})
	return securityHeaders(r)
}

func notFound(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusNotFound, map[string]string{"error": "not_found"})
}

func methodNotAllowed(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusMethodNotAllowed, map[string]string{"error": "method_not_allowed"})
}

// securityHeaders adds the headers every response carries.
func securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h["X-Content-Type-Options"] = headerNosniff
		h["Referrer-Policy"] = headerNoRefer
		h["X-Frame-Options"] = headerDenyFrame
		next.ServeHTTP(w, r)
	})
}

// MetricsHandler serves the Prometheus metrics.
func (s *Server) MetricsHandler() http.Handler { return s.metrics.handler() }
