package authserver

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/ory/fosite"
	"github.com/ory/fosite/handler/oauth2"
	"github.com/ory/fosite/handler/pkce"

	"github.com/oauthkit/authserver/storage"
)

// The storage of the authorization code flow: codes, PKCE challenges and
// pushed authorization requests are token records of their own kinds.

var (
	_ oauth2.AuthorizeCodeStorage = (*fositeStore)(nil)
	_ pkce.PKCERequestStorage     = (*fositeStore)(nil)
	_ fosite.PARStorage           = (*fositeStore)(nil)
)

// CreateAuthorizeCodeSession implements oauth2.AuthorizeCodeStorage.
func (f *fositeStore) CreateAuthorizeCodeSession(ctx context.Context, sig string, r fosite.Requester) error {
	return f.createToken(ctx, storage.AuthorizeCode, sig, r)
}

// GetAuthorizeCodeSession implements oauth2.AuthorizeCodeStorage. A code
// that was already exchanged returns its request together with
// fosite.ErrInvalidatedAuthorizeCode, so that fosite revokes every token
// issued from it (RFC 6749 §4.1.2).
func (f *fositeStore) GetAuthorizeCodeSession(ctx context.Context, sig string, s fosite.Session) (fosite.Requester, error) {
	t, err := f.codeRecord(ctx, sig)
	if err != nil {
		return nil, toFositeErr(err)
	}
	// fosite reads the code twice in one exchange, the second time into
	// the session the token handler has already refreshed (user facts,
	// issuance instant): that read gets the request without the session
	// (codeRequest), which is all it reads.
	var r *fosite.Request
	if cur, ok := s.(*session); ok && cur.Subject != "" {
		r, err = f.codeRequest(ctx, t)
	} else if r, err = decodePayload(t.Payload, s); err == nil {
		f.keepCodeRequest(ctx, t, r)
	}
	if err != nil {
		return nil, err
	}
	// fosite reads the client's grant types from the code's request
	// (whether to issue a refresh token): give it the registration.
	if st := stateFrom(ctx); st != nil && st.client != nil && st.client.ID == t.ClientID {
		r.Client = f.srv.fositeClient(*st.client)
	} else if c, err := f.store.GetClient(ctx, t.ClientID); err == nil {
		r.Client = f.srv.fositeClient(c)
	}
	if !t.Active {
		if st := stateFrom(ctx); st != nil {
			st.codeReuse = true
		}
		return r, fosite.ErrInvalidatedAuthorizeCode
	}
	return r, nil
}

// codeRecord reads the code's record, once per token request (see
// requestState.code).
func (f *fositeStore) codeRecord(ctx context.Context, sig string) (storage.Token, error) {
	st := stateFrom(ctx)
	if st != nil && st.code != nil && st.code.Signature == sig {
		return *st.code, nil
	}
	t, err := f.store.GetToken(ctx, storage.AuthorizeCode, sig)
	if err == nil && st != nil {
		st.code = &t
	}
	return t, err
}

// codeRequest returns the code's request with a session of its own, decoded
// once per token request (see requestState.codeRequest).
func (f *fositeStore) codeRequest(ctx context.Context, t storage.Token) (*fosite.Request, error) {
	st := stateFrom(ctx)
	if st != nil && st.codeRequest != nil && st.code != nil && st.code.Signature == t.Signature {
		return st.codeRequest, nil
	}
	r, err := decodePayload(t.Payload, nil)
	if err == nil && st != nil {
		st.codeRequest = r
	}
	return r, err
}

// keepCodeRequest makes r, the code's request just decoded into fosite's
// session, the request's codeRequest too, with an empty session of its
// own instead of a second decoding of the record: the token handler
// refreshes fosite's session, and codeRequest's readers (the PKCE check
// and the code handler's second read) read the form, scopes, audience,
// client and ID only.
func (f *fositeStore) keepCodeRequest(ctx context.Context, t storage.Token, r *fosite.Request) {
	st := stateFrom(ctx)
	if st == nil || st.codeRequest != nil || st.code == nil || st.code.Signature != t.Signature {
		return
	}
	cr := *r
	cr.Session = newSession()
	st.codeRequest = &cr
}

// InvalidateAuthorizeCodeSession implements oauth2.AuthorizeCodeStorage. It
// is a compare-and-swap committed with the tokens of the exchange: of any
// number of concurrent exchanges of one code, on any number of instances,
// exactly one commits.
func (f *fositeStore) InvalidateAuthorizeCodeSession(ctx context.Context, sig string) error {
	consume := func(ctx context.Context) error { return f.store.DeactivateToken(ctx, storage.AuthorizeCode, sig) }
	if st := stateFrom(ctx); st != nil && st.buffer {
		st.guard = consume
		return nil
	}
	return toFositeErr(consume(ctx))
}

