package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io"
	"net"
	"net/http"
	"net/url"
	"os/exec"
	"runtime"
	"slices"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"golang.org/x/oauth2"
)

// options are the command-line settings of a sign-in.
type options struct {
	issuer    string
	clientID  string
	scopes    []string
	noBrowser bool
	timeout   time.Duration
}

// metadata is the part of the server's RFC 8414 metadata the client uses.
type metadata struct {
	Issuer                            string   `json:"issuer"`
	AuthorizationEndpoint             string   `json:"authorization_endpoint"`
	TokenEndpoint                     string   `json:"token_endpoint"`
	JWKSURI                           string   `json:"jwks_uri"`
	CodeChallengeMethodsSupported     []string `json:"code_challenge_methods_supported"`
	AuthorizationResponseIssParameter bool     `json:"authorization_response_iss_parameter_supported"`
	DeviceAuthorizationEndpoint       string   `json:"device_authorization_endpoint"`
}

// authError is an error response of the authorization endpoint
// (RFC 6749 §4.1.2.1), such as access_denied when the user clicks Deny.
type authError struct {
	Code, Description string
}

func (e *authError) Error() string {
	if e.Description == "" {
		return "the server refused the authorization: " + e.Code
	}
	return "the server refused the authorization: " + e.Code + ": " + e.Description
}

// httpClient bounds every request the client makes to the server.
var httpClient = &http.Client{Timeout: 30 * time.Second}

// run signs in once: metadata, loopback listener, browser, callback, code
// exchange, token verification and a call to /api/me. It writes its
// progress and results to out and opens the browser with open unless
// o.noBrowser.
func run(ctx context.Context, o options, out io.Writer, open func(string) error) error {
	md, err := discover(ctx, o.issuer)
	if err != nil {
		return err
	}
	// RFC 8252 §7.3: a loopback IP literal, any free port; the server
	// matches the registered http://127.0.0.1/callback on any port.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("listening on a loopback port: %w", err)
	}
	defer ln.Close()
	conf := &oauth2.Config{
		ClientID:    o.clientID,
		Endpoint:    oauth2.Endpoint{AuthURL: md.AuthorizationEndpoint, TokenURL: md.TokenEndpoint, AuthStyle: oauth2.AuthStyleInParams},
		RedirectURL: fmt.Sprintf("http://%s/callback", ln.Addr()),
		Scopes:      o.scopes,
	}
	state := randomState()
	verifier := oauth2.GenerateVerifier()
	authURL := conf.AuthCodeURL(state, oauth2.S256ChallengeOption(verifier))

	fmt.Fprintf(out, "Sign in with your browser at this URL:\n\n    %s\n\n", authURL)
	if !o.noBrowser {
		if err := open(authURL); err != nil {
			fmt.Fprintf(out, "Could not open a browser (%v); open the URL yourself.\n", err)
		}
	}
	fmt.Fprintf(out, "Waiting for the redirect to %s ...\n", conf.RedirectURL)

	waitCtx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	code, err := awaitCallback(waitCtx, ln, state, md)
	if err != nil {
		return err
	}

	ctx = context.WithValue(ctx, oauth2.HTTPClient, httpClient)
	tok, err := conf.Exchange(ctx, code, oauth2.VerifierOption(verifier))
	if err != nil {
		return fmt.Errorf("exchanging the code at %s: %w", md.TokenEndpoint, err)
	}
	return showToken(ctx, out, md, o.issuer, tok)
}

// showToken prints the access token's type and expiry, its claims once its
// signature verified with the issuer's keys, and what GET /api/me answers
// with it.
func showToken(ctx context.Context, out io.Writer, md *metadata, issuer string, tok *oauth2.Token) error {
	fmt.Fprintf(out, "\nGot an access token (%s, expires %s).\n", tok.Type(), tok.Expiry.Format(time.RFC3339))
	claims, err := verifyAccessToken(ctx, md, tok.AccessToken)
	if err != nil {
		return err
	}
	b, _ := json.MarshalIndent(claims, "", "  ")
	fmt.Fprintf(out, "\nAccess token claims (signature verified with %s):\n%s\n", md.JWKSURI, b)
	me, err := callAPI(ctx, issuer+"/api/me", tok.AccessToken)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "\nGET %s/api/me:\n%s\n", issuer, me)
	return nil
}

// discover fetches the RFC 8414 metadata of issuer and checks what the flow
// needs: the issuer named in it is the one asked for (RFC 8414 §3.3), and
// S256 PKCE is supported.
func discover(ctx context.Context, issuer string) (*metadata, error) {
	u := issuer + "/.well-known/oauth-authorization-server"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, fmt.Errorf("issuer %q: %w", issuer, err)
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("reading the server metadata: %w (is `authserver serve --demo` running at %s?)", err, issuer)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("reading the server metadata: GET %s: %s", u, resp.Status)
	}
	var md metadata
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&md); err != nil {
		return nil, fmt.Errorf("reading the server metadata at %s: %w", u, err)
	}
	switch {
	case md.Issuer != issuer:
		return nil, fmt.Errorf("the metadata at %s names the issuer %q, not %q (RFC 8414 §3.3); pass --issuer %s", u, md.Issuer, issuer, md.Issuer)
	case md.AuthorizationEndpoint == "" || md.TokenEndpoint == "" || md.JWKSURI == "":
		return nil, fmt.Errorf("the metadata at %s lacks authorization_endpoint, token_endpoint or jwks_uri", u)
	case !slices.Contains(md.CodeChallengeMethodsSupported, "S256"):
		return nil, fmt.Errorf("the server at %s does not support PKCE with S256", issuer)
	}
	return &md, nil
}

