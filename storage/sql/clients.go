package sql

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"time"

	"github.com/oauthkit/authserver/storage"
)

const clientColumns = `id, secret_hashes, is_public, grant_types, scopes, introspect, name, created_at, updated_at, settings`

// clientSettings is the JSON form of the registration fields that no query
// selects on (the settings column): new fields need no migration.
type clientSettings struct {
	RedirectURIs []string `json:"redirect_uris,omitempty"`
	Resources    []string `json:"resources,omitempty"`
	SkipConsent  bool     `json:"skip_consent,omitempty"`
	RequirePAR   bool     `json:"require_par,omitempty"`
	// OpenID Connect logout.
	PostLogoutRedirectURIs []string `json:"post_logout_redirect_uris,omitempty"`
	BackchannelLogoutURI   string   `json:"backchannel_logout_uri,omitempty"`
	SubjectType            string   `json:"subject_type,omitempty"`
	// Token exchange and secret expiry.
	ExchangeAudiences []string   `json:"exchange_audiences,omitempty"`
	SecretExpiresAt   *time.Time `json:"secret_expires_at,omitempty"`
	// Client authentication (RFC 7523) and DPoP (RFC 9449).
	TokenEndpointAuthMethod string `json:"token_endpoint_auth_method,omitempty"`
	JWKSURI                 string `json:"jwks_uri,omitempty"`
	JWKS                    []byte `json:"jwks,omitempty"`
	SecretCiphertext        []byte `json:"secret_ciphertext,omitempty"`
	RequireDPoP             bool   `json:"require_dpop,omitempty"`
	// Dynamic client registration (RFC 7592).
	RegistrationTokenHash string `json:"registration_token_hash,omitempty"`
}

func encodeClientSettings(c storage.Client) string {
	cs := clientSettings{RedirectURIs: c.RedirectURIs, Resources: c.Resources,
		SkipConsent: c.SkipConsent, RequirePAR: c.RequirePAR,
		PostLogoutRedirectURIs: c.PostLogoutRedirectURIs, BackchannelLogoutURI: c.BackchannelLogoutURI,
		SubjectType: c.SubjectType, ExchangeAudiences: c.ExchangeAudiences,
		TokenEndpointAuthMethod: c.TokenEndpointAuthMethod, JWKSURI: c.JWKSURI, JWKS: c.JWKS,
		SecretCiphertext: c.SecretCiphertext, RequireDPoP: c.RequireDPoP, RegistrationTokenHash: c.RegistrationTokenHash}
	if !c.SecretExpiresAt.IsZero() {
		exp := c.SecretExpiresAt.UTC()
		cs.SecretExpiresAt = &exp
	}
	b, err := json.Marshal(cs)
	if err != nil {
		panic(err) // strings and booleans always marshal
	}
	return string(b)
}

func scanClient(row scanner) (storage.Client, error) {
	var c storage.Client
	var secrets, grants, scopes, settings string
	if err := row.Scan(&c.ID, &secrets, &c.Public, &grants, &scopes, &c.Introspect, &c.Name,
		timeCol{&c.CreatedAt}, timeCol{&c.UpdatedAt}, &settings); err != nil {
		return c, err
	}
	var cs clientSettings
	if err := json.Unmarshal([]byte(settings), &cs); err != nil {
		return c, fmt.Errorf("client %q settings: %w", c.ID, err)
	}
	c.RedirectURIs, c.Resources, c.SkipConsent, c.RequirePAR = cs.RedirectURIs, cs.Resources, cs.SkipConsent, cs.RequirePAR
	c.PostLogoutRedirectURIs, c.BackchannelLogoutURI, c.SubjectType = cs.PostLogoutRedirectURIs, cs.BackchannelLogoutURI, cs.SubjectType
	c.ExchangeAudiences = cs.ExchangeAudiences
	c.TokenEndpointAuthMethod, c.JWKSURI, c.JWKS = cs.TokenEndpointAuthMethod, cs.JWKSURI, cs.JWKS
	c.SecretCiphertext, c.RequireDPoP = cs.SecretCiphertext, cs.RequireDPoP
	c.RegistrationTokenHash = cs.RegistrationTokenHash
	if cs.SecretExpiresAt != nil {
		c.SecretExpiresAt = cs.SecretExpiresAt.UTC()
	}
	for _, f := range []struct {
		s   string
		dst *[]string
	}{{secrets, &c.SecretHashes}, {grants, &c.GrantTypes}, {scopes, &c.Scopes}} {
		if err := decodeStrings(f.s, f.dst); err != nil {
			return c, err
		}
	}
	return c, nil
}

