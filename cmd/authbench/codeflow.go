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
	"net/url"
	"regexp"
	"strings"
	"sync"
)

// The authorization code flow scenarios: signin (the sign-in form),
// authorize (a signed-in browser at /authorize) and code (the exchange of
// pre-issued codes at /token).

// csrfField finds the hidden csrf_token of a page.
var csrfField = regexp.MustCompile(`name="csrf_token" value="([^"]+)"`)

// browser is one cookie-carrying user agent that does not follow redirects.
type browser struct {
	e       *target
	client  *http.Client
	mu      sync.Mutex
	cookies map[string]string
}

func (e *target) newBrowser() *browser {
	c := *e.client
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &browser{e: e, client: &c, cookies: map[string]string{}}
}

// do sends a request with the browser's cookies and keeps the ones set.
func (b *browser) do(ctx context.Context, method, path string, form url.Values, keep bool) (*http.Response, []byte, error) {
	var rd io.Reader
	if form != nil {
		rd = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequestWithContext(ctx, method, b.e.base+path, rd)
	if err != nil {
		return nil, nil, err
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	b.mu.Lock()
	for k, v := range b.cookies {
		req.AddCookie(&http.Cookie{Name: k, Value: v})
	}
	b.mu.Unlock()
	resp, err := b.client.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	b.mu.Lock()
	for _, c := range resp.Cookies() {
		if c.MaxAge < 0 || c.Value == "" {
			delete(b.cookies, c.Name)
		} else {
			b.cookies[c.Name] = c.Value
		}
	}
	b.mu.Unlock()
	var body []byte
	if keep {
		body, err = io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	} else {
		_, err = io.Copy(io.Discard, resp.Body)
	}
	return resp, body, err
}

// loginForm gets the sign-in page and returns the form to post for user.
func (b *browser) loginForm(ctx context.Context, user, pw string) (url.Values, error) {
	resp, body, err := b.do(ctx, http.MethodGet, "/login", nil, true)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET /login: status %d", resp.StatusCode)
	}
	m := csrfField.FindSubmatch(body)
	if m == nil {
		return nil, errors.New("GET /login: no csrf_token in the page")
	}
	return url.Values{"csrf_token": {html.UnescapeString(string(m[1]))}, "username": {user}, "password": {pw}}, nil
}

// signIn signs the browser in as user.
func (b *browser) signIn(ctx context.Context, user, pw string) error {
	form, err := b.loginForm(ctx, user, pw)
	if err != nil {
		return err
	}
	resp, _, err := b.do(ctx, http.MethodPost, "/login", form, false)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("POST /login: status %d", resp.StatusCode)
	}
	return nil
}

// pkcePair is a fixed code verifier and its S256 challenge (RFC 7636).
type pkcePair struct{ verifier, challenge string }

func newPKCE() pkcePair {
	v := randomString(64)
	h := sha256.Sum256([]byte(v))
	return pkcePair{verifier: v, challenge: base64.RawURLEncoding.EncodeToString(h[:])}
}

// authorizePath is the /authorize request of the bench web client.
func (e *target) authorizePath(p pkcePair) string {
	return "/authorize?" + url.Values{
		"response_type":         {"code"},
		"client_id":             {e.state.WebClientID},
		"redirect_uri":          {e.state.WebRedirectURI},
		"scope":                 {"read"},
		"state":                 {randomString(16)},
		"code_challenge":        {p.challenge},
		"code_challenge_method": {"S256"},
	}.Encode()
}

// authorize sends one /authorize of the bench web client and returns the
// status and the code of a 303 to the redirect URI (the error is a
// protocolError when it has none).
func (b *browser) authorize(ctx context.Context, p pkcePair) (int, string, error) {
	return b.authorizeAt(ctx, b.e.authorizePath(p), b.e.state.WebRedirectURI)
}

// authorizeAt sends the /authorize request path and returns the status and
// the code of a 303 to redirect.
func (b *browser) authorizeAt(ctx context.Context, path, redirect string) (int, string, error) {
	resp, _, err := b.do(ctx, http.MethodGet, path, nil, false)
	if err != nil {
		return 0, "", err
	}
	if resp.StatusCode != http.StatusSeeOther {
		return resp.StatusCode, "", nil
	}
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil || !strings.HasPrefix(loc.String(), redirect) || loc.Query().Get("code") == "" {
		return resp.StatusCode, "", &protocolError{"303 without a code to the redirect URI: " + resp.Header.Get("Location")}
	}
	return resp.StatusCode, loc.Query().Get("code"), nil
}

