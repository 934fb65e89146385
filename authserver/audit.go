package authserver

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/otel/trace"
)

// Audit events of successful issuance. Every other event (failures,
// throttling, refresh reuse, revocation, key rotation, admin changes, and any
// event added later) is always written when the audit log is on.
var issuanceEvents = map[string]bool{
	"token_issued":                 true,
	"login_succeeded":              true,
	"refresh_replayed":             true,
	"code_issued":                  true,
	"signed_in":                    true,
	"authorization_request_pushed": true,
}

// AuditLog writes audit events as JSON lines, one object per event, on a sink
// of its own (separate from the operational log). The schema is stable:
//
//	{"time":"2025-01-02T15:04:05.123456789Z","event":"login_failed","reason":"bad_credentials","ip":"192.0.2.7"}
//
// time (RFC 3339, UTC) and event come first; the other attributes are
// event-specific, from a fixed vocabulary: sub, client_id, grant, kind,
// reason, retry_after, issuer, open, secret_issued, ip, kid, alg, command,
// target, result, form, trace_id (README.md lists them by event). No
// attribute ever holds a password, secret or token. The zero value and a nil
// *AuditLog discard everything.
type AuditLog struct {
	h slog.Handler
	// sample is the fraction of issuance events written: 1 all, 0 none.
	sample float64
}

// NewAuditLog returns an audit log writing JSON lines to w (nil: off).
// issuance is the fraction of successful-issuance events (token_issued,
// login_succeeded, refresh_replayed, code_issued, signed_in,
// authorization_request_pushed) that are written: 1 for all, 0 for none,
// or a sampling rate in between; every other event is always written.
// Writes to w are serialized.
func NewAuditLog(w io.Writer, issuance float64) *AuditLog {
	if w == nil {
		return &AuditLog{}
	}
	h := slog.NewJSONHandler(w, &slog.HandlerOptions{ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
		if len(groups) > 0 {
			return a
		}
		switch a.Key {
		case slog.LevelKey:
			return slog.Attr{} // every event has the same level
		case slog.MessageKey:
			a.Key = "event"
		case slog.TimeKey:
			a.Value = slog.StringValue(a.Value.Time().UTC().Format(time.RFC3339Nano))
		}
		return a
	}})
	return &AuditLog{h: h, sample: min(max(issuance, 0), 1)}
}

// ParseAuditIssuance parses the value of --audit-issuance: "all", "none",
// or a sampling rate between 0 and 1 (such as 0.01).
func ParseAuditIssuance(s string) (float64, error) {
	switch strings.ToLower(s) {
	case "all":
		return 1, nil
	case "none":
		return 0, nil
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || !(f >= 0 && f <= 1) {
		return 0, fmt.Errorf("must be all, none or a sampling rate between 0 and 1, not %q", s)
	}
	return f, nil
}

// Enabled reports whether events are written at all.
func (l *AuditLog) Enabled() bool { return l != nil && l.h != nil }

// Log writes one event with attrs, unless it is an issuance event left out
// by sampling.
func (l *AuditLog) Log(ctx context.Context, event string, attrs ...slog.Attr) {
	if !l.Enabled() {
		return
	}
	if issuanceEvents[event] && l.sample < 1 && (l.sample == 0 || rand.Float64() >= l.sample) {
		return
	}
	r := slog.NewRecord(time.Now(), slog.LevelInfo, event, 0)
	r.AddAttrs(attrs...)
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		r.AddAttrs(slog.String("trace_id", sc.TraceID().String()))
	}
	_ = l.h.Handle(ctx, r)
}

// KeyEvent records a signing key lifecycle event (keys.Config.OnEvent):
// key_created, key_activated, key_retired, key_rescheduled, key_deleted,
// key_dropped.
func (l *AuditLog) KeyEvent(ctx context.Context, what, kid, alg string) {
	l.Log(ctx, "key_"+what, slog.String("kid", kid), slog.String("alg", alg))
}
