package adminapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/gorilla/mux"

	"github.com/oauthkit/authserver/authserver"
	"github.com/oauthkit/authserver/storage"
)

// ClientInput is the body of POST /clients and PUT /clients/{id}: the whole
// registration (a PUT replaces it). The ID comes from the path on PUT.
type ClientInput struct {
	ID           string   `json:"id"`
	Name         string   `json:"name"`
	Public       bool     `json:"public"`
	GrantTypes   []string `json:"grant_types"`
	Scopes       []string `json:"scopes"`
	Introspect   bool     `json:"introspect"`
	RedirectURIs []string `json:"redirect_uris"`
	Resources    []string `json:"resources"`
	SkipConsent  bool     `json:"skip_consent"`
	RequirePAR   bool     `json:"require_par"`
	// DPoPBoundAccessTokens refuses the client's token requests without a
	// DPoP proof (RFC 9449 §5.2, dpop_bound_access_tokens).
	DPoPBoundAccessTokens bool `json:"dpop_bound_access_tokens"`
	// PostLogoutRedirectURIs, BackchannelLogoutURI and SubjectType are the
	// OpenID Connect registration (RP-initiated and back-channel logout,
	// pairwise subjects).
	PostLogoutRedirectURIs []string `json:"post_logout_redirect_uris"`
	BackchannelLogoutURI   string   `json:"backchannel_logout_uri,omitempty"`
	SubjectType            string   `json:"subject_type,omitempty"`
	// ExchangeAudiences are the audiences the client may ask for in a token
	// exchange (RFC 8693).
	ExchangeAudiences []string `json:"exchange_audiences"`
	// TokenEndpointAuthMethod is how the client authenticates (RFC 7591 §2):
	// empty for client_secret_basic (none for a public client),
	// client_secret_post, client_secret_jwt or private_key_jwt. It cannot
	// change on PUT, except between client_secret_basic and
	// client_secret_post.
	TokenEndpointAuthMethod string `json:"token_endpoint_auth_method,omitempty"`
	// JWKSURI or JWKS are a private_key_jwt client's public keys: the URL
	// of its JWK Set, or the set by value.
	JWKSURI string          `json:"jwks_uri,omitempty"`
	JWKS    json.RawMessage `json:"jwks,omitempty"`
}

// Client is the API form of a client registration: its input, and what
// the server keeps about it. It never holds a secret hash; ClientSecret is
// set only in the response that created a secret.
type Client struct {
	ClientInput
	// SecretExpiresAt is when the secret stops working (Unix seconds, 0 for
	// never; RFC 7591 client_secret_expires_at).
	SecretExpiresAt int64 `json:"client_secret_expires_at"`
	// Secrets is how many secrets are valid (two during a rotation).
	Secrets   int    `json:"secrets"`
	CreatedAt string `json:"created_at"`
	UpdatedAt string `json:"updated_at"`
	// ClientSecret is shown once, when generated.
	ClientSecret string `json:"client_secret,omitempty"`
}

func viewClient(c storage.Client) Client {
	return Client{ClientInput: ClientInput{ID: c.ID, Name: c.Name, Public: c.Public, GrantTypes: nz(c.GrantTypes), Scopes: nz(c.Scopes),
		Introspect: c.Introspect, RedirectURIs: nz(c.RedirectURIs), Resources: nz(c.Resources),
		SkipConsent: c.SkipConsent, RequirePAR: c.RequirePAR, DPoPBoundAccessTokens: c.RequireDPoP,
		PostLogoutRedirectURIs: nz(c.PostLogoutRedirectURIs), BackchannelLogoutURI: c.BackchannelLogoutURI, SubjectType: c.SubjectType,
		ExchangeAudiences: nz(c.ExchangeAudiences), TokenEndpointAuthMethod: c.TokenEndpointAuthMethod,
		JWKSURI: c.JWKSURI, JWKS: json.RawMessage(c.JWKS)},
		SecretExpiresAt: unixOrZero(c.SecretExpiresAt), Secrets: len(c.SecretHashes),
		CreatedAt: rfc3339(c.CreatedAt), UpdatedAt: rfc3339(c.UpdatedAt)}
}

func clientETag(c storage.Client) string {
	return etagOf(struct {
		V Client
		H []string
	}{viewClient(c), c.SecretHashes}, c.UpdatedAt)
}

func unixOrZero(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.Unix()
}

