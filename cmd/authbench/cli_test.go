package main

import (
	"io"
	"log/slog"
	"testing"
)

func TestCommandOmitsLocalFlagsAndQuotes(t *testing.T) {
	g := testGlobals(nil, "run", "--url", "http://127.0.0.1:8080", "--state", "/tmp/s.json", "--server-pid=42",
		"--append", "/tmp/r.jsonl", "-s", "idle", "--label", "idle (it's fresh)")
	want := `authbench run --url http://127.0.0.1:8080 -s idle --label 'idle (it'\''s fresh)'`
	if got := g.command(); got != want {
		t.Errorf("command:\n got %s\nwant %s", got, want)
	}
}

func TestUnknownScenario(t *testing.T) {
	err := runScenarios(t.Context(), testGlobals(nil), runConfig{url: "http://127.0.0.1:1", scenarios: []string{"nope"}, concurrency: 1},
		func(record) error { return nil })
	if err == nil {
		t.Fatal("an unknown scenario was accepted")
	}
}

func TestNoiseRetries(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	n := noiseFlags{maxOther: 0.2, retries: 2}
	for _, tc := range []struct {
		attempt int
		other   float64
		want    bool
	}{
		{1, 0.1, false}, {1, 0.5, true}, {2, 0.5, true}, {3, 0.5, false},
	} {
		if got := n.retry(log, "x", tc.attempt, tc.other); got != tc.want {
			t.Errorf("retry(attempt %d, other %.1f) = %v", tc.attempt, tc.other, got)
		}
	}
	if (noiseFlags{retries: 5}).retry(log, "x", 1, 1.9) {
		t.Error("retried without --max-other-load")
	}
}
