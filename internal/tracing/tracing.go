// Package tracing sets up optional OpenTelemetry tracing for authserver: an
// OTLP/HTTP exporter, a span per HTTP request, and a log handler that puts
// the trace ID on log lines. It is shared by cmd/authserver and authserver.
//
// Tracing is off unless an endpoint is configured; off, Setup returns a nil
// provider and Handler returns its handler unchanged, so nothing is added to
// a request.
package tracing

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// ScopeName is the instrumentation scope of authserver's spans.
const ScopeName = "github.com/oauthkit/authserver"

// Enabled reports whether tracing is requested: an endpoint flag, or one of
// the standard OTEL_EXPORTER_OTLP_ENDPOINT and
// OTEL_EXPORTER_OTLP_TRACES_ENDPOINT variables.
func Enabled(endpoint string) bool {
	return endpoint != "" || os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || os.Getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != ""
}

// Setup starts an OTLP/HTTP trace exporter when Enabled(endpoint), and
// returns its provider and a shutdown function that flushes pending spans.
// endpoint is a URL such as http://collector:4318 (the path /v1/traces is
// added); empty, the OTEL_EXPORTER_OTLP_* variables configure the exporter
// (endpoint, headers, timeout, certificates). OTEL_SERVICE_NAME and
// OTEL_RESOURCE_ATTRIBUTES describe the service (default service.name
// authserver). Only the http/protobuf protocol is supported. When tracing is
// not enabled, tp is nil and shutdown does nothing.
func Setup(ctx context.Context, endpoint, version string) (tp trace.TracerProvider, shutdown func(context.Context) error, err error) {
	if !Enabled(endpoint) {
		return nil, func(context.Context) error { return nil }, nil
	}
	for _, v := range []string{"OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"} {
		if p := os.Getenv(v); p != "" && p != "http/protobuf" {
			return nil, nil, fmt.Errorf("tracing: %s=%s is not supported; use http/protobuf", v, p)
		}
	}
	var opts []otlptracehttp.Option
	if endpoint != "" {
		opts = append(opts, otlptracehttp.WithEndpointURL(strings.TrimSuffix(endpoint, "/")+"/v1/traces"))
	}
	exp, err := otlptracehttp.New(ctx, opts...)
	if err != nil {
		return nil, nil, fmt.Errorf("tracing: OTLP exporter: %w", err)
	}
	res, err := resource.New(ctx,
		resource.WithAttributes(attribute.String("service.name", "authserver"), attribute.String("service.version", version)),
		resource.WithFromEnv())
	if err != nil {
		return nil, nil, fmt.Errorf("tracing: resource: %w", err)
	}
	p := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))
	otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}))
	return p, p.Shutdown, nil
}

// Handler wraps h in a server span named name per request, continuing a
// trace from the request's traceparent header (W3C Trace Context). With a
// nil tp it returns h itself.
func Handler(tp trace.TracerProvider, name string, h http.Handler) http.Handler {
	if tp == nil {
		return h
	}
	tracer := tp.Tracer(ScopeName)
	prop := propagation.TraceContext{}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := prop.Extract(r.Context(), propagation.HeaderCarrier(r.Header))
		ctx, span := tracer.Start(ctx, name, trace.WithSpanKind(trace.SpanKindServer),
			trace.WithAttributes(attribute.String("http.request.method", r.Method), attribute.String("url.path", r.URL.Path)))
		defer span.End()
		sw := &statusWriter{ResponseWriter: w, code: http.StatusOK}
		h.ServeHTTP(sw, r.WithContext(ctx))
		span.SetAttributes(attribute.Int("http.response.status_code", sw.code))
		if sw.code >= 500 {
			span.SetStatus(codes.Error, http.StatusText(sw.code))
		}
	})
}

type statusWriter struct {
	http.ResponseWriter
	code        int
	wroteHeader bool
}

func (w *statusWriter) WriteHeader(code int) {
	if !w.wroteHeader {
		w.code, w.wroteHeader = code, true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Start starts a span named name under ctx's span, or returns ctx and a
// no-op span when tracer is nil (tracing off).
func Start(ctx context.Context, tracer trace.Tracer, name string, attrs ...attribute.KeyValue) (context.Context, trace.Span) {
	if tracer == nil {
		return ctx, noSpan
	}
	return tracer.Start(ctx, name, trace.WithAttributes(attrs...))
}

var noSpan = trace.SpanFromContext(context.Background()) // a no-op span

// End marks span as failed when err is not nil, and ends it. The error's
// text is not recorded: it may quote values (a token signature, an email)
// that must not leave the process.
func End(span trace.Span, err error) {
	if err != nil {
		span.SetAttributes(attribute.String("error.type", fmt.Sprintf("%T", err)))
		span.SetStatus(codes.Error, "error")
	}
	span.End()
}

// LogHandler wraps h so that every record logged with a context holding a
// valid span carries trace_id and span_id.
func LogHandler(h slog.Handler) slog.Handler { return logHandler{h} }

type logHandler struct{ slog.Handler }

func (l logHandler) Handle(ctx context.Context, r slog.Record) error {
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		r = r.Clone()
		r.AddAttrs(slog.String("trace_id", sc.TraceID().String()), slog.String("span_id", sc.SpanID().String()))
	}
	return l.Handler.Handle(ctx, r)
}

func (l logHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return logHandler{l.Handler.WithAttrs(attrs)}
}

func (l logHandler) WithGroup(name string) slog.Handler { return logHandler{l.Handler.WithGroup(name)} }
