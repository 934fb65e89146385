package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// scenario is one kind of load against a running authorization server.
type scenario struct {
	name string
	// help is one line for --help and the report.
	help string
	// ok are the statuses counted as successes (default: 200 only).
	ok []int
	// needsState is set when the scenario uses setup's users or clients.
	needsState bool
	// prepare builds what the timed window needs (token pools) and returns
	// the per-worker op factory.
	prepare func(ctx context.Context, e *target, conc int) (opFactory, error)
}

// scenarios lists every scenario in the order bench.sh runs them. memflood
// comes last: its wrong passwords throttle the load tool's address.
var scenarios = []scenario{
	{name: "idle", help: "no requests: the server's idle CPU and memory"},
	{name: "password", help: "password grant, one bench user per worker (correct passwords: throttling never applies)", needsState: true, prepare: preparePassword},
	{name: "refresh", help: "refresh_token grant, each worker walking its own refresh chain (refresh tokens are single-use)", needsState: true, prepare: prepareRefresh},
	{name: "client_credentials", help: "client_credentials grant of the bench client (HTTP Basic)", needsState: true, prepare: prepareClientCredentials},
	{name: "introspect", help: "RFC 7662 introspection of JWT access tokens from a pool, by the bench-rs client", needsState: true, prepare: prepareIntrospect},
	{name: "revoke", help: "RFC 7009 revocation, each request a distinct pre-issued access token (ends early if the pool runs out)", needsState: true, prepare: prepareRevoke},
	{name: "jwks", help: "GET /.well-known/jwks.json", prepare: prepareJWKS},
	{name: "statuslist", help: "GET of a Token Status List, nine in ten conditional (304), as caching relying parties poll it", needsState: true, ok: []int{http.StatusOK, http.StatusNotModified}, prepare: prepareStatusList},
	{name: "oidc_code", help: "authorization code exchange with openid offline_access (access, ID and refresh token), each request a distinct pre-issued code (ends early if the pool runs out)", needsState: true, prepare: prepareOIDCCode},
	{name: "userinfo", help: "GET /userinfo (OpenID Connect) with access tokens from a pool", needsState: true, prepare: prepareUserinfo},
	{name: "api", help: "GET /api/protected through the resource middleware, with access tokens from a pool", needsState: true, prepare: prepareAPI},
	{name: "signin", help: "POST /login with the correct password, one bench user per worker, each a fresh browser with only its CSRF cookie", needsState: true, prepare: prepareSignin},
	{name: "authorize", help: "GET /authorize of the --skip-consent web client by signed-in browsers; success is the 303 to the redirect URI with a code", needsState: true, ok: []int{http.StatusSeeOther}, prepare: prepareAuthorize},
	{name: "code", help: "authorization_code exchange at /token of codes from a pool issued before the window (ends early if the pool runs out)", needsState: true, prepare: prepareCode},
	{name: "memflood", help: "wrong passwords for random bench users (429, 503 and 400 are all acceptable outcomes)", needsState: true, ok: []int{400, 401, 429, 503}, prepare: prepareMemflood},
}

// findScenario returns the scenario called name.
func findScenario(name string) (scenario, bool) {
	for _, s := range scenarios {
		if s.name == name {
			return s, true
		}
	}
	return scenario{}, false
}

// scenarioNames lists the scenario names.
func scenarioNames() []string {
	names := make([]string, len(scenarios))
	for i, s := range scenarios {
		names[i] = s.name
	}
	return names
}

// target is the server under load and the credentials to use on it.
type target struct {
	base   string
	client *http.Client
	state  *benchState
	// pool is the size of the token pools (0: each scenario's default).
	pool int
	// alg is the signing algorithm seen in the server's tokens or JWKS.
	alg atomic.Value
}

// newTransport returns the one keep-alive transport of a run, with an idle
// connection kept for every worker so that the run measures the server and
// not connection set-up.
func newTransport(conc int) *http.Transport {
	return &http.Transport{
		Proxy:               nil,
		DialContext:         (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        conc + 16,
		MaxIdleConnsPerHost: conc + 16,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
		ForceAttemptHTTP2:   false,
	}
}

// basicAuth is the Authorization header of client credentials (RFC 6749
// §2.3.1: both parts form-encoded first).
func basicAuth(id, secret string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(url.QueryEscape(id)+":"+url.QueryEscape(secret)))
}

