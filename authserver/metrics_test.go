package authserver

import (
	"net/http"
	"strings"
	"testing"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

func scrape(t *testing.T, url string) map[string]float64 {
	t.Helper()
	resp, err := http.Get(url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("/metrics: %d", resp.StatusCode)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	out := map[string]float64{}
	for name, f := range fams {
		for _, m := range f.GetMetric() {
			key := name
			for _, l := range m.GetLabel() {
				key += "|" + l.GetName() + "=" + l.GetValue()
			}
			switch {
			case m.Counter != nil:
				out[key] = m.GetCounter().GetValue()
			case m.Gauge != nil:
				out[key] = m.GetGauge().GetValue()
			case m.Histogram != nil:
				out[key] = float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	return out
}

func TestMetricsMove(t *testing.T) {
	env := newTestEnv(t, openMemory(t), func(c *Config) { c.MetricsOnMainHandler = true })
	before := scrape(t, env.srv.URL)
	at, _ := env.passwordToken("alice@example.com", alicePW)
	env.introspect(at)
	env.login("alice@example.com", "wrong", "")
	after := scrape(t, env.srv.URL)
	for _, k := range []string{
		"authserver_tokens_issued_total|grant=password",
		"authserver_http_requests_total|code=200|endpoint=token",
		"authserver_introspections_total|result=active",
		"authserver_login_failures_total",
		"authserver_http_request_duration_seconds|endpoint=token",
		"authserver_token_commit_batch_size",
		"authserver_token_commit_duration_seconds",
	} {
		if after[k] <= before[k] {
			t.Errorf("%s did not move: %v → %v", k, before[k], after[k])
		}
	}
	// One active key per algorithm: ES256 (access tokens) and RS256 (ID tokens).
	if after["authserver_signing_keys|state=active"] != 2 {
		t.Errorf("active keys = %v", after["authserver_signing_keys|state=active"])
	}
	if _, ok := after["go_goroutines"]; !ok {
		t.Error("no Go runtime metrics")
	}
	for k := range after {
		if strings.Contains(k, "alice") || strings.Contains(k, at[:20]) {
			t.Errorf("a client-supplied value became a label: %s", k)
		}
	}
}

func TestHealthAndReadiness(t *testing.T) {
	st := openSQLite(t)
	env := newTestEnv(t, st)
	get := func(path string) int {
		resp, err := http.Get(env.srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if get("/healthz") != 200 || get("/readyz") != 200 {
		t.Fatal("not healthy and ready at start")
	}
	env.as.Drain()
	if get("/readyz") != 503 {
		t.Error("ready while draining")
	}
	if get("/healthz") != 200 {
		t.Error("not alive while draining")
	}
	env.as.draining.Store(false)
	st.Close() // the database is gone
	if get("/readyz") != 503 {
		t.Error("ready without a database")
	}
}
