package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/crypto/bcrypt"

	"github.com/oauthkit/authserver/authserver"
	"github.com/oauthkit/authserver/internal/password"
	"github.com/oauthkit/authserver/storage"
	sqlstore "github.com/oauthkit/authserver/storage/sql"
)

// userView is the public form of a user (never the hash).
type userView struct {
	ID        string    `json:"id"`
	Email     string    `json:"email"`
	Name      string    `json:"name"`
	Roles     []string  `json:"roles"`
	Disabled  bool      `json:"disabled"`
	CreatedAt time.Time `json:"created_at"`
}

func viewUser(u storage.User) userView {
	roles := u.Roles
	if roles == nil {
		roles = []string{}
	}
	return userView{u.ID, u.Email, u.Name, roles, u.Disabled, u.CreatedAt}
}

func newID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// withUser opens the database, finds the user named by ref (ID or email)
// and runs fn with both.
func (g *globals) withUser(ctx context.Context, ref string, fn func(*sqlstore.Store, storage.User) error) error {
	st, err := g.openStore(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	u, err := findUser(ctx, st, ref)
	if err != nil {
		return err
	}
	return fn(st, u)
}

// findUser looks a user up by ID or email.
func findUser(ctx context.Context, st storage.Users, ref string) (storage.User, error) {
	u, err := st.GetUser(ctx, ref)
	if errors.Is(err, storage.ErrNotFound) {
		u, err = st.GetUserByEmail(ctx, ref)
	}
	if errors.Is(err, storage.ErrNotFound) {
		return u, fmt.Errorf("no user %q", ref)
	}
	return u, err
}

// maxImportedBcryptCost bounds the cost of an imported bcrypt hash: every
// sign-in until the upgrade pays it.
const maxImportedBcryptCost = password.MaxBcryptCost

// checkImportedHash accepts an argon2id PHC string or a bcrypt hash that the
// server can verify.
func checkImportedHash(h string) error {
	if strings.HasPrefix(h, "$2") {
		cost, err := bcrypt.Cost([]byte(h))
		if err != nil {
			return fmt.Errorf("not a bcrypt hash: %w", err)
		}
		if cost > maxImportedBcryptCost {
			return fmt.Errorf("the bcrypt cost %d is above %d; every sign-in would be too slow", cost, maxImportedBcryptCost)
		}
	}
	_, err := password.Verify("not the password", h, password.DefaultParams)
	if errors.Is(err, password.ErrMalformedHash) {
		return fmt.Errorf("not an argon2id (PHC) or bcrypt hash: %w", err)
	}
	return nil
}

func newUsersCmd(g *globals) *cobra.Command {
	cmd := groupCommand("users", "Manage users")
	var email, name string
	var roles []string
	var pwStdin, hashStdin bool
	params := password.DefaultParams
	add := &cobra.Command{
		Use:   "add",
		Short: "Add a user (the password, or an existing hash, is read from stdin)",
		Long: `Add a user. The password is read from stdin (--password-stdin) and must have at least 12
characters and not be a common password. To import a user from another system, give its existing
argon2id (PHC) or bcrypt hash instead (--password-hash-stdin); a bcrypt hash is replaced by an
argon2id one at the user's next successful sign-in.`,
		Example: `  printf '%s\n' "$PASSWORD" | authserver users add --email carol@example.com --name Carol --role user --password-stdin
  printf '%s\n' '$2b$12$…' | authserver users add --email dave@example.com --password-hash-stdin`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if pwStdin == hashStdin {
				return errors.New("give --password-stdin or --password-hash-stdin (passwords are never taken as arguments)")
			}
			if email == "" || !strings.Contains(email, "@") {
				return errors.New("--email must be an email address")
			}
			line, err := readSecretLine(g.stdin)
			if err != nil {
				return err
			}
			var h string
			if hashStdin {
				if err := checkImportedHash(line); err != nil {
					return err
				}
				h = line
			} else {
				if err := password.CheckPolicy(line, password.DefaultMinLength); err != nil {
					return err
				}
				if h, err = password.Hash(line, params); err != nil {
					return err
				}
			}
			st, err := g.openStore(c.Context())
			if err != nil {
				return err
			}
			defer st.Close()
			now := time.Now().UTC()
			u := storage.User{ID: newID(), Email: email, Name: name, Roles: roles, PasswordHash: h, CreatedAt: now, UpdatedAt: now}
			if err := st.CreateUser(c.Context(), u); err != nil {
				if errors.Is(err, storage.ErrAlreadyExists) {
					return fmt.Errorf("a user with email %q already exists", email)
				}
				return err
			}
			return g.print(viewUser(u), func(w io.Writer) { fmt.Fprintf(w, "created user %s (%s)\n", u.ID, u.Email) })
		},
	}
	add.Flags().StringVar(&email, "email", "", "email address (unique, case-insensitive)")
	add.Flags().StringVar(&name, "name", "", "display name")
	add.Flags().StringSliceVar(&roles, "role", nil, "role (repeatable)")
	add.Flags().BoolVar(&pwStdin, "password-stdin", false, "read the password from stdin")
	add.Flags().BoolVar(&hashStdin, "password-hash-stdin", false, "read an existing argon2id (PHC) or bcrypt hash from stdin (importing users)")

	list := &cobra.Command{
		Use: "list", Short: "List users", Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			st, err := g.openStore(c.Context())
			if err != nil {
				return err
			}
			defer st.Close()
			us, err := st.ListUsers(c.Context())
			if err != nil {
				return err
			}
			views := make([]userView, 0, len(us))
			for _, u := range us {
				views = append(views, viewUser(u))
			}
			return g.print(views, func(w io.Writer) {
				fmt.Fprintln(w, "ID\tEMAIL\tNAME\tROLES\tDISABLED")
				for _, v := range views {
					fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%v\n", v.ID, v.Email, v.Name, strings.Join(v.Roles, ","), v.Disabled)
				}
			})
		},
	}
	show := &cobra.Command{
		Use: "show ID|EMAIL", Short: "Show a user", Args: oneArg,
		RunE: func(c *cobra.Command, args []string) error {
			return g.withUser(c.Context(), args[0], func(_ *sqlstore.Store, u storage.User) error {
				v := viewUser(u)
				return g.print(v, func(w io.Writer) {
					fmt.Fprintf(w, "id\t%s\nemail\t%s\nname\t%s\nroles\t%s\ndisabled\t%v\ncreated\t%s\n",
						v.ID, v.Email, v.Name, strings.Join(v.Roles, ","), v.Disabled, v.CreatedAt.Format(time.RFC3339))
				})
			})
		},
	}
	// update runs fn on the user named by the argument and prints the result.
	// after, if given, runs on the updated user before it is printed.
	update := func(use, short string, fn func(*storage.User) error, after ...func(context.Context, *sqlstore.Store, storage.User) error) *cobra.Command {
		return &cobra.Command{
			Use: use, Short: short, Args: oneArg,
			RunE: func(c *cobra.Command, args []string) error {
				return g.withUser(c.Context(), args[0], func(st *sqlstore.Store, u storage.User) error {
					if err := fn(&u); err != nil {
						return err
					}
					u, err := st.UpdateUser(c.Context(), u.ID, func(old storage.User) (storage.User, error) {
						old.Roles, old.Disabled, old.PasswordHash, old.UpdatedAt = u.Roles, u.Disabled, u.PasswordHash, time.Now().UTC()
						old.MustChangePassword = u.MustChangePassword
						return old, nil
					})
					if err != nil {
						return err
					}
					for _, f := range after {
						if err := f(c.Context(), st, u); err != nil {
							return err
						}
					}
					return g.print(viewUser(u), func(w io.Writer) { fmt.Fprintf(w, "updated user %s (%s)\n", u.ID, u.Email) })
				})
			},
		}
	}
	var forceChange bool
	setPassword := update("set-password ID|EMAIL", "Set a user's password (read from stdin)", func(u *storage.User) error {
		pw, err := readSecretLine(g.stdin)
		if err != nil {
			return err
		}
		if err := password.CheckPolicy(pw, password.DefaultMinLength); err != nil {
			return err
		}
		u.MustChangePassword = forceChange
		u.PasswordHash, err = password.Hash(pw, params)
		return err
	}, func(ctx context.Context, st *sqlstore.Store, u storage.User) error {
		return authserver.PasswordSet(ctx, st, u.ID, forceChange)
	})
	setPassword.Flags().BoolVar(&forceChange, "force-change", false, "make the user choose a new password at the next sign-in (the password grant refuses them until then); also ends their browser sessions")
	var setRoles []string
	setRolesCmd := update("set-roles ID|EMAIL", "Replace a user's roles", func(u *storage.User) error {
		u.Roles = setRoles
		return nil
	})
	setRolesCmd.Flags().StringSliceVar(&setRoles, "role", nil, "role (repeatable; none clears all roles)")
	disable := update("disable ID|EMAIL", "Disable a user and revoke their tokens and sessions", func(u *storage.User) error {
		u.Disabled = true
		return nil
	}, func(ctx context.Context, st *sqlstore.Store, u storage.User) error {
		// As the admin API does: the user's sessions end and their tokens
		// are revoked, which also sets their status list bits.
		_, err := st.RevokeTokens(ctx, storage.TokenFilter{Subject: u.ID})
		return err
	})
	enable := update("enable ID|EMAIL", "Enable a disabled user", func(u *storage.User) error {
		u.Disabled = false
		return nil
	})
	del := &cobra.Command{
		Use: "delete ID|EMAIL", Short: "Delete a user and revoke their tokens", Args: oneArg,
		RunE: func(c *cobra.Command, args []string) error {
			return g.withUser(c.Context(), args[0], func(st *sqlstore.Store, u storage.User) error {
				n, err := st.RevokeTokens(c.Context(), storage.TokenFilter{Subject: u.ID})
				if err != nil {
					return err
				}
				if err := st.DeleteUser(c.Context(), u.ID); err != nil {
					return err
				}
				return g.print(map[string]any{"deleted": u.ID, "tokens_revoked": n}, func(w io.Writer) {
					fmt.Fprintf(w, "deleted user %s (%s); %d token records revoked\n", u.ID, u.Email, n)
				})
			})
		},
	}
	consents := &cobra.Command{
		Use: "consents ID|EMAIL", Short: "List the clients a user consented to", Args: oneArg,
		RunE: func(c *cobra.Command, args []string) error {
			return g.withUser(c.Context(), args[0], func(st *sqlstore.Store, u storage.User) error {
				cs, err := authserver.ListConsents(c.Context(), st, u.ID)
				if err != nil {
					return err
				}
				return g.print(cs, func(w io.Writer) {
					fmt.Fprintln(w, "CLIENT\tSCOPES\tGRANTED")
					for _, x := range cs {
						fmt.Fprintf(w, "%s\t%s\t%s\n", x.ClientID, strings.Join(x.Scopes, " "), x.GrantedAt.Format(time.RFC3339))
					}
				})
			})
		},
	}
	var consentClient string
	revokeConsent := &cobra.Command{
		Use: "revoke-consent ID|EMAIL", Short: "Forget a user's consent (to --client, or to every client): they are asked again", Args: oneArg,
		RunE: func(c *cobra.Command, args []string) error {
			return g.withUser(c.Context(), args[0], func(st *sqlstore.Store, u storage.User) error {
				n, err := authserver.RevokeConsents(c.Context(), st, u.ID, consentClient)
				if err != nil {
					return err
				}
				return g.print(map[string]any{"consents_revoked": n}, func(w io.Writer) { fmt.Fprintf(w, "%d consents revoked\n", n) })
			})
		},
	}
	revokeConsent.Flags().StringVar(&consentClient, "client", "", "only the consent to this client")
	cmd.AddCommand(add, list, show, setPassword, setRolesCmd, disable, enable, del, consents, revokeConsent)
	return cmd
}
