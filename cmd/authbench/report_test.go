package main

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	hdr "github.com/HdrHistogram/hdrhistogram-go"
)

func TestNewRecordSummarisesTheHistogram(t *testing.T) {
	h := hdr.New(histMin, histMax, histSigFigs)
	for ms := int64(1); ms <= 1000; ms++ {
		_ = h.RecordValue(ms * 1000)
	}
	r := newRecord(kindScenario, "password", 4, &loadResult{
		Elapsed: 2 * time.Second, Requests: 1000, OK: 990, Hist: h,
		Status: map[int]int64{200: 990, 503: 10}, Errors: map[string]int64{"status 503": 10},
		ClientCPU: time.Second, MachineCPU: 3 * time.Second,
	})
	near := func(got, want float64) bool { return got >= want*0.99 && got <= want*1.01 }
	if !near(r.LatencyMS.P50, 500) || !near(r.LatencyMS.P90, 900) || !near(r.LatencyMS.P99, 990) || !near(r.LatencyMS.Max, 1000) {
		t.Errorf("latency %+v", r.LatencyMS)
	}
	if r.RPS != 500 || r.OKRPS != 495 || r.DurationS != 2 {
		t.Errorf("rates %v %v over %v s", r.RPS, r.OKRPS, r.DurationS)
	}
	if r.ClientCPUCores != 0.5 || r.MachineCPUCores != 1.5 || r.OtherCPUCores != 1 {
		t.Errorf("cpu %v %v %v", r.ClientCPUCores, r.MachineCPUCores, r.OtherCPUCores)
	}
	if r.errorCount() != 10 || r.errorSummary() != "10 (status 503: 10)" {
		t.Errorf("errors %q", r.errorSummary())
	}
}

func TestJSONLinesRoundTrip(t *testing.T) {
	in := []record{
		{Kind: kindScenario, Name: "memflood", Concurrency: 1000, OKRPS: 12.5, Status: map[int]int64{429: 7, 503: 2},
			Server: &serverUsage{PID: 42, PeakRSSMB: 99.5, HWMReset: true}, Time: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)},
		{Kind: kindLimit, Name: "sign/ES256", Params: "P-256", Concurrency: 2, OKRPS: 30000, Time: time.Date(2026, 1, 2, 3, 4, 6, 0, time.UTC)},
	}
	var buf bytes.Buffer
	for _, r := range in {
		if err := writeJSONLine(&buf, r); err != nil {
			t.Fatal(err)
		}
	}
	if n := strings.Count(buf.String(), "\n"); n != 2 {
		t.Fatalf("%d lines:\n%s", n, buf.String())
	}
	if !strings.Contains(buf.String(), `"status":{"429":7,"503":2}`) {
		t.Errorf("status counts not keyed by code: %s", buf.String())
	}
	out, err := readRecords(strings.NewReader(buf.String() + "\n\n"))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(in, out) {
		t.Errorf("round trip:\n%+v\n%+v", in, out)
	}
	if _, err := readRecords(strings.NewReader("{\"kind\":\n")); err == nil {
		t.Error("a broken line was accepted")
	}
}

func TestWriteTable(t *testing.T) {
	var buf bytes.Buffer
	err := writeTable(&buf, []record{
		{Kind: kindScenario, Name: "client_credentials", Alg: "RS256", Concurrency: 16, RPS: 1587.2, OKRPS: 1587.2,
			LatencyMS: latencySummary{P50: 8.2, P90: 19.8, P99: 37.7, Max: 73.9}, Server: &serverUsage{CPUCores: 1.58, PeakRSSMB: 44.1}},
		{Kind: kindLimit, Name: "argon2id", Concurrency: 2, RPS: 42, OKRPS: 42, LatencyMS: latencySummary{P50: 39.5, P90: 69, P99: 163, Max: 187}},
	})
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimRight(buf.String(), "\n"), "\n")
	if len(lines) != 3 {
		t.Fatalf("table:\n%s", buf.String())
	}
	for _, want := range []string{"req/s", "p99 ms", "srv peak RSS"} {
		if !strings.Contains(lines[0], want) {
			t.Errorf("header lacks %q: %s", want, lines[0])
		}
	}
	if f := strings.Fields(lines[1]); strings.Join(f[:3], " ") != "client_credentials (RS256) 16" || f[3] != "1587" || f[5] != "8.20" || f[7] != "37.7" {
		t.Errorf("row: %q", lines[1])
	}
	if !strings.Contains(lines[2], "argon2id") || !strings.Contains(lines[2], "163") || !strings.HasSuffix(strings.TrimSpace(lines[2]), "-") {
		t.Errorf("row: %q", lines[2])
	}
}

