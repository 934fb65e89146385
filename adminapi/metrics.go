package adminapi

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Series are the counters the console charts, by metric family.
var chartSeries = []struct{ Title, Metric string }{
	{"Tokens issued", "authserver_tokens_issued_total"},
	{"Failed sign-ins", "authserver_login_failures_total"},
	{"Throttled requests", "authserver_throttled_total"},
	{"Refresh token reuse", "authserver_refresh_reuse_detected_total"},
}

// minutes is the length of the charts' window.
const minutes = 60

// MetricsRing keeps per-minute increments of the charted counters for the
// last hour, read in-process from the server's metrics (no Prometheus).
type MetricsRing struct {
	g    prometheus.Gatherer
	mu   sync.Mutex
	last map[string]float64
	// counts[series][minute % minutes], stamped by minute.
	counts [][minutes]float64
	stamp  [minutes]int64
}

// NewMetricsRing reads the counters of g.
func NewMetricsRing(g prometheus.Gatherer) *MetricsRing {
	return &MetricsRing{g: g, counts: make([][minutes]float64, len(chartSeries))}
}

// Run samples every 10 seconds until ctx is done.
func (m *MetricsRing) Run(done <-chan struct{}) {
	t := time.NewTicker(10 * time.Second)
	defer t.Stop()
	m.Sample(time.Now())
	for {
		select {
		case <-done:
			return
		case now := <-t.C:
			m.Sample(now)
		}
	}
}

// Sample reads the counters and adds their increase since the previous
// sample to the minute of now.
func (m *MetricsRing) Sample(now time.Time) {
	fams, err := m.g.Gather()
	if err != nil {
		return
	}
	cur := map[string]float64{}
	for _, f := range fams {
		for _, mt := range f.GetMetric() {
			if c := mt.GetCounter(); c != nil {
				cur[f.GetName()] += c.GetValue()
			}
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	min := now.Unix() / 60
	slot := int(min % minutes)
	if m.stamp[slot] != min {
		m.stamp[slot] = min
		for i := range m.counts {
			m.counts[i][slot] = 0
		}
	}
	if m.last != nil {
		for i, s := range chartSeries {
			if d := cur[s.Metric] - m.last[s.Metric]; d > 0 {
				m.counts[i][slot] += d
			}
		}
	}
	m.last = cur
}

// window returns, per series, the counts of the last hour, oldest first.
func (m *MetricsRing) window(now time.Time) [][]float64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([][]float64, len(chartSeries))
	end := now.Unix() / 60
	for i := range chartSeries {
		out[i] = make([]float64, minutes)
		for k := range minutes {
			min := end - int64(minutes-1-k)
			slot := int(min % minutes)
			if m.stamp[slot] == min {
				out[i][k] = m.counts[i][slot]
			}
		}
	}
	return out
}
