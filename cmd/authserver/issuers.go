package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/oauthkit/authserver/authserver"
	"github.com/oauthkit/authserver/storage"
)

// issuerView is the public form of a trusted issuer.
type issuerView struct {
	Issuer     string          `json:"issuer"`
	JWKSURI    string          `json:"jwks_uri,omitempty"`
	JWKS       json.RawMessage `json:"jwks,omitempty"`
	Subjects   []string        `json:"subjects"`
	AnySubject bool            `json:"any_subject"`
	Scopes     []string        `json:"scopes"`
	CreatedAt  time.Time       `json:"created_at"`
}

func viewIssuer(i storage.Issuer) issuerView {
	nz := func(s []string) []string {
		if s == nil {
			return []string{}
		}
		return s
	}
	return issuerView{Issuer: i.ID, JWKSURI: i.JWKSURI, JWKS: json.RawMessage(i.JWKS), Subjects: nz(i.Subjects),
		AnySubject: i.AnySubject, Scopes: nz(i.Scopes), CreatedAt: i.CreatedAt}
}

// validateIssuer checks an issuer registration: an absolute URI as the
// issuer, exactly one key source (checked like a client's), subjects or
// --any-subject, and scopes.
func validateIssuer(i storage.Issuer) error {
	if u, err := url.Parse(i.ID); i.ID == "" || err != nil || u.Scheme == "" || len(i.ID) > 500 || strings.ContainsAny(i.ID, " \t\r\n") {
		return errors.New("--issuer must be an absolute URI (the iss of the issuer's assertions)")
	}
	switch {
	case i.JWKSURI == "" && len(i.JWKS) == 0:
		return errors.New("give --jwks-uri or --jwks-file")
	case i.JWKSURI != "":
		if err := authserver.ValidateJWKSURI(i.JWKSURI); err != nil {
			return fmt.Errorf("--jwks-uri: %w", err)
		}
	default:
		if _, err := authserver.ParseClientJWKS(i.JWKS); err != nil {
			return fmt.Errorf("--jwks-file: %w", err)
		}
	}
	if i.AnySubject == (len(i.Subjects) > 0) {
		return errors.New("give --subject (repeatable) or --any-subject")
	}
	if len(i.Scopes) == 0 {
		return errors.New("give at least one --scope")
	}
	for _, s := range i.Scopes {
		if !authserver.ScopeToken(s) {
			return fmt.Errorf("invalid scope %q", s)
		}
	}
	return nil
}

func newIssuersCmd(g *globals) *cobra.Command {
	cmd := groupCommand("issuers", "Manage trusted issuers of the JWT bearer grant (RFC 7523)")
	var (
		iss storage.Issuer
		kf  keyFlags
	)
	add := &cobra.Command{
		Use:   "add",
		Short: "Trust an issuer's JWT assertions for the jwt-bearer grant",
		Long: `Trust the JWT assertions of an issuer at the token endpoint's
urn:ietf:params:oauth:grant-type:jwt-bearer grant (RFC 7523 §2.1). An assertion's
sub must be one of --subject (or any with --any-subject) and one of the server's
users, by ID or email; the token gets at most the --scope values that the
requesting client may also have.`,
		Example: `  authserver issuers add --issuer https://idp.example --jwks-uri https://idp.example/jwks.json \
    --subject alice@example.com --scope read`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var c storage.Client
			if err := kf.apply(&c); err != nil {
				return err
			}
			iss.JWKSURI, iss.JWKS = c.JWKSURI, c.JWKS
			if err := validateIssuer(iss); err != nil {
				return err
			}
			st, err := g.openStore(cmd.Context())
			if err != nil {
				return err
			}
			defer st.Close()
			iss.CreatedAt = time.Now().UTC()
			if err := st.CreateIssuer(cmd.Context(), iss); errors.Is(err, storage.ErrAlreadyExists) {
				return fmt.Errorf("issuer %q already exists", iss.ID)
			} else if err != nil {
				return err
			}
			return g.print(viewIssuer(iss), func(w io.Writer) { fmt.Fprintf(w, "trusted issuer %s\n", iss.ID) })
		},
	}
	f := add.Flags()
	f.StringVar(&iss.ID, "issuer", "", "the issuer identifier (iss of its assertions)")
	f.StringArrayVar(&iss.Subjects, "subject", nil, "a sub the issuer may assert: a user ID or email (repeatable)")
	f.BoolVar(&iss.AnySubject, "any-subject", false, "the issuer may assert any of the server's users")
	f.StringSliceVar(&iss.Scopes, "scope", nil, "a scope tokens from the issuer's assertions may have (repeatable)")
	kf.register(f)

	list := &cobra.Command{
		Use: "list", Short: "List trusted issuers", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			st, err := g.openStore(cmd.Context())
			if err != nil {
				return err
			}
			defer st.Close()
			is, err := st.ListIssuers(cmd.Context())
			if err != nil {
				return err
			}
			views := make([]issuerView, 0, len(is))
			for _, i := range is {
				views = append(views, viewIssuer(i))
			}
			return g.print(views, func(w io.Writer) {
				fmt.Fprintln(w, "ISSUER\tKEYS\tSUBJECTS\tSCOPES")
				for _, v := range views {
					keys, subs := v.JWKSURI, strings.Join(v.Subjects, ",")
					if keys == "" {
						keys = "(by value)"
					}
					if v.AnySubject {
						subs = "(any)"
					}
					fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", v.Issuer, keys, subs, strings.Join(v.Scopes, ","))
				}
			})
		},
	}
	remove := &cobra.Command{
		Use: "remove ISSUER", Short: "Stop trusting an issuer", Args: oneArg,
		RunE: func(cmd *cobra.Command, args []string) error {
			st, err := g.openStore(cmd.Context())
			if err != nil {
				return err
			}
			defer st.Close()
			if err := st.DeleteIssuer(cmd.Context(), args[0]); errors.Is(err, storage.ErrNotFound) {
				return fmt.Errorf("no issuer %q", args[0])
			} else if err != nil {
				return err
			}
			return g.print(map[string]any{"removed": args[0]}, func(w io.Writer) { fmt.Fprintf(w, "removed issuer %s\n", args[0]) })
		},
	}
	cmd.AddCommand(add, list, remove)
	return cmd
}
