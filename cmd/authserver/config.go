package main

// Configuration: every setting is a flag, also read from AUTHSERVER_<FLAG>
// and from the optional YAML file of --config, whose keys are the flag names
// of serve plus db. Precedence: flag > environment > file > default.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"go.yaml.in/yaml/v3"
)

// redacted replaces secret values in `config show`.
const redacted = "<redacted>"

// envName is the environment variable of a flag: AUTHSERVER_ACCESS_TOKEN_TTL
// for access-token-ttl.
func envName(flag string) string {
	return envPrefix + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// fileKeys returns the keys the config file accepts: the flag names of serve,
// plus db, in the order serve defines them.
func fileKeys() []string {
	fs := pflag.NewFlagSet("serve", pflag.ContinueOnError)
	fs.SortFlags = false
	new(serveConfig).registerFlags(fs)
	keys := []string{"db"}
	fs.VisitAll(func(f *pflag.Flag) { keys = append(keys, f.Name) })
	return keys
}

// settingError is a problem with the value of one flag. configProblems adds
// where the value came from.
type settingError struct {
	flag string
	err  error
}

func (e *settingError) Error() string { return e.err.Error() }
func (e *settingError) Unwrap() error { return e.err }

// configError lists every problem found in the configuration.
type configError struct {
	problems []error
	lines    []string
}

func (e *configError) Error() string {
	if len(e.lines) == 1 {
		return "invalid configuration: " + e.lines[0]
	}
	return fmt.Sprintf("invalid configuration (%d problems):\n  - %s", len(e.lines), strings.Join(e.lines, "\n  - "))
}

// Unwrap returns the problems.
func (e *configError) Unwrap() []error { return e.problems }

// configProblems returns nil when errs hold no error, or a *configError
// listing each problem (joined errors are flattened) with the source of its
// value when that is the environment or the file.
func (g *globals) configProblems(errs ...error) error {
	var list []error
	var flatten func(error)
	flatten = func(err error) {
		if err == nil {
			return
		}
		if j, ok := err.(interface{ Unwrap() []error }); ok {
			for _, e := range j.Unwrap() {
				flatten(e)
			}
			return
		}
		list = append(list, err)
	}
	for _, err := range errs {
		flatten(err)
	}
	if len(list) == 0 {
		return nil
	}
	ce := &configError{problems: list}
	for _, err := range list {
		line := err.Error()
		var se *settingError
		if errors.As(err, &se) {
			switch src := g.sources[se.flag]; {
			case strings.HasPrefix(src, "env "):
				line += " (set by " + strings.TrimPrefix(src, "env ") + ")"
			case strings.HasPrefix(src, "file "):
				line += " (set in " + strings.TrimPrefix(src, "file ") + ")"
			}
		}
		ce.lines = append(ce.lines, line)
	}
	return ce
}

// loadSettings fills the flags of cmd not given on the command line, first
// from the environment, then (withFile) from the --config file, recording in
// g.sources where each value came from. It returns every problem found.
func (g *globals) loadSettings(cmd *cobra.Command, withFile bool) error {
	fs := cmd.Flags()
	g.sources = map[string]string{}
	fs.VisitAll(func(f *pflag.Flag) {
		if f.Changed {
			g.sources[f.Name] = "flag"
		}
	})
	errs := applyEnv(fs, g.sources)
	if withFile && g.config != "" {
		settings, err := readConfigFile(g.config)
		if err != nil {
			errs = append(errs, err)
		}
		errs = append(errs, applyFile(fs, g.config, settings, g.sources)...)
	}
	return errors.Join(errs...)
}

// applyEnv fills every flag of fs not set on the command line from its
// AUTHSERVER_* environment variable. Lists are comma-separated.
func applyEnv(fs *pflag.FlagSet, sources map[string]string) []error {
	var errs []error
	fs.VisitAll(func(f *pflag.Flag) {
		if f.Changed || f.Name == "help" {
			return
		}
		name := envName(f.Name)
		v, ok := os.LookupEnv(name)
		if !ok {
			return
		}
		var err error
		if sv, ok := f.Value.(pflag.SliceValue); ok {
			err = sv.Replace(splitList(v))
		} else {
			err = setValue(f, v)
		}
		if err != nil {
			errs = append(errs, &settingError{flag: f.Name, err: fmt.Errorf("%s: invalid value for --%s: %w", name, f.Name, err)})
			return
		}
		f.Changed = true
		sources[f.Name] = "env " + name
	})
	return errs
}

// splitList splits a comma-separated list, dropping empty items.
func splitList(s string) []string {
	out := []string{}
	for _, v := range strings.Split(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			out = append(out, v)
		}
	}
	return out
}

