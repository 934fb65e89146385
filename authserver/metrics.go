package authserver

import (
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/oauthkit/authserver/keys"
)

// metrics are the server's Prometheus metrics. Every label value comes from
// a fixed set (route names, status codes, grant types): nothing a client
// sends becomes a label.
type metrics struct {
	reg            *prometheus.Registry
	requests       *prometheus.CounterVec
	duration       *prometheus.HistogramVec
	tokens         *prometheus.CounterVec
	loginFailures  prometheus.Counter
	codes          prometheus.Counter
	signIns        prometheus.Counter
	throttled      *prometheus.CounterVec
	introspections *prometheus.CounterVec
	refreshReuse   prometheus.Counter
	revocations    prometheus.Counter
	commitBatch    prometheus.Histogram
	commitDuration prometheus.Histogram
}

func newMetrics(km *keys.Manager) *metrics {
	m := &metrics{reg: prometheus.NewRegistry()}
	f := func(c prometheus.Collector) { m.reg.MustRegister(c) }
	m.requests = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "authserver_http_requests_total",
		Help: "HTTP requests by endpoint and status code."}, []string{"endpoint", "code"})
	m.duration = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "authserver_http_request_duration_seconds",
		Help:    "HTTP request latency by endpoint.",
		Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5}}, []string{"endpoint"})
	m.tokens = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "authserver_tokens_issued_total",
		Help: "Token responses by grant type."}, []string{"grant"})
	m.loginFailures = prometheus.NewCounter(prometheus.CounterOpts{Name: "authserver_login_failures_total",
		Help: "Password grant attempts with bad credentials."})
	m.codes = prometheus.NewCounter(prometheus.CounterOpts{Name: "authserver_authorization_codes_issued_total",
		Help: "Authorization codes issued at the authorization endpoint."})
	m.signIns = prometheus.NewCounter(prometheus.CounterOpts{Name: "authserver_sign_ins_total",
		Help: "Successful sign-ins on the sign-in page."})
	m.throttled = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "authserver_throttled_total",
		Help: "Requests refused by brute-force throttling, by kind (password, client)."}, []string{"kind"})
	m.introspections = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "authserver_introspections_total",
		Help: "Introspection responses by result (active, inactive, error)."}, []string{"result"})
	m.refreshReuse = prometheus.NewCounter(prometheus.CounterOpts{Name: "authserver_refresh_reuse_detected_total",
		Help: "Replays of a rotated refresh token (the grant is revoked)."})
	m.revocations = prometheus.NewCounter(prometheus.CounterOpts{Name: "authserver_revocations_total",
		Help: "Grants revoked at the revocation endpoint."})
	m.commitBatch = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "authserver_token_commit_batch_size",
		Help:    "Token responses whose records were committed together in one transaction (group commit).",
		Buckets: []float64{1, 2, 4, 8, 16, 32, 64, 128, 256}})
	m.commitDuration = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "authserver_token_commit_duration_seconds",
		Help:    "Time of one group-commit transaction, from begin to the end of the commit (fsync included).",
		Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1}})
	for _, c := range []prometheus.Collector{m.requests, m.duration, m.tokens, m.loginFailures, m.codes, m.signIns, m.throttled,
		m.introspections, m.refreshReuse, m.revocations, m.commitBatch, m.commitDuration,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		&keyCollector{km: km}} {
		f(c)
	}
	return m
}

// register adds a collector (for example database pool statistics).
func (m *metrics) register(c prometheus.Collector) { m.reg.MustRegister(c) }

// instrument wraps a route's handler with request counting and timing.
func (m *metrics) instrument(endpoint string, h http.Handler) http.Handler {
	dur := m.duration.WithLabelValues(endpoint)
	var counters sync.Map // status code → prometheus.Counter of this endpoint
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w, code: http.StatusOK}
		h.ServeHTTP(sw, r)
		dur.Observe(time.Since(start).Seconds())
		c, ok := counters.Load(sw.code)
		if !ok {
			c, _ = counters.LoadOrStore(sw.code, m.requests.WithLabelValues(endpoint, strconv.Itoa(sw.code)))
		}
		c.(prometheus.Counter).Inc()
	})
}

// handler serves the metrics in the Prometheus text format.
func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
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

// keyCollector reports the signing keys by state and counts changes of the
// active key seen by this instance (rotations).
type keyCollector struct {
	km        *keys.Manager
	mu        sync.Mutex
	lastKID   string
	rotations float64
}

var (
	keysDesc      = prometheus.NewDesc("authserver_signing_keys", "Signing keys by state.", []string{"state"}, nil)
	rotationsDesc = prometheus.NewDesc("authserver_key_rotations_total", "Changes of the active signing key seen by this instance.", nil, nil)
)

func (k *keyCollector) Describe(ch chan<- *prometheus.Desc) { ch <- keysDesc; ch <- rotationsDesc }

func (k *keyCollector) Collect(ch chan<- prometheus.Metric) {
	counts := map[string]float64{"next": 0, "active": 0, "retired": 0}
	for _, ki := range k.km.List() {
		counts[string(ki.State)]++
	}
	for state, n := range counts {
		ch <- prometheus.MustNewConstMetric(keysDesc, prometheus.GaugeValue, n, state)
	}
	k.mu.Lock()
	if cur, err := k.km.Current(); err == nil {
		if k.lastKID != "" && cur.KeyID != k.lastKID {
			k.rotations++
		}
		k.lastKID = cur.KeyID
	}
	r := k.rotations
	k.mu.Unlock()
	ch <- prometheus.MustNewConstMetric(rotationsDesc, prometheus.CounterValue, r)
}
