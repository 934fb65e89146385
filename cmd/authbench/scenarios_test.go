package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// runOne runs one scenario with the given state against url.
func runOne(t *testing.T, url string, st *benchState, name string, conc int, pool int) record {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "state.json")
	if err := st.save(path); err != nil {
		t.Fatal(err)
	}
	var recs []record
	err := runScenarios(t.Context(), testGlobals(nil), runConfig{
		url: url, scenarios: []string{name}, concurrency: conc, statePath: path,
		duration: 400 * time.Millisecond, warmup: 100 * time.Millisecond,
		pool: pool, serverPID: os.Getpid(), timeout: 10 * time.Second,
	}, func(r record) error { recs = append(recs, r); return nil })
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 1 {
		t.Fatalf("got %d records, want 1", len(recs))
	}
	return recs[0]
}

func TestEveryScenarioSucceeds(t *testing.T) {
	url, st := testServer(t)
	for _, s := range scenarios {
		t.Run(s.name, func(t *testing.T) {
			conc, pool := 4, 0
			switch s.name {
			case "memflood":
				conc = 50
			case "introspect", "api":
				pool = 16
			case "revoke":
				pool = 2000 // more than 0.5 s of revocations in process
			case "oidc_code":
				pool = 500
			}
			r := runOne(t, url, st, s.name, conc, pool)
			if r.Server == nil || r.Server.PID != os.Getpid() {
				t.Errorf("server usage = %+v, want this process's", r.Server)
			}
			if s.name == "idle" {
				if r.Requests != 0 {
					t.Errorf("idle sent %d requests", r.Requests)
				}
				return
			}
			if r.OK == 0 || r.errorCount() != 0 {
				t.Fatalf("ok %d, errors %v, status %v", r.OK, r.Errors, r.Status)
			}
			if r.OKRPS <= 0 || r.LatencyMS.P50 <= 0 || r.LatencyMS.Max < r.LatencyMS.P99 || r.LatencyMS.P99 < r.LatencyMS.P50 {
				t.Errorf("implausible figures: %+v", r)
			}
			if want := s.okFunc(); s.name != "memflood" && (r.Status[200]+r.Status[303]+r.Status[304] != r.OK || !want(200) && !want(303)) {
				t.Errorf("status %v, ok %d", r.Status, r.OK)
			}
			if s.name != "memflood" && r.Alg != "ES256" {
				t.Errorf("alg = %q, want ES256", r.Alg)
			}
		})
	}
}

func TestRevokeEndsWhenThePoolIsConsumed(t *testing.T) {
	url, st := testServer(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "state.json")
	if err := st.save(path); err != nil {
		t.Fatal(err)
	}
	var recs []record
	err := runScenarios(t.Context(), testGlobals(nil), runConfig{
		url: url, scenarios: []string{"revoke"}, concurrency: 4, statePath: path,
		duration: 10 * time.Second, warmup: 0, pool: 40, timeout: 10 * time.Second,
	}, func(r record) error { recs = append(recs, r); return nil })
	if err != nil {
		t.Fatal(err)
	}
	r := recs[0]
	if r.OK != 40 || r.DurationS >= 10 {
		t.Errorf("revoked %d in %.3fs, want all 40 well before the 10s window", r.OK, r.DurationS)
	}
}

func TestPasswordNeedsDistinctUsers(t *testing.T) {
	url, st := testServer(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "state.json")
	if err := st.save(path); err != nil {
		t.Fatal(err)
	}
	err := runScenarios(t.Context(), testGlobals(nil), runConfig{
		url: url, scenarios: []string{"password"}, concurrency: testUsers + 1, statePath: path,
		duration: 100 * time.Millisecond, timeout: time.Second,
	}, func(record) error { return nil })
	if err == nil || !strings.Contains(err.Error(), "distinct bench users") {
		t.Fatalf("err = %v, want a request for more users", err)
	}
}

// TestRunCommandWritesJSONLines drives the command line: JSON lines on
// stdout and in the --append file, one per scenario.
func TestRunCommandWritesJSONLines(t *testing.T) {
	url, st := testServer(t)
	dir := t.TempDir()
	state := filepath.Join(dir, "state.json")
	if err := st.save(state); err != nil {
		t.Fatal(err)
	}
	appendTo := filepath.Join(dir, "out.jsonl")
	args := []string{"run", "--url", url, "--state", state, "-s", "jwks,client_credentials", "-c", "2",
		"-d", "200ms", "--warmup", "50ms", "-o", "json", "--append", appendTo}
	var out bytes.Buffer
	if err := run(t.Context(), args, &out, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("stdout has %d lines, want 2:\n%s", len(lines), out.String())
	}
	for i, want := range []string{"jwks", "client_credentials"} {
		var r record
		if err := json.Unmarshal([]byte(lines[i]), &r); err != nil {
			t.Fatalf("line %d: %v", i, err)
		}
		if r.Kind != kindScenario || r.Name != want || r.OK == 0 {
			t.Errorf("line %d = %+v", i, r)
		}
		if strings.Contains(r.Command, state) || strings.Contains(r.Command, appendTo) || !strings.HasPrefix(r.Command, "authbench run ") {
			t.Errorf("command %q should omit local paths", r.Command)
		}
	}
	b, err := os.ReadFile(appendTo)
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != out.String() {
		t.Errorf("--append file differs from stdout:\n%s\nvs\n%s", b, out.String())
	}

	out.Reset()
	if err := run(t.Context(), []string{"report", "--format", "table", appendTo}, &out, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "client_credentials (ES256)") {
		t.Errorf("table:\n%s", out.String())
	}
}
