package main

import (
	"os"
	"syscall"
)

// lazyFree re-executes the process (same PID, arguments and environment)
// with lazyFreeSetting added to GODEBUG, which the Go runtime reads only at
// start-up. It returns when there is nothing to do, and when the exec fails,
// in which case the server runs with the runtime's default.
func lazyFree() {
	if !reexecAllowed {
		return
	}
	godebug, change := godebugWithLazyFree(os.Getenv("GODEBUG"))
	if !change {
		return
	}
	exe, err := os.Executable()
	if err != nil {
		return
	}
	env := []string{"GODEBUG=" + godebug}
	for _, kv := range os.Environ() {
		if len(kv) < len("GODEBUG=") || kv[:len("GODEBUG=")] != "GODEBUG=" {
			env = append(env, kv)
		}
	}
	_ = syscall.Exec(exe, os.Args, env)
}
