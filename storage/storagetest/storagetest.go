package storagetest

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/oauthkit/authserver/storage"
)

// Run runs the single-handle conformance tests. open must return a new, empty
// store and register its cleanup with t.Cleanup; every subtest calls it once.
func Run(t *testing.T, open func(t *testing.T) storage.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s storage.Store)
	}{
		{"UserCRUD", testUserCRUD},
		{"DuplicateUserIDIsRejected", testDuplicateUserID},
		{"EmailIsUniqueCaseInsensitively", testEmailUniqueness},
		{"UpdateUserMaintainsEmailLookup", testUpdateUserEmail},
		{"UpdateUserCannotTakeAnotherUsersEmail", testUpdateUserEmailClash},
		{"UpdaterErrorLeavesRecordUnchanged", testUpdaterError},
		{"UpdaterCannotChangeID", testUpdaterCannotChangeID},
		{"MissingRecordsAreNotFound", testMissingRecords},
		{"MustChangePasswordRoundTrips", testMustChangePassword},
		{"ListUsersPageWalksIDsInOrder", testListUsersPage},
		{"ListUsersPageSearchesByEmailPrefix", testListUsersPageByEmail},
		{"ListClientsPageWalksIDsInOrder", testListClientsPage},
		{"ListTokensBySubjectAndKind", testListTokens},
		{"RevokeTokensByGrant", testRevokeTokensByGrant},
		{"ClientCRUD", testClientCRUD},
		{"DuplicateClientIsRejected", testDuplicateClient},
		{"IssuerCRUD", testIssuerCRUD},
		{"TokenCRUD", testTokenCRUD},
		{"DuplicateTokenIsRejectedPerKind", testDuplicateToken},
		{"CreateTokenIfAbsentStoresOnce", testCreateTokenIfAbsent},
		{"PayloadRoundTripsByteForByte", testPayloadBytes},
		{"TimesRoundTripAsUTCInstants", testTimeZones},
		{"ReturnedValuesAreCopies", testCopies},
		{"DeactivateTokenIsCompareAndSwap", testDeactivateCAS},
		{"DeactivateTokensByRequestID", testDeactivateTokens},
		{"RotateTokenRecordsSuccessorAtomically", testRotateToken},
		{"DeleteTokensByRequestID", testDeleteTokens},
		{"RevokeTokensBySubjectAndClient", testRevokeTokens},
		{"RevokeTokensRejectsEmptyFilter", testRevokeEmptyFilter},
		{"RevocationFeedRecordsEndedAccessTokens", testRevocationFeed},
		{"ClientChangeFeedRecordsUpdatesAndDeletions", testClientChangeFeed},
		{"StatusListsAllocateBlocksAndRollOver", testStatusLists},
		{"KeySetStartsEmpty", testKeysEmpty},
		{"UpdateKeysRoundTripsAndCountsVersions", testUpdateKeys},
		{"UpdateKeysUpdaterErrorAborts", testUpdateKeysError},
		{"AttemptsCountAndReset", testAttempts},
		{"GarbageCollectRemovesOnlyExpired", testGarbageCollect},
		{"GarbageCollectWorksInBatches", testGarbageCollectBatches},
		{"PingSucceeds", func(t *testing.T, s storage.Store) { must(t, "Ping", s.Ping(t.Context())) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, open(t)) })
	}
}

func testUserCRUD(t *testing.T, s storage.Store) {
	ctx := t.Context()
	a, b := newUser("u1", "alice@example.com"), newUser("u2", "bob@example.com")
	b.Disabled = true
	b.Roles = nil
	// Created out of order, listed by ID.
	must(t, "CreateUser b", s.CreateUser(ctx, b))
	must(t, "CreateUser a", s.CreateUser(ctx, a))

	got, err := s.GetUser(ctx, "u1")
	must(t, "GetUser", err)
	checkUser(t, got, a)
	got, err = s.GetUserByEmail(ctx, "bob@example.com")
	must(t, "GetUserByEmail", err)
	checkUser(t, got, b)

	list, err := s.ListUsers(ctx)
	must(t, "ListUsers", err)
	checkStrings(t, "ListUsers", ids(list, func(u storage.User) string { return u.ID }), []string{"u1", "u2"})

	updated, err := s.UpdateUser(ctx, "u1", func(u storage.User) (storage.User, error) {
		u.Name = "Alice"
		u.Roles = append(u.Roles, "admin")
		u.UpdatedAt = at(time.Hour)
		return u, nil
	})
	must(t, "UpdateUser", err)
	a.Name, a.Roles, a.UpdatedAt = "Alice", []string{"reader", "writer", "admin"}, at(time.Hour)
	checkUser(t, updated, a)
	got, err = s.GetUser(ctx, "u1")
	must(t, "GetUser after update", err)
	checkUser(t, got, a)

	must(t, "DeleteUser", s.DeleteUser(ctx, "u1"))
	_, err = s.GetUser(ctx, "u1")
	wantErr(t, "GetUser after delete", err, storage.ErrNotFound)
	_, err = s.GetUserByEmail(ctx, "alice@example.com")
	wantErr(t, "GetUserByEmail after delete", err, storage.ErrNotFound)
	// The email is free again.
	must(t, "CreateUser with a freed email", s.CreateUser(ctx, newUser("u3", "Alice@example.com")))
}

