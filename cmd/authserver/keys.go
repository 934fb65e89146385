package main

import (
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/spf13/cobra"

	"github.com/oauthkit/authserver/keys"
)

// keyView is the JSON form of a signing key (no key material). Times that do
// not apply are omitted.
type keyView struct {
	ID         string     `json:"kid"`
	Algorithm  string     `json:"alg"`
	State      string     `json:"state"`
	CreatedAt  time.Time  `json:"created_at"`
	ActivateAt *time.Time `json:"activate_at,omitempty"`
	RetiredAt  *time.Time `json:"retired_at,omitempty"`
	DeleteAt   *time.Time `json:"delete_at,omitempty"`
}

func viewKey(k keys.KeyInfo) keyView {
	opt := func(t time.Time) *time.Time {
		if t.IsZero() {
			return nil
		}
		t = t.UTC()
		return &t
	}
	return keyView{ID: k.ID, Algorithm: k.Algorithm, State: string(k.State), CreatedAt: k.CreatedAt.UTC(),
		ActivateAt: opt(k.ActivateAt), RetiredAt: opt(k.RetiredAt), DeleteAt: opt(k.DeleteAt)}
}

func newKeysCmd(g *globals) *cobra.Command {
	cmd := groupCommand("keys", "Manage signing keys")
	var sf secretFlags
	var now bool
	var alg string
	// The windows must match serve's, or a CLI rotation could retire or
	// delete a key on a shorter schedule than the server's.
	var accessTTL, rotation, maxAge time.Duration
	open := func(cmd *cobra.Command) (*keys.Manager, func(), error) {
		st, err := g.openStore(cmd.Context())
		if err != nil {
			return nil, nil, err
		}
		sec, err := sf.load(g.db, false, nil)
		if err != nil {
			st.Close()
			return nil, nil, err
		}
		km, err := keys.New(cmd.Context(), st, keys.Config{Algorithm: alg, ExtraAlgorithms: oidcKeyAlgorithms, Secret: sec,
			TokenLifetime: max(accessTTL, introspectionJWTTTL), RotationPeriod: rotation, JWKSMaxAge: maxAge,
			Logger: slog.New(slog.NewTextHandler(g.stderr, nil)), OnEvent: keyEvents(g.audit)})
		if err != nil {
			st.Close()
			return nil, nil, err
		}
		return km, func() { st.Close() }, nil
	}
	printKeys := g.printKeys
	rotate := &cobra.Command{
		Use:   "rotate",
		Short: "Force the next rotation step: publish a new key now (it signs after the pre-publication window), or with --now activate it at once",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			km, closeFn, err := open(cmd)
			if err != nil {
				return err
			}
			defer closeFn()
			if now {
				fmt.Fprintln(g.stderr, "warning: --now activates a key that resource servers may not have cached yet; tokens it signs can fail verification until their JWKS caches expire")
			}
			if err := km.Rotate(cmd.Context(), now); err != nil {
				return err
			}
			return printKeys(km.List())
		},
	}
	rotate.Flags().BoolVar(&now, "now", false, "activate the new key immediately (skips pre-publication)")
	rotate.Flags().StringVar(&alg, "key-algorithm", "RS256", "algorithm of the new key: RS256, ES256 or EdDSA")
	rotate.Flags().DurationVar(&accessTTL, "access-token-ttl", 15*time.Minute, "access token lifetime (as given to serve)")
	rotate.Flags().DurationVar(&rotation, "key-rotation", 30*24*time.Hour, "key rotation period (as given to serve)")
	rotate.Flags().DurationVar(&maxAge, "jwks-max-age", time.Hour, "JWKS max-age (as given to serve)")
	sf.register(rotate.Flags())
	list := &cobra.Command{
		Use: "list", Short: "List signing keys with their state and dates (needs no secret)", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			st, err := g.openStore(cmd.Context())
			if err != nil {
				return err
			}
			defer st.Close()
			ks, err := keys.Describe(cmd.Context(), st)
			if err != nil {
				return err
			}
			return printKeys(ks)
		},
	}
	cmd.AddCommand(rotate, list)
	return cmd
}

// printKeys prints signing keys as `keys list` does.
func (g *globals) printKeys(ks []keys.KeyInfo) error {
	views := make([]keyView, 0, len(ks))
	for _, k := range ks {
		views = append(views, viewKey(k))
	}
	return g.print(views, func(w io.Writer) {
		fmt.Fprintln(w, "KID\tALG\tSTATE\tCREATED\tACTIVATES\tRETIRED\tDELETE AT")
		ts := func(t time.Time) string {
			if t.IsZero() {
				return "-"
			}
			return t.UTC().Format(time.RFC3339)
		}
		for _, k := range ks {
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", k.ID, k.Algorithm, k.State, ts(k.CreatedAt), ts(k.ActivateAt), ts(k.RetiredAt), ts(k.DeleteAt))
		}
	})
}

// oidcKeyAlgorithms keep an active key whatever --key-algorithm says: RS256
// signs the ID tokens (OpenID Connect Core §15.1). serve and the keys
// commands must agree, or a rotation from one would merge the groups.
var oidcKeyAlgorithms = []string{keys.RS256}
