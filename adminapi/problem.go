package adminapi

import (
	"encoding/json"
	"net/http"
)

// Problem is an RFC 9457 problem details object.
type Problem struct {
	// Type is a URI reference identifying the problem type; "about:blank"
	// when the status says it all.
	Type string `json:"type"`
	// Title is the short summary of the type (the status text for
	// about:blank).
	Title string `json:"title"`
	// Status is the HTTP status code.
	Status int `json:"status"`
	// Detail explains this occurrence; it never holds a secret.
	Detail string `json:"detail,omitempty"`
	// Instance is the request path.
	Instance string `json:"instance,omitempty"`
}

// writeProblem writes an RFC 9457 problem with the about:blank type.
func writeProblem(w http.ResponseWriter, r *http.Request, status int, detail string) {
	p := Problem{Type: "about:blank", Title: http.StatusText(status), Status: status, Detail: detail}
	if r != nil {
		p.Instance = r.URL.Path
	}
	w.Header().Set("Content-Type", "application/problem+json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(p)
}

// apiError is an error with the status and the client-safe detail of the
// problem it becomes.
type apiError struct {
	status int
	detail string
}

func (e *apiError) Error() string { return e.detail }

// problemf returns an apiError.
func problem(status int, detail string) error { return &apiError{status: status, detail: detail} }