func (e *target) needWebClient() error {
	if e.state.WebClientID == "" {
		return errors.New("the state has no web client (rerun `authbench setup`)")
	}
	return nil
}

// signedIn returns conc browsers, each signed in as its own bench user.
func (e *target) signedIn(ctx context.Context, conc int) ([]*browser, error) {
	bs := make([]*browser, conc)
	sem := make(chan struct{}, bootstrapParallelism)
	var (
		wg    sync.WaitGroup
		once  sync.Once
		first error
	)
	for i := range bs {
		user := e.state.Users[i%len(e.state.Users)]
		bs[i] = e.newBrowser()
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			if err := bs[i].signIn(ctx, user, e.state.Password); err != nil {
				once.Do(func() { first = fmt.Errorf("signing in %s: %w", user, err) })
			}
		}()
	}
	wg.Wait()
	return bs, first
}

func prepareSignin(ctx context.Context, e *target, conc int) (opFactory, error) {
	return func(ctx context.Context, i int) (op, error) {
		user, err := e.userFor(i, conc)
		if err != nil {
			return nil, err
		}
		b := e.newBrowser()
		form, err := b.loginForm(ctx, user, e.state.Password)
		if err != nil {
			return nil, err
		}
		csrf := b.cookies
		return func(ctx context.Context) (int, error) {
			// Each sign-in is a fresh browser with only its CSRF cookie.
			b.mu.Lock()
			b.cookies = map[string]string{}
			for k, v := range csrf {
				if !strings.Contains(k, "session") {
					b.cookies[k] = v
				}
			}
			b.mu.Unlock()
			resp, _, err := b.do(ctx, http.MethodPost, "/login", form, false)
			if err != nil {
				return 0, err
			}
			return resp.StatusCode, nil
		}, nil
	}, nil
}

func prepareAuthorize(ctx context.Context, e *target, conc int) (opFactory, error) {
	if err := e.needWebClient(); err != nil {
		return nil, err
	}
	bs, err := e.signedIn(ctx, min(conc, len(e.state.Users)))
	if err != nil {
		return nil, err
	}
	p := newPKCE()
	return func(_ context.Context, i int) (op, error) {
		b := bs[i%len(bs)]
		return func(ctx context.Context) (int, error) {
			status, _, err := b.authorize(ctx, p)
			return status, err
		}, nil
	}, nil
}

func prepareCode(ctx context.Context, e *target, conc int) (opFactory, error) {
	if err := e.needWebClient(); err != nil {
		return nil, err
	}
	bs, err := e.signedIn(ctx, min(conc, len(e.state.Users), 32))
	if err != nil {
		return nil, err
	}
	p := newPKCE()
	// One worker per signed-in browser.
	pool, err := fillPool(ctx, e.poolSize(4000), len(bs), "code", func(ctx context.Context, w, _ int) (string, error) {
		status, code, err := bs[w].authorize(ctx, p)
		if err == nil && code == "" {
			err = fmt.Errorf("status %d", status)
		}
		return code, err
	})
	if err != nil {
		return nil, err
	}
	auth := basicAuth(e.state.WebClientID, e.state.WebClientSecret)
	return func(context.Context, int) (op, error) {
		return func(ctx context.Context) (int, error) {
			code, ok := pool.take()
			if !ok {
				return 0, errDone
			}
			form := url.Values{"grant_type": {"authorization_code"}, "code": {code},
				"redirect_uri": {e.state.WebRedirectURI}, "code_verifier": {p.verifier}}
			status, b, err := e.request(ctx, http.MethodPost, "/token", auth, []byte(form.Encode()), true)
			if err == nil && status == http.StatusOK {
				var tp tokenPair
				if json.Unmarshal(b, &tp) != nil || tp.AccessToken == "" {
					return status, &protocolError{"token response without access_token"}
				}
				e.noteAlg(tp.AccessToken)
			}
			return status, err
		}, nil
	}, nil
}