func testDuplicateUserID(t *testing.T, s storage.Store) {
	ctx := t.Context()
	must(t, "CreateUser", s.CreateUser(ctx, newUser("u1", "a@example.com")))
	err := s.CreateUser(ctx, newUser("u1", "b@example.com"))
	wantErr(t, "CreateUser with a taken ID", err, storage.ErrAlreadyExists)
}

func testEmailUniqueness(t *testing.T, s storage.Store) {
	ctx := t.Context()
	u := newUser("u1", "Alice.Smith@Example.COM")
	must(t, "CreateUser", s.CreateUser(ctx, u))
	err := s.CreateUser(ctx, newUser("u2", "alice.smith@example.com"))
	wantErr(t, "CreateUser with the same email in another case", err, storage.ErrAlreadyExists)

	for _, email := range []string{"alice.smith@example.com", "ALICE.SMITH@EXAMPLE.COM", "Alice.Smith@Example.COM"} {
		got, err := s.GetUserByEmail(ctx, email)
		must(t, "GetUserByEmail "+email, err)
		if got.ID != "u1" || got.Email != u.Email {
			t.Errorf("GetUserByEmail(%q) = %q <%s>, want u1 <%s> (stored as given)", email, got.ID, got.Email, u.Email)
		}
	}
	_, err = s.GetUserByEmail(ctx, "alice.smith@example.org")
	wantErr(t, "GetUserByEmail of an unknown email", err, storage.ErrNotFound)
}

func testUpdateUserEmail(t *testing.T, s storage.Store) {
	ctx := t.Context()
	must(t, "CreateUser", s.CreateUser(ctx, newUser("u1", "old@example.com")))
	_, err := s.UpdateUser(ctx, "u1", func(u storage.User) (storage.User, error) {
		u.Email = "New@Example.com"
		return u, nil
	})
	must(t, "UpdateUser", err)
	_, err = s.GetUserByEmail(ctx, "old@example.com")
	wantErr(t, "GetUserByEmail of the old email", err, storage.ErrNotFound)
	got, err := s.GetUserByEmail(ctx, "new@example.com")
	must(t, "GetUserByEmail of the new email", err)
	if got.ID != "u1" || got.Email != "New@Example.com" {
		t.Errorf("got %q <%s>, want u1 <New@Example.com>", got.ID, got.Email)
	}
	// The old email is free for someone else.
	must(t, "CreateUser with the old email", s.CreateUser(ctx, newUser("u2", "OLD@example.com")))
}

func testUpdateUserEmailClash(t *testing.T, s storage.Store) {
	ctx := t.Context()
	must(t, "CreateUser a", s.CreateUser(ctx, newUser("u1", "a@example.com")))
	must(t, "CreateUser b", s.CreateUser(ctx, newUser("u2", "b@example.com")))
	_, err := s.UpdateUser(ctx, "u2", func(u storage.User) (storage.User, error) {
		u.Email = "A@example.com"
		return u, nil
	})
	wantErr(t, "UpdateUser to a taken email", err, storage.ErrAlreadyExists)
	got, err := s.GetUser(ctx, "u2")
	must(t, "GetUser", err)
	if got.Email != "b@example.com" {
		t.Errorf("email after a failed update: %q, want b@example.com", got.Email)
	}
}

func testUpdaterError(t *testing.T, s storage.Store) {
	ctx := t.Context()
	errBoom := errors.New("boom")
	u, c := newUser("u1", "a@example.com"), newClient("c1")
	must(t, "CreateUser", s.CreateUser(ctx, u))
	must(t, "CreateClient", s.CreateClient(ctx, c))

	_, err := s.UpdateUser(ctx, "u1", func(u storage.User) (storage.User, error) {
		u.Name = "changed"
		return u, errBoom
	})
	wantErr(t, "UpdateUser with a failing updater", err, errBoom)
	got, err := s.GetUser(ctx, "u1")
	must(t, "GetUser", err)
	checkUser(t, got, u)

	_, err = s.UpdateClient(ctx, "c1", func(c storage.Client) (storage.Client, error) {
		c.Name = "changed"
		return c, errBoom
	})
	wantErr(t, "UpdateClient with a failing updater", err, errBoom)
	gotc, err := s.GetClient(ctx, "c1")
	must(t, "GetClient", err)
	checkClient(t, gotc, c)
}

func testUpdaterCannotChangeID(t *testing.T, s storage.Store) {
	ctx := t.Context()
	must(t, "CreateUser", s.CreateUser(ctx, newUser("u1", "a@example.com")))
	must(t, "CreateClient", s.CreateClient(ctx, newClient("c1")))
	if _, err := s.UpdateUser(ctx, "u1", func(u storage.User) (storage.User, error) {
		u.ID = "u2"
		return u, nil
	}); err == nil {
		t.Error("UpdateUser changed the ID without an error")
	}
	if _, err := s.UpdateClient(ctx, "c1", func(c storage.Client) (storage.Client, error) {
		c.ID = "c2"
		return c, nil
	}); err == nil {
		t.Error("UpdateClient changed the ID without an error")
	}
	_, err := s.GetUser(ctx, "u2")
	wantErr(t, "GetUser of the attempted new ID", err, storage.ErrNotFound)
	_, err = s.GetClient(ctx, "c2")
	wantErr(t, "GetClient of the attempted new ID", err, storage.ErrNotFound)
}

