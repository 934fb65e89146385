package main

import (
	"encoding/json"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
)

// The binary: `clients initial-token` creates a one-use token, the served
// /register accepts it once, and the new client gets a token with its secret.
func TestRegistrationWithInitialTokenBinary(t *testing.T) {
	db := filepath.Join(t.TempDir(), "auth.db")
	srv := startServer(t, db)
	out, err := cliRun(t, "", "clients", "initial-token", "--ttl", "1h", "--max-uses", "1", "--db", db, "--output", "json")
	if err != nil {
		t.Fatal(err)
	}
	var iat struct {
		Token string `json:"initial_access_token"`
	}
	if err := json.Unmarshal([]byte(out), &iat); err != nil || iat.Token == "" {
		t.Fatalf("initial-token output %q: %v", out, err)
	}
	register := func() (int, map[string]any) {
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/register", strings.NewReader(`{"grant_types":["client_credentials"],"client_name":"CLI test"}`))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+iat.Token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var m map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&m)
		return resp.StatusCode, m
	}
	code, reg := register()
	if code != http.StatusCreated {
		t.Fatalf("register: %d %v", code, reg)
	}
	if code, m := register(); code != http.StatusUnauthorized || m["error"] != "invalid_token" {
		t.Fatalf("second use: %d %v", code, m)
	}
	code, tok := postForm(t, srv.URL+"/token", url.Values{"grant_type": {"client_credentials"},
		"client_id": {reg["client_id"].(string)}, "client_secret": {reg["client_secret"].(string)}})
	if code != 200 || tok["access_token"] == nil {
		t.Fatalf("client_credentials with the registered client: %d %v", code, tok)
	}
	if logs := srv.Logs.String(); strings.Contains(logs, reg["client_secret"].(string)) || strings.Contains(logs, iat.Token) || strings.Contains(logs, reg["registration_access_token"].(string)) {
		t.Fatal("a secret reached the log")
	}
}
