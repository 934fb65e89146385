package main

import "testing"

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
