package authserver

import (
	"net/http"

	"github.com/gorilla/mux"
)

// Handler returns the server's HTTP handler. Every route is listed here.
func (s *Server) Handler() http.Handler {
	r := mux.NewRouter()
	r.HandleFunc("/token", s.handleToken)
	r.HandleFunc("/introspect", s.handleIntrospect)
	r.HandleFunc("/revoke", s.handleRevoke)
	r.Handle("/.well-known/jwks.json", s.keys.JWKSHandler())
	r.HandleFunc("/.well-known/oauth-authorization-server", s.handleMetadata).Methods(http.MethodGet, http.MethodHead)
	for _, e := range s.extra {
		r.PathPrefix(e.pattern).Handler(e.h)
	}
	r.NotFoundHandler = http.HandlerFunc(notFound)
	r.MethodNotAllowedHandler = http.HandlerFunc(methodNotAllowed)
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
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("X-Frame-Options", "DENY")
		next.ServeHTTP(w, r)
	})
}