// fixture is a small bench run: limits measured twice, four scenarios.
func fixture() []record {
	lim := func(name, params string, rate, p50 float64) record {
		return record{Kind: kindLimit, Name: name, Params: params, Concurrency: 2, OKRPS: rate, LatencyMS: latencySummary{P50: p50, P99: 2 * p50},
			Command: "authbench limits -d 2s"}
	}
	first := lim("argon2id", "m=19456,t=2,p=1", 50, 40)
	first.OtherCPUCores = 0.5
	srv := &serverUsage{CPUCores: 1.9, PeakRSSMB: 80, HWMReset: true, RSSMB: 40}
	return []record{
		first,
		lim("sign/RS256", "RSA 2048", 2000, 1),
		lim("http", "GET", 20000, 1),
		{Kind: kindScenario, Name: "idle", Server: &serverUsage{RSSMB: 30, PeakRSSMB: 30, HWMReset: true}, Command: "authbench run -s idle"},
		{Kind: kindScenario, Name: "password", Alg: "RS256", Concurrency: 4, OK: 100, OKRPS: 45, DurationS: 2, LatencyMS: latencySummary{P50: 80, P90: 90, P99: 130, Max: 150},
			Server: &serverUsage{CPUCores: 1.9, CPUSeconds: 3.8, DiskWriteMB: 0.9, PeakRSSMB: 80, HWMReset: true}, Command: "authbench run -s password -c 4"},
		{Kind: kindScenario, Name: "client_credentials", Alg: "RS256", Concurrency: 16, OKRPS: 1000, LatencyMS: latencySummary{P50: 10, P90: 20, P99: 30, Max: 40}, Server: srv, Command: "authbench run -s client_credentials -c 16"},
		{Kind: kindScenario, Name: "jwks", Alg: "RS256", Concurrency: 64, OKRPS: 15000, LatencyMS: latencySummary{P50: 3, P90: 5, P99: 9, Max: 20}, Server: srv,
			Errors: map[string]int64{"timeout": 2}, Command: "authbench run -s jwks -c 64"},
		{Kind: kindScenario, Name: "memflood", Label: "memflood (fresh server)", Alg: "RS256", Concurrency: 1000, OKRPS: 5000, Status: map[int]int64{429: 900, 400: 50, 503: 50},
			LatencyMS: latencySummary{P50: 100, P90: 200, P99: 900, Max: 2000}, Server: &serverUsage{PeakRSSMB: 180, HWMReset: true}, Command: "authbench run -s memflood -c 1000"},
		lim("argon2id", "m=19456,t=2,p=1", 40, 44),
		lim("sign/RS256", "RSA 2048", 2000, 1),
		lim("http", "GET", 20000, 1),
	}
}

func TestWriteMarkdown(t *testing.T) {
	var buf bytes.Buffer
	if err := writeMarkdown(&buf, fixture(), reportMeta{Lines: []string{"machine: test"}}); err != nil {
		t.Fatal(err)
	}
	md := buf.String()
	for _, want := range []string{
		"## Load tool figures\n",
		"- machine: test\n",
		// argon2id: the faster of 50 (other load 0.5) and 40, its
		// latencies, drift (50−40)/50.
		"| argon2id | m=19456,t=2,p=1 | 2 | 50.0 | 40.0 ms | 80.0 ms | 0.50 cores | 50.0 (0.50), 40.0 (0.00) | 20% |",
		// password: 45/s of 50/s; client_credentials 1000 of 2000, and of
		// 1/(1/2000+1/20000) = 1818.
		// per request: 3.8 CPU-s and 0.9 MB over 45/s × 2 s = 90 responses.
		"| password | 4 | 2.0 s | 45.0 | 80.0 ms | 90.0 ms | 130 ms | 150 ms | 0 | 1.90 cores | 42222 µs | 10.0 KB | 80.0 MB | 0.00 cores | 0.00 cores | argon2id 50.0/s | 90% | 90% of 49.9 |",
		"| client_credentials (RS256) | 16 | 0.0 s | 1000 |",
		"| RS256 sign 2000/s | 50% | 55% of 1818 |",
		"| jwks | 64 | 0.0 s | 15000 |",
		"| 2 (timeout: 2) |",
		"| HTTP (trivial handler) 20000/s | 75% | – |",
		"| memflood (fresh server) | 1000 | 0.0 s | 5000 |",
		"900×429, 50×400, 50×503",
		"authbench run -s client_credentials -c 16\n",
		"authbench limits -d 2s\n",
		"password ≥ 85% of the argon2id rate: 45.0/s of 50.0/s = 90%, **met**",
		// One hash: the shorter p50 of the runs.
		"password p99 < 3× one hash (40.0 ms) at concurrency 4: p99 130 ms = 3.2× at concurrency 4, **missed**",
		"client_credentials (RS256) ≥ 70% of RS256 signing: 1000/s of 2000/s = 50%, **missed**",
		"jwks ≥ 20,000/s: 15000/s, **missed**",
		"memflood (fresh server): peak RSS < 150 MB during a 1000-concurrent wrong-password flood: 180.0 MB, **missed**",
		"idle: RSS < 60 MB when idle: 30.0 MB, **met**",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q", want)
		}
	}
	if t.Failed() {
		t.Log(md)
	}
}

