package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/oauthkit/authserver/authserver"
	"github.com/oauthkit/authserver/internal/password"
	"github.com/oauthkit/authserver/keys"
	"github.com/oauthkit/authserver/storage"
)

// clientView is the public form of a client (never a secret hash).
type clientView struct {
	ID         string   `json:"id"`
	Name       string   `json:"name,omitempty"`
	Public     bool     `json:"public"`
	GrantTypes []string `json:"grant_types"`
	Scopes     []string `json:"scopes"`
	Introspect bool     `json:"introspect"`
	// Code-flow registration.
	RedirectURIs []string `json:"redirect_uris"`
	Resources    []string `json:"resources"`
	SkipConsent  bool     `json:"skip_consent"`
	RequirePAR   bool     `json:"require_par"`
	// RequireDPoP is dpop_bound_access_tokens (RFC 9449 §5.2).
	RequireDPoP bool `json:"dpop_bound_access_tokens"`
	// OpenID Connect logout.
	PostLogoutRedirectURIs []string `json:"post_logout_redirect_uris"`
	BackchannelLogoutURI   string   `json:"backchannel_logout_uri,omitempty"`
	SubjectType            string   `json:"subject_type,omitempty"`
	Secrets                int      `json:"secrets"`
	// Client authentication (RFC 7591 §2); JWKS is the registered key set.
	TokenEndpointAuthMethod string          `json:"token_endpoint_auth_method,omitempty"`
	JWKSURI                 string          `json:"jwks_uri,omitempty"`
	JWKS                    json.RawMessage `json:"jwks,omitempty"`
	// ExchangeAudiences and SecretExpiresAt (Unix seconds, 0 for never).
	ExchangeAudiences []string  `json:"exchange_audiences"`
	SecretExpiresAt   int64     `json:"client_secret_expires_at"`
	CreatedAt         time.Time `json:"created_at"`
	// Secret is set only when the command generated it (shown once).
	Secret string `json:"client_secret,omitempty"`
}

func viewClient(c storage.Client) clientView {
	nz := func(s []string) []string {
		if s == nil {
			return []string{}
		}
		return s
	}
	return clientView{ID: c.ID, Name: c.Name, Public: c.Public, GrantTypes: nz(c.GrantTypes), Scopes: nz(c.Scopes),
		Introspect: c.Introspect, RedirectURIs: nz(c.RedirectURIs), Resources: nz(c.Resources),
		SkipConsent: c.SkipConsent, RequirePAR: c.RequirePAR, RequireDPoP: c.RequireDPoP, Secrets: len(c.SecretHashes), CreatedAt: c.CreatedAt,
		PostLogoutRedirectURIs: nz(c.PostLogoutRedirectURIs), BackchannelLogoutURI: c.BackchannelLogoutURI, SubjectType: c.SubjectType,
		ExchangeAudiences: nz(c.ExchangeAudiences), SecretExpiresAt: unixOrZero(c.SecretExpiresAt),
		TokenEndpointAuthMethod: c.TokenEndpointAuthMethod, JWKSURI: c.JWKSURI, JWKS: json.RawMessage(c.JWKS)}
}

func unixOrZero(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.Unix()
}

// cliNames are the registration fields as the CLI's flags name them.
var cliNames = authserver.RegistrationNames{ID: "--id", Grant: "--grant", RedirectURI: "--redirect-uri",
	PostLogoutRedirectURI: "--post-logout-redirect-uri", ExchangeAudience: "--exchange-audience",
	AuthMethod: "--auth-method", JWKSURI: "--jwks-uri", JWKS: "--jwks-file", SubjectType: "--subject-type", Name: "--name"}

// keyFlags are the client key flags of clients add and clients update.
type keyFlags struct {
	jwksURI, jwksFile string
}

func (k *keyFlags) register(f *pflag.FlagSet) {
	f.StringVar(&k.jwksURI, "jwks-uri", "", "URL of the client's public JWK Set, for --auth-method private_key_jwt (https; http only on a loopback address)")
	f.StringVar(&k.jwksFile, "jwks-file", "", "file holding the client's public JWK Set, for --auth-method private_key_jwt (stored by value)")
}