func testMissingRecords(t *testing.T, s storage.Store) {
	ctx := t.Context()
	_, err := s.GetUser(ctx, "nobody")
	wantErr(t, "GetUser", err, storage.ErrNotFound)
	_, err = s.GetUserByEmail(ctx, "nobody@example.com")
	wantErr(t, "GetUserByEmail", err, storage.ErrNotFound)
	_, err = s.UpdateUser(ctx, "nobody", func(u storage.User) (storage.User, error) {
		t.Error("UpdateUser called the updater for a missing user")
		return u, nil
	})
	wantErr(t, "UpdateUser", err, storage.ErrNotFound)
	wantErr(t, "DeleteUser", s.DeleteUser(ctx, "nobody"), storage.ErrNotFound)

	_, err = s.GetClient(ctx, "nobody")
	wantErr(t, "GetClient", err, storage.ErrNotFound)
	_, err = s.UpdateClient(ctx, "nobody", func(c storage.Client) (storage.Client, error) {
		t.Error("UpdateClient called the updater for a missing client")
		return c, nil
	})
	wantErr(t, "UpdateClient", err, storage.ErrNotFound)
	wantErr(t, "DeleteClient", s.DeleteClient(ctx, "nobody"), storage.ErrNotFound)

	_, err = s.GetToken(ctx, storage.AccessToken, "nothing")
	wantErr(t, "GetToken", err, storage.ErrNotFound)
	wantErr(t, "DeleteToken", s.DeleteToken(ctx, storage.AccessToken, "nothing"), storage.ErrNotFound)
	wantErr(t, "DeactivateToken", s.DeactivateToken(ctx, storage.RefreshToken, "nothing"), storage.ErrNotFound)
	must(t, "DeleteAttempts of a missing counter", s.DeleteAttempts(ctx, "nothing"))
}

func testClientCRUD(t *testing.T, s storage.Store) {
	ctx := t.Context()
	c1 := newClient("c1")
	c2 := newClient("c2")
	c2.Public, c2.Introspect, c2.SecretHashes, c2.Scopes = true, false, nil, []string{}
	must(t, "CreateClient c2", s.CreateClient(ctx, c2))
	must(t, "CreateClient c1", s.CreateClient(ctx, c1))

	got, err := s.GetClient(ctx, "c1")
	must(t, "GetClient c1", err)
	checkClient(t, got, c1)
	got, err = s.GetClient(ctx, "c2")
	must(t, "GetClient c2", err)
	checkClient(t, got, c2)

	list, err := s.ListClients(ctx)
	must(t, "ListClients", err)
	checkStrings(t, "ListClients", ids(list, func(c storage.Client) string { return c.ID }), []string{"c1", "c2"})

	// A secret rotation: the new hash goes first, the old one stays for now.
	updated, err := s.UpdateClient(ctx, "c1", func(c storage.Client) (storage.Client, error) {
		c.SecretHashes = []string{"$argon2id$newer", c.SecretHashes[0]}
		c.Name = "Renamed"
		c.RedirectURIs = []string{"https://app.example/cb2"}
		c.SkipConsent, c.RequirePAR = false, true
		return c, nil
	})
	must(t, "UpdateClient", err)
	c1.SecretHashes, c1.Name = []string{"$argon2id$newer", "$argon2id$new"}, "Renamed"
	c1.RedirectURIs, c1.SkipConsent, c1.RequirePAR = []string{"https://app.example/cb2"}, false, true
	checkClient(t, updated, c1)
	got, err = s.GetClient(ctx, "c1")
	must(t, "GetClient after update", err)
	checkClient(t, got, c1)

	must(t, "DeleteClient", s.DeleteClient(ctx, "c1"))
	_, err = s.GetClient(ctx, "c1")
	wantErr(t, "GetClient after delete", err, storage.ErrNotFound)
}

func testDuplicateClient(t *testing.T, s storage.Store) {
	ctx := t.Context()
	must(t, "CreateClient", s.CreateClient(ctx, newClient("c1")))
	wantErr(t, "CreateClient with a taken ID", s.CreateClient(ctx, newClient("c1")), storage.ErrAlreadyExists)
}

func testTokenCRUD(t *testing.T, s storage.Store) {
	ctx := t.Context()
	at := newToken(storage.AccessToken, "sig-a", "req-1", "c1", "u1")
	rt := newToken(storage.RefreshToken, "sig-r", "req-1", "c1", "u1")
	cc := newToken(storage.AccessToken, "sig-cc", "req-2", "c1", "") // client_credentials: no subject
	for _, tok := range []storage.Token{at, rt, cc} {
		must(t, "CreateToken "+tok.Signature, s.CreateToken(ctx, tok))
	}
	for _, want := range []storage.Token{at, rt, cc} {
		got, err := s.GetToken(ctx, want.Kind, want.Signature)
		must(t, "GetToken "+want.Signature, err)
		checkToken(t, got, want)
	}
	_, err := s.GetToken(ctx, storage.RefreshToken, "sig-a")
	wantErr(t, "GetToken with the wrong kind", err, storage.ErrNotFound)

	must(t, "DeleteToken", s.DeleteToken(ctx, storage.AccessToken, "sig-a"))
	if _, ok := tokenExists(t, s, storage.AccessToken, "sig-a"); ok {
		t.Error("the access token survived DeleteToken")
	}
	if _, ok := tokenExists(t, s, storage.RefreshToken, "sig-r"); !ok {
		t.Error("DeleteToken of the access token removed the refresh token")
	}
	wantErr(t, "DeleteToken twice", s.DeleteToken(ctx, storage.AccessToken, "sig-a"), storage.ErrNotFound)
}

