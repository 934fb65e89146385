package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/oauthkit/authserver/authserver"
	sqlstore "github.com/oauthkit/authserver/storage/sql"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

// envPrefix is the prefix of the environment variable of every flag:
// --access-token-ttl is also read from AUTHSERVER_ACCESS_TOKEN_TTL.
const envPrefix = "AUTHSERVER_"

// defaultDB is the SQLite database used when --db is not given.
const defaultDB = "data/authserver.db"

// Command annotations read by globals.setup.
const (
	// annotOutputs lists the --output values a command accepts
	// (default "text,json").
	annotOutputs = "authserver/outputs"
	// annotLateConfigErrors makes setup keep configuration problems in
	// globals.loadErr for the command to report together with its own
	// validation, instead of failing at once.
	annotLateConfigErrors = "authserver/late-config-errors"
	// annotNoConfigFile makes setup skip the --config file.
	annotNoConfigFile = "authserver/no-config-file"
)

// globals are the flags every command shares, and the configuration state
// setup leaves for the command.
type globals struct {
	db     string
	output string
	config string
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer

	// sources maps a flag name to where its value came from: "flag",
	// "env AUTHSERVER_X" or "file PATH:LINE"; flags at their default are
	// absent.
	sources map[string]string
	// loadErr holds the configuration problems of a command annotated with
	// annotLateConfigErrors.
	loadErr error
	// audit is the audit log of the running admin command, if it changes
	// something (see auditAdminCommands).
	audit *authserver.AuditLog
}

// run executes the command line args. main calls it with the process's
// streams; tests call it in-process.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	root := newRoot(stdin, stdout, stderr)
	root.SetArgs(args)
	return oneLine(root.ExecuteContext(ctx))
}

func newRoot(stdin io.Reader, stdout, stderr io.Writer) *cobra.Command {
	g := &globals{stdin: stdin, stdout: stdout, stderr: stderr}
	root := &cobra.Command{
		Use:   "authserver",
		Short: "An OAuth 2.0 authorization server",
		Long: `authserver is an OAuth 2.0 authorization server: password, refresh and client credentials grants,
JWT access tokens (RFC 9068), introspection, revocation, JWKS and server metadata.

Every flag is also read from AUTHSERVER_<FLAG> (--access-token-ttl from AUTHSERVER_ACCESS_TOKEN_TTL)
and, with --config, from a YAML file whose keys are the flag names of serve plus db.
Precedence: flag > environment > file > default. Every command takes --output json for scripts;
errors are one line on stderr and a non-zero exit code.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			return g.setup(cmd)
		},
	}
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return fmt.Errorf("%w (see '%s --help')", err, c.CommandPath())
	})
	pf := root.PersistentFlags()
	pf.StringVar(&g.db, "db", defaultDB, "SQLite database path, or a postgres:// URL")
	pf.StringVarP(&g.output, "output", "o", "text", "output format: text or json")
	pf.StringVar(&g.config, "config", "", "YAML configuration file; its keys are the flag names of serve, plus db")
	_ = root.MarkPersistentFlagFilename("config", "yaml", "yml")
	_ = root.RegisterFlagCompletionFunc("output", cobra.FixedCompletions([]string{"text", "json"}, cobra.ShellCompDirectiveNoFileComp))
	root.AddCommand(newServeCmd(g), newConfigCmd(g), newUsersCmd(g), newClientsCmd(g), newIssuersCmd(g), newKeysCmd(g), newTokensCmd(g),
		newMigrateCmd(g), newVersionCmd(g))
	g.remoteAdmin(root)
	g.auditAdminCommands(root)
	return root
}

// setup reads the configuration of cmd (environment variables, then the
// --config file) into its flags and checks --output.
func (g *globals) setup(cmd *cobra.Command) error {
	err := g.loadSettings(cmd, !hasAnnotation(cmd, annotNoConfigFile))
	outputs := []string{"text", "json"}
	if v := cmd.Annotations[annotOutputs]; v != "" {
		outputs = strings.Split(v, ",")
	}
	if !slices.Contains(outputs, g.output) {
		err = errors.Join(err, &settingError{flag: "output",
			err: fmt.Errorf("--output must be %s, not %q", strings.Join(outputs, " or "), g.output)})
	}
	if hasAnnotation(cmd, annotLateConfigErrors) {
		g.loadErr = err
		return nil
	}
	return g.configProblems(err)
}

// hasAnnotation reports whether cmd or one of its parents carries key.
// cobra's own completion and help commands count as annotNoConfigFile.
func hasAnnotation(cmd *cobra.Command, key string) bool {
	for c := cmd; c != nil; c = c.Parent() {
		if c.Annotations[key] != "" {
			return true
		}
		if key == annotNoConfigFile && (c.Name() == "completion" || c.Name() == "help") && c.Parent() != nil && !c.Parent().HasParent() {
			return true
		}
	}
	return false
}

// groupCommand returns a command that only holds subcommands: alone it
// prints its help, and an unknown subcommand is an error (not the help).
func groupCommand(use, short string) *cobra.Command {
	return &cobra.Command{
		Use:   use,
		Short: short,
		Args:  cobra.NoArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
}

// oneArg accepts exactly one positional argument, named in the command's Use
// ("show ID|EMAIL").
func oneArg(cmd *cobra.Command, args []string) error {
	if len(args) == 1 {
		return nil
	}
	what := "one argument"
	if f := strings.Fields(cmd.Use); len(f) > 1 {
		what = "one argument, " + f[1]
	}
	return fmt.Errorf("%s takes %s (got %d; see '%s --help')", cmd.CommandPath(), what, len(args), cmd.CommandPath())
}

// oneLine rewrites cobra's multi-line "unknown command" suggestion into one
// line, so that every error is one line.
func oneLine(err error) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	const marker = "\n\nDid you mean this?\n"
	if i := strings.Index(msg, marker); i >= 0 {
		return fmt.Errorf("%s (did you mean %s?)", msg[:i], strings.Join(strings.Fields(msg[i+len(marker):]), " or "))
	}
	return err
}

// openStore opens the database named by --db, creating the SQLite file's
// directory if needed, and applies migrations.
func (g *globals) openStore(ctx context.Context, opts ...sqlstore.Option) (*sqlstore.Store, error) {
	if !isPostgres(g.db) {
		if err := os.MkdirAll(filepath.Dir(g.db), 0o700); err != nil {
			return nil, fmt.Errorf("create database directory: %w", err)
		}
	}
	st, err := sqlstore.Open(ctx, g.db, opts...)
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
		Use:         "version",
		Short:       "Print the version",
		Args:        cobra.NoArgs,
		Annotations: map[string]string{annotNoConfigFile: "yes"},
		RunE: func(*cobra.Command, []string) error {
			return g.print(map[string]string{"version": version}, func(w io.Writer) { fmt.Fprintln(w, version) })
		},
	}
}

func newMigrateCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "migrate",
		Short: "Apply database migrations and exit",
		Long: `Apply the database migrations and exit. serve applies them too at startup (on PostgreSQL under an
advisory lock, so instances starting together are safe); migrate lets a deployment run them alone first.`,
		Args: cobra.NoArgs,
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
