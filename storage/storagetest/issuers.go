package storagetest

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/oauthkit/authserver/storage"
)

// testIssuerCRUD: trusted issuers of the JWT bearer grant round-trip,
// duplicates and missing records give the sentinel errors, lists are
// ordered, and returned values are copies.
func testIssuerCRUD(t *testing.T, s storage.Store) {
	ctx := t.Context()
	now := time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)
	a := storage.Issuer{ID: "https://idp.example", JWKSURI: "https://idp.example/jwks", Subjects: []string{"u-1", "bob@example.com"},
		Scopes: []string{"read", "write"}, CreatedAt: now}
	b := storage.Issuer{ID: "https://another.example", JWKS: []byte(`{"keys":[]}`), AnySubject: true, CreatedAt: now}
	for _, iss := range []storage.Issuer{a, b} {
		if err := s.CreateIssuer(ctx, iss); err != nil {
			t.Fatalf("CreateIssuer(%s): %v", iss.ID, err)
		}
	}
	if err := s.CreateIssuer(ctx, a); !errors.Is(err, storage.ErrAlreadyExists) {
		t.Fatalf("duplicate issuer: %v, want ErrAlreadyExists", err)
	}
	got, err := s.GetIssuer(ctx, a.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != a.ID || got.JWKSURI != a.JWKSURI || !slices.Equal(got.Subjects, a.Subjects) || !slices.Equal(got.Scopes, a.Scopes) ||
		got.AnySubject || !got.CreatedAt.Equal(now) {
		t.Fatalf("GetIssuer = %+v, want %+v", got, a)
	}
	got.Subjects[0] = "changed"
	if again, _ := s.GetIssuer(ctx, a.ID); again.Subjects[0] != "u-1" {
		t.Fatal("GetIssuer returned a shared slice")
	}
	gb, err := s.GetIssuer(ctx, b.ID)
	if err != nil || string(gb.JWKS) != string(b.JWKS) || !gb.AnySubject || gb.JWKSURI != "" {
		t.Fatalf("GetIssuer(b) = %+v, %v", gb, err)
	}
	list, err := s.ListIssuers(ctx)
	if err != nil || len(list) != 2 || list[0].ID != b.ID || list[1].ID != a.ID {
		t.Fatalf("ListIssuers = %+v, %v", list, err)
	}
	if err := s.DeleteIssuer(ctx, a.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetIssuer(ctx, a.ID); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("deleted issuer: %v, want ErrNotFound", err)
	}
	if err := s.DeleteIssuer(ctx, a.ID); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("delete twice: %v, want ErrNotFound", err)
	}
}
