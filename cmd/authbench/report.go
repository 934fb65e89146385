package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// Record kinds.
const (
	kindScenario = "scenario"
	kindLimit    = "limit"
)

// record is one measured run: a JSON line of --output json, a row of the
// table and of the markdown report.
type record struct {
	// Kind is "scenario" or "limit"; Name is the scenario (password, …) or
	// the limit (argon2id, sign/RS256, verify/ES256, http).
	Kind string `json:"kind"`
	Name string `json:"name"`
	// Label, when set, names the record in tables ("memflood (fresh
	// server)").
	Label string `json:"label,omitempty"`
	// Params describe a limit (argon2id parameters, key type).
	Params string `json:"params,omitempty"`
	// URL is the server a scenario ran against.
	URL string `json:"url,omitempty"`
	// Alg is the server's signing algorithm, seen in its tokens or JWKS.
	Alg string `json:"alg,omitempty"`
	// Concurrency is the number of closed-loop workers; DurationS the
	// measured window (shorter than asked when a token pool ran out);
	// Requests and OK count the responses completed inside it.
	Concurrency int     `json:"concurrency"`
	DurationS   float64 `json:"duration_s"`
	Requests    int64   `json:"requests"`
	OK          int64   `json:"ok"`
	// RPS counts every completed request, OKRPS only the successes.
	RPS   float64 `json:"rps"`
	OKRPS float64 `json:"ok_rps"`
	// LatencyMS summarises the HdrHistogram of every counted response.
	LatencyMS latencySummary `json:"latency_ms"`
	// Status counts responses by HTTP status; Errors counts every failure
	// (unexpected statuses as "status N", transport errors by cause).
	Status map[int]int64    `json:"status,omitempty"`
	Errors map[string]int64 `json:"errors,omitempty"`
	// ClientCPUCores is the load tool's own CPU use during the window;
	// MachineCPUCores is every process's, and OtherCPUCores what neither
	// the load tool nor the server used (other work on a shared machine:
	// the noise).
	ClientCPUCores  float64 `json:"client_cpu_cores"`
	MachineCPUCores float64 `json:"machine_cpu_cores"`
	OtherCPUCores   float64 `json:"other_cpu_cores"`
	// Server is the server process's usage (run --server-pid).
	Server *serverUsage `json:"server,omitempty"`
	// Command is the authbench command line, without local paths.
	Command string `json:"command,omitempty"`
	// Attempts is how many times the measurement was taken (more than one
	// when the machine was busy, with --max-other-load); this is the
	// quietest.
	Attempts int `json:"attempts,omitempty"`
	// Time is when the measurement ended.
	Time time.Time `json:"time"`
}

// latencySummary holds latency percentiles in milliseconds.
type latencySummary struct {
	P50  float64 `json:"p50"`
	P90  float64 `json:"p90"`
	P99  float64 `json:"p99"`
	Max  float64 `json:"max"`
	Mean float64 `json:"mean"`
}

// newRecord summarises a load result.
func newRecord(kind, name string, conc int, res *loadResult) record {
	r := record{Kind: kind, Name: name, Concurrency: conc, Time: time.Now().UTC().Truncate(time.Millisecond)}
	if res == nil {
		return r
	}
	secs := res.Elapsed.Seconds()
	r.DurationS = round(secs, 3)
	r.Requests, r.OK = res.Requests, res.OK
	if secs > 0 {
		r.RPS = round(float64(res.Requests)/secs, 1)
		r.OKRPS = round(float64(res.OK)/secs, 1)
		r.ClientCPUCores = round(res.ClientCPU.Seconds()/secs, 2)
		r.MachineCPUCores = round(res.MachineCPU.Seconds()/secs, 2)
		r.OtherCPUCores = round(res.otherCores(), 2)
	}
	if len(res.Status) > 0 {
		r.Status = res.Status
	}
	if len(res.Errors) > 0 {
		r.Errors = res.Errors
	}
	if h := res.Hist; h != nil && h.TotalCount() > 0 {
		ms := func(us int64) float64 { return round(float64(us)/1000, 3) }
		r.LatencyMS = latencySummary{
			P50:  ms(h.ValueAtQuantile(50)),
			P90:  ms(h.ValueAtQuantile(90)),
			P99:  ms(h.ValueAtQuantile(99)),
			Max:  ms(h.Max()),
			Mean: round(h.Mean()/1000, 3),
		}
	}
	return r
}

