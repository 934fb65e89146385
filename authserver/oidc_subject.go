package authserver

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net/url"

	"github.com/oauthkit/authserver/storage"
)

// Pairwise subjects (OpenID Connect Core §8.1): a client registered with
// subject type pairwise sees, in its access tokens, ID tokens, userinfo and
// logout tokens, a pseudonym of the user per sector (the host of its
// redirect URIs) instead of the user ID. Sessions and stored grants keep
// the user ID; the pseudonym is computed where a token or a response is
// written.

// SubjectPairwise is the pairwise subject type.
const SubjectPairwise = "pairwise"

// pairwiseSubject is the user's pseudonym in the sector of a pairwise client.
func pairwiseSubject(key []byte, sector, userID string) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(sector + "\x00" + userID))
	return "pw-" + base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// sectorOf is the sector identifier of a client: the host of its redirect
// URIs, which must all share it (ValidateSubjectType).
func sectorOf(c *storage.Client) string {
	if len(c.RedirectURIs) == 0 {
		return c.ID
	}
	u, err := url.Parse(c.RedirectURIs[0])
	if err != nil || u.Host == "" {
		return c.ID
	}
	return u.Hostname()
}

// subjectFor is the sub client c sees for user userID.
func subjectFor(key []byte, c *storage.Client, userID string) string {
	if c == nil || c.SubjectType != SubjectPairwise || userID == "" {
		return userID
	}
	return pairwiseSubject(key, sectorOf(c), userID)
}

// tokenSubject is the sub of a token issued in ctx for session s: the
// pairwise pseudonym for a user of a pairwise client.
func (t *tokenStrategy) tokenSubject(ctx context.Context, s *session) string {
	if !s.User {
		return s.Subject
	}
	if st := stateFrom(ctx); st != nil {
		return subjectFor(t.pairwiseKey, st.client, s.Subject)
	}
	return s.Subject
}

// ValidateSubjectType checks a client's subject type: public (or empty), or
// pairwise with redirect URIs that all share one host, the sector (Core
// §8.1; sector_identifier_uri is not supported). Its messages follow the
// name of the field, such as "subject_type must be public or pairwise".
func ValidateSubjectType(c storage.Client) error {
	switch c.SubjectType {
	case "", "public":
		return nil
	case SubjectPairwise:
	default:
		return errors.New("must be public or pairwise")
	}
	host := ""
	for _, r := range c.RedirectURIs {
		u, err := url.Parse(r)
		if err != nil || u.Hostname() == "" {
			return errors.New("pairwise needs redirect URIs with a host (the sector)")
		}
		if host != "" && u.Hostname() != host {
			return errors.New("pairwise needs all redirect URIs on one host (the sector)")
		}
		host = u.Hostname()
	}
	return nil
}
