package authserver

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"

	"github.com/ory/fosite"

	"github.com/oauthkit/authserver/storage"
)

// Error codes of RFC 6749 §5.2, RFC 7009 §2.2.1 and RFC 6750 §3.1.
const (
	errInvalidRequest          = "invalid_request"
	errInvalidClient           = "invalid_client"
	errInvalidGrant            = "invalid_grant"
	errUnauthorizedClient      = "unauthorized_client"
	errUnsupportedGrantType    = "unsupported_grant_type"
	errInvalidScope            = "invalid_scope"
	errServerError             = "server_error"
	errTemporarilyUnavailable  = "temporarily_unavailable"
	errUnsupportedTokenType    = "unsupported_token_type"
	errInvalidToken            = "invalid_token"
	errInsufficientScope       = "insufficient_scope"
	errSlowDown                = "slow_down"
	realm                      = "authserver"
	basicChallenge             = `Basic realm="` + realm + `", charset="UTF-8"`
	contentTypeJSON            = "application/json;charset=UTF-8"
	genericServerErrorDetail   = "The server encountered an unexpected condition."
	genericUnavailableDetail   = "The service is temporarily unavailable; retry later."
	invalidTextDetail          = "A parameter holds a NUL byte or is not valid UTF-8."
	genericInvalidClientDetail = "Client authentication failed."
)

// oauthError is an error in the vocabulary of RFC 6749 §5.2, ready for the
// wire. Description is shown to clients; Cause is only logged.
type oauthError struct {
	Code        string
	Description string
	Status      int
	// RetryAfter, in seconds, is sent as Retry-After when positive.
	RetryAfter int
	// bearer selects a Bearer challenge (RFC 6750 §3) instead of Basic;
	// noCredentials leaves the error out of it, for a request that sent no
	// token at all (RFC 6750 §3.1).
	bearer        bool
	noCredentials bool
	Cause         error
}

func (e *oauthError) Error() string {
	if e.Cause != nil {
		return e.Code + ": " + e.Description + ": " + e.Cause.Error()
	}
	return e.Code + ": " + e.Description
}

func (e *oauthError) Unwrap() error { return e.Cause }

func newError(status int, code, desc string) *oauthError {
	return &oauthError{Code: code, Description: desc, Status: status}
}

func invalidRequest(desc string) *oauthError {
	return newError(http.StatusBadRequest, errInvalidRequest, desc)
}

func invalidClient() *oauthError {
	return newError(http.StatusUnauthorized, errInvalidClient, genericInvalidClientDetail)
}

func serverError(cause error) *oauthError {
	return &oauthError{Code: errServerError, Description: genericServerErrorDetail, Status: http.StatusInternalServerError, Cause: cause}
}

// unavailable is the error of a storage failure: 503, unless the request
// itself held text the backend cannot store (storage.ErrInvalidText), which
// is the client's invalid_request.
func unavailable(cause error) *oauthError {
	if errors.Is(cause, storage.ErrInvalidText) {
		return invalidRequest(invalidTextDetail)
	}
	return &oauthError{Code: errTemporarilyUnavailable, Description: genericUnavailableDetail, Status: http.StatusServiceUnavailable, Cause: cause}
}

// toOAuthError converts any error (ours or fosite's) into an RFC 6749 §5.2
// error. fosite's non-standard codes are mapped to the nearest standard one;
// its debug text never reaches the client.
func toOAuthError(err error) *oauthError {
	var oe *oauthError
	if errors.As(err, &oe) {
		return oe
	}
	var fe *fosite.RFC6749Error
	if !errors.As(err, &fe) {
		return serverError(err)
	}
	// An oauthError wrapped by fosite (from our storage adapter or client
	// authentication) wins over fosite's generic classification.
	if errors.As(fe.Unwrap(), &oe) {
		return oe
	}
	desc := fe.HintField
	if desc == "" {
		desc = fe.DescriptionField
	}
	desc = descriptionChars(desc)
	switch fe.ErrorField {
	case errInvalidRequest, errInvalidGrant, errUnauthorizedClient, errUnsupportedGrantType, errInvalidScope:
		return &oauthError{Code: fe.ErrorField, Description: desc, Status: http.StatusBadRequest, Cause: err}
	case errInvalidClient, "request_unauthorized":
		o := invalidClient()
		o.Cause = err
		return o
	case "scope_not_granted", "access_denied":
		return &oauthError{Code: errInvalidScope, Description: desc, Status: http.StatusBadRequest, Cause: err}
	case "token_inactive", "token_expired", "invalid_token", "token_signature_mismatch", "token_claim":
		return &oauthError{Code: errInvalidGrant, Description: "The provided grant is invalid, expired or revoked.", Status: http.StatusBadRequest, Cause: err}
	case errTemporarilyUnavailable:
		return unavailable(err)
	case errServerError, "error", "misconfiguration":
		return serverError(err)
	default:
		return &oauthError{Code: errInvalidRequest, Description: desc, Status: http.StatusBadRequest, Cause: err}
	}
}

// noStore sets the caching headers RFC 6749 §5.1 requires on every response
// that carries (or could carry) tokens or credentials.
func noStore(w http.ResponseWriter) {
	h := w.Header()
	h["Cache-Control"] = headerNoStore
	h["Pragma"] = headerNoCache
}

// Header values set on every response, shared so that setting them costs
// no allocation. Nothing writes into them: adding a value to one of these
// headers appends to a full slice, which copies it.
var (
	headerNoStore   = []string{"no-store"}
	headerNoCache   = []string{"no-cache"}
	headerJSON      = []string{contentTypeJSON}
	headerNosniff   = []string{"nosniff"}
	headerNoRefer   = []string{"no-referrer"}
	headerDenyFrame = []string{"DENY"}
)

// writeJSON writes v with the given status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"error":"server_error"}`)
	}
	w.Header()["Content-Type"] = headerJSON
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// writeOAuthError writes e as an RFC 6749 §5.2 body. A 401 carries the Basic
// challenge (RFC 6749 §5.2: invalid_client).
func writeOAuthError(w http.ResponseWriter, e *oauthError) {
	switch {
	case e.bearer && e.noCredentials:
		w.Header().Set("WWW-Authenticate", `Bearer realm="`+realm+`"`)
	case e.bearer:
		w.Header().Set("WWW-Authenticate", `Bearer realm="`+realm+`", error="`+e.Code+`"`)
	case e.Status == http.StatusUnauthorized:
		w.Header().Set("WWW-Authenticate", basicChallenge)
	}
	if e.RetryAfter > 0 {
		w.Header().Set("Retry-After", itoa(e.RetryAfter))
	}
	body := struct {
		Error       string `json:"error"`
		Description string `json:"error_description,omitempty"`
	}{e.Code, e.Description}
	writeJSON(w, e.Status, body)
}

// descriptionChars keeps an error_description within the characters RFC 6749
// §5.2 allows (%x20-21 / %x23-5B / %x5D-7E): fosite's hints quote parameter
// names with '"'.
func descriptionChars(d string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r == '"':
			return '\''
		case r < 0x20 || r > 0x7e || r == '\\':
			return '?'
		}
		return r
	}, d)
}