func testDuplicateToken(t *testing.T, s storage.Store) {
	ctx := t.Context()
	must(t, "CreateToken", s.CreateToken(ctx, newToken(storage.AccessToken, "sig", "req-1", "c1", "u1")))
	err := s.CreateToken(ctx, newToken(storage.AccessToken, "sig", "req-2", "c1", "u1"))
	wantErr(t, "CreateToken with a taken signature", err, storage.ErrAlreadyExists)
	must(t, "CreateToken of the other kind with the same signature",
		s.CreateToken(ctx, newToken(storage.RefreshToken, "sig", "req-1", "c1", "u1")))
}

func testCreateTokenIfAbsent(t *testing.T, s storage.Store) {
	ctx := t.Context()
	first := newToken(storage.UsedJTI, "jti:1", "jti:1", "c1", "")
	created, err := s.CreateTokenIfAbsent(ctx, first)
	must(t, "CreateTokenIfAbsent", err)
	if !created {
		t.Fatal("CreateTokenIfAbsent of a new key reported false")
	}
	again := first
	again.ClientID, again.Payload = "c2", []byte("other")
	created, err = s.CreateTokenIfAbsent(ctx, again)
	must(t, "CreateTokenIfAbsent of a taken key", err)
	if created {
		t.Error("CreateTokenIfAbsent of a taken key reported true")
	}
	got, ok := tokenExists(t, s, storage.UsedJTI, "jti:1")
	if !ok {
		t.Fatal("the record is gone")
	}
	checkToken(t, got, first) // the first record, untouched
	wantErr(t, "CreateToken after CreateTokenIfAbsent", s.CreateToken(ctx, again), storage.ErrAlreadyExists)
	other := newToken(storage.AccessToken, "jti:1", "req-1", "c1", "u1")
	if created, err := s.CreateTokenIfAbsent(ctx, other); err != nil || !created {
		t.Errorf("CreateTokenIfAbsent of another kind with the same signature: %v, %v; want true, nil", created, err)
	}
}

func testPayloadBytes(t *testing.T, s storage.Store) {
	ctx := t.Context()
	big := make([]byte, 64<<10)
	for i := range big {
		big[i] = byte(i * 7)
	}
	payloads := map[string][]byte{
		"zero-bytes": {0, 0, 'a', 0, 'b', 0},
		"not-utf8":   {0xff, 0xfe, 0xc3, 0x28, 0xa0, 0xa1, 0xe2, 0x82},
		"all-bytes": func() []byte {
			b := make([]byte, 256)
			for i := range b {
				b[i] = byte(i)
			}
			return b
		}(),
		"json-utf8": []byte(`{"name":"Zoë 🔑","q":"'\"\\"}`),
		"empty":     {},
		"large":     big,
	}
	for name, p := range payloads {
		tok := newToken(storage.AccessToken, "sig-"+name, "req", "c1", "u1")
		tok.Payload = p
		must(t, "CreateToken "+name, s.CreateToken(ctx, tok))
	}
	for name, p := range payloads {
		got, err := s.GetToken(ctx, storage.AccessToken, "sig-"+name)
		must(t, "GetToken "+name, err)
		checkBytes(t, "payload "+name, got.Payload, p)
	}
}

func testTimeZones(t *testing.T, s storage.Store) {
	ctx := t.Context()
	// Two non-UTC zones and instants on both sides of 1970 and of midnight UTC.
	west := time.FixedZone("UTC-09:30", -(9*3600 + 30*60))
	created := time.Date(1969, time.December, 31, 20, 0, 0, 999999000, west) // 1970-01-01T05:30 UTC
	updated := time.Date(2038, time.January, 19, 3, 14, 8, 1000, zone)

	u := newUser("u1", "a@example.com")
	u.CreatedAt, u.UpdatedAt = created, updated
	must(t, "CreateUser", s.CreateUser(ctx, u))
	gotu, err := s.GetUser(ctx, "u1")
	must(t, "GetUser", err)
	checkUser(t, gotu, u)

	c := newClient("c1")
	c.CreatedAt, c.UpdatedAt = updated, created
	must(t, "CreateClient", s.CreateClient(ctx, c))
	gotc, err := s.GetClient(ctx, "c1")
	must(t, "GetClient", err)
	checkClient(t, gotc, c)

	tok := newToken(storage.RefreshToken, "sig", "req", "c1", "u1")
	tok.RequestedAt, tok.ExpiresAt = created, updated
	must(t, "CreateToken", s.CreateToken(ctx, tok))
	gott, err := s.GetToken(ctx, tok.Kind, tok.Signature)
	must(t, "GetToken", err)
	checkToken(t, gott, tok)

	a, err := s.UpdateAttempts(ctx, "k", func(a storage.Attempts) (storage.Attempts, error) {
		a.Failures, a.Last = 1, updated
		return a, nil
	})
	must(t, "UpdateAttempts", err)
	checkTime(t, "attempts last (returned)", a.Last, updated)
	a, err = s.UpdateAttempts(ctx, "k", func(a storage.Attempts) (storage.Attempts, error) {
		checkTime(t, "attempts last (stored)", a.Last, updated)
		return a, nil
	})
	must(t, "UpdateAttempts", err)

	key := storage.SigningKey{ID: "k1", Algorithm: "ES256", State: storage.KeyActive,
		CreatedAt: created, ActivateAt: updated, RetiredAt: updated.Add(time.Hour), DeleteAt: updated.Add(2 * time.Hour)}
	_, err = s.UpdateKeys(ctx, func(ks storage.KeySet) (storage.KeySet, error) {
		ks.Keys = append(ks.Keys, key)
		return ks, nil
	})
	must(t, "UpdateKeys", err)
	ks, err := s.GetKeys(ctx)
	must(t, "GetKeys", err)
	checkKeySet(t, ks, storage.KeySet{Version: 1, Keys: []storage.SigningKey{key}})
}

