package storagetest

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/oauthkit/authserver/storage"
)

func testMustChangePassword(t *testing.T, s storage.Store) {
	ctx := t.Context()
	u := newUser("u1", "alice@example.com")
	u.MustChangePassword = true
	must(t, "CreateUser", s.CreateUser(ctx, u))
	got, err := s.GetUser(ctx, "u1")
	must(t, "GetUser", err)
	checkUser(t, got, u)
	u.MustChangePassword = false
	upd, err := s.UpdateUser(ctx, "u1", func(x storage.User) (storage.User, error) {
		x.MustChangePassword = false
		return x, nil
	})
	must(t, "UpdateUser", err)
	checkUser(t, upd, u)
	got, err = s.GetUserByEmail(ctx, "ALICE@example.com")
	must(t, "GetUserByEmail", err)
	checkUser(t, got, u)
}

// userIDs lists the IDs of us.
func userIDs(us []storage.User) []string {
	out := make([]string, 0, len(us))
	for _, u := range us {
		out = append(out, u.ID)
	}
	return out
}

func testListUsersPage(t *testing.T, s storage.Store) {
	ctx := t.Context()
	var want []string
	for _, i := range []int{7, 3, 11, 0, 5, 9, 1} { // created out of order
		id := fmt.Sprintf("u%02d", i)
		must(t, "CreateUser", s.CreateUser(ctx, newUser(id, id+"@example.com")))
		want = append(want, id)
	}
	slices.Sort(want)
	var got []string
	after := ""
	for range 10 {
		page, err := s.ListUsersPage(ctx, storage.UserQuery{After: after, Limit: 3})
		must(t, "ListUsersPage", err)
		if len(page) > 3 {
			t.Fatalf("page of %d users, limit 3", len(page))
		}
		if len(page) == 0 {
			break
		}
		got = append(got, userIDs(page)...)
		after = page[len(page)-1].ID
	}
	if !slices.Equal(got, want) {
		t.Fatalf("pages gave %v, want %v", got, want)
	}
	one, err := s.ListUsersPage(ctx, storage.UserQuery{After: "u05", Limit: 1})
	must(t, "ListUsersPage", err)
	if len(one) != 1 || one[0].ID != "u07" {
		t.Fatalf("after u05: %v", userIDs(one))
	}
	checkUser(t, one[0], newUser("u07", "u07@example.com"))
	if _, err := s.ListUsersPage(ctx, storage.UserQuery{Limit: 0}); err == nil {
		t.Fatal("ListUsersPage accepted limit 0")
	}
}

func testListUsersPageByEmail(t *testing.T, s storage.Store) {
	ctx := t.Context()
	emails := map[string]string{
		"a1": "Bob@Example.com", "a2": "bobby@example.com", "a3": "bo@example.com", "a4": "alice@example.com",
		"a5": "bob_@example.com", "a6": "BOB%x@example.com", "a7": "böb@example.com", "a8": "boc@example.com",
		"a9": "bob\U0010FFFF@example.com", "b1": "bob\U0010FFFFz@example.com",
	}
	for id, e := range emails {
		must(t, "CreateUser", s.CreateUser(ctx, newUser(id, e)))
	}
	walk := func(prefix string, limit int) []string {
		var got []string
		after := ""
		for range 20 {
			page, err := s.ListUsersPage(ctx, storage.UserQuery{EmailPrefix: prefix, After: after, Limit: limit})
			must(t, "ListUsersPage", err)
			if len(page) == 0 {
				return got
			}
			for _, u := range page {
				got = append(got, strings.ToLower(u.Email))
			}
			after = strings.ToLower(page[len(page)-1].Email)
		}
		t.Fatal("pagination does not end")
		return nil
	}
	for prefix, want := range map[string][]string{
		// Byte order: '%' < '@' < '_' < 'b' < U+10FFFF; LIKE wildcards are
		// plain characters; the prefix is compared lower-cased.
		"BOB": {"bob%x@example.com", "bob@example.com", "bob_@example.com", "bobby@example.com",
			"bob\U0010FFFF@example.com", "bob\U0010FFFFz@example.com"},
		"bob_":               {"bob_@example.com"},
		"bob%":               {"bob%x@example.com"},
		"b":                  {"bo@example.com", "bob%x@example.com", "bob@example.com", "bob_@example.com", "bobby@example.com", "bob\U0010FFFF@example.com", "bob\U0010FFFFz@example.com", "boc@example.com", "böb@example.com"},
		"bö":                 {"böb@example.com"},
		"bob\U0010FFFF":      {"bob\U0010FFFF@example.com", "bob\U0010FFFFz@example.com"},
		"zed":                nil,
		"alice@example.com":  {"alice@example.com"},
		"alice@example.com.": nil,
	} {
		for _, limit := range []int{1, 2, 50} {
			if got := walk(prefix, limit); !slices.Equal(got, want) {
				t.Errorf("prefix %q, pages of %d: %q, want %q", prefix, limit, got, want)
			}
		}
	}
}