// CreateClient stores a new client; a taken ID gives ErrAlreadyExists.
func (s *Store) CreateClient(ctx context.Context, c storage.Client) error {
	_, err := s.writer(ctx).ExecContext(ctx,
		`INSERT INTO clients (`+clientColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
		c.ID, encodeStrings(c.SecretHashes), c.Public, encodeStrings(c.GrantTypes), encodeStrings(c.Scopes),
		c.Introspect, c.Name, s.d.timeArg(c.CreatedAt), s.d.timeArg(c.UpdatedAt), encodeClientSettings(c))
	return s.wrap("create client", err)
}

// GetClient returns the client with the given ID.
func (s *Store) GetClient(ctx context.Context, id string) (storage.Client, error) {
	c, err := scanClient(s.queryRow(ctx, s.getClientStmt, `SELECT `+clientColumns+` FROM clients WHERE id = $1`, id))
	return c, s.wrap("get client", err)
}

// ListClients returns every client, ordered by ID.
func (s *Store) ListClients(ctx context.Context) ([]storage.Client, error) {
	rows, err := s.reader(ctx).QueryContext(ctx, `SELECT `+clientColumns+` FROM clients ORDER BY id`)
	if err != nil {
		return nil, s.wrap("list clients", err)
	}
	defer rows.Close()
	var out []storage.Client
	for rows.Next() {
		c, err := scanClient(rows)
		if err != nil {
			return nil, s.wrap("list clients", err)
		}
		out = append(out, c)
	}
	return out, s.wrap("list clients", rows.Err())
}

// ListClientsPage returns at most limit clients with an ID after after, a
// range of the primary key.
func (s *Store) ListClientsPage(ctx context.Context, after string, limit int) ([]storage.Client, error) {
	const op = "list clients page"
	if limit <= 0 {
		return nil, fmt.Errorf("sql: %s: limit must be positive", op)
	}
	rows, err := s.reader(ctx).QueryContext(ctx, `SELECT `+clientColumns+` FROM clients WHERE id > $1 ORDER BY id LIMIT $2`, after, limit)
	if err != nil {
		return nil, s.wrap(op, err)
	}
	defer rows.Close()
	var out []storage.Client
	for rows.Next() {
		c, err := scanClient(rows)
		if err != nil {
			return nil, s.wrap(op, err)
		}
		out = append(out, c)
	}
	return out, s.wrap(op, rows.Err())
}

// UpdateClient applies fn to the stored client in a transaction that holds
// the row locked (the caller's, or one of its own). fn must not use the store.
func (s *Store) UpdateClient(ctx context.Context, id string, fn func(storage.Client) (storage.Client, error)) (storage.Client, error) {
	var next storage.Client
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		cur, err := scanClient(tx.QueryRowContext(ctx, `SELECT `+clientColumns+` FROM clients WHERE id = $1`+s.d.forUpdate, id))
		if err != nil {
			return s.wrap("update client", err)
		}
		if next, err = fn(cur); err != nil {
			return err
		}
		if next.ID != id {
			return fmt.Errorf("sql: update client %q: the ID cannot change (got %q)", id, next.ID)
		}
		_, err = tx.ExecContext(ctx,
			`UPDATE clients SET secret_hashes = $2, is_public = $3, grant_types = $4, scopes = $5,
			introspect = $6, name = $7, created_at = $8, updated_at = $9, settings = $10 WHERE id = $1`,
			id, encodeStrings(next.SecretHashes), next.Public, encodeStrings(next.GrantTypes), encodeStrings(next.Scopes),
			next.Introspect, next.Name, s.d.timeArg(next.CreatedAt), s.d.timeArg(next.UpdatedAt), encodeClientSettings(next))
		return s.wrap("update client", err)
	})
	if err != nil {
		return storage.Client{}, err
	}
	next.CreatedAt, next.UpdatedAt = stored(next.CreatedAt), stored(next.UpdatedAt)
	return next, nil
}

// DeleteClient deletes the client, or returns ErrNotFound. Its tokens are
// left alone; use RevokeTokens.
func (s *Store) DeleteClient(ctx context.Context, id string) error {
	return s.execOne(ctx, s.writer(ctx), "delete client", `DELETE FROM clients WHERE id = $1`, id)
}
