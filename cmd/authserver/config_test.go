package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"go.yaml.in/yaml/v3"
)

// writeFile writes content to name in a new temporary directory and returns
// its path.
func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// showJSON runs `config show --output json` with args and decodes it.
func showJSON(t *testing.T, args ...string) map[string]any {
	t.Helper()
	out, err := cliRun(t, "", append([]string{"config", "show", "--output", "json"}, args...)...)
	if err != nil {
		t.Fatalf("config show %v: %v", args, err)
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(out), &m); err != nil {
		t.Fatalf("config show: %v\n%s", err, out)
	}
	return m
}

// Precedence is flag > environment > file > default, for a duration, a list
// and the global --db, whichever layers are present.
func TestConfigPrecedence(t *testing.T) {
	type layer struct {
		ttl  string
		cors []string
		db   string
	}
	var (
		def  = layer{"15m", []string{}, defaultDB}
		file = layer{"3m", []string{"https://file.example"}, "file.db"}
		env  = layer{"2m", []string{"https://env.example", "https://env2.example"}, "env.db"}
		flag = layer{"1m", []string{"https://flag.example"}, "flag.db"}
	)
	tests := []struct {
		name                  string
		useFile, useEnv, flag bool
		fileViaEnv            bool // AUTHSERVER_CONFIG instead of --config
		want                  layer
		wantSource            string // the comment of access-token-ttl in the YAML output
	}{
		{name: "default", want: def, wantSource: "default"},
		{name: "file", useFile: true, want: file, wantSource: "file FILE:1"},
		{name: "file named by AUTHSERVER_CONFIG", useFile: true, fileViaEnv: true, want: file, wantSource: "file FILE:1"},
		{name: "env", useEnv: true, want: env, wantSource: "env AUTHSERVER_ACCESS_TOKEN_TTL"},
		{name: "env over file", useFile: true, useEnv: true, want: env, wantSource: "env AUTHSERVER_ACCESS_TOKEN_TTL"},
		{name: "flag", flag: true, want: flag, wantSource: "flag"},
		{name: "flag over file", useFile: true, flag: true, want: flag, wantSource: "flag"},
		{name: "flag over env", useEnv: true, flag: true, want: flag, wantSource: "flag"},
		{name: "flag over env over file", useFile: true, useEnv: true, flag: true, want: flag, wantSource: "flag"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var args []string
			path := ""
			if tt.useFile {
				path = writeFile(t, "authserver.yaml", "access-token-ttl: 3m\ncors-origin: [https://file.example]\ndb: file.db\n")
				if tt.fileViaEnv {
					t.Setenv("AUTHSERVER_CONFIG", path)
				} else {
					args = append(args, "--config", path)
				}
			}
			if tt.useEnv {
				t.Setenv("AUTHSERVER_ACCESS_TOKEN_TTL", "2m")
				t.Setenv("AUTHSERVER_CORS_ORIGIN", "https://env.example,https://env2.example")
				t.Setenv("AUTHSERVER_DB", "env.db")
			}
			if tt.flag {
				args = append(args, "--access-token-ttl", "1m", "--cors-origin", "https://flag.example", "--db", "flag.db")
			}
			m := showJSON(t, args...)
			cors := []string{}
			for _, o := range m["cors-origin"].([]any) {
				cors = append(cors, o.(string))
			}
			got := layer{m["access-token-ttl"].(string), cors, m["db"].(string)}
			if got.ttl != tt.want.ttl || !slices.Equal(got.cors, tt.want.cors) || got.db != tt.want.db {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
			out, err := cliRun(t, "", append([]string{"config", "show"}, args...)...)
			if err != nil {
				t.Fatal(err)
			}
			want := "access-token-ttl: " + tt.want.ttl + " # " + strings.ReplaceAll(tt.wantSource, "FILE", path)
			if !strings.Contains(out, want+"\n") {
				t.Errorf("YAML output lacks %q:\n%s", want, out)
			}
		})
	}
}

