package main

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"
)

func TestCheckCallback(t *testing.T) {
	md := &metadata{Issuer: "https://as.example", AuthorizationResponseIssParameter: true}
	noIss := &metadata{Issuer: "https://as.example"}
	cases := []struct {
		name    string
		q       string
		md      *metadata
		code    string
		wantErr string
	}{
		{"Code", "code=c1&state=s1&iss=https%3A%2F%2Fas.example", md, "c1", ""},
		{"WrongState", "code=c1&state=other&iss=https%3A%2F%2Fas.example", md, "", "wrong state"},
		{"MissingState", "code=c1&iss=https%3A%2F%2Fas.example", md, "", "wrong state"},
		{"WrongIssuerIsAMixUp", "code=c1&state=s1&iss=https%3A%2F%2Fevil.example", md, "", "mix-up"},
		{"MissingIssWhenAdvertised", "code=c1&state=s1", md, "", "mix-up"},
		{"TwoIss", "code=c1&state=s1&iss=https%3A%2F%2Fas.example&iss=https%3A%2F%2Fas.example", md, "", "mix-up"},
		{"NoIssWhenNotAdvertised", "code=c1&state=s1", noIss, "c1", ""},
		{"WrongIssEvenWhenNotAdvertised", "code=c1&state=s1&iss=https%3A%2F%2Fevil.example", noIss, "", "mix-up"},
		{"AccessDenied", "error=access_denied&error_description=The+user+said+no&state=s1&iss=https%3A%2F%2Fas.example", md, "", "access_denied: The user said no"},
		{"ErrorWithWrongStateIsAStateError", "error=access_denied&state=x&iss=https%3A%2F%2Fas.example", md, "", "wrong state"},
		{"NoCode", "state=s1&iss=https%3A%2F%2Fas.example", md, "", "neither a code nor an error"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			q, err := url.ParseQuery(c.q)
			if err != nil {
				t.Fatal(err)
			}
			code, err := checkCallback(q, "s1", c.md)
			if c.wantErr == "" {
				if err != nil || code != c.code {
					t.Fatalf("got %q, %v; want %q", code, err, c.code)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), c.wantErr) {
				t.Fatalf("got %q, %v; want an error with %q", code, err, c.wantErr)
			}
		})
	}
	_, err := checkCallback(url.Values{"error": {"access_denied"}, "state": {"s1"}, "iss": {md.Issuer}}, "s1", md)
	var ae *authError
	if !errors.As(err, &ae) || ae.Code != "access_denied" {
		t.Fatalf("an error response is %v, want an *authError access_denied", err)
	}
}

// metadataServer serves good metadata naming the server's URL as issuer,
// with the fields of md overriding it.
func metadataServer(t *testing.T, md map[string]any) *httptest.Server {
	t.Helper()
	var srv *httptest.Server
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/.well-known/oauth-authorization-server" {
			http.NotFound(w, r)
			return
		}
		m := map[string]any{"issuer": srv.URL, "authorization_endpoint": srv.URL + "/authorize",
			"token_endpoint": srv.URL + "/token", "jwks_uri": srv.URL + "/jwks", "code_challenge_methods_supported": []string{"S256"}}
		for k, v := range md {
			m[k] = v
		}
		_ = json.NewEncoder(w).Encode(m)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestDiscover(t *testing.T) {
	ctx := context.Background()
	t.Run("Good", func(t *testing.T) {
		srv := metadataServer(t, nil)
		md, err := discover(ctx, srv.URL)
		if err != nil || md.TokenEndpoint != srv.URL+"/token" {
			t.Fatalf("got %+v, %v", md, err)
		}
	})
	for name, c := range map[string]struct {
		md      map[string]any
		wantErr string
	}{
		"OtherIssuer": {map[string]any{"issuer": "https://other.example"}, "RFC 8414 §3.3"},
		"NoS256":      {map[string]any{"code_challenge_methods_supported": []string{"plain"}}, "PKCE with S256"},
		"NoEndpoint":  {map[string]any{"token_endpoint": ""}, "lacks"},
	} {
		t.Run(name, func(t *testing.T) {
			srv := metadataServer(t, c.md)
			if _, err := discover(ctx, srv.URL); err == nil || !strings.Contains(err.Error(), c.wantErr) {
				t.Fatalf("got %v, want an error with %q", err, c.wantErr)
			}
		})
	}
	t.Run("NoServer", func(t *testing.T) {
		srv := metadataServer(t, nil)
		u := srv.URL
		srv.Close()
		if _, err := discover(ctx, u); err == nil || !strings.Contains(err.Error(), "is `authserver serve --demo` running") {
			t.Fatalf("got %v", err)
		}
	})
}

// The loopback listener answers the browser, returns the first redirect's
// code, and gives up when the context ends.
func TestAwaitCallback(t *testing.T) {
	md := &metadata{Issuer: "https://as.example", AuthorizationResponseIssParameter: true}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	type res struct {
		code string
		err  error
	}
	done := make(chan res, 1)
	go func() {
		code, err := awaitCallback(context.Background(), ln, "s1", md)
		done <- res{code, err}
	}()
	resp, err := http.Get("http://" + ln.Addr().String() + "/callback?code=c1&state=s1&iss=https%3A%2F%2Fas.example")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Cache-Control") != "no-store" {
		t.Errorf("the browser got %d, Cache-Control %q", resp.StatusCode, resp.Header.Get("Cache-Control"))
	}
	if r := <-done; r.err != nil || r.code != "c1" {
		t.Fatalf("got %q, %v", r.code, r.err)
	}

	ln2, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := awaitCallback(ctx, ln2, "s1", md); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("without a redirect: %v, want a deadline error", err)
	}
}
