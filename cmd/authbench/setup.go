package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"time"
)

// Names setup gives what it creates.
const (
	benchClientID     = "bench"
	benchIntrospector = "bench-rs"
	benchWebClient    = "bench-web"
	benchRedirectURI  = "http://127.0.0.1:9/cb"
)

// benchState is what setup created, as the JSON state file that run reads.
// Its secrets are a benchmark database's: never point setup at a real one.
type benchState struct {
	// Users are bench-<i>@example.com, all with Password.
	Users    []string `json:"users"`
	Password string   `json:"password"`
	// ClientID is a confidential client with the password, refresh_token
	// and client_credentials grants.
	ClientID     string `json:"client_id"`
	ClientSecret string `json:"client_secret"`
	// IntrospectorID may call the introspection endpoint.
	IntrospectorID     string `json:"introspector_id"`
	IntrospectorSecret string `json:"introspector_secret"`
	// OIDCClientID is a first-party confidential client of the
	// authorization code flow with the OpenID Connect scopes.
	OIDCClientID     string    `json:"oidc_client_id,omitempty"`
	OIDCClientSecret string    `json:"oidc_client_secret,omitempty"`
	CreatedAt        time.Time `json:"created_at"`
	// Paths maps the paths the scenarios use (/token, /introspect,
	// /.well-known/jwks.json) to another server's: a path, or a whole URL
	// (another port). scripts/compare-hydra.sh writes it for Ory Hydra;
	// setup leaves it empty.
	Paths map[string]string `json:"paths,omitempty"`
	// WebClientID is a confidential --skip-consent client of the
	// authorization code flow, registered with WebRedirectURI.
	WebClientID     string `json:"web_client_id,omitempty"`
	WebClientSecret string `json:"web_client_secret,omitempty"`
	WebRedirectURI  string `json:"web_redirect_uri,omitempty"`
}

// loadState reads a state file.
func loadState(path string) (*benchState, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("state file (run `authbench setup` first): %w", err)
	}
	var st benchState
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("state file %s: %w", path, err)
	}
	return &st, nil
}

// save writes the state file (0600: it holds secrets).
func (st *benchState) save(path string) error {
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("write state file: %w", err)
	}
	return nil
}

// setupConfig holds the flags of `authbench setup`.
type setupConfig struct {
	serverBin string
	db        string
	users     int
	statePath string
	parallel  int
	log       *slog.Logger
}

// benchUserEmail is the email of bench user i.
func benchUserEmail(i int) string { return fmt.Sprintf("bench-%d@example.com", i) }

// setup creates the bench users and clients through the authserver command
// line (users add, clients add) on the server's database, so it works while
// the server runs. It is idempotent: with an existing state file, its
// password and secrets are reused and what already exists is kept.
func setup(ctx context.Context, cfg setupConfig) (*benchState, error) {
	if cfg.db == "" {
		return nil, errors.New("--db is required")
	}
	if cfg.users < 1 {
		return nil, errors.New("--users must be at least 1")
	}
	if cfg.parallel < 1 {
		cfg.parallel = runtime.NumCPU()
	}
	st, err := loadState(cfg.statePath)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		st = &benchState{
			Password:           "bench-" + randomString(12),
			ClientID:           benchClientID,
			ClientSecret:       randomString(40),
			IntrospectorID:     benchIntrospector,
			IntrospectorSecret: randomString(40),
		}
	case err != nil:
		return nil, err
	}
	if st.OIDCClientID == "" { // a state file from before the OpenID Connect scenarios
		st.OIDCClientID, st.OIDCClientSecret = benchOIDCClient, randomString(40)
	}
	if st.WebClientID == "" {
		st.WebClientID, st.WebClientSecret, st.WebRedirectURI = benchWebClient, randomString(40), benchRedirectURI
	}
	st.CreatedAt = time.Now().UTC()

	cli := func(ctx context.Context, stdin string, args ...string) (created bool, err error) {
		args = append(args, "--db", cfg.db, "--output", "json")
		cmd := exec.CommandContext(ctx, cfg.serverBin, args...)
		cmd.Stdin = strings.NewReader(stdin + "\n")
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Run(); err != nil {
			msg := strings.TrimSpace(stderr.String())
			if strings.Contains(msg, "already exists") {
				return false, nil
			}
			return false, fmt.Errorf("%s %s: %w: %s", cfg.serverBin, strings.Join(args[:2], " "), err, msg)
		}
		return true, nil
	}

	// Clients first: they are quick, and a wrong --server-bin fails fast.
	for _, c := range []struct {
		id, secret string
		args       []string
	}{
		{st.ClientID, st.ClientSecret, []string{"--grant", "password", "--grant", "refresh_token", "--grant", "client_credentials", "--scope", "read", "--scope", "write"}},
		{st.IntrospectorID, st.IntrospectorSecret, []string{"--grant", "client_credentials", "--introspect"}},
		{st.OIDCClientID, st.OIDCClientSecret, []string{"--grant", "authorization_code", "--grant", "refresh_token",
			"--scope", "openid", "--scope", "profile", "--scope", "email", "--scope", "offline_access",
			"--redirect-uri", benchOIDCRedirect, "--skip-consent"}},
		{st.WebClientID, st.WebClientSecret, []string{"--grant", "authorization_code", "--redirect-uri", st.WebRedirectURI, "--skip-consent", "--scope", "read"}},
	} {
		args := append([]string{"clients", "add", "--id", c.id, "--name", "authbench", "--secret-stdin"}, c.args...)
		created, err := cli(ctx, c.secret, args...)
		if err != nil {
			return nil, err
		}
		cfg.log.Info("client", "id", c.id, "created", created)
	}

	// Users in parallel: each `users add` computes one argon2id hash.
	emails := make([]string, cfg.users)
	for i := range emails {
		emails[i] = benchUserEmail(i)
	}
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
		created  int
		next     = make(chan string)
	)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for range min(cfg.parallel, cfg.users) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for email := range next {
				ok, err := cli(ctx, st.Password, "users", "add", "--email", email, "--name", "Bench "+strings.TrimSuffix(email, "@example.com"), "--role", "user", "--password-stdin")
				mu.Lock()
				if err != nil && firstErr == nil {
					firstErr = err
					cancel()
				}
				if ok {
					created++
				}
				mu.Unlock()
			}
		}()
	}
feed:
	for _, e := range emails {
		select {
		case next <- e:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	if firstErr != nil {
		return nil, firstErr
	}
	cfg.log.Info("users", "total", cfg.users, "created", created)
	st.Users = emails
	if err := st.save(cfg.statePath); err != nil {
		return nil, err
	}
	return st, nil
}

// randomString returns n URL-safe random characters.
func randomString(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)[:n]
}
