// Package testbin builds the authserver binary and runs it for end-to-end
// tests: real processes, real ports, real databases. It is imported only by
// tests.
package testbin

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// moduleRoot finds the directory holding go.mod, from this source file.
func moduleRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// Binary builds ./cmd/authserver once per test process (CGO_ENABLED=0) and
// returns its path.
func Binary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "authserver-bin")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "authserver")
		cmd := exec.Command("go", "build", "-o", binPath, "./cmd/authserver")
		cmd.Dir = moduleRoot()
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// Server is a running authserver process.
type Server struct {
	t    testing.TB
	Cmd  *exec.Cmd
	URL  string
	Logs *Buffer
	done chan error
}

// Buffer is a goroutine-safe log buffer.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *Buffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String returns everything written so far.
func (s *Buffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

var listeningRE = regexp.MustCompile(`msg=listening addr=(\S+)`)

// Run runs an admin command of the binary and returns its stdout.
func Run(t testing.TB, stdin string, args ...string) string {
	t.Helper()
	cmd := exec.Command(Binary(t), args...)
	cmd.Stdin = bytes.NewBufferString(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("authserver %v: %v\n%s", args, err, errb.String())
	}
	return out.String()
}

// Issuer is the --issuer Start gives every server: the same for all of a
// test's instances and across restarts, as behind one public URL (a server
// on port 0 would otherwise name its own, different, port).
const Issuer = "http://localhost:18999"

// Start runs `authserver serve` with args (it adds --addr 127.0.0.1:0,
// --issuer Issuer, cheap argon2 parameters and --admin-addr off unless
// given) and waits for its
// "listening" line. The process is killed at the end of the test.
func Start(t testing.TB, env []string, args ...string) *Server {
	t.Helper()
	all := append([]string{"serve", "--addr", "127.0.0.1:0", "--issuer", Issuer, "--argon2-memory", "64", "--argon2-time", "1"}, args...)
	if !slices.Contains(args, "--admin-addr") {
		// Tests run servers side by side: none takes the default admin
		// address 127.0.0.1:8081.
		all = append(all, "--admin-addr", "off")
	}
	cmd := exec.Command(Binary(t), all...)
	cmd.Env = append(os.Environ(), env...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s := &Server{t: t, Cmd: cmd, Logs: &Buffer{}, done: make(chan error, 1)}
	addrc := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			s.Logs.Write([]byte(line + "\n"))
			if m := listeningRE.FindStringSubmatch(line); m != nil {
				addrc <- m[1]
			}
		}
		_, _ = io.Copy(io.Discard, stderr)
	}()
	go func() { s.done <- cmd.Wait() }()
	t.Cleanup(func() { s.Kill() })
	select {
	case addr := <-addrc:
		s.URL = "http://" + addr
	case err := <-s.done:
		s.done <- err
		t.Fatalf("server exited: %v\n%s", err, s.Logs.String())
	case <-time.After(60 * time.Second):
		t.Fatalf("server did not start:\n%s", s.Logs.String())
	}
	return s
}

// WaitLog waits until the server's log contains sub.
func (s *Server) WaitLog(sub string) {
	s.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(s.Logs.String(), sub) {
		if time.Now().After(deadline) {
			s.t.Fatalf("no %q in the log:\n%s", sub, s.Logs.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// WaitExit waits for the process to exit and returns its exit error.
func (s *Server) WaitExit() error {
	s.t.Helper()
	select {
	case err := <-s.done:
		s.done <- err
		return err
	case <-time.After(30 * time.Second):
		s.t.Fatalf("server did not exit:\n%s", s.Logs.String())
		return nil
	}
}

// Exited reports, without waiting, whether the process has exited, and its
// exit error.
func (s *Server) Exited() (bool, error) {
	select {
	case err := <-s.done:
		s.done <- err
		return true, err
	default:
		return false, nil
	}
}

// Kill sends SIGKILL and waits for the process.
func (s *Server) Kill() {
	_ = s.Cmd.Process.Signal(syscall.SIGKILL)
	err := <-s.done
	s.done <- err
}

// Stop sends SIGTERM and returns the exit error.
func (s *Server) Stop() error {
	_ = s.Cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-s.done:
		s.done <- err
		return err
	case <-time.After(30 * time.Second):
		s.t.Fatal("server did not stop")
		return nil
	}
}

// Client is an HTTP client for tests with keep-alive and a timeout.
var Client = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}

// PostForm posts a form with optional basic credentials and decodes the JSON
// answer.
func PostForm(t testing.TB, u string, form url.Values, user, pass string) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, u, bytes.NewBufferString(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if user != "" {
		req.SetBasicAuth(url.QueryEscape(user), url.QueryEscape(pass))
	}
	resp, err := Client.Do(req)
	if err != nil {
		return 0, map[string]any{"transport_error": err.Error()}
	}
	defer resp.Body.Close()
	var m map[string]any
	b, _ := io.ReadAll(resp.Body)
	_ = json.Unmarshal(b, &m)
	return resp.StatusCode, m
}
