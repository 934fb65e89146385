package resource

import (
	"errors"
	"fmt"
	"mime"
	"net/http"
	"strings"
)

// DefaultMaxTokenSize bounds the length of an accepted access token. Longer
// tokens are refused as invalid_token before any parsing.
const DefaultMaxTokenSize = 16 << 10

// bearerToken extracts the access token from r: from the Authorization header
// (RFC 6750 §2.1) and, when allowForm is set, from a form-encoded body (§2.2).
// The URI query (§2.3) is never read.
// Tokens longer than maxSize are refused as invalid_token before their syntax
// is scanned.
func bearerToken(r *http.Request, allowForm bool, maxSize int) (string, error) {
	values := r.Header.Values("Authorization")
	if len(values) > 1 {
		return "", fmt.Errorf("%w: more than one Authorization header", ErrMalformedRequest)
	}
	token, err := "", ErrNoToken
	if len(values) == 1 {
		token, err = parseAuthorization(values[0], maxSize)
		if err != nil && !errors.Is(err, ErrNoToken) {
			return "", err
		}
	}
	if allowForm && formBodyAllowed(r) {
		formToken, ferr := formToken(r, maxSize)
		switch {
		case ferr != nil:
			return "", ferr
		case formToken == "":
		case err == nil:
			// RFC 6750 §2: clients MUST NOT use more than one method.
			return "", fmt.Errorf("%w: token in both the Authorization header and the body", ErrMalformedRequest)
		default:
			return formToken, nil
		}
	}
	return token, err
}

// parseAuthorization parses an Authorization header value of the form
// "Bearer" 1*SP b64token (RFC 6750 §2.1). The scheme is case-insensitive.
// A header with another scheme yields ErrNoToken: the client did not try
// Bearer, and §3.1 treats that as a request without a token.
func parseAuthorization(h string, maxSize int) (string, error) {
	const scheme = "bearer"
	if len(h) < len(scheme) || !asciiEqualFold(h[:len(scheme)], scheme) {
		return "", ErrNoToken
	}
	rest := h[len(scheme):]
	if rest == "" {
		return "", fmt.Errorf("%w: empty bearer token", ErrMalformedRequest)
	}
	if rest[0] != ' ' {
		if isTchar(rest[0]) {
			// "Bearerx ..." is another scheme (RFC 9110 §11.1).
			return "", ErrNoToken
		}
		return "", fmt.Errorf("%w: bad Authorization syntax", ErrMalformedRequest)
	}
	i := 0
	for i < len(rest) && rest[i] == ' ' {
		i++
	}
	token := rest[i:]
	if token == "" {
		return "", fmt.Errorf("%w: empty bearer token", ErrMalformedRequest)
	}
	if err := checkB64Token(token, maxSize); err != nil {
		return "", err
	}
	return token, nil
}

// checkB64Token checks the b64token syntax of RFC 6750 §2.1:
// 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"=".
// Tokens longer than maxSize are invalid_token (not a malformed request) and
// are rejected before the scan.
func checkB64Token(t string, maxSize int) error {
	if len(t) > maxSize {
		return fmt.Errorf("%w: token of %d bytes exceeds the limit", ErrInvalidToken, len(t))
	}
	i := 0
	for ; i < len(t); i++ {
		c := t[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
			c == '-' || c == '.' || c == '_' || c == '~' || c == '+' || c == '/') {
			break
		}
	}
	if i == 0 {
		return fmt.Errorf("%w: bad bearer token syntax", ErrMalformedRequest)
	}
	for ; i < len(t); i++ {
		if t[i] != '=' {
			return fmt.Errorf("%w: bad bearer token syntax", ErrMalformedRequest)
		}
	}
	return nil
}

// formBodyAllowed reports whether r may carry the token in its body: a
// method with body semantics (so not GET) and a form-encoded, single-part
// body (RFC 6750 §2.2).
func formBodyAllowed(r *http.Request) bool {
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace, http.MethodConnect:
		return false
	}
	ct, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	return err == nil && ct == "application/x-www-form-urlencoded"
}

// formToken reads access_token from the form body. ParseForm keeps the
// parsed form on r, so handlers still see the other fields.
func formToken(r *http.Request, maxSize int) (string, error) {
	if err := r.ParseForm(); err != nil {
		return "", fmt.Errorf("%w: bad form body: %w", ErrMalformedRequest, err)
	}
	vs := r.PostForm["access_token"]
	switch {
	case len(vs) == 0:
		return "", nil
	case len(vs) > 1:
		return "", fmt.Errorf("%w: more than one access_token", ErrMalformedRequest)
	case vs[0] == "":
		return "", fmt.Errorf("%w: empty access_token", ErrMalformedRequest)
	}
	if err := checkB64Token(vs[0], maxSize); err != nil {
		return "", err
	}
	return vs[0], nil
}

// asciiEqualFold reports whether s equals the lower-case ASCII string lower,
// ignoring ASCII case.
func asciiEqualFold(s, lower string) bool {
	if len(s) != len(lower) {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != lower[i] {
			return false
		}
	}
	return true
}

// isTchar reports whether c may appear in an RFC 9110 §5.6.2 token.
func isTchar(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		c < 0x80 && c > 0x20 && strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}