// apiNames are the registration fields as the API's JSON names them.
var apiNames = authserver.RegistrationNames{ID: "id", Grant: "grant_types entry", RedirectURI: "redirect_uris",
	PostLogoutRedirectURI: "post_logout_redirect_uris", ExchangeAudience: "exchange_audiences",
	AuthMethod: "token_endpoint_auth_method", JWKSURI: "jwks_uri", JWKS: "jwks", Name: "name"}

// validateClient applies the registration policy of `clients add`
// (authserver.ValidateClient) and answers 422 when it fails.
func validateClient(c storage.Client) error {
	if err := authserver.ValidateClient(c, apiNames); err != nil {
		return problem(http.StatusUnprocessableEntity, err.Error())
	}
	return nil
}

func (in ClientInput) apply(c *storage.Client) {
	c.Name, c.Public, c.GrantTypes, c.Scopes = in.Name, in.Public, in.GrantTypes, in.Scopes
	c.Introspect, c.RedirectURIs, c.Resources = in.Introspect, in.RedirectURIs, in.Resources
	c.SkipConsent, c.RequirePAR = in.SkipConsent, in.RequirePAR
	c.RequireDPoP = in.DPoPBoundAccessTokens
	c.PostLogoutRedirectURIs, c.BackchannelLogoutURI, c.SubjectType = in.PostLogoutRedirectURIs, in.BackchannelLogoutURI, in.SubjectType
	c.ExchangeAudiences = in.ExchangeAudiences
	// Stored compact, as `clients add --jwks-file` stores it; the body was
	// decoded, so it is valid JSON.
	c.TokenEndpointAuthMethod, c.JWKSURI = in.TokenEndpointAuthMethod, in.JWKSURI
	c.JWKS, _ = authserver.CompactJWKS(in.JWKS)
}

func (a *API) listClients(w http.ResponseWriter, r *http.Request) error {
	limit, after, err := page(r)
	if err != nil {
		return err
	}
	cs, err := a.cfg.Store.ListClientsPage(r.Context(), after, limit+1) // one more tells whether a next page exists
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, paginate(cs, func(c storage.Client) string { return c.ID }, viewClient, limit, ""))
	return nil
}

func (a *API) getClient(w http.ResponseWriter, r *http.Request) error {
	c, err := a.cfg.Store.GetClient(r.Context(), mux.Vars(r)["id"])
	if err != nil {
		return err
	}
	w.Header().Set("ETag", clientETag(c))
	writeJSON(w, http.StatusOK, viewClient(c))
	return nil
}

// createClient registers a client; a confidential client gets a generated
// secret, shown once in the response.
func (a *API) createClient(w http.ResponseWriter, r *http.Request) (err error) {
	var in ClientInput
	if err := decode(r, &in); err != nil {
		return err
	}
	defer func() { a.audit(r, "clients create", in.ID, err) }()
	c := storage.Client{ID: in.ID}
	in.apply(&c)
	if err := validateClient(c); err != nil {
		return err
	}
	var secret string
	if authserver.UsesSecret(c) {
		if secret, err = a.cfg.Server.NewClientSecret(&c); err != nil {
			return err
		}
	}
	if err := authserver.ClientIDFree(r.Context(), a.cfg.Store, c.ID); errors.Is(err, authserver.ErrClientIDIsUser) {
		return problem(http.StatusConflict, fmt.Sprintf("client ID %q is a user's ID; choose another (a client's tokens carry its ID as sub)", c.ID))
	} else if err != nil {
		return err
	}
	c.CreatedAt = a.cfg.Now().UTC()
	c.UpdatedAt = c.CreatedAt
	if err := a.cfg.Store.CreateClient(r.Context(), c); err != nil {
		if errors.Is(err, storage.ErrAlreadyExists) {
			return problem(http.StatusConflict, fmt.Sprintf("client %q already exists", c.ID))
		}
		return err
	}
	v := viewClient(c)
	v.ClientSecret = secret
	w.Header().Set("ETag", clientETag(c))
	w.Header().Set("Location", Prefix+"/clients/"+c.ID)
	writeJSON(w, http.StatusCreated, v)
	return nil
}

