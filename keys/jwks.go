package keys

import (
	"net/http"
	"strconv"
	"strings"
	"time"
)

// JWKS returns the public JWK Set (RFC 7517 §5) of every published key and
// its strong ETag. Each key carries kid, alg and use "sig" and public members
// only. The body is computed once per key set change; it is shared and MUST
// NOT be modified.
func (m *Manager) JWKS() (body []byte, etag string) {
	s := m.snap.Load()
	return s.jwks, s.etag
}

// JWKSHandler serves JWKS. GET and HEAD answer with Content-Type
// application/json, "Cache-Control: public, max-age=N" where N is MaxAge in
// seconds, and the ETag; a matching If-None-Match (RFC 9110 §13.1.2) answers
// 304 Not Modified. Other methods answer 405.
func (m *Manager) JWKSHandler() http.Handler {
	cacheControl := "public, max-age=" + strconv.FormatInt(int64(m.MaxAge()/time.Second), 10)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, http.StatusText(http.StatusMethodNotAllowed), http.StatusMethodNotAllowed)
			return
		}
		body, etag := m.JWKS()
		h := w.Header()
		h.Set("Cache-Control", cacheControl)
		h.Set("ETag", etag)
		if noneMatch(r.Header.Values("If-None-Match"), etag) {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		h.Set("Content-Type", "application/json")
		h.Set("Content-Length", strconv.Itoa(len(body)))
		h.Set("X-Content-Type-Options", "nosniff")
		w.WriteHeader(http.StatusOK)
		if r.Method == http.MethodGet {
			_, _ = w.Write(body)
		}
	})
}

// noneMatch reports whether an If-None-Match header matches etag, using the
// weak comparison RFC 9110 §13.1.2 prescribes.
func noneMatch(values []string, etag string) bool {
	for _, v := range values {
		for t := range strings.SplitSeq(v, ",") {
			t = strings.TrimSpace(t)
			if t == "*" || strings.TrimPrefix(t, "W/") == etag {
				return true
			}
		}
	}
	return false
}