// Every problem of the configuration is reported at once, naming the flag,
// the environment variable or the file line; serve and config show agree.
func TestConfigValidation(t *testing.T) {
	tests := []struct {
		name string
		file string // config file content, if any
		env  map[string]string
		args []string
		want []string // one substring per problem; none: valid
	}{
		{name: "defaults are valid"},
		{name: "a complete file is valid", file: "addr: 127.0.0.1:9090\nissuer: https://auth.example.com\naccess-token-ttl: 5m\n" +
			"cors-origin:\n  - https://app.example\n  - https://admin.example\ndemo: true\nargon2-memory: 65536\nlog-format: json\n"},
		{name: "an empty file is valid", file: "# nothing yet\n"},
		{
			name: "every problem at once",
			file: "acess-token-ttl: 5m\nrefresh-token-ttl: soon\n",
			env:  map[string]string{"AUTHSERVER_ADDR": "no-port", "AUTHSERVER_SECRET": "short"},
			args: []string{"--log-format", "xml", "--key-algorithm", "HS256"},
			want: []string{
				`line 1: unknown key "acess-token-ttl" (did you mean "access-token-ttl"?)`,
				`line 2: refresh-token-ttl: "soon" is not a duration`,
				`--addr "no-port": address no-port: missing port in address (set by AUTHSERVER_ADDR)`,
				`--issuer "http://no-port" uses http on a non-loopback host`,
				`--key-algorithm must be RS256, ES256 or EdDSA, not "HS256"`,
				`--log-format must be text or json, not "xml"`,
				`--secret must be at least 32 bytes (set by AUTHSERVER_SECRET)`,
			},
		},
		{name: "non-loopback http issuer", args: []string{"--addr", "0.0.0.0:8080"}, want: []string{"uses http on a non-loopback host"}},
		{name: "insecure-http allows it", args: []string{"--addr", "0.0.0.0:8080", "--insecure-http"}},
		{name: "issuer with a query", args: []string{"--issuer", "https://a.example/?x=1"}, want: []string{"must not have a query"}},
		{name: "issuer with userinfo", args: []string{"--issuer", "https://u:s3cret-pw@a.example"}, want: []string{"must not have userinfo"}},
		{name: "issuer that does not parse", args: []string{"--issuer", "https://u:s3cret-pw@a.example:bad"}, want: []string{"--issuer must be an absolute http(s) URL"}},
		{name: "tls cert without key", args: []string{"--tls-cert", "c.pem"}, want: []string{"--tls-cert and --tls-key go together"}},
		{name: "tls files missing", args: []string{"--tls-cert", "/nonexistent/c.pem", "--tls-key", "/nonexistent/k.pem"}, want: []string{"--tls-cert/--tls-key: open /nonexistent/c.pem"}},
		{name: "cors origin with a path", file: "cors-origin: https://app.example/x\n", want: []string{`--cors-origin "https://app.example/x" must be an origin`}},
		{name: "short access tokens", args: []string{"--access-token-ttl", "500ms"}, want: []string{"--access-token-ttl must be at least 1s"}},
		{name: "refresh shorter than access", args: []string{"--access-token-ttl", "2h", "--refresh-token-ttl", "1h"}, want: []string{"--refresh-token-ttl must not be shorter"}},
		{name: "rotation inside the pre-publication window", args: []string{"--key-rotation", "1h"}, want: []string{"--key-rotation (1h0m0s) must be longer than the pre-publication window"}},
		{name: "zero jwks max-age", args: []string{"--jwks-max-age", "0s"}, want: []string{"--jwks-max-age must be at least 1s"}},
		{name: "log level", env: map[string]string{"AUTHSERVER_LOG_LEVEL": "loud"}, want: []string{`--log-level: slog: level string "loud": unknown name (set by AUTHSERVER_LOG_LEVEL)`}},
		{name: "argon2 threads", args: []string{"--argon2-threads", "0"}, want: []string{"--argon2-memory/time/threads are out of range"}},
		{name: "gc, shutdown and drain", args: []string{"--gc-interval", "0s", "--shutdown-timeout", "0s", "--drain-delay", "-1s"},
			want: []string{"--gc-interval must be positive", "--shutdown-timeout must be positive", "--drain-delay must not be negative"}},
		{name: "admin address equals the main one", args: []string{"--admin-addr", "127.0.0.1:8080"}, want: []string{"must differ from --addr"}},
		{name: "secret and secret file", args: []string{"--secret", strings.Repeat("s", 32), "--secret-file", "x"}, want: []string{"give --secret or --secret-file, not both"}},
		{name: "postgres needs a shared secret", args: []string{"--db", "postgres://auth@db/auth"}, want: []string{"with a PostgreSQL database, give --secret or --secret-file"}},
		{name: "empty db", args: []string{"--db", ""}, want: []string{"--db must name"}},
		{name: "bad env value", env: map[string]string{"AUTHSERVER_GC_INTERVAL": "soon", "AUTHSERVER_DEMO": "yes"},
			want: []string{`AUTHSERVER_GC_INTERVAL: invalid value for --gc-interval: "soon" is not a duration`, `AUTHSERVER_DEMO: invalid value for --demo: "yes" is not true or false`}},
		{name: "bad number in the file", file: "argon2-time: lots\n", want: []string{`line 1: argon2-time: "lots" is not a whole number`}},
		{name: "underscore key", file: "log_level: debug\n", want: []string{`unknown key "log_level" (did you mean "log-level"?)`}},
		{name: "output is not a file key", file: "output: json\n", want: []string{`unknown key "output"`}},
		{name: "repeated key", file: "addr: 127.0.0.1:1\naddr: 127.0.0.1:2\n", want: []string{"line 2: addr is repeated (first on line 1)"}},
		{name: "mapping value", file: "addr:\n  host: x\n", want: []string{"line 2: addr must be a value or a list of values, not a mapping"}},
		{name: "no value", file: "addr:\n", want: []string{"addr has no value"}},
		{name: "list for a single value", file: "addr: [a, b]\n", want: []string{"addr: takes one value, not a list"}},
		{name: "not a mapping", file: "- addr\n", want: []string{"want a mapping of flag names to values"}},
		{name: "YAML syntax", file: "addr: [\n", want: []string{"config file", "yaml:"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			args := slices.Clone(tt.args)
			if tt.file != "" {
				args = append(args, "--config", writeFile(t, "authserver.yaml", tt.file))
			}
			_, err := cliRun(t, "", append([]string{"config", "show"}, args...)...)
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("want valid, got %v", err)
				}
				return
			}
			var ce *configError
			if !errors.As(err, &ce) {
				t.Fatalf("want a configuration error, got %v", err)
			}
			if tt.name != "YAML syntax" && len(ce.lines) != len(tt.want) {
				t.Errorf("%d problems reported, want %d:\n%v", len(ce.lines), len(tt.want), err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("no %q in:\n%v", w, err)
				}
			}
			if strings.Contains(err.Error(), "s3cret-pw") {
				t.Errorf("the error echoes a password:\n%v", err)
			}
			// serve checks the same things before opening anything.
			_, serr := cliRun(t, "", append([]string{"serve"}, args...)...)
			if serr == nil || serr.Error() != err.Error() {
				t.Errorf("serve reports differently:\n%v\nconfig show:\n%v", serr, err)
			}
		})
	}
}