func testCopies(t *testing.T, s storage.Store) {
	ctx := t.Context()
	u := newUser("u1", "a@example.com")
	c := newClient("c1")
	tok := newToken(storage.AccessToken, "sig", "req", "c1", "u1")
	must(t, "CreateUser", s.CreateUser(ctx, u))
	must(t, "CreateClient", s.CreateClient(ctx, c))
	must(t, "CreateToken", s.CreateToken(ctx, tok))
	_, err := s.UpdateKeys(ctx, func(ks storage.KeySet) (storage.KeySet, error) {
		ks.Keys = []storage.SigningKey{{ID: "k1", Private: []byte("secret"), Public: []byte("{}")}}
		return ks, nil
	})
	must(t, "UpdateKeys", err)

	// Modify what was passed in...
	u.Roles[0], c.Scopes[0], tok.Payload[0] = "x", "x", 'x'
	// ...and what came out.
	gotu, _ := s.GetUser(ctx, "u1")
	gotu.Roles[0] = "y"
	listu, _ := s.ListUsers(ctx)
	listu[0].Roles[1] = "y"
	gotc, _ := s.GetClient(ctx, "c1")
	gotc.Scopes[0], gotc.SecretHashes[0], gotc.GrantTypes[0] = "y", "y", "y"
	listc, _ := s.ListClients(ctx)
	listc[0].Scopes[1] = "y"
	gott, _ := s.GetToken(ctx, storage.AccessToken, "sig")
	gott.Payload[0] = 'y'
	gotk, _ := s.GetKeys(ctx)
	gotk.Keys[0].Private[0] = 'y'
	gotk.Keys[0].ID = "y"

	fresh := newUser("u1", "a@example.com")
	gotu, err = s.GetUser(ctx, "u1")
	must(t, "GetUser", err)
	checkUser(t, gotu, fresh)
	gotc, err = s.GetClient(ctx, "c1")
	must(t, "GetClient", err)
	checkClient(t, gotc, newClient("c1"))
	gott, err = s.GetToken(ctx, storage.AccessToken, "sig")
	must(t, "GetToken", err)
	checkToken(t, gott, newToken(storage.AccessToken, "sig", "req", "c1", "u1"))
	gotk, err = s.GetKeys(ctx)
	must(t, "GetKeys", err)
	if gotk.Keys[0].ID != "k1" || string(gotk.Keys[0].Private) != "secret" {
		t.Errorf("key set changed through a returned value: %+v", gotk.Keys[0])
	}
}

func testDeactivateCAS(t *testing.T, s storage.Store) {
	ctx := t.Context()
	tok := newToken(storage.RefreshToken, "rt", "req", "c1", "u1")
	must(t, "CreateToken", s.CreateToken(ctx, tok))
	must(t, "CreateToken access", s.CreateToken(ctx, newToken(storage.AccessToken, "rt", "req", "c1", "u1")))

	must(t, "first DeactivateToken", s.DeactivateToken(ctx, storage.RefreshToken, "rt"))
	wantErr(t, "second DeactivateToken", s.DeactivateToken(ctx, storage.RefreshToken, "rt"), storage.ErrNotFound)

	got, err := s.GetToken(ctx, storage.RefreshToken, "rt")
	must(t, "GetToken of an inactive token", err)
	tok.Active = false
	checkToken(t, got, tok)
	got, err = s.GetToken(ctx, storage.AccessToken, "rt")
	must(t, "GetToken of the other kind", err)
	if !got.Active {
		t.Error("DeactivateToken changed the record of the other kind")
	}
}

func testDeactivateTokens(t *testing.T, s storage.Store) {
	ctx := t.Context()
	for _, tok := range []storage.Token{
		newToken(storage.RefreshToken, "r1", "req-1", "c1", "u1"),
		newToken(storage.RefreshToken, "r2", "req-1", "c1", "u1"),
		newToken(storage.RefreshToken, "r3", "req-1", "c1", "u1"),
		newToken(storage.AccessToken, "a1", "req-1", "c1", "u1"),
		newToken(storage.RefreshToken, "r4", "req-2", "c1", "u1"),
	} {
		must(t, "CreateToken "+tok.Signature, s.CreateToken(ctx, tok))
	}
	must(t, "DeactivateToken r1", s.DeactivateToken(ctx, storage.RefreshToken, "r1"))

	n, err := s.DeactivateTokens(ctx, storage.RefreshToken, "req-1")
	must(t, "DeactivateTokens", err)
	if n != 2 {
		t.Errorf("DeactivateTokens changed %d records, want 2 (r1 was already inactive)", n)
	}
	for sig, want := range map[string]bool{"r1": false, "r2": false, "r3": false, "r4": true} {
		got, _ := tokenExists(t, s, storage.RefreshToken, sig)
		if got.Active != want {
			t.Errorf("%s active = %v, want %v", sig, got.Active, want)
		}
	}
	if got, _ := tokenExists(t, s, storage.AccessToken, "a1"); !got.Active {
		t.Error("DeactivateTokens(refresh) deactivated an access token")
	}
	n, err = s.DeactivateTokens(ctx, storage.RefreshToken, "req-1")
	must(t, "DeactivateTokens again", err)
	if n != 0 {
		t.Errorf("second DeactivateTokens changed %d records, want 0", n)
	}
}

