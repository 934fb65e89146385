package browser

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"
	"golang.org/x/oauth2"

	"github.com/oauthkit/authserver/internal/testbin"
)

// The demo seed's user and the demo-app client (cmd/authserver, --demo).
const (
	aliceEmail    = "alice@example.com"
	alicePassword = "password123"
	demoClientID  = "demo-app"
)

// testTimeout bounds each test, browser included, so that a stuck page
// fails the test instead of hanging CI.
const testTimeout = 90 * time.Second

// chromiumPath returns the Chromium to drive, or skips the test when there
// is none (fails when AUTHSERVER_TEST_BROWSER=required).
func chromiumPath(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("runs the binary and a browser")
	}
	if p := os.Getenv("AUTHSERVER_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	msg := "no Chromium found (install the Debian package chromium, or set AUTHSERVER_CHROMIUM)"
	if os.Getenv("AUTHSERVER_TEST_BROWSER") == "required" {
		t.Fatal(msg + "; AUTHSERVER_TEST_BROWSER=required")
	}
	t.Skip(msg + "; skipping the browser tests")
	return ""
}

// startServer runs `authserver serve --demo` on a fresh SQLite database,
// with an issuer that is its real address (the browser follows the
// metadata's URLs), and returns the issuer.
func startServer(t *testing.T, extra ...string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	db := filepath.Join(t.TempDir(), "auth.db")
	s := testbin.Start(t, nil, append([]string{"--demo", "--db", db, "--addr", addr, "--issuer", "http://" + addr}, extra...)...)
	return s.URL
}

// browserOpts are the settings of one browser tab.
type browserOpts struct {
	width, height int64
	mobile        bool
	noScript      bool
	dark          bool // prefers-color-scheme: dark (light otherwise)
}

var (
	desktop = browserOpts{width: 1280, height: 800}
	phone   = browserOpts{width: 390, height: 844, mobile: true}
)

// newBrowser starts a headless Chromium for the test and returns a tab's
// context, bounded by testTimeout. The browser is killed at the end of the
// test.
func newBrowser(t *testing.T, o browserOpts) context.Context {
	t.Helper()
	exe := chromiumPath(t)
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(exe),
		chromedp.NoSandbox, // CI runs as root, where Chromium's sandbox cannot start
		chromedp.DisableGPU,
		chromedp.Flag("lang", "en-US"),
		chromedp.WindowSize(int(o.width), int(o.height)),
	)
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	actx, acancel := chromedp.NewExecAllocator(ctx, opts...)
	bctx, bcancel := chromedp.NewContext(actx)
	t.Cleanup(func() {
		_ = chromedp.Cancel(bctx) // closes the browser gracefully
		bcancel()
		acancel() // kills the process if it is still there
		cancel()
	})
	steps := []chromedp.Action[chromedp.Void]{}
	if o.mobile {
		steps = append(steps, chromedp.EmulateViewport(o.width, o.height, chromedp.EmulateScale(2), chromedp.EmulateMobile, chromedp.EmulateTouch, chromedp.EmulatePortrait))
	} else {
		steps = append(steps, chromedp.EmulateViewport(o.width, o.height))
	}
	scheme := "light"
	if o.dark {
		scheme = "dark"
	}
	steps = append(steps, chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := cdp.Call(ctx, tg, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{
			Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: scheme}}})
		return err
	}))
	if o.noScript {
		steps = append(steps, chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			_, err := cdp.Call(ctx, tg, emulation.SetScriptExecutionDisabled, emulation.SetScriptExecutionDisabledParams{Value: true})
			return err
		}))
	}
	if err := chromedp.Do(bctx, steps...); err != nil {
		t.Fatalf("starting %s: %v", exe, err)
	}
	return bctx
}

// callback is a loopback redirect URI served by the test: it records the
// query of every redirect it receives.
type callback struct {
	srv *httptest.Server
	got chan url.Values
}

// newCallback serves http://127.0.0.1:PORT/callback for the test.
func newCallback(t *testing.T) *callback {
	t.Helper()
	c := &callback{got: make(chan url.Values, 4)}
	c.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/callback" {
			http.NotFound(w, r)
			return
		}
		c.got <- r.URL.Query()
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprint(w, `<!doctype html><title>callback</title><p id="result">redirect received</p>`)
	}))
	t.Cleanup(c.srv.Close)
	return c
}

// URL is the redirect URI.
func (c *callback) URL() string { return c.srv.URL + "/callback" }

