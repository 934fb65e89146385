package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// SIGTERM with a request in flight: the listener closes, the request still
// completes, and the process exits 0. The request is held in flight
// deterministically: it announces its body with "Expect: 100-continue", the
// server's "100 Continue" proves the handler is reading it, and the body is
// sent only after the shutdown has begun.
func TestShutdownFinishesInFlightRequest(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	s := startServer(t, filepath.Join(t.TempDir(), "authserver.db"), "--demo")
	addr := strings.TrimPrefix(s.URL, "http://")

	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	body := url.Values{"grant_type": {"password"}, "username": {"alice@example.com"}, "password": {"password123"}, "client_id": {"demo"}}.Encode()
	fmt.Fprintf(conn, "POST /token HTTP/1.1\r\nHost: %s\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: %d\r\nExpect: 100-continue\r\n\r\n", addr, len(body))
	br := bufio.NewReader(conn)
	status, err := br.ReadString('\n')
	if err != nil || !strings.HasPrefix(status, "HTTP/1.1 100 ") {
		t.Fatalf("want 100 Continue, got %q %v", status, err)
	}
	if blank, err := br.ReadString('\n'); err != nil || blank != "\r\n" {
		t.Fatalf("after 100 Continue: %q %v", blank, err)
	}

	if err := s.Cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	s.WaitLog("msg=\"shutting down\"")
	// New connections are refused while the request is still in flight.
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			break
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatal("the listener is still open 10s after SIGTERM")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if exited, err := s.Exited(); exited {
		t.Fatalf("the server exited with a request in flight: %v\n%s", err, s.Logs.String())
	}

	// Finish the request: it completes with a token.
	if _, err := io.WriteString(conn, body); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("in-flight request: %v\n%s", err, s.Logs.String())
	}
	var tok map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&tok)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || tok["access_token"] == nil {
		t.Fatalf("in-flight request: %d %v", resp.StatusCode, tok)
	}
	if err := s.WaitExit(); err != nil {
		t.Fatalf("exit after SIGTERM: %v\n%s", err, s.Logs.String())
	}
	if !strings.Contains(s.Logs.String(), "msg=stopped") {
		t.Errorf("no \"stopped\" line:\n%s", s.Logs.String())
	}
}

// With --drain-delay, /readyz fails at once after SIGTERM while the listener
// is still open, so a load balancer stops sending traffic before it closes.
func TestReadyzFailsWhileDraining(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	s := startServer(t, filepath.Join(t.TempDir(), "authserver.db"), "--drain-delay", "2s")
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	readyz := func() (int, map[string]any) {
		t.Helper()
		resp, err := client.Get(s.URL + "/readyz")
		if err != nil {
			t.Fatalf("/readyz: %v", err)
		}
		defer resp.Body.Close()
		var m map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&m)
		return resp.StatusCode, m
	}
	if code, m := readyz(); code != http.StatusOK {
		t.Fatalf("/readyz before shutdown: %d %v", code, m)
	}
	signalled := time.Now()
	if err := s.Cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	s.WaitLog("msg=\"shutting down\"")
	code, m := readyz() // a new connection: the listener is still open
	checks, _ := m["checks"].(map[string]any)
	if code != http.StatusServiceUnavailable || m["ready"] != false || checks["shutdown"] != "yes" {
		t.Fatalf("/readyz while draining: %d %v", code, m)
	}
	if err := s.WaitExit(); err != nil {
		t.Fatalf("exit after SIGTERM: %v\n%s", err, s.Logs.String())
	}
	if d := time.Since(signalled); d < 2*time.Second {
		t.Errorf("exited %v after SIGTERM, before the 2s drain delay", d)
	}
}
