package resource

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"
)

// ErrorCode is an error code a resource server returns to a client.
type ErrorCode string

// Error codes of RFC 6750 §3.1, and the one non-Bearer code this package uses
// when it cannot decide at all.
const (
	// CodeInvalidRequest: the request is missing a required parameter,
	// includes an unsupported parameter or repeats one, uses more than one
	// method to carry the token, or is otherwise malformed (RFC 6750 §3.1).
	// Status 400.
	CodeInvalidRequest ErrorCode = "invalid_request"
	// CodeInvalidToken: the access token is expired, revoked, malformed or
	// invalid for other reasons (RFC 6750 §3.1). Status 401.
	CodeInvalidToken ErrorCode = "invalid_token"
	// CodeInsufficientScope: the request requires higher privileges than the
	// access token provides (RFC 6750 §3.1). Status 403. This package also
	// uses it for a failed role check, for which no better code exists.
	CodeInsufficientScope ErrorCode = "insufficient_scope"
	// CodeTemporarilyUnavailable: the token could not be checked because the
	// authorization server (its JWKS or its introspection endpoint) could not
	// be reached and nothing usable was cached. Borrowed from RFC 6749 §4.1.2.1;
	// status 503. It never appears in a WWW-Authenticate challenge.
	CodeTemporarilyUnavailable ErrorCode = "temporarily_unavailable"
)

// Sentinel errors returned (wrapped) by Verify and by KeySet implementations.
// Test them with errors.Is.
var (
	// ErrNoToken means the request carries no bearer token at all. The
	// challenge then has no error attribute (RFC 6750 §3.1).
	ErrNoToken = errors.New("resource: no bearer token")
	// ErrMalformedRequest means the request carries credentials in a form
	// this package refuses: two credentials, a bad Authorization syntax.
	ErrMalformedRequest = errors.New("resource: malformed request")
	// ErrInvalidToken is wrapped by every error that rejects the token
	// itself: bad signature, wrong issuer or audience, expired, inactive.
	ErrInvalidToken = errors.New("resource: invalid token")
	// ErrTokenExpired is wrapped (together with ErrInvalidToken) when the
	// token's exp lies in the past, beyond the clock leeway. A validly
	// signed, expired token is the only case that yields it, so callers can
	// tell an expired token from a forged one.
	ErrTokenExpired = errors.New("resource: token expired")
	// ErrTokenNotYetValid is wrapped (together with ErrInvalidToken) when the
	// token's nbf or iat lies in the future, beyond the clock leeway.
	ErrTokenNotYetValid = errors.New("resource: token not yet valid")
	// ErrTokenInactive is wrapped (together with ErrInvalidToken) when the
	// introspection endpoint answers {"active":false} (RFC 7662 §2.2).
	ErrTokenInactive = errors.New("resource: token inactive")
	// ErrUnknownKey is wrapped (together with ErrInvalidToken) when no key
	// in the key set has the token's kid.
	ErrUnknownKey = errors.New("resource: unknown signing key")
	// ErrUnavailable means the token could not be checked because the
	// authorization server could not be reached and nothing usable was
	// cached. The middleware answers 503.
	ErrUnavailable = errors.New("resource: authorization server unavailable")
)

// Error is a refusal as the middleware reports it: an RFC 6750 §3 error with
// its HTTP status. It is what Config.ErrorHandler receives.
type Error struct {
	// Status is the HTTP status: 400, 401, 403 or 503.
	Status int
	// Code is the RFC 6750 error code. It is empty when the request carried
	// no token at all (RFC 6750 §3.1: no error attribute in that case).
	Code ErrorCode
	// Description is a short, human-readable explanation that is safe to
	// send to the client. It never contains the token.
	Description string
	// Scope lists, space-separated, the scopes the request needs. It is set
	// only with CodeInsufficientScope from a scope check.
	Scope string
	// Err is the underlying cause, for logs. It is not sent to the client.
	Err error
	// dpop selects a DPoP challenge (RFC 9449 §7.1) instead of Bearer.
	dpop bool
}

