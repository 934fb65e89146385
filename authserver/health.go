package authserver

import (
	"context"
	"net/http"
	"time"
)

// handleHealthz reports that the process is alive.
func (s *Server) handleHealthz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// handleReadyz reports whether the instance should receive traffic: the
// database is reachable with its migrations applied, a signing key is
// loaded, and the server is not shutting down.
func (s *Server) handleReadyz(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	checks := map[string]string{"database": "ok", "signing_key": "ok", "shutdown": "no"}
	ok := true
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if err := s.store.Ping(ctx); err != nil {
		checks["database"], ok = "unavailable", false
		s.log.Warn("readiness: database check failed", "err", err)
	}
	if _, err := s.keys.Current(); err != nil {
		checks["signing_key"], ok = "missing", false
	}
	if s.draining.Load() {
		checks["shutdown"], ok = "yes", false
	}
	status := http.StatusOK
	if !ok {
		status = http.StatusServiceUnavailable
	}
	writeJSON(w, status, map[string]any{"ready": ok, "checks": checks})
}

// Drain makes /readyz fail so that load balancers stop sending traffic;
// call it when shutdown begins.
func (s *Server) Drain() { s.draining.Store(true) }
