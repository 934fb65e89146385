package authserver

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"golang.org/x/crypto/chacha20poly1305"

	"github.com/oauthkit/authserver/storage"
)

// Refresh grace window (opt-in, Config.RefreshGrace).
//
// When a refresh token is rotated, the rotation's response (the new pair) is
// sealed with an AEAD under a key derived from the server secret and stored
// on the old token's record, in the same atomic step that deactivates it.
// A request that presents the just-rotated token within the window (a retry
// whose response was lost, a second tab, a concurrent request that lost the
// compare-and-swap) is answered with that same pair, as long as the pair's
// refresh token is still the grant's live one. No sibling tokens are minted
// and the grant survives. After the window, or once the new refresh token
// has itself been used, a replay is reuse and revokes the grant (RFC 9700
// §4.14.2).

// errGraceReplay stops fosite's refresh handler before its reuse detection
// when the presented token qualifies for a replay.
var errGraceReplay = errors.New("authserver: refresh retry within the grace window")

// successor is the sealed response of a rotation.
type successor struct {
	AccessToken  string    `json:"at"`
	RefreshToken string    `json:"rt"`
	Scope        string    `json:"scope,omitempty"`
	AccessExpiry time.Time `json:"exp"`
}

func (s *Server) successorAEAD() (aeadSealer, error) {
	return chacha20poly1305.NewX(deriveKey(s.cfg.Secret, "refresh-successor"))
}

type aeadSealer interface {
	NonceSize() int
	Seal(dst, nonce, plaintext, additionalData []byte) []byte
	Open(dst, nonce, ciphertext, additionalData []byte) ([]byte, error)
}

// sealSuccessor encrypts the pair, bound to the old token's signature.
func (s *Server) sealSuccessor(oldSig string, v successor) ([]byte, error) {
	aead, err := s.successorAEAD()
	if err != nil {
		return nil, err
	}
	plain, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, aead.NonceSize(), aead.NonceSize()+len(plain)+16)
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	return aead.Seal(nonce, nonce, plain, []byte(oldSig)), nil
}

func (s *Server) openSuccessor(oldSig string, b []byte) (successor, error) {
	var v successor
	aead, err := s.successorAEAD()
	if err != nil {
		return v, err
	}
	if len(b) < aead.NonceSize() {
		return v, errors.New("authserver: short successor")
	}
	plain, err := aead.Open(nil, b[:aead.NonceSize()], b[aead.NonceSize():], []byte(oldSig))
	if err != nil {
		return v, fmt.Errorf("authserver: open successor: %w", err)
	}
	return v, json.Unmarshal(plain, &v)
}

// inGrace reports whether a rotated refresh token record may be replayed.
func (s *Server) inGrace(t storage.Token) bool {
	return s.cfg.RefreshGrace > 0 && !t.Active && !t.RotatedAt.IsZero() && t.Successor != nil &&
		s.cfg.Now().Sub(t.RotatedAt) <= s.cfg.RefreshGrace
}

// replay answers a retried refresh with the pair its rotation issued, or
// reports false when the presented token does not qualify (then the caller
// treats it as reuse or as a lost race).
func (s *Server) replay(ctx context.Context, st *requestState, oldSig string) (*tokenResponse, bool, error) {
	t, err := s.store.GetToken(ctx, storage.RefreshToken, oldSig)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	if !s.inGrace(t) || st.client == nil || t.ClientID != st.client.ID {
		return nil, false, nil
	}
	v, err := s.openSuccessor(oldSig, t.Successor)
	if err != nil {
		return nil, false, err
	}
	// The pair must still be the grant's live one: not revoked, and its
	// refresh token not rotated in turn.
	next, err := s.store.GetToken(ctx, storage.RefreshToken, s.strategy.RefreshTokenSignature(ctx, v.RefreshToken))
	if errors.Is(err, storage.ErrNotFound) || (err == nil && !next.Active) {
		// The pair was revoked or already refreshed: this replay is reuse.
		if rerr := s.revokeGrant(ctx, t.RequestID); rerr != nil {
			return nil, false, rerr
		}
		s.metrics.refreshReuse.Inc()
		s.audit(ctx, "refresh_reuse_detected", slog.String("client_id", t.ClientID))
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	expiresIn := int64(v.AccessExpiry.Sub(s.cfg.Now()) / time.Second)
	if expiresIn <= 0 {
		return nil, false, nil
	}
	tokenType, ok := s.graceDPoP(st, v.AccessToken) // dpop.go
	if !ok {
		return nil, false, nil
	}
	s.audit(ctx, "refresh_replayed", slog.String("client_id", t.ClientID))
	return &tokenResponse{AccessToken: v.AccessToken, TokenType: tokenType, ExpiresIn: expiresIn,
		RefreshToken: v.RefreshToken, Scope: v.Scope}, true, nil
}

// replayOrFail finishes a refresh that hit the grace window or lost the
// rotation race.
func (s *Server) replayOrFail(ctx context.Context, st *requestState, cause error) (*tokenResponse, *oauthError) {
	if st.presentedSig != "" && s.cfg.RefreshGrace > 0 {
		resp, ok, err := s.replay(ctx, st, st.presentedSig)
		if err != nil {
			return nil, unavailable(err)
		}
		if ok {
			return resp, nil
		}
	}
	oe := newError(http.StatusBadRequest, errInvalidGrant, "The refresh token was already used.")
	oe.Cause = cause
	return nil, oe
}