// request sends one request and returns its status and, when keep is set,
// its body (otherwise the body is drained so the connection is reused).
func (e *target) request(ctx context.Context, method, path, auth string, body []byte, keep bool) (int, []byte, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	u := e.base + path
	if p, ok := e.paths()[path]; ok {
		u = e.base + p
		if strings.Contains(p, "://") {
			u = p
		}
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return 0, nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := e.client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	if keep {
		b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		return resp.StatusCode, b, err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, nil, err
}

// tokenPair is the part of a token response the scenarios use.
type tokenPair struct {
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
}

// token posts form to /token with the bench client's credentials and decodes
// a 200 response.
func (e *target) token(ctx context.Context, form url.Values) (int, tokenPair, error) {
	var tp tokenPair
	status, b, err := e.request(ctx, http.MethodPost, "/token", basicAuth(e.state.ClientID, e.state.ClientSecret), []byte(form.Encode()), true)
	if err != nil || status != http.StatusOK {
		return status, tp, err
	}
	if err := json.Unmarshal(b, &tp); err != nil || tp.AccessToken == "" {
		return status, tp, &protocolError{"token response without access_token"}
	}
	e.noteAlg(tp.AccessToken)
	return status, tp, nil
}

// mustToken is token for set-up steps: anything but 200 is an error.
func (e *target) mustToken(ctx context.Context, form url.Values) (tokenPair, error) {
	status, tp, err := e.token(ctx, form)
	if err != nil {
		return tp, fmt.Errorf("%s grant: %w", form.Get("grant_type"), err)
	}
	if status != http.StatusOK {
		return tp, fmt.Errorf("%s grant: status %d", form.Get("grant_type"), status)
	}
	return tp, nil
}

// noteAlg records the alg of a JWT's header.
func (e *target) noteAlg(jwt string) {
	if e.alg.Load() != nil {
		return
	}
	h, _, ok := strings.Cut(jwt, ".")
	if !ok {
		return
	}
	b, err := base64.RawURLEncoding.DecodeString(h)
	if err != nil {
		return
	}
	var hdr struct {
		Alg string `json:"alg"`
	}
	if json.Unmarshal(b, &hdr) == nil && hdr.Alg != "" {
		e.alg.Store(hdr.Alg)
	}
}

// algorithm returns the server's signing algorithm: from a token seen during
// the run or, failing that, the first key of the JWKS.
func (e *target) algorithm(ctx context.Context) string {
	if a, ok := e.alg.Load().(string); ok {
		return a
	}
	// The metadata names the access tokens' algorithm; the JWKS may also
	// hold the RS256 key of the ID tokens.
	if status, b, err := e.request(ctx, http.MethodGet, "/.well-known/oauth-authorization-server", "", nil, true); err == nil && status == http.StatusOK {
		var md struct {
			Algs []string `json:"access_token_signing_alg_values_supported"`
		}
		if json.Unmarshal(b, &md) == nil && len(md.Algs) > 0 {
			return md.Algs[0]
		}
	}
	status, b, err := e.request(ctx, http.MethodGet, "/.well-known/jwks.json", "", nil, true)
	if err != nil || status != http.StatusOK {
		return ""
	}
	var set struct {
		Keys []struct {
			Alg string `json:"alg"`
		} `json:"keys"`
	}
	if json.Unmarshal(b, &set) != nil || len(set.Keys) == 0 {
		return ""
	}
	return set.Keys[0].Alg
}

func passwordForm(user, pw string) url.Values {
	return url.Values{"grant_type": {"password"}, "username": {user}, "password": {pw}}
}

var clientCredentialsForm = url.Values{"grant_type": {"client_credentials"}}

// userFor returns the distinct bench user of worker i.
func (e *target) userFor(i, conc int) (string, error) {
	if n := len(e.state.Users); conc > n {
		return "", fmt.Errorf("%d workers need %d distinct bench users, the state has %d (rerun `authbench setup --users %d`)", conc, conc, n, conc)
	}
	return e.state.Users[i], nil
}

func preparePassword(_ context.Context, e *target, conc int) (opFactory, error) {
	return func(_ context.Context, i int) (op, error) {
		user, err := e.userFor(i, conc)
		if err != nil {
			return nil, err
		}
		body := []byte(passwordForm(user, e.state.Password).Encode())
		auth := basicAuth(e.state.ClientID, e.state.ClientSecret)
		return func(ctx context.Context) (int, error) {
			status, _, err := e.request(ctx, http.MethodPost, "/token", auth, body, false)
			return status, err
		}, nil
	}, nil
}

// bootstrapParallelism bounds the password grants that start refresh
// chains at once, so that a burst of logins neither waits past the server's
// hash queue timeout (503) nor trips its per-address throttling.
const bootstrapParallelism = 8

func prepareRefresh(_ context.Context, e *target, conc int) (opFactory, error) {
	sem := make(chan struct{}, bootstrapParallelism)
	return func(ctx context.Context, i int) (op, error) {
		user, err := e.userFor(i, conc)
		if err != nil {
			return nil, err
		}
		sem <- struct{}{}
		tp, err := e.mustToken(ctx, passwordForm(user, e.state.Password))
		<-sem
		if err != nil {
			return nil, err
		}
		rt := tp.RefreshToken
		if rt == "" {
			return nil, errors.New("the bench client got no refresh token (is refresh_token among its grants?)")
		}
		return func(ctx context.Context) (int, error) {
			if rt == "" {
				// The chain broke (an error below); start a new one. Its
				// time counts against this op: errors should be rare.
				tp, err := e.mustToken(ctx, passwordForm(user, e.state.Password))
				if err != nil {
					return 0, &protocolError{"refresh chain restart failed"}
				}
				rt = tp.RefreshToken
			}
			status, tp, err := e.token(ctx, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}})
			if err != nil || status != http.StatusOK {
				rt = ""
				return status, err
			}
			if tp.RefreshToken == "" {
				rt = ""
				return status, &protocolError{"refresh response without refresh_token"}
			}
			rt = tp.RefreshToken
			return status, nil
		}, nil
	}, nil
}