// apply sets the client's keys from the flags; setting one clears the other.
func (k *keyFlags) apply(c *storage.Client) error {
	switch {
	case k.jwksURI != "" && k.jwksFile != "":
		return errors.New("give --jwks-uri or --jwks-file, not both")
	case k.jwksURI != "":
		c.JWKSURI, c.JWKS = k.jwksURI, nil
	case k.jwksFile != "":
		b, err := os.ReadFile(k.jwksFile)
		if err != nil {
			return fmt.Errorf("--jwks-file: %w", err)
		}
		jwks, err := authserver.CompactJWKS(b)
		if err != nil {
			return fmt.Errorf("--jwks-file: not JSON: %w", err)
		}
		if jwks == nil {
			// CompactJWKS reads empty and null as "no set"; a file given
			// for the keys must hold them.
			return errors.New("--jwks-file: the file holds no JWK Set")
		}
		c.JWKSURI, c.JWKS = "", jwks
	}
	return nil
}

// sealJWTSecret keeps a client_secret_jwt client's secret, encrypted with
// the server secret (the HMAC of its assertions needs the secret itself).
func sealJWTSecret(g *globals, sf *secretFlags, c *storage.Client, secret string) error {
	if c.TokenEndpointAuthMethod != authserver.AuthMethodSecretJWT {
		return nil
	}
	key, err := sf.load(g.db, true, nil)
	if err != nil {
		return err
	}
	box, err := keys.NewSecretBox(key)
	if err != nil {
		return err
	}
	sealed, err := box.Seal(c.ID, []byte(secret))
	if err != nil {
		return err
	}
	c.SecretCiphertext = sealed
	return nil
}

// validateClient applies the registration policy (authserver.ValidateClient).
func validateClient(c storage.Client) error { return authserver.ValidateClient(c, cliNames) }

// registrationFlags are the flags clients add and clients update share.
func registrationFlags(f *pflag.FlagSet, c *storage.Client) {
	f.StringVar(&c.Name, "name", "", "display name (shown on the consent page)")
	f.StringSliceVar(&c.GrantTypes, "grant", nil, "allowed grant type (repeatable): authorization_code, password, refresh_token, client_credentials, "+authserver.GrantDeviceCode)
	f.StringSliceVar(&c.Scopes, "scope", nil, "allowed scope (repeatable)")
	f.BoolVar(&c.Introspect, "introspect", false, "allow the client to call the introspection endpoint")
	f.StringArrayVar(&c.RedirectURIs, "redirect-uri", nil, "registered redirect URI of the authorization code flow (repeatable; https, http://127.0.0.1 or http://[::1] loopback, or a private-use scheme such as com.example.app:/cb)")
	f.StringArrayVar(&c.Resources, "resource", nil, "resource indicator (RFC 8707) the client may request as its tokens' aud (repeatable)")
	f.BoolVar(&c.SkipConsent, "skip-consent", false, "first-party client: its users see no consent page")
	f.BoolVar(&c.RequirePAR, "require-par", false, "the client must send authorization requests through /par (RFC 9126)")
	f.BoolVar(&c.RequireDPoP, "require-dpop", false, "the client's token requests must carry a DPoP proof (RFC 9449 dpop_bound_access_tokens)")
	f.StringArrayVar(&c.PostLogoutRedirectURIs, "post-logout-redirect-uri", nil, "where RP-initiated logout (/end_session) may return the browser (repeatable; exact match)")
	f.StringVar(&c.SubjectType, "subject-type", "", "public (default) or pairwise: per-sector pseudonymous sub values (OpenID Connect Core §8.1; the sector is the host of the redirect URIs)")
	f.StringVar(&c.BackchannelLogoutURI, "backchannel-logout-uri", "", "OpenID Connect back-channel logout endpoint of the client: receives a logout token when a session it signed in through ends")
	f.StringArrayVar(&c.ExchangeAudiences, "exchange-audience", nil, "audience or resource URI the client may ask for in a token exchange (RFC 8693; repeatable)")
}

