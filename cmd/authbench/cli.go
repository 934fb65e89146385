package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"runtime"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/oauthkit/authserver/internal/password"
)

// globals are the flags and streams every command shares.
type globals struct {
	args   []string
	stdout io.Writer
	stderr io.Writer
	log    *slog.Logger
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	root := newRoot(args, stdout, stderr)
	root.SetArgs(args)
	return root.ExecuteContext(ctx)
}

func newRoot(args []string, stdout, stderr io.Writer) *cobra.Command {
	g := &globals{args: args, stdout: stdout, stderr: stderr,
		log: slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))}
	root := &cobra.Command{
		Use:   "authbench",
		Short: "Load tool for the authorization server",
		Long: "authbench drives closed-loop load (N workers, each sending its next request when the previous one is\n" +
			"answered) against a running authorization server, and measures the machine's limits (argon2id,\n" +
			"JWT signing and verification, a trivial HTTP handler) so that every figure can be read as a ratio.",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.AddCommand(newSetupCmd(g), newRunCmd(g), newLimitsCmd(g), newReportCmd(g), newSeedCmd(g))
	return root
}

func newSetupCmd(g *globals) *cobra.Command {
	cfg := setupConfig{log: g.log}
	cmd := &cobra.Command{
		Use:   "setup",
		Short: "Create bench users and clients through the authserver command line",
		Long: "setup creates users bench-<i>@example.com sharing one password, a confidential client \"bench\"\n" +
			"(password, refresh_token, client_credentials) and an introspecting client \"bench-rs\", with\n" +
			"`authserver users add` and `authserver clients add` on the server's database (this works while the\n" +
			"server runs), and writes what it created to the state file. Rerunning it is safe. Use it only on a\n" +
			"benchmark database: the state file holds the secrets in clear.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			st, err := setup(cmd.Context(), cfg)
			if err != nil {
				return err
			}
			fmt.Fprintf(g.stdout, "%d users, clients %s and %s; state in %s\n", len(st.Users), st.ClientID, st.IntrospectorID, cfg.statePath)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.serverBin, "server-bin", "bin/authserver", "the authserver binary")
	f.StringVar(&cfg.db, "db", "", "the server's database (SQLite path or postgres:// URL)")
	f.IntVar(&cfg.users, "users", 64, "number of bench users (at least the largest password/refresh concurrency)")
	f.StringVar(&cfg.statePath, "state", "authbench-state.json", "state file to write")
	f.IntVar(&cfg.parallel, "parallel", runtime.NumCPU(), "users created at once (each costs one argon2id hash)")
	return cmd
}

// outputFlags are the output flags of run and limits.
type outputFlags struct {
	format string
	append string
}

func (o *outputFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVarP(&o.format, "output", "o", "table", "output: table, or json (one JSON line per result)")
	cmd.Flags().StringVar(&o.append, "append", "", "also append JSON lines to this file")
}

// emitter writes records as they are measured: JSON lines at once, the
// table at the end.
type emitter struct {
	g    *globals
	out  outputFlags
	file *os.File
	recs []record
}