// CreatePKCERequestSession implements pkce.PKCERequestStorage. It writes
// nothing: fosite's code handler, which runs first, has stored the request
// with its code_challenge and code_challenge_method in the code's record
// (the SanitationWhiteList of the fosite configuration), so each code costs
// one write.
func (f *fositeStore) CreatePKCERequestSession(context.Context, string, fosite.Requester) error {
	return nil
}

// GetPKCERequestSession implements pkce.PKCERequestStorage from the code's
// record, used or not: a second use of a code must reach the code's
// compare-and-swap and revoke its tokens, not stop here (RFC 6749 §4.1.2).
// A separate PKCE record, as written before codes kept their challenge, is
// read when the code's record has none.
func (f *fositeStore) GetPKCERequestSession(ctx context.Context, sig string, _ fosite.Session) (fosite.Requester, error) {
	t, err := f.codeRecord(ctx, sig)
	if err == nil {
		r, err := f.codeRequest(ctx, t)
		if err != nil {
			return nil, err
		}
		if r.GetRequestForm().Get("code_challenge") != "" {
			return r, nil
		}
	} else if !errors.Is(err, storage.ErrNotFound) {
		return nil, toFositeErr(err)
	}
	t, err = f.store.GetToken(ctx, storage.PKCERequest, sig)
	if err != nil {
		return nil, toFositeErr(err)
	}
	return decodePayload(t.Payload, nil)
}

// DeletePKCERequestSession implements pkce.PKCERequestStorage. Within a
// token request it does nothing: the record expires with its code and is
// garbage-collected. Deleted with the exchange, it would be missing for a
// concurrent second use that read the code just before the exchange
// committed; fosite would refuse that use for want of PKCE data, and no
// token issued from the code would be revoked (RFC 6749 §4.1.2). Kept, the
// second use reaches the code's compare-and-swap, loses it, and revokes
// them.
func (f *fositeStore) DeletePKCERequestSession(ctx context.Context, sig string) error {
	if stateFrom(ctx) != nil {
		return nil
	}
	if err := f.store.DeleteToken(ctx, storage.PKCERequest, sig); err != nil && !errors.Is(err, storage.ErrNotFound) {
		return toFositeErr(err)
	}
	return nil
}

// parKey is the stored key of a request_uri (RFC 9126): its SHA-256, so that
// a database reader cannot replay pushed requests.
func parKey(requestURI string) string {
	h := sha256.Sum256([]byte(requestURI))
	return hex.EncodeToString(h[:])
}

// CreatePARSession implements fosite.PARStorage.
func (f *fositeStore) CreatePARSession(ctx context.Context, requestURI string, r fosite.AuthorizeRequester) error {
	return f.createToken(ctx, storage.PushedRequest, parKey(requestURI), r)
}

// GetPARSession implements fosite.PARStorage.
func (f *fositeStore) GetPARSession(ctx context.Context, requestURI string) (fosite.AuthorizeRequester, error) {
	t, err := f.store.GetToken(ctx, storage.PushedRequest, parKey(requestURI))
	if err != nil {
		return nil, toFositeErr(err)
	}
	r, err := decodePayload(t.Payload, newSession())
	if err != nil {
		return nil, err
	}
	return &fosite.AuthorizeRequest{Request: *r}, nil
}

// DeletePARSession implements fosite.PARStorage; a request_uri is single-use,
// so a second deletion is ErrNotFound.
func (f *fositeStore) DeletePARSession(ctx context.Context, requestURI string) error {
	return toFositeErr(f.store.DeleteToken(ctx, storage.PushedRequest, parKey(requestURI)))
}

// expiryOf returns the expiry a record of kind takes from its session.
func expiryOf(kind storage.TokenKind) (fosite.TokenType, error) {
	switch kind {
	case storage.AccessToken:
		return fosite.AccessToken, nil
	case storage.RefreshToken:
		return fosite.RefreshToken, nil
	case storage.AuthorizeCode, storage.PKCERequest:
		return fosite.AuthorizeCode, nil
	case storage.PushedRequest:
		return fosite.PushedAuthorizeRequestContext, nil
	}
	return "", fmt.Errorf("authserver: no expiry for records of kind %s", kind)
}