// setValue sets a (non-list) flag from text. On error the flag keeps its
// previous value (pflag would leave a zero behind), and the error says what
// was expected.
func setValue(f *pflag.Flag, v string) error {
	old := f.Value.String()
	err := f.Value.Set(v)
	if err == nil {
		return nil
	}
	_ = f.Value.Set(old)
	switch t := f.Value.Type(); {
	case t == "bool":
		return fmt.Errorf("%q is not true or false", v)
	case strings.HasPrefix(t, "int") || strings.HasPrefix(t, "uint"):
		return fmt.Errorf("%q is not a whole number in the range of %s", v, t)
	case t == "duration":
		return fmt.Errorf("%q is not a duration such as 90s, 15m or 720h", v)
	default:
		return fmt.Errorf("%q: %w", v, err)
	}
}

// fileSetting is one key of the config file.
type fileSetting struct {
	key    string
	line   int
	values []string
	list   bool // the value was a YAML sequence
}

// readConfigFile parses the YAML config file at path: a mapping from flag
// names (see fileKeys) to a scalar or, for repeatable flags, a list of
// scalars. Unknown and repeated keys are errors. Every problem is returned.
func readConfigFile(path string) ([]fileSetting, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config file: %w", err)
	}
	return parseConfig(path, b)
}

// parseConfig parses the content b of the config file at path (see
// readConfigFile).
func parseConfig(path string, b []byte) ([]fileSetting, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("config file %s: %w", path, err)
	}
	if doc.Kind == 0 || len(doc.Content) == 0 {
		return nil, nil // empty file
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("config file %s: line %d: want a mapping of flag names to values, such as \"addr: 127.0.0.1:8080\"", path, root.Line)
	}
	known := map[string]bool{}
	allKeys := fileKeys()
	for _, k := range allKeys {
		known[k] = true
	}
	var (
		out  []fileSetting
		errs []error
		seen = map[string]int{}
	)
	at := func(n *yaml.Node, format string, args ...any) error {
		return fmt.Errorf("config file %s: line %d: %s", path, n.Line, fmt.Sprintf(format, args...))
	}
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], root.Content[i+1]
		if v.Kind == yaml.AliasNode && v.Alias != nil {
			v = v.Alias
		}
		key := k.Value
		switch {
		case k.Kind != yaml.ScalarNode:
			errs = append(errs, at(k, "a key must be a flag name"))
			continue
		case !known[key]:
			msg := fmt.Sprintf("unknown key %q", key)
			if s := closest(key, allKeys); s != "" {
				msg += fmt.Sprintf(" (did you mean %q?)", s)
			}
			errs = append(errs, at(k, "%s", msg))
			continue
		case seen[key] != 0:
			errs = append(errs, at(k, "%s is repeated (first on line %d)", key, seen[key]))
			continue
		}
		seen[key] = k.Line
		s := fileSetting{key: key, line: k.Line}
		switch v.Kind {
		case yaml.ScalarNode:
			if v.Tag == "!!null" {
				errs = append(errs, at(v, "%s has no value", key))
				continue
			}
			s.values = []string{v.Value}
		case yaml.SequenceNode:
			s.list = true
			s.values = []string{}
			ok := true
			for _, item := range v.Content {
				if item.Kind != yaml.ScalarNode || item.Tag == "!!null" {
					errs = append(errs, at(item, "%s: a list item must be a plain value", key))
					ok = false
					break
				}
				s.values = append(s.values, item.Value)
			}
			if !ok {
				continue
			}
		default:
			errs = append(errs, at(v, "%s must be a value or a list of values, not a mapping", key))
			continue
		}
		out = append(out, s)
	}
	return out, errors.Join(errs...)
}

