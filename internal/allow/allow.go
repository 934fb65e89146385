// Package allow computes the Allow header of a 405 response (RFC 9110
// §15.5.6) for a gorilla/mux router, whose method-not-allowed handler is
// not told which methods the path takes.
package allow

import (
	"net/http"
	"strings"

	"github.com/gorilla/mux"
)

// probed are the methods tried, in the order Allow lists them.
var probed = []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete}

// Methods lists the methods some route of r takes at req's path and
// host, such as "GET, HEAD"; "" when none does.
func Methods(r *mux.Router, req *http.Request) string {
	var allow []string
	for _, m := range probed {
		probe := req.Clone(req.Context())
		probe.Method = m
		var match mux.RouteMatch
		if r.Match(probe, &match) && match.MatchErr == nil {
			allow = append(allow, m)
		}
	}
	return strings.Join(allow, ", ")
}