func round(v float64, digits int) float64 {
	p := math.Pow(10, float64(digits))
	return math.Round(v*p) / p
}

// errorCount is the number of failed requests (every non-success).
func (r record) errorCount() int64 {
	var n int64
	for _, v := range r.Errors {
		n += v
	}
	return n
}

// writeJSONLine writes r as one line of JSON.
func writeJSONLine(w io.Writer, r record) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

// readRecords reads JSON lines; blank lines are skipped.
func readRecords(r io.Reader) ([]record, error) {
	var out []record
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		var rec record
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			return nil, fmt.Errorf("line %d: %w", n, err)
		}
		out = append(out, rec)
	}
	return out, sc.Err()
}

// writeTable writes records as an aligned text table.
func writeTable(w io.Writer, recs []record) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "name\tconc\treq/s\tok/s\tp50 ms\tp90 ms\tp99 ms\tmax ms\terrors\tsrv CPU\tsrv peak RSS\t")
	for _, r := range recs {
		srvCPU, srvRSS := "-", "-"
		if r.Server != nil {
			srvCPU = fmt.Sprintf("%.2f", r.Server.CPUCores)
			srvRSS = fmt.Sprintf("%.1f MB", r.Server.PeakRSSMB)
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n", r.label(), r.Concurrency,
			fmtRate(r.RPS), fmtRate(r.OKRPS), fmtMS(r.LatencyMS.P50), fmtMS(r.LatencyMS.P90),
			fmtMS(r.LatencyMS.P99), fmtMS(r.LatencyMS.Max), r.errorSummary(), srvCPU, srvRSS)
	}
	return tw.Flush()
}

// label is the record's --label, or its name with the algorithm of a
// scenario whose limit depends on it.
func (r record) label() string {
	if r.Label != "" {
		return r.Label
	}
	if r.Kind == kindScenario && r.Alg != "" && limitKind(r.Name) != "" && limitKind(r.Name) != limitArgon2 && limitKind(r.Name) != limitHTTP {
		return r.Name + " (" + r.Alg + ")"
	}
	return r.Name
}

// errorSummary is "0", or the count followed by every status and error.
func (r record) errorSummary() string {
	n := r.errorCount()
	if n == 0 {
		return "0"
	}
	keys := slices.Sorted(maps.Keys(r.Errors))
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s: %d", k, r.Errors[k])
	}
	return fmt.Sprintf("%d (%s)", n, strings.Join(parts, ", "))
}

// statusSummary lists the status counts, most frequent first.
func (r record) statusSummary() string {
	codes := slices.Collect(maps.Keys(r.Status))
	slices.SortFunc(codes, func(a, b int) int {
		if r.Status[a] != r.Status[b] {
			return int(r.Status[b] - r.Status[a])
		}
		return a - b
	})
	parts := make([]string, len(codes))
	for i, c := range codes {
		parts[i] = fmt.Sprintf("%d×%d", r.Status[c], c)
	}
	return strings.Join(parts, ", ")
}

func fmtRate(v float64) string {
	switch {
	case v >= 100:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case v >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	default:
		return strconv.FormatFloat(v, 'f', 2, 64)
	}
}

func fmtMS(v float64) string {
	switch {
	case v == 0:
		return "-"
	case v >= 100:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case v >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	default:
		return strconv.FormatFloat(v, 'f', 2, 64)
	}
}

// limitKind names the limit a scenario is compared with: argon2id for the
// password grant, signing for token issuance, verification for
// introspection and the API, and the trivial HTTP handler for JWKS and
// revocation. memflood has none: most of its answers are refusals that cost
// no hash.
func limitKind(scenario string) string {
	switch scenario {
	case "password":
		return limitArgon2
	case "refresh", "client_credentials", "oidc_code":
		return "sign"
	case "introspect", "api", "userinfo":
		return "verify"
	case "jwks", "revoke":
		return limitHTTP
	}
	return ""
}