func TestConfigFileMissing(t *testing.T) {
	_, err := cliRun(t, "", "users", "list", "--config", filepath.Join(t.TempDir(), "nope.yaml"))
	if err == nil || !strings.Contains(err.Error(), "config file: open ") || strings.Contains(err.Error(), "\n") {
		t.Fatalf("missing config file: %v", err)
	}
	// version and completion do not read it.
	for _, args := range [][]string{{"version"}, {"completion", "bash"}} {
		if _, err := cliRun(t, "", append(args, "--config", "/nonexistent.yaml")...); err != nil {
			t.Errorf("%v with a missing config file: %v", args, err)
		}
	}
}

// The file's db applies to admin commands, whose flags are a subset; serve's
// other keys are accepted and ignored there.
func TestConfigFileAppliesToAdminCommands(t *testing.T) {
	db := filepath.Join(t.TempDir(), "file.db")
	cfg := writeFile(t, "authserver.yaml", "db: "+db+"\naddr: 127.0.0.1:9999\naccess-token-ttl: 5m\n")
	if _, err := cliRun(t, "", "migrate", "--config", cfg); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(db); err != nil {
		t.Fatalf("migrate did not use the file's db: %v", err)
	}
	// keys rotate shares serve's key settings, so it takes them from the
	// file too.
	_, err := cliRun(t, "", "keys", "rotate", "--config", writeFile(t, "k.yaml", "db: "+db+"\nkey-rotation: 1m\n"), "--secret", strings.Repeat("k", 32))
	if err == nil || !strings.Contains(err.Error(), "RotationPeriod (1m0s) must be longer") {
		t.Fatalf("keys rotate did not take key-rotation from the file: %v", err)
	}
}

