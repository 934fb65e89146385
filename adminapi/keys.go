package adminapi

import (
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/oauthkit/authserver/keys"
	"github.com/oauthkit/authserver/storage"
)

// Key is the API form of a signing key: no key material. Times that do not
// apply are omitted.
type Key struct {
	ID         string `json:"kid"`
	Algorithm  string `json:"alg"`
	State      string `json:"state"`
	CreatedAt  string `json:"created_at"`
	ActivateAt string `json:"activate_at,omitempty"`
	RetiredAt  string `json:"retired_at,omitempty"`
	DeleteAt   string `json:"delete_at,omitempty"`
}

// KeyRotation is the body of POST /keys/rotate.
type KeyRotation struct {
	// Now activates the new key at once instead of after the
	// pre-publication window.
	Now bool `json:"now"`
}

// TokenRevocation is the body of POST /tokens/revoke; at least one field.
// The fields combine: every record matching all the given ones is revoked.
type TokenRevocation struct {
	UserID   string `json:"user_id"`
	ClientID string `json:"client_id"`
	// GrantID is the request ID shared by every token of one grant (the
	// first pair and all pairs refreshed from it), as GET
	// /users/{id}/sessions lists it.
	GrantID string `json:"grant_id"`
}

func viewKeys(ks []keys.KeyInfo) List[Key] {
	opt := func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return rfc3339(t)
	}
	out := List[Key]{Items: make([]Key, 0, len(ks))}
	for _, k := range ks {
		out.Items = append(out.Items, Key{ID: k.ID, Algorithm: k.Algorithm, State: string(k.State), CreatedAt: rfc3339(k.CreatedAt),
			ActivateAt: opt(k.ActivateAt), RetiredAt: opt(k.RetiredAt), DeleteAt: opt(k.DeleteAt)})
	}
	return out
}

// listKeys serves the key manager's snapshot (no database read); it follows
// a rotation made by another instance when the manager reloads.
func (a *API) listKeys(w http.ResponseWriter, _ *http.Request) error {
	writeJSON(w, http.StatusOK, viewKeys(a.cfg.Keys.List()))
	return nil
}

// rotateKeys publishes a new key (it signs after the pre-publication
// window), or with now activates it at once.
func (a *API) rotateKeys(w http.ResponseWriter, r *http.Request) (err error) {
	var in KeyRotation
	if r.ContentLength != 0 {
		if err := decode(r, &in); err != nil {
			return err
		}
	}
	defer func() { a.audit(r, "keys rotate", "", err, slog.Bool("now", in.Now)) }()
	if err := a.cfg.Keys.Rotate(r.Context(), in.Now); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, viewKeys(a.cfg.Keys.List()))
	return nil
}

// revokeTokens revokes every token of a user, of a client, or of a user at
// a client.
func (a *API) revokeTokens(w http.ResponseWriter, r *http.Request) (err error) {
	var in TokenRevocation
	if err := decode(r, &in); err != nil {
		return err
	}
	defer func() {
		a.audit(r, "tokens revoke", strings.TrimSpace(in.UserID+" "+in.ClientID), err, slog.String("grant_id", in.GrantID))
	}()
	if in.UserID == "" && in.ClientID == "" && in.GrantID == "" {
		return problem(http.StatusUnprocessableEntity, "give user_id, client_id and/or grant_id")
	}
	var n int64
	if in.ClientID == "" && in.GrantID == "" {
		// Everything of the user, their browser sessions included: the
		// clients of those sessions get logout tokens.
		n, err = a.revokeAll(r.Context(), in.UserID)
	} else {
		n, err = a.cfg.Store.RevokeTokens(r.Context(), storage.TokenFilter{Subject: in.UserID, ClientID: in.ClientID, RequestID: in.GrantID})
	}
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, Count{Revoked: n})
	return nil
}
