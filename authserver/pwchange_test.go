package authserver

import (
	"net/http"
	"strings"
	"testing"

	"github.com/oauthkit/authserver/internal/password"
	"github.com/oauthkit/authserver/storage"
)

// resetPassword sets the user's password to pw (hashed with params) and
// MustChangePassword to force, as an administrator's reset does.
func resetPassword(t *testing.T, env *testEnv, id, pw string, params password.Params, force bool) {
	t.Helper()
	h, err := password.Hash(pw, params)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := env.store.UpdateUser(t.Context(), id, func(u storage.User) (storage.User, error) {
		u.PasswordHash, u.MustChangePassword = h, force
		return u, nil
	}); err != nil {
		t.Fatal(err)
	}
}

// changeForm signs in with the reset password pw and returns the change
// form.
func changeForm(t *testing.T, b *browser, email, pw string) *page {
	t.Helper()
	p := b.signIn(b.get("/login"), email, pw)
	if !strings.Contains(p.body, `name="new_password"`) {
		t.Fatalf("no change form after the reset password (status %d)", p.status)
	}
	return p
}

// submitChange posts the change form p with the new password chosen.
func submitChange(t *testing.T, b *browser, p *page, chosen string) *page {
	t.Helper()
	action, form := p.form(t)
	form.Set("new_password", chosen)
	form.Set("confirm_password", chosen)
	return b.post(action, form)
}

// A password-change handle is bound to the reset password it was issued
// for. When an administrator sets the password again (the reset password
// leaked, say), a change form shown for the old one can no longer replace
// the administrator's password nor sign anybody in, whether or not the
// administrator also ended the user's sessions.
func TestPasswordChangeHandleRefusedAfterAdminReset(t *testing.T) {
	const (
		adminPW = "administrator chosen 4711 pass"
		chosen  = "attacker chosen passphrase 99"
	)
	for _, tc := range []struct {
		name string
		// admin is the administrator's action after the form was shown.
		admin func(t *testing.T, env *testEnv, id string)
	}{
		{"NewPasswordWithoutForce", func(t *testing.T, env *testEnv, id string) {
			resetPassword(t, env, id, adminPW, password.TestParams, false)
		}},
		{"NewForcedResetWithoutEndingSessions", func(t *testing.T, env *testEnv, id string) {
			resetPassword(t, env, id, adminPW, password.TestParams, true)
		}},
		{"NewPasswordAndSessionsEnded", func(t *testing.T, env *testEnv, id string) {
			resetPassword(t, env, id, adminPW, password.TestParams, false)
			if _, err := EndBrowserSessions(t.Context(), env.store, id); err != nil {
				t.Fatal(err)
			}
		}},
		{"SessionsEndedOnly", func(t *testing.T, env *testEnv, id string) {
			if _, err := EndBrowserSessions(t.Context(), env.store, id); err != nil {
				t.Fatal(err)
			}
		}},
		{"ChangeNoLongerRequired", func(t *testing.T, env *testEnv, id string) {
			if _, err := env.store.UpdateUser(t.Context(), id, func(u storage.User) (storage.User, error) {
				u.MustChangePassword = false
				return u, nil
			}); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := newCodeEnv(t)
			resetPassword(t, env, env.alice.ID, alicePW, password.TestParams, true)
			before, err := env.store.GetUser(t.Context(), env.alice.ID)
			if err != nil {
				t.Fatal(err)
			}
			b := newBrowser(t, env)
			p := changeForm(t, b, "alice@example.com", alicePW)
			tc.admin(t, env, env.alice.ID)
			want, err := env.store.GetUser(t.Context(), env.alice.ID)
			if err != nil {
				t.Fatal(err)
			}

			p = submitChange(t, b, p, chosen)
			if p.status != http.StatusBadRequest || !(strings.Contains(p.body, "no longer valid") || strings.Contains(p.body, "ran out")) {
				t.Errorf("stale change form: status %d, want 400 and the sign-in page's error", p.status)
			}
			if strings.Contains(p.body, "You are signed in") {
				t.Error("a stale change form signed the user in")
			}
			u, err := env.store.GetUser(t.Context(), env.alice.ID)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := password.Verify(chosen, u.PasswordHash, password.TestParams); err == nil {
				t.Fatal("a change handle issued before the administrator's action set the password")
			}
			if u.PasswordHash != want.PasswordHash || u.MustChangePassword != want.MustChangePassword {
				t.Fatalf("the administrator's password was changed (must change %v → %v)", want.MustChangePassword, u.MustChangePassword)
			}
			if tc.name == "SessionsEndedOnly" && u.PasswordHash != before.PasswordHash {
				t.Fatal("ending the sessions changed the password")
			}
		})
	}
}

// The handles are records of the user: ending the user's sessions or
// setting the password (EndPasswordChanges) deletes them.
func TestEndPasswordChangesDeletesHandles(t *testing.T) {
	env := newCodeEnv(t)
	resetPassword(t, env, env.alice.ID, alicePW, password.TestParams, true)
	changeForm(t, newBrowser(t, env), "alice@example.com", alicePW)
	changeForm(t, newBrowser(t, env), "alice@example.com", alicePW)
	if ts, err := env.store.ListTokens(t.Context(), passwordChangeKind, env.alice.ID); err != nil || len(ts) != 2 {
		t.Fatalf("pending changes: %d %v", len(ts), err)
	}
	if n, err := EndPasswordChanges(t.Context(), env.store, env.alice.ID); err != nil || n != 2 {
		t.Fatalf("EndPasswordChanges: %d %v", n, err)
	}
	changeForm(t, newBrowser(t, env), "alice@example.com", alicePW)
	if _, err := EndBrowserSessions(t.Context(), env.store, env.alice.ID); err != nil {
		t.Fatal(err)
	}
	if ts, err := env.store.ListTokens(t.Context(), passwordChangeKind, env.alice.ID); err != nil || len(ts) != 0 {
		t.Fatalf("pending changes after EndBrowserSessions: %d %v", len(ts), err)
	}
}

// A reset password hashed with older parameters is not rehashed at sign-in:
// the change form, bound to its stored hash, still works, and the new
// password is hashed with the current parameters.
func TestPasswordChangeAfterResetWithOldParameters(t *testing.T) {
	env := newCodeEnv(t)
	resetPassword(t, env, env.alice.ID, alicePW, password.Params{Memory: 32, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}, true)
	b := newBrowser(t, env)
	p := changeForm(t, b, "alice@example.com", alicePW)
	const chosen = "a new passphrase of my own 7"
	p = submitChange(t, b, p, chosen)
	if p.status != http.StatusOK || !strings.Contains(p.body, "You are signed in") {
		t.Fatalf("change after a reset with older parameters: %d", p.status)
	}
	u, err := env.store.GetUser(t.Context(), env.alice.ID)
	if err != nil {
		t.Fatal(err)
	}
	if rehash, err := password.Verify(chosen, u.PasswordHash, password.TestParams); err != nil || rehash || u.MustChangePassword {
		t.Fatalf("new password: err %v, needs rehash %v, must change %v", err, rehash, u.MustChangePassword)
	}
}
