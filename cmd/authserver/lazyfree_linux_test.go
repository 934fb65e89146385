package main

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestServeRunsWithLazyFree runs the built binary: serve re-executes itself
// (same PID) with GODEBUG=madvdontneed=0 added to the operator's GODEBUG,
// and leaves an explicit madvdontneed setting alone.
func TestServeRunsWithLazyFree(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := filepath.Join(t.TempDir(), "authserver")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	for _, c := range []struct{ godebug, want string }{
		{"", "madvdontneed=0"},
		{"gctrace=0", "gctrace=0,madvdontneed=0"},
		{"madvdontneed=1", "madvdontneed=1"},
	} {
		t.Run(c.want, func(t *testing.T) {
			dir := t.TempDir()
			cmd := exec.Command(bin, "serve", "--demo", "--db", filepath.Join(dir, "a.db"),
				"--addr", "127.0.0.1:0", "--admin-addr", "off", "--audit-log", "off")
			cmd.Env = append(os.Environ(), "GODEBUG="+c.godebug)
			stderr, err := cmd.StderrPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
			listening := make(chan bool, 1)
			go func() {
				sc := bufio.NewScanner(stderr)
				for sc.Scan() {
					if strings.Contains(sc.Text(), "msg=listening") {
						listening <- true
					}
				}
				close(listening)
			}()
			select {
			case ok := <-listening:
				if !ok {
					t.Fatal("serve ended before listening")
				}
			case <-time.After(60 * time.Second):
				t.Fatal("serve did not listen within 60 s")
			}
			// The process that listens is the one started (exec keeps the PID).
			env, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(cmd.Process.Pid), "environ"))
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, kv := range bytes.Split(env, []byte{0}) {
				if v, ok := strings.CutPrefix(string(kv), "GODEBUG="); ok {
					got = append(got, v)
				}
			}
			if len(got) != 1 || got[0] != c.want {
				t.Fatalf("GODEBUG of the serving process = %q, want [%q]", got, c.want)
			}
		})
	}
}