// config show redacts the secret and a database password, and its YAML
// output is itself a valid config file.
func TestConfigShowRedactsAndRoundTrips(t *testing.T) {
	const secret = "a-very-secret-value-of-at-least-32-bytes"
	out, err := cliRun(t, "", "config", "show", "--secret", secret, "--addr", "127.0.0.1:9000", "--cors-origin", "https://app.example")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out, secret) || !strings.Contains(out, "secret: <redacted> # flag\n") {
		t.Fatalf("secret not redacted:\n%s", out)
	}
	var m map[string]any
	if err := yaml.Unmarshal([]byte(out), &m); err != nil {
		t.Fatalf("YAML output: %v", err)
	}
	if m["issuer"] != "http://127.0.0.1:9000" || m["audience"] != "http://127.0.0.1:9000/api" {
		t.Errorf("derived defaults: issuer %v, audience %v", m["issuer"], m["audience"])
	}
	// Without the redacted secret, the output is a valid config file that
	// gives the same configuration.
	var kept []string
	for _, l := range strings.Split(out, "\n") {
		if !strings.HasPrefix(l, "secret:") {
			kept = append(kept, l)
		}
	}
	cfg := writeFile(t, "shown.yaml", strings.Join(kept, "\n"))
	again := showJSON(t, "--config", cfg)
	first := showJSON(t, "--addr", "127.0.0.1:9000", "--cors-origin", "https://app.example")
	for k, v := range first {
		if !jsonEqual(again[k], v) {
			t.Errorf("%s: %v after the round trip, %v before", k, again[k], v)
		}
	}

	dsn := showJSON(t, "--db", "postgres://auth:hunter2-pw@db:5432/auth?sslmode=require&password=other-pw", "--secret", secret)["db"].(string)
	if strings.Contains(dsn, "hunter2") || strings.Contains(dsn, "other-pw") || !strings.Contains(dsn, "auth:<redacted>@db:5432/auth") {
		t.Errorf("database password not redacted: %s", dsn)
	}
}

func jsonEqual(a, b any) bool {
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return string(ja) == string(jb)
}

// --help is complete: every command has a description and runs --help, and
// every flag says what it does.
func TestHelpIsComplete(t *testing.T) {
	root := newRoot(nil, nil, nil)
	root.InitDefaultHelpCmd()
	root.InitDefaultCompletionCmd()
	var walk func(path []string)
	walk = func(path []string) {
		cmd, _, err := root.Find(path)
		if err != nil {
			t.Fatal(err)
		}
		if cmd.Short == "" {
			t.Errorf("%q has no description", cmd.CommandPath())
		}
		cmd.Flags().VisitAll(func(f *pflag.Flag) {
			if f.Usage == "" {
				t.Errorf("%s --%s has no usage text", cmd.CommandPath(), f.Name)
			}
		})
		out, err := cliRun(t, "", append(slices.Clone(path), "--help")...)
		if err != nil || !strings.Contains(out, "Usage:") {
			t.Errorf("%v --help: %v", path, err)
		}
		for _, sub := range cmd.Commands() {
			walk(append(slices.Clone(path), sub.Name()))
		}
	}
	walk(nil)
}