// limitName is the limit of scenario r, given its algorithm.
func (r record) limitName() string {
	switch k := limitKind(r.Name); k {
	case "sign", "verify":
		if r.Name == "oidc_code" {
			// Its ID token is always RS256, whatever the access tokens use.
			return k + "/RS256"
		}
		if r.Alg == "" {
			return ""
		}
		return k + "/" + r.Alg
	default:
		return k
	}
}

// limitStat aggregates the measurements of one limit (bench.sh measures
// every limit before the scenarios, and each scenario's own limit right
// before it).
type limitStat struct {
	name, params string
	conc         int
	rates        []float64
	p50          []float64
	p99          []float64
	other        []float64
	times        []time.Time
	attempts     []int
}

// nearest is the index of the measurement closest in time to t: the limit
// "at the same moment" as a scenario that ended at t.
func (l *limitStat) nearest(t time.Time) int {
	n := l.best()
	if t.IsZero() {
		return n
	}
	for i, at := range l.times {
		if !at.IsZero() && absDuration(at.Sub(t)) < absDuration(l.times[n].Sub(t)) {
			n = i
		}
	}
	return n
}

func absDuration(d time.Duration) time.Duration {
	if d < 0 {
		return -d
	}
	return d
}

// best is the index of the fastest measurement. Noise on a shared machine
// only ever slows a limit down, so the fastest run is the best estimate of
// what the machine can do.
func (l *limitStat) best() int {
	b := 0
	for i, r := range l.rates {
		if r > l.rates[b] {
			b = i
		}
	}
	return b
}

// rate is the limit: the fastest measurement.
func (l *limitStat) rate() float64 {
	if len(l.rates) == 0 {
		return 0
	}
	return l.rates[l.best()]
}

// spread is (max−min)/max of the measurements, the drift during the run.
func (l *limitStat) spread() float64 {
	if len(l.rates) < 2 || l.rate() == 0 {
		return 0
	}
	return (slices.Max(l.rates) - slices.Min(l.rates)) / l.rate()
}

// aggregateLimits groups limit records by name, in first-seen order.
func aggregateLimits(recs []record) ([]*limitStat, map[string]*limitStat) {
	var order []*limitStat
	byName := map[string]*limitStat{}
	for _, r := range recs {
		if r.Kind != kindLimit {
			continue
		}
		l, ok := byName[r.Name]
		if !ok {
			l = &limitStat{name: r.Name, params: r.Params, conc: r.Concurrency}
			byName[r.Name] = l
			order = append(order, l)
		}
		l.rates = append(l.rates, r.OKRPS)
		l.p50 = append(l.p50, r.LatencyMS.P50)
		l.p99 = append(l.p99, r.LatencyMS.P99)
		l.other = append(l.other, r.OtherCPUCores)
		l.times = append(l.times, r.Time)
		l.attempts = append(l.attempts, r.Attempts)
	}
	return order, byName
}

// reportMeta describes the machine and the run for the markdown header.
type reportMeta struct {
	Heading string
	// Lines are free-form facts (date, CPU, commit, server flags), one
	// bullet each.
	Lines []string
}

