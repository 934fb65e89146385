package main

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
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

// codePool issues n authorization codes with scope in a browser session of
// bench user 0.
func (e *target) codePool(ctx context.Context, n, conc int, scope string) (*tokenPool, error) {
	if len(e.state.Users) == 0 {
		return nil, errors.New("the state has no bench users")
	}
	b := e.newBrowser()
	if err := b.signIn(ctx, e.state.Users[0], e.state.Password); err != nil {
		return nil, fmt.Errorf("sign-in: %w", err)
	}
	path := "/authorize?" + url.Values{"response_type": {"code"}, "client_id": {benchOIDCClient}, "redirect_uri": {benchOIDCRedirect},
		"scope": {scope}, "code_challenge": {benchChallenge()}, "code_challenge_method": {"S256"}, "nonce": {"bench-nonce"}}.Encode()
	return fillPool(ctx, n, conc, "code", func(ctx context.Context, _, _ int) (string, error) {
		status, code, err := b.authorizeAt(ctx, path, benchOIDCRedirect)
		if err == nil && code == "" {
			err = fmt.Errorf("authorize: status %d", status)
		}
		return code, err
	})
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
