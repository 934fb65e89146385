package main

import (
	"cmp"
	"context"
	"slices"
	"sync"

	"github.com/oauthkit/authserver/internal/demoapi"
	"github.com/oauthkit/authserver/resource"
)

// seenUsers is the demoapi.Directory of a remote API, which has no user
// database: it remembers the users whose valid tokens it has seen since the
// process started, as the tokens described them. It forgets nothing and
// stops recording new users at its limit.
type seenUsers struct {
	limit int
	mu    sync.Mutex
	users map[string]demoapi.UserInfo
}

func newSeenUsers(limit int) *seenUsers {
	return &seenUsers{limit: limit, users: make(map[string]demoapi.UserInfo)}
}

// record is a resource.TokenCheckFunc that never refuses: it notes the user
// of every verified token. Tokens of the client_credentials grant, whose
// subject is the client itself, name no user.
func (s *seenUsers) record(_ context.Context, _ string, c *resource.Claims) error {
	if c.Subject == "" || c.Subject == c.ClientID {
		return nil
	}
	u := demoapi.UserInfo{ID: c.Subject, Name: c.Name, Email: c.Email, Roles: slices.Clone(c.Roles)}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, known := s.users[u.ID]; known || len(s.users) < s.limit {
		s.users[u.ID] = u
	}
	return nil
}

// ListUsers implements demoapi.Directory, ordered by ID.
func (s *seenUsers) ListUsers(context.Context) ([]demoapi.UserInfo, error) {
	s.mu.Lock()
	out := make([]demoapi.UserInfo, 0, len(s.users))
	for _, u := range s.users {
		out = append(out, u)
	}
	s.mu.Unlock()
	slices.SortFunc(out, func(a, b demoapi.UserInfo) int { return cmp.Compare(a.ID, b.ID) })
	return out, nil
}