// wait returns the query of the first redirect.
func (c *callback) wait(t *testing.T) url.Values {
	t.Helper()
	select {
	case q := <-c.got:
		return q
	case <-time.After(30 * time.Second):
		t.Fatal("no redirect reached the loopback callback")
		return nil
	}
}

// oauthConfig is an x/oauth2 client of demo-app at issuer redirecting to
// redirectURI.
func oauthConfig(issuer, redirectURI string) *oauth2.Config {
	return &oauth2.Config{
		ClientID:    demoClientID,
		Endpoint:    oauth2.Endpoint{AuthURL: issuer + "/authorize", TokenURL: issuer + "/token", AuthStyle: oauth2.AuthStyleInParams},
		RedirectURL: redirectURI,
		Scopes:      []string{"profile", "email"},
	}
}

var (
	democlientOnce sync.Once
	democlientPath string
	democlientErr  error
)

// democlientBinary builds ./cmd/democlient once per test process.
func democlientBinary(t *testing.T) string {
	t.Helper()
	democlientOnce.Do(func() {
		dir, err := os.MkdirTemp("", "democlient-bin")
		if err != nil {
			democlientErr = err
			return
		}
		democlientPath = filepath.Join(dir, "democlient")
		cmd := exec.Command("go", "build", "-o", democlientPath, "./cmd/democlient")
		cmd.Dir = filepath.Join("..", "..")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			democlientErr = fmt.Errorf("go build ./cmd/democlient: %v\n%s", err, out)
		}
	})
	if democlientErr != nil {
		t.Fatal(democlientErr)
	}
	return democlientPath
}

// democlient is a running cmd/democlient --no-browser.
type democlient struct {
	authURL string
	out     *testbin.Buffer // stdout and stderr
	done    chan error
}

// startDemoclient runs democlient against issuer and waits for the
// authorization URL it prints.
func startDemoclient(t *testing.T, issuer string) *democlient {
	t.Helper()
	return runDemoclient(t, issuer, func(line string) string {
		if u := strings.TrimSpace(line); strings.HasPrefix(u, issuer+"/authorize?") {
			return u
		}
		return ""
	}, "--no-browser")
}

// runDemoclient runs democlient against issuer with args and waits for the
// first line of its output from which pick returns a URL.
func runDemoclient(t *testing.T, issuer string, pick func(line string) string, args ...string) *democlient {
	t.Helper()
	cmd := exec.Command(democlientBinary(t), append([]string{"--issuer", issuer, "--timeout", "60s"}, args...)...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	d := &democlient{out: &testbin.Buffer{}, done: make(chan error, 1)}
	cmd.Stderr = d.out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	urlc := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			fmt.Fprintln(d.out, line)
			if u := pick(line); u != "" {
				select {
				case urlc <- u:
				default:
				}
			}
		}
		d.done <- cmd.Wait()
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
	})
	select {
	case d.authURL = <-urlc:
	case err := <-d.done:
		t.Fatalf("democlient exited: %v\n%s", err, d.out)
	case <-time.After(30 * time.Second):
		t.Fatalf("democlient printed no authorization URL:\n%s", d.out)
	}
	return d
}

// wait waits for democlient to exit and returns its output and exit error.
func (d *democlient) wait(t *testing.T) (string, error) {
	t.Helper()
	select {
	case err := <-d.done:
		return d.out.String(), err
	case <-time.After(60 * time.Second):
		t.Fatalf("democlient did not exit:\n%s", d.out)
		return "", nil
	}
}

// signIn types the credentials on the sign-in page and submits the form.
func signIn(email, password string) chromedp.Action[chromedp.Void] {
	return chromedp.Steps(
		chromedp.WaitVisible(chromedp.ID("username")),
		chromedp.SendKeys(chromedp.ID("username"), email),
		chromedp.SendKeys(chromedp.ID("password"), password),
		chromedp.Click(chromedp.CSS(`form button[type=submit]`)),
	)
}

// screenshot writes a PNG of the viewport to the test's temporary directory
// and, with AUTHSERVER_UPDATE_SCREENSHOTS=1, to docs/screenshots/.
func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	dirs := []string{t.TempDir()}
	if os.Getenv("AUTHSERVER_UPDATE_SCREENSHOTS") == "1" {
		dirs = append(dirs, filepath.Join("..", "..", "docs", "screenshots"))
	}
	for _, dir := range dirs {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, name+".png")
		if err := os.WriteFile(p, png, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("screenshot: %s", p)
	}
}
