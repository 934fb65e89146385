package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	sqlstore "github.com/oauthkit/authserver/storage/sql"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

// envPrefix is the prefix of the environment variable of every flag:
// --access-token-ttl is also read from AUTHSERVER_ACCESS_TOKEN_TTL.
const envPrefix = "AUTHSERVER_"

// defaultDB is the SQLite database used when --db is not given.
const defaultDB = "data/authserver.db"

// globals are the flags every command shares.
type globals struct {
	db     string
	output string
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
}

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	root := newRoot(stdin, stdout, stderr)
	root.SetArgs(args)
	return root.ExecuteContext(ctx)
}

func newRoot(stdin io.Reader, stdout, stderr io.Writer) *cobra.Command {
	g := &globals{stdin: stdin, stdout: stdout, stderr: stderr}
	root := &cobra.Command{
		Use:           "authserver",
		Short:         "An OAuth 2.0 authorization server",
		Long:          "authserver is an OAuth 2.0 authorization server: password, refresh and client credentials grants,\nJWT access tokens (RFC 9068), introspection, revocation, JWKS and server metadata.",
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			return applyEnv(cmd)
		},
	}
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	pf := root.PersistentFlags()
	pf.StringVar(&g.db, "db", defaultDB, "SQLite database path, or a postgres:// URL")
	pf.StringVarP(&g.output, "output", "o", "text", "output format: text or json")
	root.AddCommand(newServeCmd(g), newUsersCmd(g), newClientsCmd(g), newKeysCmd(g), newTokensCmd(g),
		newMigrateCmd(g), newVersionCmd(g))
	return root
}

// applyEnv fills every flag not set on the command line from its
// AUTHSERVER_* environment variable (flag > env > default).
func applyEnv(cmd *cobra.Command) error {
	var errs []error
	set := func(f *pflag.Flag) {
		if f.Changed {
			return
		}
		name := envPrefix + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		v, ok := os.LookupEnv(name)
		if !ok {
			return
		}
		if sv, ok := f.Value.(pflag.SliceValue); ok {
			if err := sv.Replace(strings.Split(v, ",")); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", name, err))
			}
			f.Changed = true
			return
		}
		if err := f.Value.Set(v); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", name, err))
		}
		f.Changed = true
	}
	cmd.Flags().VisitAll(set)
	cmd.InheritedFlags().VisitAll(set)
	return errors.Join(errs...)
}

// openStore opens the database named by --db, creating the SQLite file's
// directory if needed, and applies migrations.
func (g *globals) openStore(ctx context.Context) (*sqlstore.Store, error) {
	if !isPostgres(g.db) {
		if err := os.MkdirAll(filepath.Dir(g.db), 0o700); err != nil {
			return nil, fmt.Errorf("create database directory: %w", err)
		}
	}
	st, err := sqlstore.Open(ctx, g.db)
	if err != nil {
		return nil, fmt.Errorf("open database: %w", err)
	}
	return st, nil
}

func isPostgres(db string) bool {
	return strings.HasPrefix(db, "postgres://") || strings.HasPrefix(db, "postgresql://")
}

// print writes v as JSON with --output json, or as text via text.
func (g *globals) print(v any, text func(w io.Writer)) error {
	switch g.output {
	case "json":
		enc := json.NewEncoder(g.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	case "text", "":
		tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
		text(tw)
		return tw.Flush()
	default:
		return fmt.Errorf("unknown --output %q (want text or json)", g.output)
	}
}

// readSecretLine reads one line (a password or secret) from r.
func readSecretLine(r io.Reader) (string, error) {
	b, err := io.ReadAll(io.LimitReader(r, 4096))
	if err != nil {
		return "", fmt.Errorf("read stdin: %w", err)
	}
	s := strings.TrimRight(string(b), "\r\n")
	if i := strings.IndexAny(s, "\r\n"); i >= 0 {
		s = s[:i]
	}
	if s == "" {
		return "", errors.New("nothing was read from stdin")
	}
	return s, nil
}

func newVersionCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			return g.print(map[string]string{"version": version}, func(w io.Writer) { fmt.Fprintln(w, version) })
		},
	}
}

func newMigrateCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "migrate",
		Short: "Apply database migrations and exit",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			st, err := g.openStore(cmd.Context())
			if err != nil {
				return err
			}
			defer st.Close()
			return g.print(map[string]string{"status": "ok"}, func(w io.Writer) { fmt.Fprintln(w, "migrations applied") })
		},
	}
}