// putClient replaces a client's registration (not its secrets). Repeating
// the same PUT leaves the same state.
func (a *API) putClient(w http.ResponseWriter, r *http.Request) (err error) {
	id := mux.Vars(r)["id"]
	var in ClientInput
	if err := decode(r, &in); err != nil {
		return err
	}
	defer func() { a.audit(r, "clients update", id, err) }()
	if in.ID != "" && in.ID != id {
		return problem(http.StatusUnprocessableEntity, "id in the body differs from the path")
	}
	c, err := a.cfg.Store.UpdateClient(r.Context(), id, func(c storage.Client) (storage.Client, error) {
		if err := checkIfMatch(r, clientETag(c)); err != nil {
			return c, err
		}
		before, old := viewClient(c), c
		in.apply(&c)
		if c.Public != before.Public {
			return c, problem(http.StatusUnprocessableEntity, "public cannot change; delete and register the client again")
		}
		if from, to := authserver.AuthMethodOf(old), authserver.AuthMethodOf(c); from != to && !(isBasicOrPost(from) && isBasicOrPost(to)) {
			return c, problem(http.StatusUnprocessableEntity, fmt.Sprintf("token_endpoint_auth_method cannot change from %s to %s; delete and register the client again", from, to))
		}
		if err := validateClient(c); err != nil {
			return c, err
		}
		if after := viewClient(c); !sameRegistration(before, after) {
			c.UpdatedAt = a.cfg.Now().UTC()
		}
		return c, nil
	})
	if err != nil {
		return err
	}
	a.cfg.Server.ForgetClient(id) // other instances: through the client change feed
	w.Header().Set("ETag", clientETag(c))
	writeJSON(w, http.StatusOK, viewClient(c))
	return nil
}

// isBasicOrPost reports whether the method sends the secret itself (the two
// can change into each other: the secret is kept the same way).
func isBasicOrPost(m string) bool {
	return m == authserver.AuthMethodSecretBasic || m == authserver.AuthMethodSecretPost
}

// sameRegistration compares the registrations of two views.
func sameRegistration(a, b Client) bool {
	a.UpdatedAt, b.UpdatedAt = "", ""
	return fmt.Sprint(a) == fmt.Sprint(b)
}

// deleteClient deletes a client and revokes its tokens.
func (a *API) deleteClient(w http.ResponseWriter, r *http.Request) (err error) {
	id := mux.Vars(r)["id"]
	defer func() { a.audit(r, "clients delete", id, err) }()
	c, err := a.cfg.Store.GetClient(r.Context(), id)
	if err != nil {
		return err
	}
	if err := checkIfMatch(r, clientETag(c)); err != nil {
		return err
	}
	if _, err := a.cfg.Store.RevokeTokens(r.Context(), storage.TokenFilter{ClientID: id}); err != nil {
		return err
	}
	if err := a.cfg.Store.DeleteClient(r.Context(), id); err != nil {
		return err
	}
	a.cfg.Server.ForgetClient(id)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// SecretRotation is the body of POST /clients/{id}/secret.
type SecretRotation struct {
	// KeepOld keeps the previous secret valid too, until the next rotation.
	KeepOld bool `json:"keep_old"`
}

// rotateSecret gives a confidential client a new generated secret (for
// client_secret_jwt, also sealed for its HMAC, and never two at once).
func (a *API) rotateSecret(w http.ResponseWriter, r *http.Request) (err error) {
	id := mux.Vars(r)["id"]
	var in SecretRotation
	if r.ContentLength != 0 {
		if err := decode(r, &in); err != nil {
			return err
		}
	}
	defer func() { a.audit(r, "clients rotate-secret", id, err, slog.Bool("keep_old", in.KeepOld)) }()
	var secret string
	c, err := a.cfg.Store.UpdateClient(r.Context(), id, func(c storage.Client) (storage.Client, error) {
		if err := checkIfMatch(r, clientETag(c)); err != nil {
			return c, err
		}
		switch m := authserver.AuthMethodOf(c); {
		case c.Public:
			return c, problem(http.StatusConflict, "a public client has no secret")
		case m == authserver.AuthMethodPrivateKey:
			return c, problem(http.StatusConflict, "a private_key_jwt client has no secret; change its jwks_uri or jwks with PUT")
		case m == authserver.AuthMethodSecretJWT && in.KeepOld:
			return c, problem(http.StatusConflict, "a client_secret_jwt client has one secret at a time: keep_old is not available")
		}
		old := c.SecretHashes
		var err error
		if secret, err = a.cfg.Server.NewClientSecret(&c); err != nil {
			return c, err
		}
		if in.KeepOld && len(old) > 0 {
			c.SecretHashes = append(c.SecretHashes, old[0])
		}
		c.UpdatedAt = a.cfg.Now().UTC()
		return c, nil
	})
	if err != nil {
		return err
	}
	a.cfg.Server.ForgetClient(id)
	v := viewClient(c)
	v.ClientSecret = secret
	w.Header().Set("ETag", clientETag(c))
	writeJSON(w, http.StatusOK, v)
	return nil
}
