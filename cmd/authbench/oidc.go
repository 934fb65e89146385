package main

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
)

// OpenID Connect scenarios: the code exchange with openid (access token, ID
// token and refresh token in one response), and UserInfo. Codes come from a
// browser session of bench user 0 on the first-party bench-oidc client (no
// consent page), issued before the timed window: the window measures the
// exchange alone.

// Registration of the OpenID Connect bench client (see setup).
const (
	benchOIDCClient   = "bench-oidc"
	benchOIDCRedirect = "https://bench.example/cb"
)

// benchVerifier is the PKCE verifier of every bench code.
var benchVerifier = strings.Repeat("bench-verifier-", 5)

func benchChallenge() string {
	h := sha256.Sum256([]byte(benchVerifier))
	return base64.RawURLEncoding.EncodeToString(h[:])
}

var csrfFieldRE = regexp.MustCompile(`name="csrf_token" value="([^"]*)"`)

// browserSession signs bench user 0 in through /login and returns a client
// carrying the session cookie that does not follow redirects.
func (e *target) browserSession(ctx context.Context) (*http.Client, error) {
	if len(e.state.Users) == 0 {
		return nil, errors.New("the state has no bench users")
	}
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Transport: e.client.Transport, Jar: jar,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, e.base+"/login", nil)
	resp, err := c.Do(req)
	if err != nil {
		return nil, fmt.Errorf("sign-in page: %w", err)
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	m := csrfFieldRE.FindSubmatch(body)
	if m == nil {
		return nil, fmt.Errorf("sign-in page (status %d) has no csrf_token", resp.StatusCode)
	}
	form := url.Values{"csrf_token": {html.UnescapeString(string(m[1]))}, "username": {e.state.Users[0]}, "password": {e.state.Password}}
	req, _ = http.NewRequestWithContext(ctx, http.MethodPost, e.base+"/login", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err = c.Do(req)
	if err != nil {
		return nil, fmt.Errorf("sign-in: %w", err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("sign-in: status %d", resp.StatusCode)
	}
	return c, nil
}

// codePool issues n authorization codes with scope in the browser session.
func (e *target) codePool(ctx context.Context, n, conc int, scope string) (*tokenPool, error) {
	c, err := e.browserSession(ctx)
	if err != nil {
		return nil, err
	}
	q := url.Values{"response_type": {"code"}, "client_id": {benchOIDCClient}, "redirect_uri": {benchOIDCRedirect},
		"scope": {scope}, "code_challenge": {benchChallenge()}, "code_challenge_method": {"S256"}, "nonce": {"bench-nonce"}}
	authURL := e.base + "/authorize?" + q.Encode()
	return fillPool(ctx, n, conc, "code", func(ctx context.Context, _, _ int) (string, error) {
		return authorizeOnce(ctx, c, authURL)
	})
}

func authorizeOnce(ctx context.Context, c *http.Client, authURL string) (string, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, authURL, nil)
	resp, err := c.Do(req)
	if err != nil {
		return "", err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	loc, err := resp.Location()
	if err != nil {
		return "", fmt.Errorf("authorize: status %d without a redirect", resp.StatusCode)
	}
	code := loc.Query().Get("code")
	if code == "" {
		return "", fmt.Errorf("authorize: redirect without a code (error %q)", loc.Query().Get("error"))
	}
	return code, nil
}

func codeForm(code string) []byte {
	return []byte(url.Values{"grant_type": {"authorization_code"}, "code": {code}, "code_verifier": {benchVerifier},
		"redirect_uri": {benchOIDCRedirect}}.Encode())
}

// prepareOIDCCode: each request exchanges a distinct pre-issued code (ends
// early if the pool runs out; codes live AuthCodeTTL, 60s by default).
func prepareOIDCCode(ctx context.Context, e *target, conc int) (opFactory, error) {
	pool, err := e.codePool(ctx, e.poolSize(3000), min(conc, 16), "openid offline_access")
	if err != nil {
		return nil, err
	}
	auth := basicAuth(e.state.OIDCClientID, e.state.OIDCClientSecret)
	return func(context.Context, int) (op, error) {
		return func(ctx context.Context) (int, error) {
			code, ok := pool.take()
			if !ok {
				return 0, errDone
			}
			status, _, err := e.request(ctx, http.MethodPost, "/token", auth, codeForm(code), false)
			return status, err
		}, nil
	}, nil
}

// prepareUserinfo: GET /userinfo with access tokens (openid profile email)
// from a pool, each from a code exchange.
func prepareUserinfo(ctx context.Context, e *target, conc int) (opFactory, error) {
	n := e.poolSize(64)
	codes, err := e.codePool(ctx, n, min(conc, 16), "openid profile email")
	if err != nil {
		return nil, err
	}
	auth := basicAuth(e.state.OIDCClientID, e.state.OIDCClientSecret)
	pool := &tokenPool{tokens: make([]string, n)}
	for i, code := range codes.tokens {
		status, b, err := e.request(ctx, http.MethodPost, "/token", auth, codeForm(code), true)
		if err != nil || status != http.StatusOK {
			return nil, fmt.Errorf("code exchange for the userinfo pool: status %d: %v", status, err)
		}
		var tp tokenPair
		if err := json.Unmarshal(b, &tp); err != nil || tp.AccessToken == "" {
			return nil, &protocolError{"token response without access_token"}
		}
		e.noteAlg(tp.AccessToken)
		pool.tokens[i] = tp.AccessToken
	}
	return func(context.Context, int) (op, error) {
		return func(ctx context.Context) (int, error) {
			status, _, err := e.request(ctx, http.MethodGet, "/userinfo", "Bearer "+pool.cycle(), nil, false)
			return status, err
		}, nil
	}, nil
}
