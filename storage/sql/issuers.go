package sql

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/oauthkit/authserver/storage"
)

const issuerColumns = `id, settings, created_at`

// issuerSettings is the JSON form of an issuer's fields (the settings column).
type issuerSettings struct {
	JWKSURI    string   `json:"jwks_uri,omitempty"`
	JWKS       []byte   `json:"jwks,omitempty"`
	Subjects   []string `json:"subjects,omitempty"`
	AnySubject bool     `json:"any_subject,omitempty"`
	Scopes     []string `json:"scopes,omitempty"`
}

func scanIssuer(row scanner) (storage.Issuer, error) {
	var iss storage.Issuer
	var settings string
	if err := row.Scan(&iss.ID, &settings, timeCol{&iss.CreatedAt}); err != nil {
		return iss, err
	}
	var is issuerSettings
	if err := json.Unmarshal([]byte(settings), &is); err != nil {
		return iss, fmt.Errorf("issuer %q settings: %w", iss.ID, err)
	}
	iss.JWKSURI, iss.JWKS, iss.Subjects, iss.AnySubject, iss.Scopes = is.JWKSURI, is.JWKS, is.Subjects, is.AnySubject, is.Scopes
	return iss, nil
}

// CreateIssuer stores a trusted issuer; a taken ID gives ErrAlreadyExists.
func (s *Store) CreateIssuer(ctx context.Context, iss storage.Issuer) error {
	b, err := json.Marshal(issuerSettings{JWKSURI: iss.JWKSURI, JWKS: iss.JWKS, Subjects: iss.Subjects, AnySubject: iss.AnySubject, Scopes: iss.Scopes})
	if err != nil {
		return fmt.Errorf("sql: create issuer: %w", err)
	}
	_, err = s.writer(ctx).ExecContext(ctx, `INSERT INTO issuers (`+issuerColumns+`) VALUES ($1, $2, $3)`,
		iss.ID, string(b), s.d.timeArg(iss.CreatedAt))
	return s.wrap("create issuer", err)
}

// GetIssuer returns the trusted issuer with the given ID.
func (s *Store) GetIssuer(ctx context.Context, id string) (storage.Issuer, error) {
	iss, err := scanIssuer(s.reader(ctx).QueryRowContext(ctx, `SELECT `+issuerColumns+` FROM issuers WHERE id = $1`, id))
	return iss, s.wrap("get issuer", err)
}

// ListIssuers returns every trusted issuer, ordered by ID.
func (s *Store) ListIssuers(ctx context.Context) ([]storage.Issuer, error) {
	rows, err := s.reader(ctx).QueryContext(ctx, `SELECT `+issuerColumns+` FROM issuers ORDER BY id`)
	if err != nil {
		return nil, s.wrap("list issuers", err)
	}
	defer rows.Close()
	var out []storage.Issuer
	for rows.Next() {
		iss, err := scanIssuer(rows)
		if err != nil {
			return nil, s.wrap("list issuers", err)
		}
		out = append(out, iss)
	}
	return out, s.wrap("list issuers", rows.Err())
}

// DeleteIssuer deletes a trusted issuer, or returns ErrNotFound.
func (s *Store) DeleteIssuer(ctx context.Context, id string) error {
	return s.execOne(ctx, s.writer(ctx), "delete issuer", `DELETE FROM issuers WHERE id = $1`, id)
}
