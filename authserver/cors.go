package authserver

import (
	"net/http"
	"slices"
	"strings"
)

// cors allows browser clients from the configured origins to call an OAuth
// endpoint (Fetch standard CORS) with methods (POST when none are given).
// With no origins configured it is off: no CORS header is ever sent and
// preflights are refused.
func (s *Server) cors(next http.Handler, methods ...string) http.Handler {
	allowMethods := http.MethodPost
	if len(methods) > 0 {
		allowMethods = strings.Join(methods, ", ")
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		origin := r.Header.Get("Origin")
		allowed := origin != "" && slices.Contains(s.cfg.CORSAllowedOrigins, origin)
		if origin != "" {
			w.Header().Add("Vary", "Origin")
		}
		if allowed {
			w.Header().Set("Access-Control-Allow-Origin", origin)
		}
		if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
			if !allowed {
				w.WriteHeader(http.StatusForbidden)
				return
			}
			h := w.Header()
			h.Set("Access-Control-Allow-Methods", allowMethods)
			h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type")
			h.Set("Access-Control-Max-Age", "600")
			w.WriteHeader(http.StatusNoContent)
			return
		}
		next.ServeHTTP(w, r)
	})
}