func newEmitter(g *globals, out outputFlags) (*emitter, error) {
	if out.format != "table" && out.format != "json" {
		return nil, fmt.Errorf("--output must be table or json, not %q", out.format)
	}
	e := &emitter{g: g, out: out}
	if out.append != "" {
		f, err := os.OpenFile(out.append, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
		if err != nil {
			return nil, fmt.Errorf("--append: %w", err)
		}
		e.file = f
	}
	return e, nil
}

func (e *emitter) emit(r record) error {
	r.Command = e.g.command()
	e.recs = append(e.recs, r)
	if e.file != nil {
		if err := writeJSONLine(e.file, r); err != nil {
			return fmt.Errorf("--append: %w", err)
		}
	}
	if e.out.format == "json" {
		return writeJSONLine(e.g.stdout, r)
	}
	return nil
}

func (e *emitter) close() error {
	var err error
	if e.out.format == "table" && len(e.recs) > 0 {
		err = writeTable(e.g.stdout, e.recs)
	}
	if e.file != nil {
		err = errors.Join(err, e.file.Close())
	}
	return err
}

// command is the command line as recorded in the report, without the flags
// that only make sense on this machine at this moment.
func (g *globals) command() string {
	parts := []string{"authbench"}
	skip := false
	for _, a := range g.args {
		if skip {
			skip = false
			continue
		}
		name, _, hasValue := strings.Cut(a, "=")
		if name == "--append" || name == "--server-pid" || name == "--state" {
			skip = !hasValue
			continue
		}
		parts = append(parts, shellQuote(a))
	}
	return strings.Join(parts, " ")
}

// shellQuote quotes s for a POSIX shell when it needs it.
func shellQuote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./:=,@%+", r))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// runConfig holds the flags of `authbench run`.
type runConfig struct {
	url         string
	scenarios   []string
	concurrency int
	duration    time.Duration
	warmup      time.Duration
	statePath   string
	pool        int
	serverPID   int
	timeout     time.Duration
	label       string
	noise       noiseFlags
	out         outputFlags
}

func newRunCmd(g *globals) *cobra.Command {
	var c runConfig
	var help strings.Builder
	for _, s := range scenarios {
		fmt.Fprintf(&help, "  %-19s %s\n", s.name, s.help)
	}
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Run scenarios against a server",
		Long: "run loads a running server with one or more scenarios (comma-separated, or all), each with\n" +
			"--concurrency workers for --warmup and then the measured --duration. Scenarios:\n\n" + help.String() +
			"\nWith --server-pid, the server's CPU and peak RSS during the run are read from /proc.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			em, err := newEmitter(g, c.out)
			if err != nil {
				return err
			}
			err = runScenarios(cmd.Context(), g, c, em.emit)
			return errors.Join(err, em.close())
		},
	}
	f := cmd.Flags()
	f.StringVar(&c.url, "url", "http://127.0.0.1:8080", "the server's base URL")
	f.StringSliceVarP(&c.scenarios, "scenario", "s", nil, "scenarios to run, comma-separated, or all: "+strings.Join(scenarioNames(), ", "))
	f.IntVarP(&c.concurrency, "concurrency", "c", 16, "workers (closed loop: each has one request in flight)")
	f.DurationVarP(&c.duration, "duration", "d", 10*time.Second, "measured window")
	f.DurationVar(&c.warmup, "warmup", time.Second, "warm-up before the measured window (not counted)")
	f.StringVar(&c.statePath, "state", "authbench-state.json", "state file written by setup")
	f.IntVar(&c.pool, "pool", 0, "token pool size for introspect (default 256), revoke (5000), api (256), oidc_code (codes, 3000) and userinfo (64)")
	f.IntVar(&c.serverPID, "server-pid", 0, "server process to read CPU and memory of (Linux /proc)")
	f.DurationVar(&c.timeout, "timeout", 60*time.Second, "per-request timeout")
	f.StringVar(&c.label, "label", "", "name of the result in tables (default: the scenario, with the algorithm)")
	c.noise.register(cmd)
	c.out.register(cmd)
	_ = cmd.MarkFlagRequired("scenario")
	return cmd
}

// runScenarios runs each scenario of c and emits its record.
func runScenarios(ctx context.Context, g *globals, c runConfig, emit func(record) error) error {
	names := c.scenarios
	if len(names) == 1 && names[0] == "all" {
		names = scenarioNames()
	}
	var list []scenario
	needState := false
	for _, n := range names {
		s, ok := findScenario(n)
		if !ok {
			return fmt.Errorf("unknown scenario %q (want one of %s, or all)", n, strings.Join(scenarioNames(), ", "))
		}
		list = append(list, s)
		needState = needState || s.needsState
	}
	tr := newTransport(c.concurrency)
	defer tr.CloseIdleConnections()
	t := &target{base: strings.TrimRight(c.url, "/"), client: &http.Client{Transport: tr, Timeout: c.timeout}, pool: c.pool}
	if needState {
		st, err := loadState(c.statePath)
		if err != nil {
			return err
		}
		t.state = st
	}
	for _, s := range list {
		var best record
		for attempt := 1; ; attempt++ {
			rec, err := runScenario(ctx, g, t, s, c)
			if err != nil {
				return fmt.Errorf("scenario %s: %w", s.name, err)
			}
			rec.Attempts = attempt
			if attempt == 1 || rec.OtherCPUCores < best.OtherCPUCores {
				best = rec
			}
			if !c.noise.retry(g.log, s.name, attempt, rec.OtherCPUCores) {
				break
			}
		}
		if err := emit(best); err != nil {
			return err
		}
	}
	return nil
}

