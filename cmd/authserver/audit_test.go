package main

import (
	"bufio"
	"encoding/json"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// readAudit returns the events of an audit file, one JSON object a line.
func readAudit(t *testing.T, path string) []map[string]any {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []map[string]any
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("audit line %q: %v", sc.Text(), err)
		}
		out = append(out, m)
	}
	return out
}

// serve --audit-log FILE: failures go to the file, issuance is left out with
// --audit-issuance none, and nothing of it reaches the operational log.
func TestServeAuditLogFile(t *testing.T) {
	dir := t.TempDir()
	db, auditPath := filepath.Join(dir, "auth.db"), filepath.Join(dir, "audit.jsonl")
	base, stop := serveInProcess(t, db, "--demo", "--secret", strings.Repeat("s", 40),
		"--audit-log", auditPath, "--audit-issuance", "none")
	login(t, base, "alice@example.com", "password123")
	if status, _ := postForm(t, base+"/token", url.Values{"grant_type": {"password"}, "username": {"alice@example.com"},
		"password": {"not-the-password"}, "client_id": {"demo"}}); status != 400 {
		t.Fatalf("wrong password: %d", status)
	}
	stop()
	var events []string
	for _, l := range readAudit(t, auditPath) {
		events = append(events, l["event"].(string))
	}
	// The first key is activated at startup; the wrong password is
	// audited; the successful sign-in is not (--audit-issuance none).
	if strings.Join(events, ",") != "key_activated,login_failed" {
		t.Errorf("audit events %v, want key_activated, login_failed", events)
	}
	if fi, err := os.Stat(auditPath); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("audit file mode: %v %v", fi, err)
	}
}

// Admin commands that change something write admin_change, with the
// command, its target and the result, to the configured sink.
func TestAdminChangesAudited(t *testing.T) {
	dir := t.TempDir()
	db, auditPath := filepath.Join(dir, "auth.db"), filepath.Join(dir, "audit.jsonl")
	t.Setenv("AUTHSERVER_AUDIT_LOG", auditPath)
	const pw = "a long enough passphrase 42"
	if _, err := cliRun(t, pw+"\n", "users", "add", "--db", db, "--email", "carol@example.com", "--password-stdin"); err != nil {
		t.Fatal(err)
	}
	if _, err := cliRun(t, "", "users", "delete", "--db", db, "nobody@example.com"); err == nil {
		t.Fatal("deleting an unknown user succeeded")
	}
	if _, err := cliRun(t, "", "users", "list", "--db", db); err != nil { // reads only: not audited
		t.Fatal(err)
	}
	lines := readAudit(t, auditPath)
	if len(lines) != 2 {
		t.Fatalf("audit lines %v, want 2", lines)
	}
	if l := lines[0]; l["event"] != "admin_change" || l["command"] != "users add" || l["target"] != "carol@example.com" || l["result"] != "ok" {
		t.Errorf("first line %v", l)
	}
	if l := lines[1]; l["command"] != "users delete" || l["target"] != "nobody@example.com" || l["result"] != "error" {
		t.Errorf("second line %v", l)
	}
	b, _ := os.ReadFile(auditPath)
	if strings.Contains(string(b), pw) {
		t.Error("the password is in the audit log")
	}
}
