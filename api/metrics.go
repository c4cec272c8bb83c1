package api

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/requestid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/sync/errgroup"

	"github.com/chatflow/chatflow"
)

// Metrics are the node's Prometheus metrics, on a registry of its own so
// several nodes can live in one test process.
type Metrics struct {
	reg            *prometheus.Registry
	httpRequests   *prometheus.CounterVec
	httpLatency    *prometheus.HistogramVec
	signupsStarted prometheus.Counter
}

func newMetrics() *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry()}
	m.httpRequests = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "chatflow_http_requests_total", Help: "HTTP requests by route, method and status."}, []string{"route", "method", "status"})
	m.httpLatency = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "chatflow_http_request_seconds", Help: "HTTP request latency by route.", Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16)}, []string{"route", "method"})
	m.signupsStarted = prometheus.NewCounter(prometheus.CounterOpts{Name: "chatflow_signups_started_total", Help: "Sign-up sagas started."})
	m.reg.MustRegister(m.httpRequests, m.httpLatency, m.signupsStarted,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Register adds collectors (the worker's, in a dev process) to /metrics.
func (s *Server) Register(cs ...prometheus.Collector) {
	for _, c := range cs {
		s.metrics.reg.MustRegister(c)
	}
}

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
	if route != "/readyz" && route != "/healthz" {
		s.Log.Debug("http", "method", c.Method(), "path", c.Path(), "status", status, "ms", d.Milliseconds(),
			"request_id", c.Locals(requestid.ConfigDefault.ContextKey))
	}
	return err
}

// MetricsHandler serves the node's metrics for Prometheus. It is not on the
// public listener: the process serves it on METRICS_ADDR (internal).
func (s *Server) MetricsHandler() http.Handler {
	return promhttp.HandlerFor(s.metrics.reg, promhttp.HandlerOpts{})
}

// readyz checks every dependency the node needs. Anyone (a load balancer,
// a probe) gets the verdict only; a caller with an admin token also gets
// each dependency's state, whose error text may name hosts and ports.
func (s *Server) readyz(c *fiber.Ctx) error {
	ctx, cancel := context.WithTimeout(c.UserContext(), 3*time.Second)
	defer cancel()
	res := make([]error, len(s.ready))
	var g errgroup.Group
	for i, ch := range s.ready {
		g.Go(func() error { res[i] = ch.Ping(ctx); return nil })
	}
	_ = g.Wait()
	ok := true
	checks := map[string]string{}
	for i, ch := range s.ready {
		if res[i] != nil {
			ok = false
			checks[ch.Name] = res[i].Error()
		} else {
			checks[ch.Name] = "ok"
		}
	}
	body := fiber.Map{"status": "ready"}
	if !ok {
		body["status"] = "unavailable"
		c.Status(fiber.StatusServiceUnavailable)
	}
	// A missing or bad token is no error here: the caller just gets less.
	if claims, err := s.authenticate(c, false); err == nil && claims.Role == roleAdmin {
		body["checks"] = checks
	}
	return c.JSON(body)
}