// randomState returns 128 random bits, base64url-encoded: the state that
// ties the redirect to this sign-in (RFC 6749 §10.12).
func randomState() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b) // never fails (crypto/rand)
	return base64.RawURLEncoding.EncodeToString(b)
}

// checkCallback checks the query of the redirect to the loopback listener
// and returns the authorization code. The state must be ours; iss must name
// the issuer whenever the server says it sends it (RFC 9207 §2.4), or be
// absent otherwise; an error response becomes an *authError.
func checkCallback(q url.Values, state string, md *metadata) (string, error) {
	if q.Get("state") != state {
		return "", errors.New("the redirect carries the wrong state: it does not answer this sign-in (possible CSRF); start again")
	}
	if iss, ok := q["iss"]; ok || md.AuthorizationResponseIssParameter {
		if !ok || len(iss) != 1 || iss[0] != md.Issuer {
			return "", fmt.Errorf("the redirect's iss %q is not the issuer %q (RFC 9207): it may come from another server (mix-up attack)", q.Get("iss"), md.Issuer)
		}
	}
	if e := q.Get("error"); e != "" {
		return "", &authError{Code: e, Description: q.Get("error_description")}
	}
	code := q.Get("code")
	if code == "" {
		return "", errors.New("the redirect carries neither a code nor an error")
	}
	return code, nil
}

// resultPage is what the browser shows after the redirect.
var resultPage = template.Must(template.New("").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>democlient</title></head>
<body style="font-family: system-ui, sans-serif; max-width: 32rem; margin: 3rem auto; padding: 0 1rem">
{{if .}}<h1>Sign-in failed</h1><p id="result">{{.}}</p>{{else}}<h1>Signed in</h1><p id="result">You are signed in to democlient. You can close this window and return to the terminal.</p>{{end}}
</body></html>`))

// awaitCallback serves the loopback redirect URI on ln until one redirect
// arrives or ctx ends, answers the browser with a small page, and returns
// the checked code.
func awaitCallback(ctx context.Context, ln net.Listener, state string, md *metadata) (string, error) {
	type result struct {
		code string
		err  error
	}
	done := make(chan result, 1)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /callback", func(w http.ResponseWriter, r *http.Request) {
		code, err := checkCallback(r.URL.Query(), state, md)
		msg := ""
		if err != nil {
			msg = err.Error()
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("Referrer-Policy", "no-referrer")
		_ = resultPage.Execute(w, msg)
		select {
		case done <- result{code, err}:
		default: // a later request: the first one decided
		}
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	defer func() {
		shutCtx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(shutCtx)
	}()
	select {
	case r := <-done:
		return r.code, r.err
	case <-ctx.Done():
		return "", fmt.Errorf("no redirect to the loopback listener: %w", context.Cause(ctx))
	}
}

// accessTokenAlgs are the JWS algorithms accepted on access tokens.
var accessTokenAlgs = []jose.SignatureAlgorithm{jose.RS256, jose.PS256, jose.ES256, jose.EdDSA}

// verifyAccessToken checks the access token's signature against the
// server's JWKS, its iss and its expiry, and returns its claims. A client
// does not need to do this (an access token is for the API); it does so to
// show what the API will check.
func verifyAccessToken(ctx context.Context, md *metadata, token string) (map[string]any, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, md.JWKSURI, nil)
	if err != nil {
		return nil, fmt.Errorf("jwks_uri: %w", err)
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("fetching the JWKS: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("fetching the JWKS: GET %s: %s", md.JWKSURI, resp.Status)
	}
	var jwks jose.JSONWebKeySet
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&jwks); err != nil {
		return nil, fmt.Errorf("reading the JWKS: %w", err)
	}
	parsed, err := jwt.ParseSigned(token, accessTokenAlgs)
	if err != nil {
		return nil, fmt.Errorf("the access token is not a signed JWT: %w", err)
	}
	var std jwt.Claims
	var all map[string]any
	if err := parsed.Claims(&jwks, &std, &all); err != nil {
		return nil, fmt.Errorf("verifying the access token with the JWKS: %w", err)
	}
	if err := std.ValidateWithLeeway(jwt.Expected{Issuer: md.Issuer, Time: time.Now()}, time.Minute); err != nil {
		return nil, fmt.Errorf("the access token's claims: %w", err)
	}
	return all, nil
}

// callAPI calls url with the access token as a bearer token (RFC 6750 §2.1)
// and returns the answer's body.
func callAPI(ctx context.Context, url, token string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := httpClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("calling %s: %w", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("calling %s: %w", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("calling %s: %s %s %s", url, resp.Status, resp.Header.Get("WWW-Authenticate"), body)
	}
	return body, nil
}

// openBrowser opens url in the user's browser without waiting for it.
func openBrowser(url string) error {
	var cmd *exec.Cmd
	switch runtime.GOOS {
	case "darwin":
		cmd = exec.Command("open", url)
	case "windows":
		cmd = exec.Command("rundll32", "url.dll,FileProtocolHandler", url)
	default:
		cmd = exec.Command("xdg-open", url)
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	go func() { _ = cmd.Wait() }() // reap it
	return nil
}