func newClientsCmd(g *globals) *cobra.Command {
	cmd := groupCommand("clients", "Manage OAuth clients")
	var (
		c           storage.Client
		secretStdin bool
		generate    bool
		secretTTL   time.Duration
		kf          keyFlags
		sf          secretFlags
	)
	add := &cobra.Command{
		Use:   "add",
		Short: "Register a client (confidential with --secret-stdin or --generate-secret, or --public)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := kf.apply(&c); err != nil {
				return err
			}
			if err := validateClient(c); err != nil {
				return err
			}
			var secret, plain string
			switch {
			case c.Public && (secretStdin || generate):
				return errors.New("--public clients have no secret")
			case c.Public:
			case c.TokenEndpointAuthMethod == authserver.AuthMethodPrivateKey && (secretStdin || generate):
				return errors.New("a private_key_jwt client has no secret")
			case c.TokenEndpointAuthMethod == authserver.AuthMethodPrivateKey:
			case c.TokenEndpointAuthMethod == authserver.AuthMethodSecretJWT && !secretStdin:
				s, err := authserver.GenerateClientSecret(authserver.AuthMethodSecretJWT)
				if err != nil {
					return err
				}
				secret, plain = s, s
				c.SecretHashes = []string{password.HashSecret(s)}
			case secretStdin && generate:
				return errors.New("use either --secret-stdin or --generate-secret")
			case secretStdin:
				s, err := readSecretLine(g.stdin)
				if err != nil {
					return err
				}
				if len(s) < password.MinSecretLength {
					return fmt.Errorf("a client secret must be at least %d characters", password.MinSecretLength)
				}
				plain = s
				c.SecretHashes = []string{password.HashSecret(s)}
			default:
				s, err := password.GenerateSecret()
				if err != nil {
					return err
				}
				secret, plain = s, s
				c.SecretHashes = []string{password.HashSecret(s)}
			}
			if err := sealJWTSecret(g, &sf, &c, plain); err != nil {
				return err
			}
			st, err := g.openStore(cmd.Context())
			if err != nil {
				return err
			}
			defer st.Close()
			c.CreatedAt = time.Now().UTC()
			c.UpdatedAt = c.CreatedAt
			if secretTTL > 0 && !c.Public {
				c.SecretExpiresAt = c.CreatedAt.Add(secretTTL).Truncate(time.Second)
			}
			if err := authserver.ClientIDFree(cmd.Context(), st, c.ID); errors.Is(err, authserver.ErrClientIDIsUser) {
				return fmt.Errorf("--id %q is a user's ID; choose another (a client's tokens carry its ID as sub)", c.ID)
			} else if err != nil {
				return err
			}
			if err := st.CreateClient(cmd.Context(), c); err != nil {
				if errors.Is(err, storage.ErrAlreadyExists) {
					return fmt.Errorf("client %q already exists", c.ID)
				}
				return err
			}
			v := viewClient(c)
			v.Secret = secret
			return g.print(v, func(w io.Writer) {
				fmt.Fprintf(w, "created client %s\n", c.ID)
				if secret != "" {
					fmt.Fprintf(w, "client_secret: %s\n(shown once: store it now)\n", secret)
				}
			})
		},
	}
	f := add.Flags()
	f.StringVar(&c.ID, "id", "", "client ID")
	registrationFlags(f, &c)
	f.BoolVar(&c.Public, "public", false, "a public client (token_endpoint_auth_method none)")
	f.BoolVar(&secretStdin, "secret-stdin", false, "read the client secret (at least 32 characters) from stdin")
	f.DurationVar(&secretTTL, "secret-ttl", 0, "the secret stops authenticating the client after this long (client_secret_expires_at; 0 never)")
	f.BoolVar(&generate, "generate-secret", false, "generate a secret and print it once (the default for confidential clients)")
	f.StringVar(&c.TokenEndpointAuthMethod, "auth-method", "", "token_endpoint_auth_method: client_secret_basic (default), client_secret_post, client_secret_jwt (the secret is also kept encrypted with the server secret, for the HMAC), private_key_jwt (with --jwks-uri or --jwks-file), none (--public)")
	kf.register(f)
	sf.register(f)

	var upd storage.Client
	var ukf keyFlags
	update := &cobra.Command{
		Use:   "update ID",
		Short: "Change a client's registration; only the flags given change (list flags replace the whole list)",
		Example: `  authserver clients update app --redirect-uri https://app.example/cb --redirect-uri http://127.0.0.1/cb
  authserver clients update app --skip-consent=false`,
		Args: oneArg,
		RunE: func(cmd *cobra.Command, args []string) error {
			fl := cmd.Flags()
			st, err := g.openStore(cmd.Context())
			if err != nil {
				return err
			}
			defer st.Close()
			c, err := st.UpdateClient(cmd.Context(), args[0], func(c storage.Client) (storage.Client, error) {
				if fl.Changed("name") {
					c.Name = upd.Name
				}
				if fl.Changed("grant") {
					c.GrantTypes = upd.GrantTypes
				}
				if fl.Changed("scope") {
					c.Scopes = upd.Scopes
				}
				if fl.Changed("introspect") {
					c.Introspect = upd.Introspect
				}
				if fl.Changed("redirect-uri") {
					c.RedirectURIs = upd.RedirectURIs
				}
				if fl.Changed("resource") {
					c.Resources = upd.Resources
				}
				if fl.Changed("skip-consent") {
					c.SkipConsent = upd.SkipConsent
				}
				if fl.Changed("require-par") {
					c.RequirePAR = upd.RequirePAR
				}
				if fl.Changed("require-dpop") {
					c.RequireDPoP = upd.RequireDPoP
				}
				if fl.Changed("post-logout-redirect-uri") {
					c.PostLogoutRedirectURIs = upd.PostLogoutRedirectURIs
				}
				if fl.Changed("subject-type") {
					c.SubjectType = upd.SubjectType
				}
				if fl.Changed("backchannel-logout-uri") {
					c.BackchannelLogoutURI = upd.BackchannelLogoutURI
				}
				if fl.Changed("exchange-audience") {
					c.ExchangeAudiences = upd.ExchangeAudiences
				}
				if err := ukf.apply(&c); err != nil {
					return c, err
				}
				if err := validateClient(c); err != nil {
					return c, err
				}
				c.UpdatedAt = time.Now().UTC()
				return c, nil
			})
			if errors.Is(err, storage.ErrNotFound) {
				return fmt.Errorf("no client %q", args[0])
			}
			if err != nil {
				return err
			}
			v := viewClient(c)
			return g.print(v, func(w io.Writer) { fmt.Fprintf(w, "updated client %s\n", c.ID) })
		},
	}
	registrationFlags(update.Flags(), &upd)
	ukf.register(update.Flags())

	list := &cobra.Command{
		Use: "list", Short: "List clients", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			st, err := g.openStore(cmd.Context())
			if err != nil {
				return err
			}
			defer st.Close()
			cs, err := st.ListClients(cmd.Context())
			if err != nil {
				return err
			}
			views := make([]clientView, 0, len(cs))
			for _, c := range cs {
				views = append(views, viewClient(c))
			}
			return g.print(views, func(w io.Writer) {
				fmt.Fprintln(w, "ID\tPUBLIC\tGRANTS\tSCOPES\tINTROSPECT")
				for _, v := range views {
					fmt.Fprintf(w, "%s\t%v\t%s\t%s\t%v\n", v.ID, v.Public, strings.Join(v.GrantTypes, ","), strings.Join(v.Scopes, ","), v.Introspect)
				}
			})
		},
	}
	show := &cobra.Command{
		Use: "show ID", Short: "Show a client", Args: oneArg,
		RunE: func(cmd *cobra.Command, args []string) error {
			st, err := g.openStore(cmd.Context())
			if err != nil {
				return err
			}
			defer st.Close()
			c, err := st.GetClient(cmd.Context(), args[0])
			if errors.Is(err, storage.ErrNotFound) {
				return fmt.Errorf("no client %q", args[0])
			}
			if err != nil {
				return err
			}
			v := viewClient(c)
			return g.print(v, func(w io.Writer) {
				fmt.Fprintf(w, "id\t%s\nname\t%s\npublic\t%v\ngrants\t%s\nscopes\t%s\nintrospect\t%v\nredirect_uris\t%s\nresources\t%s\nskip_consent\t%v\nrequire_par\t%v\nsecrets\t%d\n",
					v.ID, v.Name, v.Public, strings.Join(v.GrantTypes, ","), strings.Join(v.Scopes, ","), v.Introspect,
					strings.Join(v.RedirectURIs, " "), strings.Join(v.Resources, " "), v.SkipConsent, v.RequirePAR, v.Secrets)
			})
		},
	}
	var keepOld, rotStdin bool
	var rsf secretFlags
	rotate := &cobra.Command{
		Use:   "rotate-secret ID",
		Short: "Give a confidential client a new secret; with --keep-old the previous one stays valid until the next rotation",
		Args:  oneArg,
		RunE: func(cmd *cobra.Command, args []string) error {
			var secret, shown string
			if rotStdin {
				s, err := readSecretLine(g.stdin)
				if err != nil {
					return err
				}
				if len(s) < password.MinSecretLength {
					return fmt.Errorf("a client secret must be at least %d characters", password.MinSecretLength)
				}
				secret = s
			} else {
				s, err := password.GenerateSecret()
				if err != nil {
					return err
				}
				secret, shown = s, s
			}
			st, err := g.openStore(cmd.Context())
			if err != nil {
				return err
			}
			defer st.Close()
			c, err := st.UpdateClient(cmd.Context(), args[0], func(c storage.Client) (storage.Client, error) {
				if c.Public {
					return c, errors.New("a public client has no secret")
				}
				if c.TokenEndpointAuthMethod == authserver.AuthMethodPrivateKey {
					return c, errors.New("a private_key_jwt client has no secret; change its keys with clients update --jwks-uri or --jwks-file")
				}
				if keepOld && c.TokenEndpointAuthMethod == authserver.AuthMethodSecretJWT {
					// As the admin API answers (409): its HMAC key is sealed, one at a time.
					return c, errors.New("a client_secret_jwt client has one secret at a time: --keep-old is not available")
				}
				if !rotStdin && c.TokenEndpointAuthMethod == authserver.AuthMethodSecretJWT {
					// Its HMAC key: as long as HS512 needs.
					s, err := authserver.GenerateClientSecret(c.TokenEndpointAuthMethod)
					if err != nil {
						return c, err
					}
					secret, shown = s, s
				}
				hashes := []string{password.HashSecret(secret)}
				if keepOld && len(c.SecretHashes) > 0 {
					hashes = append(hashes, c.SecretHashes[0])
				}
				c.SecretHashes = hashes
				if err := sealJWTSecret(g, &rsf, &c, secret); err != nil {
					return c, err
				}
				c.UpdatedAt = time.Now().UTC()
				return c, nil
			})
			if errors.Is(err, storage.ErrNotFound) {
				return fmt.Errorf("no client %q", args[0])
			}
			if err != nil {
				return err
			}
			v := viewClient(c)
			v.Secret = shown
			return g.print(v, func(w io.Writer) {
				fmt.Fprintf(w, "rotated the secret of %s (%d valid)\n", c.ID, len(c.SecretHashes))
				if shown != "" {
					fmt.Fprintf(w, "client_secret: %s\n(shown once: store it now)\n", shown)
				}
			})
		},
	}
	rotate.Flags().BoolVar(&keepOld, "keep-old", false, "keep the previous secret valid as well (two secrets during rotation)")
	rotate.Flags().BoolVar(&rotStdin, "secret-stdin", false, "read the new secret from stdin instead of generating one")
	rsf.register(rotate.Flags())
	del := &cobra.Command{
		Use: "delete ID", Short: "Delete a client and revoke its tokens", Args: oneArg,
		RunE: func(cmd *cobra.Command, args []string) error {
			st, err := g.openStore(cmd.Context())
			if err != nil {
				return err
			}
			defer st.Close()
			n, err := st.RevokeTokens(cmd.Context(), storage.TokenFilter{ClientID: args[0]})
			if err != nil {
				return err
			}
			if err := st.DeleteClient(cmd.Context(), args[0]); errors.Is(err, storage.ErrNotFound) {
				return fmt.Errorf("no client %q", args[0])
			} else if err != nil {
				return err
			}
			return g.print(map[string]any{"deleted": args[0], "tokens_revoked": n}, func(w io.Writer) {
				fmt.Fprintf(w, "deleted client %s; %d token records revoked\n", args[0], n)
			})
		},
	}
	cmd.AddCommand(add, update, list, show, rotate, del, newInitialTokenCmd(g))
	return cmd
}