func testDeleteTokens(t *testing.T, s storage.Store) {
	ctx := t.Context()
	for _, tok := range []storage.Token{
		newToken(storage.AccessToken, "a1", "req-1", "c1", "u1"),
		newToken(storage.AccessToken, "a2", "req-1", "c1", "u1"),
		newToken(storage.RefreshToken, "r1", "req-1", "c1", "u1"),
		newToken(storage.AccessToken, "a3", "req-2", "c1", "u1"),
	} {
		must(t, "CreateToken "+tok.Signature, s.CreateToken(ctx, tok))
	}
	n, err := s.DeleteTokens(ctx, storage.AccessToken, "req-1")
	must(t, "DeleteTokens", err)
	if n != 2 {
		t.Errorf("DeleteTokens deleted %d records, want 2", n)
	}
	for _, c := range []struct {
		kind storage.TokenKind
		sig  string
		want bool
	}{
		{storage.AccessToken, "a1", false},
		{storage.AccessToken, "a2", false},
		{storage.RefreshToken, "r1", true},
		{storage.AccessToken, "a3", true},
	} {
		if _, ok := tokenExists(t, s, c.kind, c.sig); ok != c.want {
			t.Errorf("%s exists = %v, want %v", c.sig, ok, c.want)
		}
	}
	n, err = s.DeleteTokens(ctx, storage.AccessToken, "req-1")
	must(t, "DeleteTokens again", err)
	if n != 0 {
		t.Errorf("second DeleteTokens deleted %d records, want 0", n)
	}
}

func testRevokeTokens(t *testing.T, s storage.Store) {
	ctx := t.Context()
	// sig: client, subject
	grid := map[string][2]string{
		"c1-u1": {"c1", "u1"}, "c1-u2": {"c1", "u2"}, "c2-u1": {"c2", "u1"},
		"c2-u2": {"c2", "u2"}, "c3-u3": {"c3", "u3"}, "c3-cc": {"c3", ""},
	}
	for sig, cs := range grid {
		must(t, "CreateToken", s.CreateToken(ctx, newToken(storage.AccessToken, sig, "req-"+sig, cs[0], cs[1])))
		must(t, "CreateToken", s.CreateToken(ctx, newToken(storage.RefreshToken, sig, "req-"+sig, cs[0], cs[1])))
	}
	steps := []struct {
		filter  storage.TokenFilter
		n       int64
		removed []string
	}{
		{storage.TokenFilter{Subject: "u1", ClientID: "c2"}, 2, []string{"c2-u1"}},
		{storage.TokenFilter{Subject: "u2"}, 4, []string{"c1-u2", "c2-u2"}},
		{storage.TokenFilter{ClientID: "c3"}, 4, []string{"c3-u3", "c3-cc"}},
		{storage.TokenFilter{Subject: "nobody"}, 0, nil},
	}
	gone := map[string]bool{}
	for _, st := range steps {
		n, err := s.RevokeTokens(ctx, st.filter)
		must(t, fmt.Sprintf("RevokeTokens(%+v)", st.filter), err)
		if n != st.n {
			t.Errorf("RevokeTokens(%+v) removed %d records, want %d", st.filter, n, st.n)
		}
		for _, sig := range st.removed {
			gone[sig] = true
		}
		for sig := range grid {
			for _, kind := range []storage.TokenKind{storage.AccessToken, storage.RefreshToken} {
				if _, ok := tokenExists(t, s, kind, sig); ok == gone[sig] {
					t.Errorf("after RevokeTokens(%+v): %s %s exists = %v", st.filter, kind, sig, ok)
				}
			}
		}
	}
}

func testRevokeEmptyFilter(t *testing.T, s storage.Store) {
	ctx := t.Context()
	must(t, "CreateToken", s.CreateToken(ctx, newToken(storage.AccessToken, "a", "req", "c1", "u1")))
	if _, err := s.RevokeTokens(ctx, storage.TokenFilter{}); err == nil {
		t.Error("RevokeTokens with an empty filter did not fail")
	}
	if _, ok := tokenExists(t, s, storage.AccessToken, "a"); !ok {
		t.Error("RevokeTokens with an empty filter deleted a token")
	}
}

func testKeysEmpty(t *testing.T, s storage.Store) {
	ks, err := s.GetKeys(t.Context())
	must(t, "GetKeys", err)
	if ks.Version != 0 || len(ks.Keys) != 0 {
		t.Errorf("GetKeys on a new store = %+v, want an empty set with version 0", ks)
	}
}

