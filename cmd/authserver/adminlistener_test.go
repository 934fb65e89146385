package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
)

// The admin listener is on by default, at the address the issue names.
func TestAdminAddrDefault(t *testing.T) {
	var c serveConfig
	fs := pflag.NewFlagSet("serve", pflag.ContinueOnError)
	c.registerFlags(fs)
	if d := fs.Lookup("admin-addr").DefValue; d != "127.0.0.1:8081" {
		t.Fatalf("--admin-addr default %q", d)
	}
	c.adminAddr = "off"
	if err := c.validate("auth.db"); err != nil || c.adminAddr != "" {
		t.Fatalf("--admin-addr off: %v, %q", err, c.adminAddr)
	}
}

// A taken admin address fails serve at once, saying how to fix it.
func TestAdminAddrTakenFailsClearly(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	db := filepath.Join(t.TempDir(), "auth.db")
	_, err = cliRun(t, "", "serve", "--db", db, "--addr", "127.0.0.1:0", "--admin-addr", ln.Addr().String(), "--audit-log", "off")
	if err == nil || !strings.Contains(err.Error(), "--admin-addr") || !strings.Contains(err.Error(), "--admin-addr off") {
		t.Fatalf("serve with a taken --admin-addr: %v", err)
	}
}

// /metrics is on the admin listener, or on the main one with --admin-addr
// off; /healthz is on both.
func TestMetricsFollowTheAdminListener(t *testing.T) {
	dir := t.TempDir()
	base, _ := serveInProcess(t, filepath.Join(dir, "a.db"), "--audit-log", "off") // --admin-addr off
	if st := plainStatus(t, http.DefaultClient, base+"/metrics"); st != http.StatusOK {
		t.Fatalf("main /metrics with --admin-addr off: %d", st)
	}
	adminAddr := freeAddr(t)
	base, _ = serveInProcess(t, filepath.Join(dir, "b.db"), "--admin-addr", adminAddr, "--audit-log", "off")
	for u, want := range map[string]int{base + "/metrics": http.StatusNotFound, "http://" + adminAddr + "/metrics": http.StatusOK,
		base + "/healthz": http.StatusOK, "http://" + adminAddr + "/healthz": http.StatusOK} {
		if st := plainStatus(t, http.DefaultClient, u); st != want {
			t.Errorf("%s: %d, want %d", u, st, want)
		}
	}
}

func plainStatus(t *testing.T, c *http.Client, u string) int {
	t.Helper()
	resp, err := c.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// testCA is a certificate authority made for a test.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

func newTestCA(t *testing.T, name string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &testCA{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// issue signs a leaf certificate; it returns the certificate and key PEM.
func (ca *testCA) issue(t *testing.T, subject pkix.Name, usage x509.ExtKeyUsage, ips ...net.IP) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{SerialNumber: serial, Subject: subject, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage}, IPAddresses: ips}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb})
}

func writePEM(t *testing.T, path string, b []byte) string {
	t.Helper()
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// With --admin-client-ca, an operator's client certificate signed by that
// CA authenticates to the admin API without a bearer token, and the audit
// log names its subject; a certificate of another CA fails the handshake,
// and no certificate means a bearer token is needed.
func TestAdminMutualTLS(t *testing.T) {
	dir := t.TempDir()
	ca, rogue := newTestCA(t, "Operators CA"), newTestCA(t, "Rogue CA")
	srvCert, srvKey := ca.issue(t, pkix.Name{CommonName: "authserver admin"}, x509.ExtKeyUsageServerAuth, net.ParseIP("127.0.0.1"))
	opsCert, opsKey := ca.issue(t, pkix.Name{CommonName: "alice", Organization: []string{"Platform"}}, x509.ExtKeyUsageClientAuth)
	badCert, badKey := rogue.issue(t, pkix.Name{CommonName: "mallory"}, x509.ExtKeyUsageClientAuth)
	auditFile := filepath.Join(dir, "audit.jsonl")
	adminAddr := freeAddr(t)
	serveInProcess(t, filepath.Join(dir, "auth.db"), "--admin-addr", adminAddr, "--audit-log", auditFile,
		"--admin-tls-cert", writePEM(t, filepath.Join(dir, "srv.pem"), srvCert),
		"--admin-tls-key", writePEM(t, filepath.Join(dir, "srv.key"), srvKey),
		"--admin-client-ca", writePEM(t, filepath.Join(dir, "ca.pem"), ca.pem))

	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(ca.pem)
	client := func(certPEM, keyPEM []byte) *http.Client {
		cfg := &tls.Config{RootCAs: roots}
		if certPEM != nil {
			pair, err := tls.X509KeyPair(certPEM, keyPEM)
			if err != nil {
				t.Fatal(err)
			}
			// Sent whatever CAs the server names, so that the server's
			// verification is what is tested.
			cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &pair, nil }
		}
		return &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}}
	}
	admin := "https://" + adminAddr
	ops := client(opsCert, opsKey)
	if st := plainStatus(t, ops, admin+"/admin/v1/users"); st != http.StatusOK {
		t.Fatalf("with the operator's certificate: %d", st)
	}
	resp, err := ops.Post(admin+"/admin/v1/users", "application/json",
		strings.NewReader(`{"email":"carol@example.com","password":"a long enough password 1"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("create a user with the certificate: %d", resp.StatusCode)
	}
	if st := plainStatus(t, client(nil, nil), admin+"/admin/v1/users"); st != http.StatusUnauthorized {
		t.Fatalf("without a certificate or token: %d", st)
	}
	if st := plainStatus(t, client(nil, nil), admin+"/metrics"); st != http.StatusOK {
		t.Fatalf("/metrics over TLS: %d", st)
	}
	if resp, err := client(badCert, badKey).Get(admin + "/admin/v1/users"); err == nil {
		resp.Body.Close()
		t.Fatalf("a certificate of another CA was accepted: %d", resp.StatusCode)
	}
	if resp, err := http.Get("http://" + adminAddr + "/admin/v1/users"); err == nil {
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Fatalf("plain HTTP on the TLS admin listener: %d", resp.StatusCode)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		b, _ := os.ReadFile(auditFile)
		if strings.Contains(string(b), `"actor_cert_subject":"CN=alice,O=Platform"`) && strings.Contains(string(b), `"command":"users create"`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no audit event with the certificate's subject:\n%s", b)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// The admin TLS flags go together and need TLS for client certificates.
func TestAdminTLSFlagsValidation(t *testing.T) {
	db := filepath.Join(t.TempDir(), "auth.db")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--admin-tls-cert", "x.pem"}, "--admin-tls-cert and --admin-tls-key go together"},
		{[]string{"--admin-client-ca", "ca.pem"}, "--admin-client-ca needs --admin-tls-cert"},
		{[]string{"--admin-tls-cert", "x.pem", "--admin-tls-key", "x.key"}, "--admin-tls-cert/--admin-tls-key"},
		{[]string{"--admin-addr", "off", "--admin-tls-cert", "x.pem", "--admin-tls-key", "x.key"}, "needs an --admin-addr"},
	} {
		_, err := cliRun(t, "", append([]string{"serve", "--db", db, "--addr", "127.0.0.1:0"}, tc.args...)...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: %v, want %q", tc.args, err, tc.want)
		}
	}
}
