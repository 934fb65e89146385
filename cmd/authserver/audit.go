package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/oauthkit/authserver/authserver"
)

// auditLogUsage is the help text of --audit-log, on serve and on the admin
// commands that change something.
const auditLogUsage = "audit log sink: stderr, off, or a file to append JSON lines to (see the README for the schema)"

// openAuditLog opens the audit sink named by --audit-log: "stderr", "off",
// or a file opened for appending (created 0600). close releases it.
func openAuditLog(dest string, stderr io.Writer, issuance float64) (log *authserver.AuditLog, close func() error, err error) {
	return openAuditLogTee(dest, stderr, issuance, nil)
}

// openAuditLogTee is openAuditLog that also copies every line to tee (the
// admin API's ring of recent events) unless the log is off.
func openAuditLogTee(dest string, stderr io.Writer, issuance float64, tee io.Writer) (log *authserver.AuditLog, close func() error, err error) {
	with := func(w io.Writer) io.Writer {
		if tee == nil {
			return w
		}
		return io.MultiWriter(w, tee)
	}
	switch dest {
	case "off":
		return authserver.NewAuditLog(nil, 0), func() error { return nil }, nil
	case "stderr":
		return authserver.NewAuditLog(with(stderr), issuance), func() error { return nil }, nil
	case "":
		return nil, nil, fmt.Errorf("--audit-log must be stderr, off or a file path")
	}
	f, err := os.OpenFile(dest, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, nil, fmt.Errorf("--audit-log: %w", err)
	}
	return authserver.NewAuditLog(with(f), issuance), f.Close, nil
}

// adminChanges are the commands that change users, clients, tokens or keys;
// each run of one is audited as an admin_change event.
var adminChanges = []string{
	"users add", "users set-password", "users set-roles", "users disable", "users enable", "users delete",
	"users revoke-consent",
	"clients add", "clients update", "clients rotate-secret", "clients delete", "tokens revoke", "keys rotate",
}

// adminTargetFlags name what an admin command acts on when it takes no
// argument. None of them holds a secret (secrets are read from stdin).
var adminTargetFlags = []string{"email", "id", "user", "client"}

// auditAdminCommands gives each admin group that changes something an
// --audit-log flag (read from AUTHSERVER_AUDIT_LOG and the config file as
// every flag is) and wraps each changing command so that it writes an
// admin_change event, successful or not, to that sink.
func (g *globals) auditAdminCommands(root *cobra.Command) {
	groups := map[string]*string{}
	for _, path := range adminChanges {
		cmd, _, err := root.Find(strings.Fields(path))
		if err != nil || cmd.RunE == nil {
			panic("authserver: admin command " + path + " not found")
		}
		group := cmd.Parent()
		dest, ok := groups[group.Name()]
		if !ok {
			dest = new(string)
			group.PersistentFlags().StringVar(dest, "audit-log", "stderr", auditLogUsage)
			groups[group.Name()] = dest
		}
		inner, path := cmd.RunE, path
		cmd.RunE = func(c *cobra.Command, args []string) error {
			audit, closeAudit, err := openAuditLog(*dest, g.stderr, 1)
			if err != nil {
				return err
			}
			defer closeAudit()
			g.audit = audit
			runErr := inner(c, args)
			audit.Log(c.Context(), "admin_change", adminAttrs(c.Flags(), path, args, runErr)...)
			return runErr
		}
	}
}

// adminAttrs describes one admin command run: the command, its target, and
// the result. It never records flag values other than the target's.
func adminAttrs(fs *pflag.FlagSet, path string, args []string, err error) []slog.Attr {
	attrs := []slog.Attr{slog.String("command", path)}
	var target []string
	target = append(target, args...)
	for _, name := range adminTargetFlags {
		if f := fs.Lookup(name); f != nil && f.Changed {
			target = append(target, f.Value.String())
		}
	}
	if len(target) > 0 {
		attrs = append(attrs, slog.String("target", strings.Join(target, " ")))
	}
	result := "ok"
	if err != nil {
		result = "error"
	}
	return append(attrs, slog.String("result", result))
}

// keyEvents returns a keys.Config.OnEvent hook writing to audit (nil: none).
func keyEvents(audit *authserver.AuditLog) func(ctx context.Context, what, kid, alg string) {
	if !audit.Enabled() {
		return nil
	}
	return audit.KeyEvent
}