func newTokensCmd(g *globals) *cobra.Command {
	cmd := groupCommand("tokens", "Manage issued tokens")
	var user, client string
	revoke := &cobra.Command{
		Use:   "revoke",
		Short: "Revoke every token of a user and/or a client (incident response)",
		Long: `Revoke every access and refresh token of a user (--user) or of a client (--client); with both,
the user's tokens at that client. Refresh tokens stop working at once, and so do access tokens
wherever they are checked by introspection or by the server's own API. An API that verifies the
JWTs locally accepts an access token until it expires (at most --access-token-ttl of serve).`,
		Example: `  authserver tokens revoke --user alice@example.com
  authserver tokens revoke --client app --output json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if user == "" && client == "" {
				return errors.New("give --user and/or --client")
			}
			st, err := g.openStore(cmd.Context())
			if err != nil {
				return err
			}
			defer st.Close()
			f := storage.TokenFilter{ClientID: client}
			if user != "" {
				u, err := findUser(cmd.Context(), st, user)
				if err != nil {
					return err
				}
				f.Subject = u.ID
			}
			n, err := st.RevokeTokens(cmd.Context(), f)
			if err != nil {
				return err
			}
			return g.print(map[string]any{"tokens_revoked": n}, func(w io.Writer) { fmt.Fprintf(w, "%d token records revoked\n", n) })
		},
	}
	revoke.Flags().StringVar(&user, "user", "", "user ID or email")
	revoke.Flags().StringVar(&client, "client", "", "client ID")
	cmd.AddCommand(revoke)
	return cmd
}