// noiseFlags make a measurement taken while the rest of the machine was
// busy be taken again.
type noiseFlags struct {
	maxOther float64
	retries  int
}

func (n *noiseFlags) register(cmd *cobra.Command) {
	cmd.Flags().Float64Var(&n.maxOther, "max-other-load", 0, "measure again when other processes used more than this many cores meanwhile (0: never)")
	cmd.Flags().IntVar(&n.retries, "retries", 2, "how many times to measure again with --max-other-load; the quietest attempt is kept")
}

// retry reports whether the attempt that saw other cores of other load
// should be followed by another.
func (n noiseFlags) retry(log *slog.Logger, name string, attempt int, other float64) bool {
	if n.maxOther <= 0 || other <= n.maxOther || attempt > n.retries {
		return false
	}
	log.Warn("the machine was busy; measuring again", "name", name, "other_cpu_cores", other, "attempt", attempt+1)
	return true
}

// runScenario prepares and runs one scenario.
func runScenario(ctx context.Context, g *globals, t *target, s scenario, c runConfig) (record, error) {
	// The peak RSS is reset after the token pools are issued and the workers
	// prepared, so that it is the load's own (warm-up included).
	var mon *procMonitor
	startMonitor := func() error {
		if c.serverPID <= 0 {
			return nil
		}
		var err error
		mon, err = startProcMonitor(c.serverPID)
		return err
	}
	finish := func(rec record) (record, error) {
		rec.URL, rec.Alg, rec.Label = t.base, t.algorithm(ctx), c.label
		if mon != nil {
			u, err := mon.finish()
			if err != nil {
				return rec, err
			}
			rec.Server = u
			rec.OtherCPUCores = round(max(0, rec.OtherCPUCores-u.CPUCores), 2)
		}
		return rec, nil
	}

	if s.prepare == nil { // idle
		if err := startMonitor(); err != nil {
			return record{}, err
		}
		if mon != nil {
			mon.begin()
		}
		start := time.Now()
		if !sleepUntil(ctx, start.Add(c.warmup)) {
			return record{}, ctx.Err()
		}
		if mon != nil {
			mon.windowStart()
		}
		cpu0, mach0 := processCPU(), machineCPU()
		if !sleepUntil(ctx, time.Now().Add(c.duration)) {
			return record{}, ctx.Err()
		}
		if mon != nil {
			mon.windowEnd()
		}
		rec := newRecord(kindScenario, s.name, 0, &loadResult{Elapsed: c.duration,
			ClientCPU: processCPU() - cpu0, MachineCPU: machineCPU() - mach0})
		return finish(rec)
	}

	g.log.Debug("preparing", "scenario", s.name)
	factory, err := s.prepare(ctx, t, c.concurrency)
	if err != nil {
		return record{}, err
	}
	if err := startMonitor(); err != nil {
		return record{}, err
	}
	lc := loadConfig{Concurrency: c.concurrency, Warmup: c.warmup, Duration: c.duration, OK: s.okFunc()}
	if mon != nil {
		lc.OnStart, lc.OnWindowStart, lc.OnWindowEnd = mon.begin, mon.windowStart, mon.windowEnd
	}
	g.log.Info("running", "scenario", s.name, "concurrency", c.concurrency, "duration", c.duration)
	res, err := runLoad(ctx, lc, factory)
	if err != nil {
		if mon != nil {
			_, _ = mon.finish()
		}
		return record{}, err
	}
	return finish(newRecord(kindScenario, s.name, c.concurrency, res))
}