// writeMarkdown renders a markdown section from the records of one bench
// run: the limits, the scenarios with their ratios, the commands, and the
// issue's targets.
func writeMarkdown(w io.Writer, recs []record, meta reportMeta) error {
	limits, byName := aggregateLimits(recs)
	var scen []record
	for _, r := range recs {
		if r.Kind == kindScenario {
			scen = append(scen, r)
		}
	}
	b := &strings.Builder{}
	heading := meta.Heading
	if heading == "" {
		heading = "## Load tool figures"
	}
	fmt.Fprintf(b, "%s\n\n", heading)
	fmt.Fprintf(b, "Generated by `scripts/bench.sh`; do not edit by hand, rerun it. The load tool (`cmd/authbench`) runs closed loops "+
		"(each worker sends its next request when the previous one is answered) on the same machine as the server, over one "+
		"keep-alive transport. Every figure is compared with a limit measured by `authbench limits` in the same run on the same "+
		"machine: absolute numbers drift on shared machines, ratios hold better.\n\n")
	for _, l := range meta.Lines {
		fmt.Fprintf(b, "- %s\n", l)
	}
	if len(meta.Lines) > 0 {
		b.WriteString("\n")
	}

	if len(limits) > 0 {
		b.WriteString("### Limits\n\n")
		b.WriteString("| limit | parameters | workers | ops/s | p50 | p99 | other load | all runs (ops/s, other load) | drift |\n|---|---|--:|--:|--:|--:|--:|---|--:|\n")
		for _, l := range limits {
			i := l.best()
			runs := make([]string, len(l.rates))
			for j := range l.rates {
				runs[j] = fmt.Sprintf("%s (%.2f)", fmtRate(l.rates[j]), l.other[j])
				if l.attempts[j] > 1 {
					runs[j] = fmt.Sprintf("%s (%.2f, %d tries)", fmtRate(l.rates[j]), l.other[j], l.attempts[j])
				}
			}
			drift := "–"
			if len(l.rates) > 1 {
				drift = fmt.Sprintf("%.0f%%", 100*l.spread())
			}
			fmt.Fprintf(b, "| %s | %s | %d | %s | %s ms | %s ms | %.2f cores | %s | %s |\n", limitTitle(l.name), l.params, l.conc,
				fmtRate(l.rate()), fmtMS(l.p50[i]), fmtMS(l.p99[i]), l.other[i], strings.Join(runs, ", "), drift)
		}
		b.WriteString("\nEvery limit is measured before the scenarios, and each scenario's own limit again right before it. The " +
			"table shows the fastest run (noise only slows a limit down) with its latencies; drift is (max − min)/max across the " +
			"runs. A scenario's ratio uses the run of its limit nearest in time: the same moment. " +
			"Other load is the CPU the rest of the machine used meanwhile (/proc/stat busy time minus the load tool's): the noise; " +
			"with --max-other-load a measurement is taken again (up to --retries times) when it is above the threshold, and the " +
			"quietest attempt is kept. " +
			"The CPU limits use every core; the HTTP limit is a handler writing 16 bytes, served in the load tool's own process " +
			"and loaded by the same generator, so it is the ceiling of any request/response on this machine with this tool.\n\n")
	}

	if len(scen) > 0 {
		b.WriteString("### Scenarios\n\n")
		b.WriteString("| scenario | workers | window | req/s | p50 | p90 | p99 | max | errors | server CPU | server CPU per request | server disk writes per request | server peak RSS | load tool CPU | other load | limit | ratio | ratio to limit ⊕ HTTP |\n")
		b.WriteString("|---|--:|--:|--:|--:|--:|--:|--:|---|--:|--:|--:|--:|--:|--:|---|--:|--:|\n")
		for _, r := range scen {
			srvCPU, srvRSS := "–", "–"
			perReq, diskReq := "–", "–"
			if ok := r.OKRPS * r.DurationS; r.Server != nil && ok > 0 && r.Name != "idle" {
				perReq = fmt.Sprintf("%.0f µs", 1e6*r.Server.CPUSeconds/ok)
				diskReq = fmt.Sprintf("%.1f KB", 1e3*r.Server.DiskWriteMB/ok)
			}
			if r.Server != nil {
				srvCPU = fmt.Sprintf("%.2f cores", r.Server.CPUCores)
				srvRSS = fmt.Sprintf("%.1f MB", r.Server.PeakRSSMB)
				if !r.Server.HWMReset {
					srvRSS += " (since start)"
				}
			}
			limit, ratio, combined := "–", "–", "–"
			if l, ok := byName[r.limitName()]; ok && l.rate() > 0 {
				lr := l.rates[l.nearest(r.Time)]
				limit = fmt.Sprintf("%s %s/s", limitTitle(l.name), fmtRate(lr))
				ratio = fmt.Sprintf("%.0f%%", 100*r.OKRPS/lr)
				if h, ok := byName[limitHTTP]; ok && h.rate() > 0 && l.name != limitHTTP {
					c := 1 / (1/lr + 1/h.rates[h.nearest(r.Time)])
					combined = fmt.Sprintf("%.0f%% of %s", 100*r.OKRPS/c, fmtRate(c))
				}
			}
			rate := fmtRate(r.OKRPS)
			if r.Name == "idle" {
				rate, ratio = "–", "–"
			}
			errs := r.errorSummary()
			if r.Name == "memflood" {
				errs = r.statusSummary()
				if n := r.errorCount(); n > 0 {
					errs += "; errors " + r.errorSummary()
				}
			}
			fmt.Fprintf(b, "| %s | %d | %.1f s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %.2f cores | %s | %s | %s | %s |\n",
				r.label(), r.Concurrency, r.DurationS, rate, msCell(r.LatencyMS.P50), msCell(r.LatencyMS.P90), msCell(r.LatencyMS.P99),
				msCell(r.LatencyMS.Max), errs, srvCPU, perReq, diskReq, srvRSS, r.ClientCPUCores, r.otherCell(), limit, ratio, combined)
		}
		b.WriteString("\nreq/s counts successful responses (for memflood: the acceptable refusals 400/401/429/503, listed with their counts). " +
			"The limit is the run of the scenario's limit nearest in time (bench.sh measures it right before the scenario). " +
			"Server CPU is utime+stime from /proc/PID/stat over the measured window (per request: divided by the successful responses); " +
			"disk writes are write_bytes from /proc/PID/io over the window, per successful response (on SQLite: the log pages each commit writes " +
			"and the checkpoints that copy them into the database file); peak RSS is VmHWM from /proc/PID/status, reset " +
			"(clear_refs) when the load starts, after the token pools are issued: it includes memory the server already held. " +
			"\"limit ⊕ HTTP\" is 1/(1/limit + 1/HTTP limit): the rate of a server that did nothing but that cryptography plus a " +
			"trivial HTTP exchange on the same cores as the load tool.\n\n")

		b.WriteString("Commands:\n\n```sh\n")
		for _, r := range scen {
			if r.Command != "" {
				fmt.Fprintf(b, "%s\n", r.Command)
			}
		}
		for _, r := range recs {
			if r.Kind == kindLimit && r.Command != "" {
				fmt.Fprintf(b, "%s\n", r.Command)
				break
			}
		}
		b.WriteString("```\n\n")
		if t := targets(scen, byName); len(t) > 0 {
			b.WriteString("### Targets of the issue\n\n")
			for _, line := range t {
				fmt.Fprintf(b, "- %s\n", line)
			}
			b.WriteString("\n")
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// otherCell is the other load, with the number of tries when the
// measurement was taken again because the machine was busy.
func (r record) otherCell() string {
	if r.Attempts > 1 {
		return fmt.Sprintf("%.2f cores (%d tries)", r.OtherCPUCores, r.Attempts)
	}
	return fmt.Sprintf("%.2f cores", r.OtherCPUCores)
}

func msCell(v float64) string {
	if v == 0 {
		return "–"
	}
	return fmtMS(v) + " ms"
}

// limitTitle is a limit's name in the report.
func limitTitle(name string) string {
	switch {
	case name == limitHTTP:
		return "HTTP (trivial handler)"
	case strings.HasPrefix(name, "sign/"):
		return strings.TrimPrefix(name, "sign/") + " sign"
	case strings.HasPrefix(name, "verify/"):
		return strings.TrimPrefix(name, "verify/") + " verify"
	}
	return name
}

// targets checks the targets that this run measures, one line per
// matching scenario record (a run may hold a scenario at several algorithms).
func targets(scen []record, limits map[string]*limitStat) []string {
	verdict := func(ok bool) string {
		if ok {
			return "**met**"
		}
		return "**missed**"
	}
	var out []string
	add := func(format string, args ...any) { out = append(out, fmt.Sprintf(format, args...)) }
	for _, r := range scen {
		name := r.label()
		if strings.Contains(name, "PostgreSQL") {
			// The targets are for SQLite; bench.sh puts "PostgreSQL" in the
			// labels of its PostgreSQL pass.
			continue
		}
		switch r.Name {
		case "password":
			a, ok := limits[limitArgon2]
			if !ok || a.rate() == 0 {
				continue
			}
			i := a.nearest(r.Time)
			rate, hash := a.rates[i], a.p50[i]
			add("%s ≥ 85%% of the argon2id rate: %s/s of %s/s = %.0f%%, %s", name, fmtRate(r.OKRPS), fmtRate(rate), 100*r.OKRPS/rate, verdict(r.OKRPS >= 0.85*rate))
			add("%s p99 < 3× one hash (%s ms) at concurrency 4: p99 %s ms = %.1f× at concurrency %d, %s", name, fmtMS(hash), fmtMS(r.LatencyMS.P99), r.LatencyMS.P99/hash, r.Concurrency, verdict(r.LatencyMS.P99 < 3*hash))
		case "client_credentials", "refresh":
			switch r.Alg {
			case "":
			case "RS256":
				if l, ok := limits[signLimit("RS256")]; ok && l.rate() > 0 {
					rate := l.rates[l.nearest(r.Time)]
					add("%s ≥ 70%% of RS256 signing: %s/s of %s/s = %.0f%%, %s", name, fmtRate(r.OKRPS), fmtRate(rate), 100*r.OKRPS/rate, verdict(r.OKRPS >= 0.7*rate))
				}
			default:
				add("%s ≥ 5,000 tokens/s: %s/s, %s", name, fmtRate(r.OKRPS), verdict(r.OKRPS >= 5000))
			}
		case "introspect":
			add("%s ≥ 10,000/s with p99 < 20 ms at concurrency 64: %s/s, p99 %s ms at concurrency %d, %s", name, fmtRate(r.OKRPS), fmtMS(r.LatencyMS.P99), r.Concurrency, verdict(r.OKRPS >= 10000 && r.LatencyMS.P99 < 20))
		case "jwks":
			add("%s ≥ 20,000/s: %s/s, %s", name, fmtRate(r.OKRPS), verdict(r.OKRPS >= 20000))
		case "memflood":
			if r.Server != nil {
				add("%s: peak RSS < 150 MB during a %d-concurrent wrong-password flood: %.1f MB, %s", name, r.Concurrency, r.Server.PeakRSSMB, verdict(r.Server.PeakRSSMB < 150))
			}
		case "idle":
			if r.Server != nil {
				add("%s: RSS < 60 MB when idle: %.1f MB, %s", name, r.Server.RSSMB, verdict(r.Server.RSSMB < 60))
			}
		}
	}
	return out
}

// replaceSection returns doc with the section that starts with heading (a
// "## " line) replaced by section, up to the next heading of the same or a
// higher level; the section is appended when the heading is missing.
func replaceSection(doc, heading, section string) string {
	section = strings.TrimRight(section, "\n") + "\n"
	lines := strings.SplitAfter(doc, "\n")
	level := strings.IndexFunc(heading, func(r rune) bool { return r != '#' })
	start, end := -1, len(lines)
	inFence := false
	for i, l := range lines {
		t := strings.TrimRight(l, "\r\n")
		if strings.HasPrefix(t, "```") {
			inFence = !inFence
			continue
		}
		if inFence {
			continue
		}
		if start < 0 {
			if strings.TrimSpace(t) == strings.TrimSpace(heading) {
				start = i
			}
			continue
		}
		if lv := strings.IndexFunc(t, func(r rune) bool { return r != '#' }); lv > 0 && lv <= level && strings.HasPrefix(t[lv:], " ") {
			end = i
			break
		}
	}
	if start < 0 {
		if doc != "" && !strings.HasSuffix(doc, "\n\n") {
			if !strings.HasSuffix(doc, "\n") {
				doc += "\n"
			}
			doc += "\n"
		}
		return doc + section
	}
	rest := strings.Join(lines[end:], "")
	if rest != "" {
		section += "\n"
	}
	return strings.Join(lines[:start], "") + section + rest
}
