package authserver

import (
	"errors"
	"strings"
	"testing"

	"github.com/oauthkit/authserver/internal/password"
)

// The unknown-user hash has the shape and parameters of a real one: it
// parses, is hashed with the configured parameters, and matches nothing.
func TestUnusableHashIsAWellFormedMismatch(t *testing.T) {
	p := password.TestParams
	h, err := unusableHash(p)
	if err != nil {
		t.Fatal(err)
	}
	real, err := password.Hash("x", p)
	if err != nil {
		t.Fatal(err)
	}
	field := func(s string, i int) string { return strings.Split(s, "$")[i] }
	for i := 1; i <= 3; i++ { // algorithm, version, parameters
		if field(h, i) != field(real, i) {
			t.Errorf("field %d = %q, a real hash has %q", i, field(h, i), field(real, i))
		}
	}
	if len(field(h, 4)) != len(field(real, 4)) || len(field(h, 5)) != len(field(real, 5)) {
		t.Errorf("salt and key lengths of %q differ from %q", h, real)
	}
	for _, pw := range []string{"", "x", "not a password: unknown user"} {
		if _, err := password.Verify(pw, h, p); !errors.Is(err, password.ErrMismatch) {
			t.Errorf("Verify(%q) = %v, want ErrMismatch", pw, err)
		}
	}
	if h2, _ := unusableHash(p); h2 == h {
		t.Error("two dummy hashes are equal: the salt is not random")
	}
}