func testUpdateKeys(t *testing.T, s storage.Store) {
	ctx := t.Context()
	k1 := storage.SigningKey{
		ID: "k1", Algorithm: "ES256", State: storage.KeyActive,
		Private: []byte{0, 1, 2, 0xff}, Public: []byte(`{"kty":"EC"}`),
		CreatedAt: at(0), ActivateAt: at(time.Second),
	}
	k2 := storage.SigningKey{
		ID: "k2", Algorithm: "RS256", State: storage.KeyNext,
		Private: []byte("private"), Public: []byte(`{"kty":"RSA"}`),
		CreatedAt: at(time.Minute), ActivateAt: at(time.Hour),
	}
	got, err := s.UpdateKeys(ctx, func(ks storage.KeySet) (storage.KeySet, error) {
		if ks.Version != 0 || len(ks.Keys) != 0 {
			t.Errorf("first updater got %+v, want the empty set", ks)
		}
		ks.Keys = append(ks.Keys, k1)
		ks.Version = 42 // ignored: the backend maintains the version
		return ks, nil
	})
	must(t, "UpdateKeys 1", err)
	want := storage.KeySet{Version: 1, Keys: []storage.SigningKey{k1}}
	checkKeySet(t, got, want)

	got, err = s.UpdateKeys(ctx, func(ks storage.KeySet) (storage.KeySet, error) {
		checkKeySet(t, ks, want)
		ks.Keys[0].State = storage.KeyRetired
		ks.Keys[0].RetiredAt = at(2 * time.Hour)
		ks.Keys[0].DeleteAt = at(3 * time.Hour)
		ks.Keys = append(ks.Keys, k2)
		return ks, nil
	})
	must(t, "UpdateKeys 2", err)
	k1.State, k1.RetiredAt, k1.DeleteAt = storage.KeyRetired, at(2*time.Hour), at(3*time.Hour)
	want = storage.KeySet{Version: 2, Keys: []storage.SigningKey{k1, k2}}
	checkKeySet(t, got, want)
	got, err = s.GetKeys(ctx)
	must(t, "GetKeys", err)
	checkKeySet(t, got, want)

	// An update that changes nothing still counts.
	got, err = s.UpdateKeys(ctx, func(ks storage.KeySet) (storage.KeySet, error) { return ks, nil })
	must(t, "UpdateKeys 3", err)
	want.Version = 3
	checkKeySet(t, got, want)
}

func testUpdateKeysError(t *testing.T, s storage.Store) {
	ctx := t.Context()
	_, err := s.UpdateKeys(ctx, func(ks storage.KeySet) (storage.KeySet, error) {
		ks.Keys = append(ks.Keys, storage.SigningKey{ID: "k1"})
		return ks, nil
	})
	must(t, "UpdateKeys", err)
	errAlready := errors.New("already rotated")
	_, err = s.UpdateKeys(ctx, func(ks storage.KeySet) (storage.KeySet, error) {
		ks.Keys = append(ks.Keys, storage.SigningKey{ID: "k2"})
		return ks, errAlready
	})
	if err != errAlready { // the contract is "returned unchanged", not merely wrapped
		t.Errorf("UpdateKeys returned %v, want the updater's error unchanged", err)
	}
	ks, err := s.GetKeys(ctx)
	must(t, "GetKeys", err)
	if ks.Version != 1 || len(ks.Keys) != 1 {
		t.Errorf("after a failed update: version %d with %d keys, want version 1 with 1 key", ks.Version, len(ks.Keys))
	}
}

func testAttempts(t *testing.T, s storage.Store) {
	ctx := t.Context()
	inc := func(when time.Time) func(storage.Attempts) (storage.Attempts, error) {
		return func(a storage.Attempts) (storage.Attempts, error) {
			a.Failures++
			a.Last = when
			return a, nil
		}
	}
	a, err := s.UpdateAttempts(ctx, "user:u1", func(a storage.Attempts) (storage.Attempts, error) {
		if a.Key != "user:u1" || a.Failures != 0 || !a.Last.IsZero() {
			t.Errorf("a missing counter was passed as %+v, want Attempts{Key: %q}", a, "user:u1")
		}
		return inc(at(0))(a)
	})
	must(t, "UpdateAttempts 1", err)
	if a.Key != "user:u1" || a.Failures != 1 {
		t.Errorf("UpdateAttempts returned %+v, want 1 failure", a)
	}
	a, err = s.UpdateAttempts(ctx, "user:u1", inc(at(time.Minute)))
	must(t, "UpdateAttempts 2", err)
	if a.Failures != 2 {
		t.Errorf("after two updates: %d failures, want 2", a.Failures)
	}
	checkTime(t, "last", a.Last, at(time.Minute))
	_, err = s.UpdateAttempts(ctx, "ip:192.0.2.1", inc(at(0)))
	must(t, "UpdateAttempts other key", err)

	errBoom := errors.New("boom")
	_, err = s.UpdateAttempts(ctx, "user:u1", func(a storage.Attempts) (storage.Attempts, error) {
		a.Failures = 100
		return a, errBoom
	})
	wantErr(t, "UpdateAttempts with a failing updater", err, errBoom)
	_, err = s.UpdateAttempts(ctx, "fresh", func(a storage.Attempts) (storage.Attempts, error) { return a, errBoom })
	wantErr(t, "UpdateAttempts with a failing updater on a missing counter", err, errBoom)

	must(t, "DeleteAttempts", s.DeleteAttempts(ctx, "user:u1"))
	a, err = s.UpdateAttempts(ctx, "user:u1", func(a storage.Attempts) (storage.Attempts, error) {
		if a.Failures != 0 {
			t.Errorf("after DeleteAttempts the counter is %d, want 0", a.Failures)
		}
		return a, nil
	})
	must(t, "UpdateAttempts after delete", err)
	if a := peekAttempts(t, s, "ip:192.0.2.1"); a.Failures != 1 {
		t.Errorf("DeleteAttempts of one key changed another: %d failures, want 1", a.Failures)
	}
}