func newLimitsCmd(g *globals) *cobra.Command {
	cfg := limitsConfig{Argon2: password.DefaultParams}
	var out outputFlags
	var noise noiseFlags
	cmd := &cobra.Command{
		Use:   "limits",
		Short: "Measure the machine's limits: argon2id, JWT sign/verify per algorithm, a trivial HTTP handler",
		Long: "limits measures, with the same closed-loop generator as run, what no server can beat on this machine\n" +
			"at this moment: argon2id verifications at the given parameters on every core, go-jose v4 JWT signing\n" +
			"and verification per algorithm (RS256 with RSA 2048, ES256, EdDSA) on every core, and a trivial HTTP\n" +
			"handler over loopback. Run it next to the scenarios and read their figures as ratios to these.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if cfg.Argon2.Memory == 0 {
				cfg.Argon2 = password.Params{}
			}
			em, err := newEmitter(g, out)
			if err != nil {
				return err
			}
			cfg.Retry = func(name string, attempt int, other float64) bool { return noise.retry(g.log, name, attempt, other) }
			err = runLimits(cmd.Context(), cfg, func(l limitRun) error {
				r := newRecord(kindLimit, l.name, l.conc, l.res)
				r.Params, r.Attempts = l.params, l.attempts
				g.log.Info("limit", "name", l.name, "ops/s", r.OKRPS)
				return em.emit(r)
			})
			return errors.Join(err, em.close())
		},
	}
	f := cmd.Flags()
	f.StringSliceVar(&cfg.Algorithms, "algorithms", []string{"RS256", "ES256", "EdDSA"}, "JWT algorithms to measure")
	f.StringSliceVar(&cfg.Only, "only", nil, "measure only these limits (argon2id, sign/ALG, verify/ALG, http); overrides --algorithms")
	f.Uint32Var(&cfg.Argon2.Memory, "argon2-memory", password.DefaultParams.Memory, "argon2id memory in KiB (0 skips the argon2id limit)")
	f.Uint32Var(&cfg.Argon2.Time, "argon2-time", password.DefaultParams.Time, "argon2id passes")
	f.Uint8Var(&cfg.Argon2.Threads, "argon2-threads", password.DefaultParams.Threads, "argon2id parallelism")
	f.IntVar(&cfg.Concurrency, "concurrency", runtime.NumCPU(), "workers of the CPU limits (default: every core)")
	f.IntVar(&cfg.HTTPConcurrency, "http-concurrency", 64, "workers of the HTTP limit (0 skips it)")
	f.DurationVarP(&cfg.Duration, "duration", "d", 3*time.Second, "measured window of each limit")
	f.DurationVar(&cfg.Warmup, "warmup", 500*time.Millisecond, "warm-up of each limit")
	noise.register(cmd)
	out.register(cmd)
	return cmd
}

func newReportCmd(g *globals) *cobra.Command {
	var (
		format  string
		meta    reportMeta
		update  string
		outPath string
	)
	cmd := &cobra.Command{
		Use:   "report FILE...",
		Short: "Render JSON lines from run and limits as a table or a markdown section",
		Long: "report reads the JSON lines of run and limits (--append) and renders them: a text table, or a\n" +
			"markdown section with each scenario's ratio to its limit. With --update, the section replaces the one\n" +
			"under the same heading in that file (or is appended), leaving every other section as it was.",
		Args: cobra.MinimumNArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			var recs []record
			for _, p := range args {
				f, err := os.Open(p)
				if err != nil {
					return err
				}
				rs, err := readRecords(f)
				f.Close()
				if err != nil {
					return fmt.Errorf("%s: %w", p, err)
				}
				recs = append(recs, rs...)
			}
			var b strings.Builder
			switch format {
			case "table":
				if err := writeTable(&b, recs); err != nil {
					return err
				}
			case "markdown":
				if err := writeMarkdown(&b, recs, meta); err != nil {
					return err
				}
			default:
				return fmt.Errorf("--format must be table or markdown, not %q", format)
			}
			if outPath != "" {
				if err := os.WriteFile(outPath, []byte(b.String()), 0o644); err != nil {
					return err
				}
			} else {
				fmt.Fprint(g.stdout, b.String())
			}
			if update != "" {
				if format != "markdown" {
					return errors.New("--update needs --format markdown")
				}
				return updateSection(update, meta.Heading, b.String())
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&format, "format", "markdown", "table or markdown")
	f.StringVar(&meta.Heading, "heading", "## Load tool figures", "heading of the markdown section")
	f.StringArrayVar(&meta.Lines, "meta", nil, "a line about the run (machine, commit, flags); repeatable")
	f.StringVar(&update, "update", "", "markdown file whose section under --heading is replaced")
	f.StringVarP(&outPath, "out", "O", "", "write the report to this file instead of stdout")
	return cmd
}

// updateSection replaces the section under heading in the file at path,
// reading the file just before writing it (other sections belong to others).
func updateSection(path, heading, section string) error {
	b, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	doc := replaceSection(string(b), heading, section)
	if len(b) == 0 {
		doc = "# Benchmarks\n\n" + doc
	}
	tmp := path + ".authbench.tmp"
	if err := os.WriteFile(tmp, []byte(doc), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