// applyFile sets the flags of fs named by settings that are not set yet
// (by the command line or the environment). Settings for flags that fs does
// not have (serve's flags, for an admin command) are ignored.
func applyFile(fs *pflag.FlagSet, path string, settings []fileSetting, sources map[string]string) []error {
	var errs []error
	for _, s := range settings {
		f := fs.Lookup(s.key)
		if f == nil || f.Changed {
			continue
		}
		var err error
		if sv, ok := f.Value.(pflag.SliceValue); ok {
			vals := s.values
			if !s.list {
				vals = splitList(s.values[0])
			}
			err = sv.Replace(vals)
		} else if s.list {
			err = errors.New("takes one value, not a list")
		} else {
			err = setValue(f, s.values[0])
		}
		if err != nil {
			errs = append(errs, &settingError{flag: s.key,
				err: fmt.Errorf("config file %s: line %d: %s: %w", path, s.line, s.key, err)})
			continue
		}
		sources[s.key] = fmt.Sprintf("file %s:%d", path, s.line)
	}
	return errs
}

// closest returns the candidate nearest to s (edit distance at most 3, or
// the same name with underscores), or "".
func closest(s string, candidates []string) string {
	best, bestD := "", 4
	norm := strings.ReplaceAll(strings.ToLower(s), "_", "-")
	for _, c := range candidates {
		if c == norm {
			return c
		}
		if d := editDistance(norm, c); d < bestD {
			best, bestD = c, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance of a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

func newConfigCmd(g *globals) *cobra.Command {
	cmd := groupCommand("config", "Inspect the configuration")
	var c serveConfig
	show := &cobra.Command{
		Use:   "show [serve flags]",
		Short: "Print the effective configuration of serve, with secrets redacted",
		Long: `Print the configuration serve would run with: the flags given here, then AUTHSERVER_* variables,
then the --config file, then the defaults. The output is YAML (a valid config file; each line says
where its value came from), or JSON with --output json. The secret and a database password are
shown as <redacted>. Derived defaults (issuer, audience, secret-file) are filled in.

The configuration is checked as serve checks it: when it is invalid, the configuration is still
printed and every problem is reported, with a non-zero exit code.`,
		Example: `  authserver config show --config /etc/authserver/authserver.yaml
  AUTHSERVER_ADDR=0.0.0.0:8080 authserver config show --output json`,
		Args:        cobra.NoArgs,
		Annotations: map[string]string{annotOutputs: "text,yaml,json", annotLateConfigErrors: "yes"},
		RunE: func(cmd *cobra.Command, _ []string) error {
			problems := g.configProblems(g.loadErr, c.validate(g.db))
			if err := g.printConfig(cmd.Flags(), &c); err != nil {
				return err
			}
			return problems
		},
	}
	c.registerFlags(show.Flags())
	registerServeCompletions(show)
	cmd.AddCommand(show)
	return cmd
}

// configEntry is one setting as `config show` prints it.
type configEntry struct {
	key    string
	value  any
	source string
}

// effectiveConfig returns the settings of fs (serve's flags and db) with
// derived defaults filled in and secrets redacted, in serve's order.
func (g *globals) effectiveConfig(fs *pflag.FlagSet, c *serveConfig) []configEntry {
	var out []configEntry
	for _, key := range fileKeys() {
		f := fs.Lookup(key)
		if f == nil {
			continue
		}
		src := g.sources[key]
		if src == "" {
			src = "default"
		}
		e := configEntry{key: key, value: flagValue(f), source: src}
		switch key {
		case "db":
			e.value = redactDSN(g.db)
		case "secret":
			if c.secret != "" {
				e.value = redacted
			}
		case "issuer":
			if !f.Changed && c.issuer != "" {
				e.value, e.source = c.issuer, "default (from addr)"
			}
		case "audience":
			if c.audience == "" && c.issuer != "" {
				e.value, e.source = strings.TrimRight(c.issuer, "/")+"/api", "default (issuer + /api)"
			}
		case "secret-file":
			if c.secret == "" && c.secretFile == "" {
				if p := c.path(g.db); p != "" {
					e.value, e.source = p, "default (beside the database)"
				}
			}
		}
		out = append(out, e)
	}
	return out
}

// printConfig writes the effective configuration as YAML (with the source
// of each value as a comment) or JSON.
func (g *globals) printConfig(fs *pflag.FlagSet, c *serveConfig) error {
	entries := g.effectiveConfig(fs, c)
	if g.output == "json" {
		m := make(map[string]any, len(entries))
		for _, e := range entries {
			m[e.key] = e.value
		}
		enc := json.NewEncoder(g.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(m)
	}
	mapping := &yaml.Node{Kind: yaml.MappingNode}
	head := "Effective configuration of `authserver serve` (precedence: flag > env > file > default)."
	if g.config != "" {
		head += "\nConfig file: " + g.config
	}
	mapping.HeadComment = head
	for _, e := range entries {
		var v yaml.Node
		if err := v.Encode(e.value); err != nil {
			return fmt.Errorf("encode %s: %w", e.key, err)
		}
		k := &yaml.Node{Kind: yaml.ScalarNode, Value: e.key}
		switch {
		case v.Kind == yaml.SequenceNode && len(v.Content) == 0:
			v.Style = yaml.FlowStyle
			v.LineComment = e.source
		case v.Kind == yaml.SequenceNode:
			k.LineComment = e.source // on the key's line, above the items
		default:
			v.LineComment = e.source
		}
		mapping.Content = append(mapping.Content, k, &v)
	}
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(&yaml.Node{Kind: yaml.DocumentNode, Content: []*yaml.Node{mapping}}); err != nil {
		return fmt.Errorf("encode configuration: %w", err)
	}
	if err := enc.Close(); err != nil {
		return fmt.Errorf("encode configuration: %w", err)
	}
	_, err := io.Copy(g.stdout, &buf)
	return err
}

// flagValue returns a flag's value as a YAML/JSON value: a bool, a number,
// a list of strings, a duration in its shortest form ("15m"), or a string.
func flagValue(f *pflag.Flag) any {
	switch f.Value.Type() {
	case "bool":
		b, _ := strconv.ParseBool(f.Value.String())
		return b
	case "int", "int8", "int16", "int32", "int64", "uint", "uint8", "uint16", "uint32", "uint64":
		n, err := strconv.ParseInt(f.Value.String(), 10, 64)
		if err != nil {
			return f.Value.String()
		}
		return n
	case "duration":
		d, err := time.ParseDuration(f.Value.String())
		if err != nil {
			return f.Value.String()
		}
		return shortDuration(d)
	}
	if sv, ok := f.Value.(pflag.SliceValue); ok {
		s := sv.GetSlice()
		if s == nil {
			s = []string{}
		}
		return s
	}
	return f.Value.String()
}

// shortDuration formats d without trailing zero units: "15m", "720h", "1h30m".
func shortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// redactDSN hides the password of a postgres:// URL (in the user info or a
// password query parameter).
func redactDSN(db string) string {
	if !isPostgres(db) {
		return db
	}
	u, err := url.Parse(db)
	if err != nil {
		return redacted // unparsable: it may hold anything
	}
	if _, ok := u.User.Password(); ok {
		u.User = url.UserPassword(u.User.Username(), "REDACTED")
	}
	if u.RawQuery != "" {
		parts := strings.Split(u.RawQuery, "&")
		for i, p := range parts {
			k, _, _ := strings.Cut(p, "=")
			if k == "password" || k == "sslpassword" {
				parts[i] = k + "=REDACTED"
			}
		}
		u.RawQuery = strings.Join(parts, "&")
	}
	return strings.ReplaceAll(u.String(), "REDACTED", redacted)
}