func prepareClientCredentials(_ context.Context, e *target, _ int) (opFactory, error) {
	auth := basicAuth(e.state.ClientID, e.state.ClientSecret)
	body := []byte(clientCredentialsForm.Encode())
	return func(context.Context, int) (op, error) {
		return func(ctx context.Context) (int, error) {
			status, _, err := e.request(ctx, http.MethodPost, "/token", auth, body, false)
			return status, err
		}, nil
	}, nil
}

// tokenPool is a fixed set of access tokens, shared round robin or consumed
// once each.
type tokenPool struct {
	tokens []string
	next   atomic.Int64
}

// cycle returns the tokens round robin.
func (p *tokenPool) cycle() string {
	return p.tokens[(p.next.Add(1)-1)%int64(len(p.tokens))]
}

// take returns each token once, then false.
func (p *tokenPool) take() (string, bool) {
	i := p.next.Add(1) - 1
	if i >= int64(len(p.tokens)) {
		return "", false
	}
	return p.tokens[i], true
}

// issuePool gets n access tokens with conc requests at a time; form(i)
// is the token request of token i.
func (e *target) issuePool(ctx context.Context, n, conc int, form func(i int) url.Values) (*tokenPool, error) {
	return fillPool(ctx, n, conc, "token", func(ctx context.Context, _, i int) (string, error) {
		tp, err := e.mustToken(ctx, form(i))
		if err != nil {
			return "", err
		}
		return tp.AccessToken, nil
	})
}

// fillPool makes a pool of n tokens (access tokens, codes) with workers
// goroutines calling one(ctx, worker, i) for token i; the first error
// stops them all.
func fillPool(ctx context.Context, n, workers int, what string, one func(ctx context.Context, worker, i int) (string, error)) (*tokenPool, error) {
	p := &tokenPool{tokens: make([]string, n)}
	var (
		wg      sync.WaitGroup
		next    atomic.Int64
		errOnce sync.Once
		first   error
	)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for w := range max(1, min(workers, n)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				tok, err := one(ctx, w, i)
				if err != nil {
					errOnce.Do(func() { first = fmt.Errorf("issuing the %s pool: %w", what, err); cancel() })
					return
				}
				p.tokens[i] = tok
			}
		}()
	}
	wg.Wait()
	if first != nil {
		return nil, first
	}
	return p, ctx.Err()
}