// Error implements the error interface.
func (e *Error) Error() string {
	code := string(e.Code)
	if code == "" {
		code = "no token"
	}
	msg := "resource: " + code
	if e.Description != "" {
		msg += ": " + e.Description
	}
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// errorFor maps an error from token extraction or verification to the
// refusal the middleware sends. Descriptions are fixed strings: the cause
// may quote attacker-controlled input and goes to logs only.
func errorFor(err error) *Error {
	var e *Error
	switch {
	case errors.As(err, &e):
		return e
	case errors.Is(err, ErrNoToken):
		return &Error{Status: http.StatusUnauthorized, Description: "a bearer token is required", Err: err}
	case errors.Is(err, ErrMalformedRequest):
		return &Error{Status: http.StatusBadRequest, Code: CodeInvalidRequest, Description: "the request's credentials are malformed", Err: err}
	case errors.Is(err, ErrTokenExpired):
		return &Error{Status: http.StatusUnauthorized, Code: CodeInvalidToken, Description: "the access token expired", Err: err}
	case errors.Is(err, ErrTokenNotYetValid):
		return &Error{Status: http.StatusUnauthorized, Code: CodeInvalidToken, Description: "the access token is not yet valid", Err: err}
	case errors.Is(err, ErrTokenInactive):
		return &Error{Status: http.StatusUnauthorized, Code: CodeInvalidToken, Description: "the access token is not active", Err: err}
	case errors.Is(err, ErrUnavailable):
		return &Error{Status: http.StatusServiceUnavailable, Code: CodeTemporarilyUnavailable, Description: "the access token cannot be checked now; retry later", Err: err}
	default:
		return &Error{Status: http.StatusUnauthorized, Code: CodeInvalidToken, Description: "the access token is invalid", Err: err}
	}
}

// challenge builds the Bearer WWW-Authenticate value of RFC 6750 §3 (and
// RFC 9728 §5.1 for resource_metadata).
func challenge(realm, resourceMetadata string, e *Error) string {
	return authChallenge("Bearer", realm, e, "resource_metadata", resourceMetadata)
}

// authChallenge builds a WWW-Authenticate value of scheme: realm, the
// error of e (none for a request without credentials, or one that could
// not be checked now) with its scope if any, then the last parameter when
// its value is not empty.
func authChallenge(scheme, realm string, e *Error, lastName, lastValue string) string {
	var b strings.Builder
	b.WriteString(scheme)
	sep := " "
	param := func(name, value string) {
		b.WriteString(sep)
		b.WriteString(name)
		b.WriteString(`="`)
		writeQuoted(&b, value)
		b.WriteByte('"')
		sep = ", "
	}
	if realm != "" {
		param("realm", realm)
	}
	if e != nil && e.Code != "" && e.Code != CodeTemporarilyUnavailable {
		param("error", string(e.Code))
		if e.Description != "" {
			param("error_description", e.Description)
		}
		if e.Scope != "" {
			param("scope", e.Scope)
		}
	}
	if lastValue != "" {
		param(lastName, lastValue)
	}
	return b.String()
}

// writeQuoted writes s as the inside of a quoted-string, keeping only the
// characters RFC 6750 §3 allows in attribute values (%x20-21 / %x23-5B /
// %x5D-7E); anything else becomes a space.
func writeQuoted(b *strings.Builder, s string) {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c > 0x7e || c == '"' || c == '\\' {
			c = ' '
		}
		b.WriteByte(c)
	}
}

// errorBody is the JSON body of an error response.
type errorBody struct {
	Error       ErrorCode `json:"error"`
	Description string    `json:"error_description,omitempty"`
}

// writeErrorBody writes the status and the JSON body of e. Headers other
// than Content-Type and Cache-Control are the caller's.
func writeErrorBody(w http.ResponseWriter, e *Error) {
	code := e.Code
	if code == "" {
		// §3.1 keeps the error attribute out of the challenge for a request
		// without a token; the body still names a code for clients that
		// read only bodies.
		code = CodeInvalidToken
	}
	body, _ := json.Marshal(errorBody{Error: code, Description: e.Description})
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(e.Status)
	_, _ = w.Write(append(body, '\n'))
}