func testListClientsPage(t *testing.T, s storage.Store) {
	ctx := t.Context()
	var want []string
	for _, i := range []int{4, 2, 8, 6, 0} {
		id := fmt.Sprintf("c%d", i)
		must(t, "CreateClient", s.CreateClient(ctx, newClient(id)))
		want = append(want, id)
	}
	slices.Sort(want)
	var got []string
	after := ""
	for range 10 {
		page, err := s.ListClientsPage(ctx, after, 2)
		must(t, "ListClientsPage", err)
		if len(page) == 0 {
			break
		}
		for _, c := range page {
			got = append(got, c.ID)
		}
		after = page[len(page)-1].ID
	}
	if !slices.Equal(got, want) {
		t.Fatalf("pages gave %v, want %v", got, want)
	}
	page, err := s.ListClientsPage(ctx, "c4", 1)
	must(t, "ListClientsPage", err)
	if len(page) != 1 {
		t.Fatalf("after c4: %d clients", len(page))
	}
	checkClient(t, page[0], newClient("c6"))
}

func testListTokens(t *testing.T, s storage.Store) {
	ctx := t.Context()
	s1 := newToken(storage.BrowserSession, "s1", "sid1", "", "alice")
	s2 := newToken(storage.BrowserSession, "s2", "sid2", "", "alice")
	s2.RequestedAt = at(-time.Hour) // listed first
	s2.Active = false
	for _, tk := range []storage.Token{s1, s2,
		newToken(storage.BrowserSession, "s3", "sid3", "", "bob"),
		newToken(storage.RefreshToken, "r1", "g1", "app", "alice"),
	} {
		must(t, "CreateToken", s.CreateToken(ctx, tk))
	}
	got, err := s.ListTokens(ctx, storage.BrowserSession, "alice")
	must(t, "ListTokens", err)
	if len(got) != 2 {
		t.Fatalf("alice's sessions: %d records", len(got))
	}
	checkToken(t, got[0], s2)
	checkToken(t, got[1], s1)
	got, err = s.ListTokens(ctx, storage.BrowserSession, "carol")
	must(t, "ListTokens", err)
	if len(got) != 0 {
		t.Fatalf("carol's sessions: %d records", len(got))
	}
}

func testRevokeTokensByGrant(t *testing.T, s storage.Store) {
	ctx := t.Context()
	for _, tk := range []storage.Token{
		newToken(storage.AccessToken, "a1", "g1", "app", "alice"),
		newToken(storage.RefreshToken, "r1", "g1", "app", "alice"),
		newToken(storage.AccessToken, "a2", "g2", "app", "alice"),
		newToken(storage.AccessToken, "a3", "g3", "other", "bob"),
		// A used jti of alice's at app: a revocation must not free it.
		newToken(storage.UsedJTI, "j1", "j1", "app", "alice"),
	} {
		must(t, "CreateToken", s.CreateToken(ctx, tk))
	}
	defer func() {
		for _, f := range []storage.TokenFilter{{Subject: "alice"}, {ClientID: "app"}, {RequestID: "j1"}} {
			if _, err := s.RevokeTokens(ctx, f); err != nil {
				t.Fatalf("RevokeTokens %+v: %v", f, err)
			}
		}
		if _, err := s.GetToken(ctx, storage.UsedJTI, "j1"); err != nil {
			t.Errorf("a used jti after revocations by its subject, client and key: %v", err)
		}
	}()
	n, err := s.RevokeTokens(ctx, storage.TokenFilter{RequestID: "g1"})
	must(t, "RevokeTokens", err)
	if n != 2 {
		t.Fatalf("revoked %d records of g1, want 2", n)
	}
	// Combined with a subject that does not own the grant: nothing.
	n, err = s.RevokeTokens(ctx, storage.TokenFilter{RequestID: "g2", Subject: "bob"})
	must(t, "RevokeTokens", err)
	if n != 0 {
		t.Fatalf("revoked %d records of g2 for bob", n)
	}
	for sig, kind := range map[string]storage.TokenKind{"a1": storage.AccessToken, "r1": storage.RefreshToken} {
		if _, err := s.GetToken(ctx, kind, sig); err == nil {
			t.Errorf("%s survived the revocation of its grant", sig)
		}
	}
	for _, sig := range []string{"a2", "a3"} {
		if _, err := s.GetToken(ctx, storage.AccessToken, sig); err != nil {
			t.Errorf("%s of another grant: %v", sig, err)
		}
	}
}
