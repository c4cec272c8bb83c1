package realtime

import (
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the WebSocket counters of a node.
type Metrics struct {
	connections  prometheus.Gauge
	framesIn     prometheus.Counter
	framesOut    prometheus.Counter
	writes       prometheus.Counter
	errors       *prometheus.CounterVec
	slowDropped  prometheus.Counter
	fanoutFrames prometheus.Counter
	dropped      prometheus.Counter
	// sessionsEnded counts sockets closed because their session ended
	// (expired, revoked) and auth frames that renewed one (renewed).
	sessionsEnded *prometheus.CounterVec
	conns         atomic.Int64
}

func newMetrics() *Metrics {
	return &Metrics{
		connections:   prometheus.NewGauge(prometheus.GaugeOpts{Name: "chatflow_ws_connections", Help: "Open WebSocket connections on this node."}),
		framesIn:      prometheus.NewCounter(prometheus.CounterOpts{Name: "chatflow_ws_frames_in_total", Help: "Frames received from clients."}),
		framesOut:     prometheus.NewCounter(prometheus.CounterOpts{Name: "chatflow_ws_frames_out_total", Help: "Frames written to clients."}),
		writes:        prometheus.NewCounter(prometheus.CounterOpts{Name: "chatflow_ws_writes_total", Help: "Socket writes of queued frames (one syscall each; frames_out ÷ writes is the coalescing)."}),
		errors:        prometheus.NewCounterVec(prometheus.CounterOpts{Name: "chatflow_ws_error_frames_total", Help: "Error frames sent, by code."}, []string{"code"}),
		slowDropped:   prometheus.NewCounter(prometheus.CounterOpts{Name: "chatflow_ws_slow_disconnects_total", Help: "Connections dropped because their send queue filled."}),
		fanoutFrames:  prometheus.NewCounter(prometheus.CounterOpts{Name: "chatflow_fanout_frames_total", Help: "Frames received from Redis pub/sub."}),
		dropped:       prometheus.NewCounter(prometheus.CounterOpts{Name: "chatflow_ws_typing_dropped_total", Help: "Typing frames dropped for connections with a half-full queue."}),
		sessionsEnded: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "chatflow_ws_sessions_total", Help: "WebSocket session events: closed because the token expired or was revoked, renewed by an auth frame."}, []string{"event"}),
	}
}

// Collectors lists the metrics for a registry.
func (m *Metrics) Collectors() []prometheus.Collector {
	return []prometheus.Collector{m.connections, m.framesIn, m.framesOut, m.writes, m.errors, m.slowDropped, m.fanoutFrames, m.dropped, m.sessionsEnded}
}

func (m *Metrics) connOpened() { m.connections.Inc(); m.conns.Add(1) }
func (m *Metrics) connClosed() { m.connections.Dec(); m.conns.Add(-1) }

// Connections is the number of WebSocket connections open on this node.
func (m *Metrics) Connections() int64 { return m.conns.Load() }