func TestReplaceSection(t *testing.T) {
	const h = "## Load tool figures"
	section := h + "\n\nnew figures\n\n### Limits\n\nx\n"
	for _, tc := range []struct{ name, doc, want string }{
		{"empty", "", section},
		{"appended", "# Benchmarks\n\n## Resource middleware\n\nkept\n",
			"# Benchmarks\n\n## Resource middleware\n\nkept\n\n" + section},
		{"replaced up to the next section", "# Benchmarks\n\n" + h + "\n\nold\n\n### Limits\n\nold\n\n## Other\n\nkept\n",
			"# Benchmarks\n\n" + section + "\n## Other\n\nkept\n"},
		{"last section", "# B\n\n## First\n\nkept\n\n" + h + "\n\nold\n```\n## not a heading\n```\n",
			"# B\n\n## First\n\nkept\n\n" + section},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := replaceSection(tc.doc, h, section); got != tc.want {
				t.Errorf("got:\n%s\nwant:\n%s", got, tc.want)
			}
		})
	}
}

func TestReportUpdatesOnlyItsSection(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "run.jsonl")
	var buf bytes.Buffer
	for _, r := range fixture() {
		_ = writeJSONLine(&buf, r)
	}
	if err := os.WriteFile(data, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	doc := filepath.Join(dir, "BENCHMARKS.md")
	before := "# Benchmarks\n\n## Resource middleware\n\nsomeone else's\n\n## Load tool figures\n\nstale\n\n## Storage\n\nalso someone else's\n"
	if err := os.WriteFile(doc, []byte(before), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := run(t.Context(), []string{"report", "--update", doc, "--meta", "commit abc", "-O", filepath.Join(dir, "section.md"), data}, &bytes.Buffer{}, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(doc)
	if err != nil {
		t.Fatal(err)
	}
	got := string(b)
	if strings.Contains(got, "stale") || !strings.Contains(got, "- commit abc") ||
		!strings.HasPrefix(got, "# Benchmarks\n\n## Resource middleware\n\nsomeone else's\n\n## Load tool figures\n") ||
		!strings.HasSuffix(got, "\n## Storage\n\nalso someone else's\n") {
		t.Errorf("BENCHMARKS.md:\n%s", got)
	}
}

func TestRatioUsesTheLimitNearestInTime(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	recs := []record{
		{Kind: kindLimit, Name: "argon2id", Concurrency: 2, OKRPS: 100, LatencyMS: latencySummary{P50: 20}, Time: t0},
		{Kind: kindLimit, Name: "argon2id", Concurrency: 2, OKRPS: 80, LatencyMS: latencySummary{P50: 25}, Time: t0.Add(60 * time.Second)},
		{Kind: kindScenario, Name: "password", Concurrency: 4, OKRPS: 72, LatencyMS: latencySummary{P99: 70}, Time: t0.Add(67 * time.Second),
			OtherCPUCores: 0.05, Attempts: 3},
	}
	var buf bytes.Buffer
	if err := writeMarkdown(&buf, recs, reportMeta{}); err != nil {
		t.Fatal(err)
	}
	md := buf.String()
	for _, want := range []string{
		"| argon2id |  | 2 | 100 | 20.0 ms |",                              // the table shows the fastest run
		"| argon2id 80.0/s | 90% |",                                        // the ratio uses the nearest
		"72.0/s of 80.0/s = 90%, **met**",                                  // so does the target
		"p99 < 3× one hash (25.0 ms) at concurrency 4: p99 70.0 ms = 2.8×", // and its hash time
	} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q", want)
		}
	}
	if t.Failed() {
		t.Log(md)
	}
}