// poolSize is the pool flag, or def.
func (e *target) poolSize(def int) int {
	if e.pool > 0 {
		return e.pool
	}
	return def
}

func prepareIntrospect(ctx context.Context, e *target, conc int) (opFactory, error) {
	pool, err := e.issuePool(ctx, e.poolSize(256), min(conc, 32), func(int) url.Values { return clientCredentialsForm })
	if err != nil {
		return nil, err
	}
	auth := basicAuth(e.state.IntrospectorID, e.state.IntrospectorSecret)
	return func(context.Context, int) (op, error) {
		return func(ctx context.Context) (int, error) {
			body := []byte("token=" + pool.cycle())
			status, b, err := e.request(ctx, http.MethodPost, "/introspect", auth, body, true)
			if err == nil && status == http.StatusOK && !bytes.HasPrefix(b, []byte(`{"active":true`)) {
				err = &protocolError{"inactive token"}
			}
			return status, err
		}, nil
	}, nil
}

func prepareRevoke(ctx context.Context, e *target, conc int) (opFactory, error) {
	pool, err := e.issuePool(ctx, e.poolSize(5000), min(conc, 32), func(int) url.Values { return clientCredentialsForm })
	if err != nil {
		return nil, err
	}
	auth := basicAuth(e.state.ClientID, e.state.ClientSecret)
	return func(context.Context, int) (op, error) {
		return func(ctx context.Context) (int, error) {
			tok, ok := pool.take()
			if !ok {
				return 0, errDone
			}
			status, _, err := e.request(ctx, http.MethodPost, "/revoke", auth, []byte("token="+tok), false)
			return status, err
		}, nil
	}, nil
}

func prepareJWKS(_ context.Context, e *target, _ int) (opFactory, error) {
	return func(context.Context, int) (op, error) {
		return func(ctx context.Context) (int, error) {
			status, _, err := e.request(ctx, http.MethodGet, "/.well-known/jwks.json", "", nil, false)
			return status, err
		}, nil
	}, nil
}

func prepareAPI(ctx context.Context, e *target, conc int) (opFactory, error) {
	// client_credentials tokens: issuing user tokens would cost an argon2id
	// hash each, whose garbage would then count in the server's peak RSS.
	pool, err := e.issuePool(ctx, e.poolSize(256), min(conc, 32), func(int) url.Values { return clientCredentialsForm })
	if err != nil {
		return nil, err
	}
	return func(context.Context, int) (op, error) {
		return func(ctx context.Context) (int, error) {
			status, _, err := e.request(ctx, http.MethodGet, "/api/protected", "Bearer "+pool.cycle(), nil, false)
			return status, err
		}, nil
	}, nil
}

func prepareMemflood(_ context.Context, e *target, _ int) (opFactory, error) {
	if len(e.state.Users) == 0 {
		return nil, errors.New("the state has no bench users")
	}
	auth := basicAuth(e.state.ClientID, e.state.ClientSecret)
	return func(context.Context, int) (op, error) {
		return func(ctx context.Context) (int, error) {
			u := e.state.Users[rand.IntN(len(e.state.Users))]
			body := []byte(passwordForm(u, "wrong-"+e.state.Password).Encode())
			status, _, err := e.request(ctx, http.MethodPost, "/token", auth, body, false)
			return status, err
		}, nil
	}, nil
}

// okFunc returns the success predicate of a scenario.
func (s scenario) okFunc() func(int) bool {
	if len(s.ok) == 0 {
		return func(status int) bool { return status == http.StatusOK }
	}
	return func(status int) bool { return slices.Contains(s.ok, status) }
}

// paths returns the state's path map; nil without a state.
func (e *target) paths() map[string]string {
	if e.state == nil {
		return nil
	}
	return e.state.Paths
}
