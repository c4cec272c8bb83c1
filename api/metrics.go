package api

import (
	"context"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/adaptor"
	"github.com/gofiber/fiber/v2/middleware/requestid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/sync/errgroup"

	"github.com/chatflow/chatflow"
	"github.com/chatflow/chatflow/events"
)

// Metrics are the node's Prometheus metrics, on a registry of its own so
// several nodes can live in one test process.
type Metrics struct {
	reg               *prometheus.Registry
	httpRequests      *prometheus.CounterVec
	httpLatency       *prometheus.HistogramVec
	wsConnections     prometheus.Gauge
	wsFramesIn        prometheus.Counter
	wsFramesOut       prometheus.Counter
	wsErrors          *prometheus.CounterVec
	wsSlowDropped     prometheus.Counter
	messagesAccepted  prometheus.Counter
	messagesCommitted prometheus.Counter
	batchSize         prometheus.Histogram
	batchStart        prometheus.Histogram
	ackLatency        prometheus.Histogram
	fanoutFrames      prometheus.Counter
	signupsStarted    prometheus.Counter
	conns             atomic.Int64
}

func newMetrics() *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry()}
	f := func(c prometheus.Collector) { m.reg.MustRegister(c) }
	m.httpRequests = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "chatflow_http_requests_total", Help: "HTTP requests by route, method and status."}, []string{"route", "method", "status"})
	m.httpLatency = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "chatflow_http_request_seconds", Help: "HTTP request latency by route.", Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16)}, []string{"route", "method"})
	m.wsConnections = prometheus.NewGauge(prometheus.GaugeOpts{Name: "chatflow_ws_connections", Help: "Open WebSocket connections on this node."})
	m.wsFramesIn = prometheus.NewCounter(prometheus.CounterOpts{Name: "chatflow_ws_frames_in_total", Help: "Frames received from clients."})
	m.wsFramesOut = prometheus.NewCounter(prometheus.CounterOpts{Name: "chatflow_ws_frames_out_total", Help: "Frames written to clients."})
	m.wsErrors = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "chatflow_ws_error_frames_total", Help: "Error frames sent, by code."}, []string{"code"})
	m.wsSlowDropped = prometheus.NewCounter(prometheus.CounterOpts{Name: "chatflow_ws_slow_disconnects_total", Help: "Connections dropped because their send queue filled."})
	m.messagesAccepted = prometheus.NewCounter(prometheus.CounterOpts{Name: "chatflow_messages_accepted_total", Help: "Messages sequenced and fanned out."})
	m.messagesCommitted = prometheus.NewCounter(prometheus.CounterOpts{Name: "chatflow_messages_committed_total", Help: "Messages whose persistence workflow has started (acknowledged as durable)."})
	m.batchSize = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "chatflow_batch_messages", Help: "Messages per persistence batch workflow.", Buckets: prometheus.ExponentialBuckets(1, 2, 13)})
	m.batchStart = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "chatflow_batch_start_seconds", Help: "Time to start a batch workflow.", Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16)})
	m.ackLatency = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "chatflow_ack_seconds", Help: "Send to durable ack latency.", Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16)})
	m.fanoutFrames = prometheus.NewCounter(prometheus.CounterOpts{Name: "chatflow_fanout_frames_total", Help: "Frames received from Redis pub/sub."})
	m.signupsStarted = prometheus.NewCounter(prometheus.CounterOpts{Name: "chatflow_signups_started_total", Help: "Sign-up sagas started."})
	for _, c := range []prometheus.Collector{m.httpRequests, m.httpLatency, m.wsConnections, m.wsFramesIn, m.wsFramesOut, m.wsErrors,
		m.wsSlowDropped, m.messagesAccepted, m.messagesCommitted, m.batchSize, m.batchStart, m.ackLatency, m.fanoutFrames, m.signupsStarted,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})} {
		f(c)
	}
	return m
}

// Register adds collectors (the worker's, in a dev process) to /metrics.
func (s *Server) Register(cs ...prometheus.Collector) {
	for _, c := range cs {
		s.metrics.reg.MustRegister(c)
	}
}

func (m *Metrics) connOpened() { m.wsConnections.Inc(); m.conns.Add(1) }
func (m *Metrics) connClosed() { m.wsConnections.Dec(); m.conns.Add(-1) }

// connections is the number of WebSocket connections open on this node.
func (m *Metrics) connections() int64 { return m.conns.Load() }

// observe records every request's route, status and latency and logs it.
func (s *Server) observe(c *fiber.Ctx) error {
	start := time.Now()
	err := c.Next()
	status := c.Response().StatusCode()
	if err != nil {
		if e, ok := err.(*fiber.Error); ok {
			status = e.Code
		} else {
			status = statusOf(chatflow.ErrorCode(err))
		}
	}
	// Fiber reuses its request buffers: labels must be copies, or a later
	// request rewrites a stored label in place.
	route, method := strings.Clone(c.Route().Path), strings.Clone(c.Method())
	if route == "/" && c.Path() != "/" {
		route = "unmatched"
	}
	d := time.Since(start)
	s.metrics.httpRequests.WithLabelValues(route, method, strconv.Itoa(status)).Inc()
	s.metrics.httpLatency.WithLabelValues(route, method).Observe(d.Seconds())
	if route != "/metrics" && route != "/healthz" {
		s.Log.Debug("http", "method", c.Method(), "path", c.Path(), "status", status, "ms", d.Milliseconds(),
			"request_id", c.Locals(requestid.ConfigDefault.ContextKey))
	}
	return err
}

func (s *Server) metricsHandler(c *fiber.Ctx) error {
	return adaptor.HTTPHandler(promhttp.HandlerFor(s.metrics.reg, promhttp.HandlerOpts{}))(c)
}

// readyz checks every dependency the node needs.
func (s *Server) readyz(c *fiber.Ctx) error {
	ctx, cancel := context.WithTimeout(c.UserContext(), 3*time.Second)
	defer cancel()
	checks := map[string]string{}
	var g errgroup.Group
	res := make([]error, 4)
	g.Go(func() error { res[0] = s.Pool.Ping(ctx); return nil })
	g.Go(func() error { res[1] = s.Redis.Ping(ctx).Err(); return nil })
	g.Go(func() error { _, res[2] = s.Temporal.CheckHealth(ctx, nil); return nil })
	g.Go(func() error {
		if s.Cfg.KafkaBrokers != "" {
			res[3] = events.Ping(ctx, s.Cfg.KafkaBrokers)
		}
		return nil
	})
	_ = g.Wait()
	ok := true
	for i, name := range []string{"postgres", "redis", "temporal", "kafka"} {
		if res[i] != nil {
			ok = false
			checks[name] = res[i].Error()
		} else {
			checks[name] = "ok"
		}
	}
	if !ok {
		return c.Status(fiber.StatusServiceUnavailable).JSON(fiber.Map{"status": "unavailable", "checks": checks})
	}
	return c.JSON(fiber.Map{"status": "ready", "checks": checks})
}
