package e2e

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/oauthkit/authserver/internal/testbin"
)

// The device authorization grant (RFC 8628) on three instances sharing one
// PostgreSQL database: the device code is issued by one instance, the user
// enters the code and signs in across instances, and once approved the
// device code gives exactly one token response, however many polls race
// for it on however many instances.
func TestDeviceCodeRaceOverThreeInstancesPostgres(t *testing.T) {
	c := startCodeCluster(t)
	a, b, cc := c.inst[0], c.inst[1], c.inst[2]
	// A public device client, registered with the CLI.
	testbin.Run(t, "", "clients", "add", "--db", c.dsn, "--id", "tv", "--name", "Living Room TV", "--public",
		"--grant", "urn:ietf:params:oauth:grant-type:device_code", "--scope", "read")

	status, da := testbin.PostForm(t, a.URL+"/device_authorization", url.Values{"client_id": {"tv"}, "scope": {"read"}}, "", "")
	if status != http.StatusOK {
		t.Fatalf("device_authorization at A: %d %v", status, da)
	}
	deviceCode, userCode := da["device_code"].(string), da["user_code"].(string)
	poll := func(base string) (int, map[string]any) {
		return testbin.PostForm(t, base+"/token", url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:device_code"},
			"device_code": {deviceCode}, "client_id": {"tv"}}, "", "")
	}
	// C has never seen the code: it measures the first poll from the
	// record's issue time, and this one comes before the interval.
	if st, m := poll(cc.URL); st != http.StatusBadRequest || m["error"] != "slow_down" {
		t.Fatalf("early poll at C: %d %v", st, m)
	}

	// The user: entry page from A posted to B, sign-in, confirmation from
	// B, Allow posted to C.
	br := newBrowser(t)
	p := br.get(a.URL + "/device?user_code=" + url.QueryEscape(userCode))
	if !p.hasInput("user_code") {
		t.Fatalf("no entry form at A (status %d): %.500s", p.status, p.body)
	}
	p = br.submit(p, b.URL, nil)
	if !p.hasInput("password") {
		t.Fatalf("no sign-in page after the code at B (status %d, at %s): %.500s", p.status, p.url, p.body)
	}
	p = br.submit(p, "", url.Values{"username": {"alice@example.com"}, "password": {alicePW}})
	if !p.hasInput("user_code") {
		t.Fatalf("no entry form after sign-in (status %d, at %s): %.500s", p.status, p.url, p.body)
	}
	p = br.submit(p, "", nil)
	if !p.hasInput("decision") || !strings.Contains(p.body, userCode) || !strings.Contains(p.body, "Living Room TV") {
		t.Fatalf("no confirmation page (status %d, at %s): %.500s", p.status, p.url, p.body)
	}
	p = br.submit(p, cc.URL, url.Values{"decision": {"allow"}})
	if p.status != http.StatusOK || !strings.Contains(p.body, "Device connected") {
		t.Fatalf("Allow at C: %d %.500s", p.status, p.body)
	}

	warmUp(t, c.inst[:], 10)
	const n = 30
	type result struct {
		status int
		body   map[string]any
	}
	results := make([]result, n)
	together(n, func(i int) {
		st, body := poll(c.inst[i%3].URL)
		results[i] = result{st, body}
	})
	wins := 0
	var token string
	for _, r := range results {
		switch {
		case r.status == http.StatusOK:
			wins++
			token, _ = r.body["access_token"].(string)
		case r.status == http.StatusBadRequest && r.body["error"] == "invalid_grant":
		default:
			t.Errorf("poll: %d %v", r.status, r.body)
		}
	}
	if wins != 1 {
		t.Fatalf("%d of %d concurrent polls got tokens, want exactly 1", wins, n)
	}
	for _, s := range c.inst {
		if got := introspect(t, s.URL, token); got["active"] != true || got["client_id"] != "tv" || got["scope"] != "read" {
			t.Fatalf("the device's access token at %s: %v", s.URL, got)
		}
	}
}
