// Package demoapi is the demo API of the seed application, rebuilt on
// package resource: GET /api/me, /api/protected and /api/admin/users behind
// bearer-token authentication.
//
// The authorization server mounts it in-process (with a storage-backed
// Directory); cmd/resourceserver runs it as a separate process against a
// remote issuer, the way a third-party API would.
package demoapi

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"

	"github.com/oauthkit/authserver/resource"
)

// UserInfo describes a user as the API shows it.
type UserInfo struct {
	ID    string   `json:"id"`
	Name  string   `json:"name"`
	Email string   `json:"email"`
	Roles []string `json:"roles"`
}

// Directory lists the users shown to administrators by /api/admin/users.
type Directory interface {
	ListUsers(ctx context.Context) ([]UserInfo, error)
}

// AdminRole is the role /api/admin/users requires.
const AdminRole = "admin"

// Handler returns the demo API. Every route needs a valid access token;
// /api/admin/users also needs the admin role and answers 403
// insufficient_scope without it. Refusals are auth's (RFC 6750 §3).
func Handler(auth *resource.Authenticator, dir Directory) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /api/me", auth.Middleware(http.HandlerFunc(me)))
	mux.Handle("GET /api/protected", auth.Middleware(http.HandlerFunc(protected)))
	mux.Handle("GET /api/admin/users", auth.Middleware(auth.RequireAnyRole(AdminRole)(listUsers(dir))))
	return mux
}

// me answers the caller's own profile, from the token's claims.
func me(w http.ResponseWriter, r *http.Request) {
	c := claims(r)
	writeJSON(w, http.StatusOK, UserInfo{ID: c.Subject, Name: c.Name, Email: c.Email, Roles: nonNil(c.Roles)})
}

// protected greets the caller by name, or by subject when the token has no
// name (a client_credentials token).
func protected(w http.ResponseWriter, r *http.Request) {
	c := claims(r)
	who := c.Name
	if who == "" {
		who = c.Subject
	}
	writeJSON(w, http.StatusOK, struct {
		Message string   `json:"message"`
		Roles   []string `json:"roles"`
	}{
		Message: "Hello, " + who + "! You have access to this protected resource.",
		Roles:   nonNil(c.Roles),
	})
}

// listUsers answers the directory's users.
func listUsers(dir Directory) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		users, err := dir.ListUsers(r.Context())
		if err != nil {
			slog.ErrorContext(r.Context(), "demoapi: listing users", slog.Any("error", err))
			writeJSON(w, http.StatusInternalServerError, map[string]string{"error": "server_error"})
			return
		}
		out := make([]UserInfo, len(users)) // a copy: the directory may share its slice
		for i, u := range users {
			u.Roles = nonNil(u.Roles)
			out[i] = u
		}
		writeJSON(w, http.StatusOK, struct {
			Users []UserInfo `json:"users"`
		}{out})
	})
}

// claims returns the claims the middleware put in the context. The routes
// are all behind it, so their absence is a wiring bug.
func claims(r *http.Request) *resource.Claims {
	c, ok := resource.FromContext(r.Context())
	if !ok {
		panic("demoapi: handler reached without authentication")
	}
	return c
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// writeJSON writes v with status. The answers describe one user, so no
// cache may keep them.
func writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(append(body, '\n'))
}
