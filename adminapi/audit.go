package adminapi

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"sync"
)

// AuditRing keeps the last audit events in memory for GET /admin/v1/audit.
// It is an io.Writer of audit JSON lines: give it to authserver.NewAuditLog
// next to the real sink (io.MultiWriter), so that it sees exactly what the
// audit log writes, secrets excluded by construction.
type AuditRing struct {
	mu    sync.Mutex
	lines []json.RawMessage
	next  int
	full  bool
}

// NewAuditRing keeps the last n events (at least 1).
func NewAuditRing(n int) *AuditRing {
	return &AuditRing{lines: make([]json.RawMessage, max(n, 1))}
}

// Write records the JSON lines in p; lines that are not JSON objects are
// dropped. It never fails.
func (a *AuditRing) Write(p []byte) (int, error) {
	for line := range bytes.Lines(p) {
		line = bytes.TrimSpace(line)
		if len(line) == 0 || line[0] != '{' || !json.Valid(line) {
			continue
		}
		a.mu.Lock()
		a.lines[a.next] = bytes.Clone(line)
		a.next = (a.next + 1) % len(a.lines)
		if a.next == 0 {
			a.full = true
		}
		a.mu.Unlock()
	}
	return len(p), nil
}

// Last returns at most limit events, newest first, whose attributes equal
// every entry of match.
func (a *AuditRing) Last(limit int, match map[string]string) []json.RawMessage {
	a.mu.Lock()
	n := a.next
	if a.full {
		n = len(a.lines)
	}
	snap := make([]json.RawMessage, 0, n)
	for i := 1; i <= n; i++ {
		snap = append(snap, a.lines[(a.next-i+len(a.lines))%len(a.lines)])
	}
	a.mu.Unlock()
	out := []json.RawMessage{}
	for _, l := range snap {
		if len(out) == limit {
			break
		}
		if len(match) > 0 {
			var m map[string]any
			if json.Unmarshal(l, &m) != nil {
				continue
			}
			ok := true
			for k, v := range match {
				if fmt.Sprint(m[k]) != v {
					ok = false
					break
				}
			}
			if !ok {
				continue
			}
		}
		out = append(out, l)
	}
	return out
}

// auditFilters are the query parameters GET /audit filters on.
var auditFilters = []string{"event", "sub", "client_id", "actor_client_id", "actor_cert_subject", "command", "ip"}

func (a *API) listAudit(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	limit := 100
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 1000 {
			return problem(http.StatusBadRequest, "limit must be an integer from 1 to 1000")
		}
		limit = n
	}
	match := map[string]string{}
	for _, f := range auditFilters {
		if v := q.Get(f); v != "" {
			match[f] = v
		}
	}
	items := []json.RawMessage{}
	if a.cfg.Ring != nil {
		items = a.cfg.Ring.Last(limit, match)
	}
	writeJSON(w, http.StatusOK, List[json.RawMessage]{Items: items})
	return nil
}