// readmeSection returns the README text.
func readme(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

var (
	fencedRE        = regexp.MustCompile("(?s)```[a-z]*\\n(.*?)```")
	inlineCodeRE    = regexp.MustCompile("`([^`\\n]+)`")
	readmeCommandRE = regexp.MustCompile(`(?:^|[\\s(/$])authserver((?:[ \\t]+[-a-zA-Z0-9=./:@|…]+)+)`)
)

// readmeCode returns the code of the README: fenced blocks and inline spans.
func readmeCode(text string) []string {
	var code []string
	for _, m := range fencedRE.FindAllStringSubmatch(text, -1) {
		code = append(code, strings.Split(m[1], "\n")...)
	}
	for _, m := range inlineCodeRE.FindAllStringSubmatch(fencedRE.ReplaceAllString(text, ""), -1) {
		code = append(code, m[1])
	}
	return code
}

// Every `authserver …` command line in the README names a command that
// exists and flags that command has; every command is in the README.
func TestReadmeCommandsExist(t *testing.T) {
	text := readme(t)
	root := newRoot(nil, nil, nil)
	root.InitDefaultHelpCmd()
	root.InitDefaultCompletionCmd()
	mentioned := map[string]bool{}
	var matches [][]string
	for _, line := range readmeCode(text) {
		if strings.Contains(line, "go test ") {
			continue // ./cmd/authserver is a package there
		}
		matches = append(matches, readmeCommandRE.FindAllStringSubmatch(line, -1)...)
	}
	for _, m := range matches {
		words := strings.Fields(m[1])
		cmd := root
		var path []string
		for _, w := range words {
			if strings.HasPrefix(w, "-") {
				if !strings.HasPrefix(w, "--") {
					continue
				}
				name, _, _ := strings.Cut(strings.TrimPrefix(w, "--"), "=")
				name = strings.TrimRight(name, ".,;:|`)")
				if name != "help" && cmd.Flags().Lookup(name) == nil && cmd.InheritedFlags().Lookup(name) == nil && cmd.PersistentFlags().Lookup(name) == nil {
					t.Errorf("README: %q: %s has no flag --%s", "authserver"+m[1], cmd.CommandPath(), name)
				}
				continue
			}
			if !cmd.HasSubCommands() {
				continue // an argument
			}
			if strings.ToUpper(w) == w {
				break // a placeholder: "authserver COMMAND --help"
			}
			// "bash|zsh|fish": each alternative is a command.
			var next *cobra.Command
			for _, alt := range strings.Split(strings.TrimRight(w, ".,;:`)"), "|") {
				found := false
				for _, sub := range cmd.Commands() {
					if sub.Name() == alt {
						found = true
						if next == nil {
							next = sub
						}
					}
				}
				if !found {
					t.Errorf("README: %q: %s has no command %q", "authserver"+m[1], cmd.CommandPath(), alt)
				}
			}
			if next == nil {
				break
			}
			cmd = next
			path = append(path, next.Name())
			mentioned[strings.Join(path, " ")] = true
		}
	}
	for _, path := range leafCommands(newRoot(nil, nil, nil)) {
		if !mentioned[path] && !strings.HasPrefix(path, "completion") {
			t.Errorf("the README does not mention `authserver %s`", path)
		}
	}
	if !mentioned["serve"] {
		t.Error("the README does not mention `authserver serve`")
	}
}

var update = flag.Bool("update", false, "rewrite the configuration reference in README.md")

const (
	refBegin = "<!-- BEGIN config-reference: generated from the flags by `go test ./cmd/authserver -run TestReadmeConfigReference -update`; do not edit by hand -->"
	refEnd   = "<!-- END config-reference -->"
)

// configReference returns the Markdown table of every setting of serve:
// flag, environment variable, default and meaning, in the order serve
// defines them, after the global --config and --db.
func configReference() string {
	var b strings.Builder
	b.WriteString("| flag (config file key) | environment variable | default | meaning |\n|---|---|---|---|\n")
	cell := func(s string) string { return strings.ReplaceAll(s, "|", "\\|") }
	row := func(f *pflag.Flag, note string) {
		def := f.DefValue
		if d, err := time.ParseDuration(def); err == nil && f.Value.Type() == "duration" {
			def = shortDuration(d)
		}
		if def == "" || def == "[]" {
			def = "—"
		} else {
			def = "`" + def + "`"
		}
		fmt.Fprintf(&b, "| `--%s` | `%s` | %s | %s%s |\n", f.Name, envName(f.Name), cell(def), cell(f.Usage), note)
	}
	root := newRoot(nil, nil, nil)
	row(root.PersistentFlags().Lookup("config"), " (not a key of the file itself)")
	row(root.PersistentFlags().Lookup("db"), "")
	fs := pflag.NewFlagSet("serve", pflag.ContinueOnError)
	fs.SortFlags = false
	new(serveConfig).registerFlags(fs)
	fs.VisitAll(func(f *pflag.Flag) { row(f, "") })
	return b.String()
}

// The README's configuration reference is the one the flags generate, so
// the README cannot drift from the code: a flag added, removed or changed
// fails this test until the table is regenerated with -update.
func TestReadmeConfigReference(t *testing.T) {
	text := readme(t)
	i, j := strings.Index(text, refBegin), strings.Index(text, refEnd)
	if i < 0 || j < i {
		t.Fatalf("README.md has no %q … %q block", refBegin, refEnd)
	}
	got := text[i+len(refBegin) : j]
	want := "\n" + configReference()
	if got == want {
		return
	}
	if *update {
		if err := os.WriteFile("../../README.md", []byte(text[:i+len(refBegin)]+want+text[j:]), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Log("README.md: configuration reference updated")
		return
	}
	t.Errorf("the configuration reference in README.md is out of date; run\n  go test ./cmd/authserver -run TestReadmeConfigReference -update\nwant:\n%s", want)
}

// Any file content gives settings or errors, never a panic; every setting has
// a known key and a value.
func FuzzParseConfig(f *testing.F) {
	for _, seed := range []string{
		"addr: 127.0.0.1:8080\ncors-origin: [https://a.example]\n",
		"cors-origin:\n  - &o https://a.example\naudience: *o\n",
		"? [a]\n: b\n", "addr:\n  x: y\n", "- 1\n", "", "a: b: c", "<<: {addr: x}\n",
	} {
		f.Add([]byte(seed))
	}
	known := map[string]bool{}
	for _, k := range fileKeys() {
		known[k] = true
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		settings, _ := parseConfig("fuzz.yaml", b)
		for _, s := range settings {
			if !known[s.key] || (!s.list && len(s.values) != 1) {
				t.Fatalf("bad setting %+v", s)
			}
		}
	})
}
