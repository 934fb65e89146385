package adminapi_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/oauthkit/authserver/adminapi"
	"github.com/oauthkit/authserver/internal/password"
)

// certificate signs a certificate for subject with parent (itself when
// nil); it returns the certificate and its key.
func certificate(t *testing.T, subject string, parent *tls.Certificate, ca bool) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{SerialNumber: serial, Subject: pkix.Name{CommonName: subject, Organization: []string{"Platform"}},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, KeyUsage: x509.KeyUsageDigitalSignature}
	signer, signerCert := any(key), tmpl
	if ca {
		tmpl.IsCA, tmpl.BasicConstraintsValid, tmpl.KeyUsage = true, true, x509.KeyUsageCertSign
	}
	if parent != nil {
		signer, signerCert = parent.PrivateKey, parent.Leaf
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, signerCert, &key.PublicKey, signer)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(der)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
}

// With ClientCertificates, a verified client certificate authenticates a
// request without a token, and the audit event names its subject; without
// it (or without a certificate) a bearer token is needed.
func TestClientCertificateAuthentication(t *testing.T) {
	e := newEnv(t)
	ca := certificate(t, "Operators CA", nil, true)
	ops := certificate(t, "alice", &ca, false)
	pool := x509.NewCertPool()
	pool.AddCert(ca.Leaf)
	serve := func(trust bool) *httptest.Server {
		api, err := adminapi.New(t.Context(), adminapi.Config{Store: e.store, Keys: e.km, Server: e.srv, Audit: e.log, Ring: e.ring,
			PasswordParams: password.TestParams, ClientCertificates: trust})
		if err != nil {
			t.Fatal(err)
		}
		s := httptest.NewUnstartedServer(api.Handler())
		s.TLS = &tls.Config{ClientCAs: pool, ClientAuth: tls.VerifyClientCertIfGiven}
		s.StartTLS()
		t.Cleanup(s.Close)
		return s
	}
	do := func(s *httptest.Server, cert *tls.Certificate, method, path, body string) result {
		t.Helper()
		tr := s.Client().Transport.(*http.Transport).Clone()
		if cert != nil {
			tr.TLSClientConfig.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return cert, nil }
		}
		var rd io.Reader
		if body != "" {
			rd = strings.NewReader(body)
		}
		req, _ := http.NewRequest(method, s.URL+path, rd)
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := (&http.Client{Transport: tr}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		res := result{status: resp.StatusCode, header: resp.Header, body: b}
		var raw []byte
		if body != "" {
			raw = []byte(body)
		}
		e.validate(req, raw, res)
		return res
	}
	trusting, ignoring := serve(true), serve(false)
	do(trusting, &ops, http.MethodGet, "/admin/v1/users", "").want(t, http.StatusOK)
	do(trusting, &ops, http.MethodPost, "/admin/v1/users", `{"email":"carol@example.com","password":"a long enough password 1"}`).want(t, http.StatusCreated)
	do(trusting, nil, http.MethodGet, "/admin/v1/users", "").want(t, http.StatusUnauthorized)
	do(ignoring, &ops, http.MethodGet, "/admin/v1/users", "").want(t, http.StatusUnauthorized)

	var l adminapi.List[map[string]any]
	e.call(http.MethodGet, "/admin/v1/audit?actor_cert_subject=CN%3Dalice%2CO%3DPlatform", nil).want(t, http.StatusOK).decode(t, &l)
	if len(l.Items) != 1 || l.Items[0]["command"] != "users create" || l.Items[0]["actor_client_id"] != nil {
		t.Fatalf("audit events of the certificate: %+v", l.Items)
	}
}