func testGarbageCollect(t *testing.T, s storage.Store) {
	ctx := t.Context()
	now := at(24 * time.Hour)
	ttl := time.Hour
	for _, c := range []struct {
		sig     string
		expires time.Time
	}{
		{"expired", now.Add(-time.Second)},
		{"expired-long-ago", now.Add(-1000 * time.Hour)},
		{"expired-just-now", now.Add(-time.Microsecond)},
		{"expires-now", now},
		{"live", now.Add(time.Second)},
	} {
		tok := newToken(storage.RefreshToken, c.sig, "req-"+c.sig, "c1", "u1")
		tok.ExpiresAt = c.expires.In(time.UTC)
		must(t, "CreateToken", s.CreateToken(ctx, tok))
	}
	for key, last := range map[string]time.Time{
		"old":      now.Add(-ttl - time.Second),
		"old-just": now.Add(-ttl - time.Microsecond),
		"edge":     now.Add(-ttl),
		"recent":   now.Add(-time.Minute),
	} {
		_, err := s.UpdateAttempts(ctx, key, func(a storage.Attempts) (storage.Attempts, error) {
			a.Failures, a.Last = 1, last
			return a, nil
		})
		must(t, "UpdateAttempts", err)
	}
	must(t, "CreateUser", s.CreateUser(ctx, newUser("u1", "a@example.com")))

	res, err := s.GarbageCollect(ctx, now, ttl)
	must(t, "GarbageCollect", err)
	if res != (storage.GCResult{Tokens: 3, Attempts: 2}) {
		t.Errorf("GarbageCollect = %+v, want 3 tokens and 2 attempts", res)
	}
	for sig, want := range map[string]bool{
		"expired": false, "expired-long-ago": false, "expired-just-now": false, "expires-now": true, "live": true,
	} {
		if _, ok := tokenExists(t, s, storage.RefreshToken, sig); ok != want {
			t.Errorf("token %s exists = %v, want %v", sig, ok, want)
		}
	}
	for key, want := range map[string]int{"old": 0, "old-just": 0, "edge": 1, "recent": 1} {
		if a := peekAttempts(t, s, key); a.Failures != want {
			t.Errorf("attempts %s = %d, want %d", key, a.Failures, want)
		}
	}
	if _, err := s.GetUser(ctx, "u1"); err != nil {
		t.Errorf("GarbageCollect touched a user: %v", err)
	}
	res, err = s.GarbageCollect(ctx, now, ttl)
	must(t, "GarbageCollect again", err)
	if res != (storage.GCResult{}) {
		t.Errorf("second GarbageCollect = %+v, want nothing", res)
	}
}

func testGarbageCollectBatches(t *testing.T, s storage.Store) {
	ctx := t.Context()
	const expired = 1234 // more than one batch of any reasonable size
	now := at(24 * time.Hour)
	// One transaction keeps the setup fast on backends that sync every commit.
	tx, err := s.BeginTx(ctx)
	must(t, "BeginTx", err)
	for i := range expired {
		tok := newToken(storage.AccessToken, fmt.Sprintf("expired-%04d", i), fmt.Sprintf("req-%d", i%50), "c1", "u1")
		tok.ExpiresAt = now.Add(-time.Duration(i+1) * time.Second)
		tok.Payload = nil
		must(t, "CreateToken", s.CreateToken(tx, tok))
	}
	live := newToken(storage.AccessToken, "live", "req", "c1", "u1")
	live.ExpiresAt = now.Add(time.Hour)
	must(t, "CreateToken", s.CreateToken(tx, live))
	must(t, "CommitTx", s.CommitTx(tx))

	res, err := s.GarbageCollect(ctx, now, time.Hour)
	must(t, "GarbageCollect", err)
	if res.Tokens != expired {
		t.Errorf("GarbageCollect removed %d tokens, want %d", res.Tokens, expired)
	}
	if _, ok := tokenExists(t, s, storage.AccessToken, "live"); !ok {
		t.Error("GarbageCollect removed a live token")
	}
	if _, ok := tokenExists(t, s, storage.AccessToken, "expired-1234"); ok {
		t.Error("GarbageCollect left an expired token")
	}
}

func testRotateToken(t *testing.T, s storage.Store) {
	ctx := t.Context()
	must(t, "CreateToken", s.CreateToken(ctx, newToken(storage.RefreshToken, "rot", "req-r", "c1", "u1")))
	got, _ := tokenExists(t, s, storage.RefreshToken, "rot")
	if !got.RotatedAt.IsZero() || got.Successor != nil {
		t.Fatalf("a fresh token has rotation data: %v %q", got.RotatedAt, got.Successor)
	}
	at := time.Date(2026, 3, 4, 5, 6, 7, 123456000, time.FixedZone("X", 3600))
	succ := []byte{0, 1, 2, 0xff, 'x'}
	must(t, "RotateToken", s.RotateToken(ctx, storage.RefreshToken, "rot", at, succ))
	got, _ = tokenExists(t, s, storage.RefreshToken, "rot")
	if got.Active || !got.RotatedAt.Equal(at) || got.RotatedAt.Location() != time.UTC || string(got.Successor) != string(succ) {
		t.Fatalf("after RotateToken: active=%v rotated=%v successor=%q", got.Active, got.RotatedAt, got.Successor)
	}
	wantErr(t, "second RotateToken", s.RotateToken(ctx, storage.RefreshToken, "rot", at, succ), storage.ErrNotFound)
	got2, _ := tokenExists(t, s, storage.RefreshToken, "rot")
	if !got2.RotatedAt.Equal(at) {
		t.Error("a failed RotateToken changed the record")
	}
}
