package main

import (
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/oauthkit/authserver/authserver"
)

// newInitialTokenCmd is `clients initial-token`: it creates an initial
// access token for dynamic client registration (RFC 7591 §3) and prints it
// once; only its hash is stored.
func newInitialTokenCmd(g *globals) *cobra.Command {
	var spec authserver.InitialAccessToken
	cmd := &cobra.Command{
		Use:   "initial-token",
		Short: "Create an initial access token for dynamic client registration (POST /register); printed once",
		Example: `  authserver clients initial-token --ttl 24h --max-uses 10
  curl -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
    -d '{"grant_types":["client_credentials"]}' https://auth.example.com/register`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if spec.TTL <= 0 {
				return fmt.Errorf("--ttl must be positive")
			}
			if spec.MaxUses < 0 {
				return fmt.Errorf("--max-uses must be 0 (no limit) or more")
			}
			if spec.SecretTTL < 0 {
				return fmt.Errorf("--secret-ttl must not be negative")
			}
			st, err := g.openStore(cmd.Context())
			if err != nil {
				return err
			}
			defer st.Close()
			tok, exp, err := authserver.CreateInitialAccessToken(cmd.Context(), st, spec, time.Now())
			if err != nil {
				return err
			}
			out := map[string]any{"initial_access_token": tok, "expires_at": exp.Format(time.RFC3339), "max_uses": spec.MaxUses}
			return g.print(out, func(w io.Writer) {
				fmt.Fprintf(w, "initial_access_token: %s\nexpires_at: %s\n", tok, exp.Format(time.RFC3339))
				if spec.MaxUses > 0 {
					fmt.Fprintf(w, "max_uses: %d\n", spec.MaxUses)
				}
				fmt.Fprintln(w, "(shown once: store it now)")
			})
		},
	}
	f := cmd.Flags()
	f.DurationVar(&spec.TTL, "ttl", 24*time.Hour, "how long the token can register clients")
	f.IntVar(&spec.MaxUses, "max-uses", 0, "how many clients the token can register (0: no limit)")
	f.DurationVar(&spec.SecretTTL, "secret-ttl", 0, "secrets of clients registered with the token expire after this long (client_secret_expires_at; 0 never)")
	return cmd
}
