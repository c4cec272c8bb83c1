// Package app wires chatflow's packages into running roles: an api node
// (HTTP, WebSocket, message core), the worker pools, or both. cmd/chatflow
// fills a Config from the environment and runs a Main; the integration
// tests reuse the same wiring with their own Config.
package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/redis/go-redis/v9"
	"go.temporal.io/sdk/client"
	tlog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/worker"
	"golang.org/x/sync/errgroup"

	"github.com/chatflow/chatflow/activities"
	"github.com/chatflow/chatflow/api"
	"github.com/chatflow/chatflow/blob"
	"github.com/chatflow/chatflow/chat"
	"github.com/chatflow/chatflow/codec"
	"github.com/chatflow/chatflow/events"
	"github.com/chatflow/chatflow/postgres"
	"github.com/chatflow/chatflow/ratelimit"
	"github.com/chatflow/chatflow/realtime"
	"github.com/chatflow/chatflow/roomlog"
	"github.com/chatflow/chatflow/token"
	"github.com/chatflow/chatflow/workers"
)

// Config is everything a process needs, one section per package.
type Config struct {
	HTTPAddr    string
	MetricsAddr string
	DatabaseURL string
	PGMaxConns  int32
	RedisAddr   string
	// RedisClusterAddrs, comma-separated seed nodes of a Redis Cluster,
	// replaces RedisAddr when set: every process then uses a cluster
	// client and sharded pub/sub (SPUBLISH/SSUBSCRIBE).
	RedisClusterAddrs string
	TemporalAddress   string
	TemporalNamespace string
	// TemporalCompressOver zlib-compresses Temporal payloads of at least this
	// many bytes (0: none); see package codec. Every process decodes them.
	TemporalCompressOver int
	// TemporalGRPCGzip gzips the gRPC requests to Temporal (the SDK's
	// default; off here). Payloads that matter are compressed by the codec
	// already: at 5,000 msg/s the codec with gzip off took the Temporal dev
	// server from ~0.2 to ~0.1 cores (BENCHMARKS.md, round 3).
	TemporalGRPCGzip bool
	// TemporalUIOrigins are the Web UI origins allowed to call the codec
	// endpoint (METRICS_ADDR/codec/) from a browser.
	TemporalUIOrigins []string
	KafkaBrokers      string
	LogLevel          string

	Token    token.Config
	API      api.Config
	Chat     chat.Config
	Realtime realtime.Config
	// RateLimit holds the abuse limits, shared by the nodes through Redis.
	RateLimit ratelimit.Config
	Workers   workers.Config
	// Activities tunes message persistence on the workers.
	Activities activities.Config
	// Objects is the attachment store (S3); an empty Bucket turns
	// attachments off.
	Objects blob.Config
}

// DefaultConfig matches the local services started by `make dev`. The JWT
// secret is left empty: a caller must provide one. Both listeners are on
// loopback: a deployment says HTTP_ADDR=0.0.0.0:8080 (and where metrics are
// scraped from) explicitly.
func DefaultConfig() Config {
	return Config{
		HTTPAddr:             "127.0.0.1:8080",
		MetricsAddr:          "127.0.0.1:9090",
		DatabaseURL:          "postgres://postgres@127.0.0.1:15432/chatflow?sslmode=disable",
		PGMaxConns:           32,
		RedisAddr:            "127.0.0.1:16379",
		TemporalAddress:      "127.0.0.1:7233",
		TemporalNamespace:    "default",
		TemporalCompressOver: 16 << 10,
		TemporalGRPCGzip:     false,
		TemporalUIOrigins:    []string{"http://127.0.0.1:8233", "http://localhost:8233"},
		KafkaBrokers:         "127.0.0.1:19092",
		LogLevel:             "info",
		Token:                token.DefaultConfig(),
		API:                  api.DefaultConfig(),
		Chat:                 chat.DefaultConfig(),
		Realtime:             realtime.DefaultConfig(),
		RateLimit:            ratelimit.DefaultConfig(),
		Workers:              workers.DefaultConfig(),
		Activities:           activities.DefaultConfig(),
		Objects:              blob.DefaultConfig(),
	}
}

// SetNodeID names the node in every section that logs it.
func (c *Config) SetNodeID(id string) { c.API.NodeID, c.Chat.NodeID = id, id }

// Main holds a process's connections to the services; its roles share them.
type Main struct {
	Cfg      Config
	Log      *slog.Logger
	Pool     *pgxpool.Pool
	Redis    redis.UniversalClient
	Temporal client.Client
}

// Open connects to Postgres (and migrates), Redis and Temporal.
func Open(ctx context.Context, cfg Config, log *slog.Logger) (*Main, error) {
	m := &Main{Cfg: cfg, Log: log}
	var err error
	if m.Pool, err = postgres.Open(ctx, cfg.DatabaseURL, cfg.PGMaxConns); err != nil {
		return nil, err
	}
	if err = postgres.Migrate(ctx, m.Pool); err != nil {
		m.Close()
		return nil, fmt.Errorf("migrate: %w", err)
	}
	m.Redis = NewRedis(cfg, 256, 8)
	if err = m.Redis.Ping(ctx).Err(); err != nil {
		m.Close()
		return nil, fmt.Errorf("redis: %w", err)
	}
	// Not fatal: a diagnostic run may turn the fsync off on purpose. In
	// production this line means acked messages are at risk.
	if err = roomlog.CheckDurable(ctx, m.Redis); err != nil {
		log.Error("acks are not durable", "error", err)
	}
	m.Temporal, err = client.Dial(TemporalOptions(cfg, log))
	if err != nil {
		m.Close()
		return nil, fmt.Errorf("temporal: %w", err)
	}
	return m, nil
}

// TemporalOptions are the client options of cfg: address, namespace,
// logger, the payload codec and the gRPC compression.
func TemporalOptions(cfg Config, log *slog.Logger) client.Options {
	opts := client.Options{
		HostPort: cfg.TemporalAddress, Namespace: cfg.TemporalNamespace,
		Logger:        tlog.NewStructuredLogger(log.With("component", "temporal")),
		DataConverter: codec.DataConverter(cfg.TemporalCompressOver),
	}
	if !cfg.TemporalGRPCGzip {
		opts.ConnectionOptions.GrpcCompression = &client.GrpcCompressionNone{}
	}
	return opts
}

// NewRedis builds the Redis client of cfg: a cluster client when
// RedisClusterAddrs is set, else a client of the single node RedisAddr.
func NewRedis(cfg Config, poolSize, minIdle int) redis.UniversalClient {
	if cfg.RedisClusterAddrs != "" {
		var addrs []string
		for _, a := range strings.Split(cfg.RedisClusterAddrs, ",") {
			if a = strings.TrimSpace(a); a != "" {
				addrs = append(addrs, a)
			}
		}
		// PoolSize is per node of the cluster.
		return redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs, PoolSize: poolSize, MinIdleConns: minIdle})
	}
	return redis.NewClient(&redis.Options{Addr: cfg.RedisAddr, PoolSize: poolSize, MinIdleConns: minIdle})
}

// Close releases the connections.
func (m *Main) Close() {
	if m.Temporal != nil {
		m.Temporal.Close()
	}
	if m.Redis != nil {
		_ = m.Redis.Close()
	}
	if m.Pool != nil {
		m.Pool.Close()
	}
}

// Node is one api node: message core, WebSocket side and HTTP side.
type Node struct {
	Chat     *chat.Service
	Realtime *realtime.Node
	API      *api.Server
	log      *slog.Logger
}

// NewNode wires an api node on m's connections.
func (m *Main) NewNode() (*Node, error) {
	core := chat.New(m.Cfg.Chat, m.Redis, postgresStore(m.Pool), m.Temporal, m.Log)
	rt := realtime.New(m.Cfg.Realtime, core, m.Log)
	if err := m.Cfg.Token.Validate(); err != nil {
		return nil, err
	}
	tokens := token.New(m.Cfg.Token, m.Redis)
	tokens.OnRevoke(core.SessionRevoked) // logout, refresh reuse, RevokeUser close the family's sockets
	limits := ratelimit.New(m.Cfg.RateLimit, m.Redis)
	rt.SetSendGate(limits.WSSend)
	deps := api.Deps{
		Pool: m.Pool, Redis: m.Redis, Temporal: m.Temporal, Tokens: tokens,
		Chat: core, Realtime: rt, Log: m.Log, Ready: m.readiness(), Limits: limits,
	}
	if m.Cfg.Objects.Bucket != "" {
		deps.Objects = m.objectStore()
	}
	srv, err := api.New(deps, m.Cfg.API)
	if err != nil {
		return nil, err
	}
	return &Node{Chat: core, Realtime: rt, API: srv, log: m.Log}, nil
}

// objectStore builds the attachment store and creates its bucket if
// missing. A store that does not answer yet is not fatal: chat works
// without it, and the store retries the bucket on each use until it is up.
func (m *Main) objectStore() *blob.Store {
	store := blob.New(m.Cfg.Objects)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := store.EnsureBucket(ctx); err != nil {
		m.Log.Warn("object store not ready; attachments answer 503 until it is", "endpoint", m.Cfg.Objects.Endpoint, "error", err)
	}
	return store
}

// readiness lists what /readyz checks: every service the system needs.
func (m *Main) readiness() []api.Check {
	checks := []api.Check{
		{Name: "postgres", Ping: m.Pool.Ping},
		{Name: "redis", Ping: func(ctx context.Context) error { return m.Redis.Ping(ctx).Err() }},
		{Name: "temporal", Ping: func(ctx context.Context) error { _, err := m.Temporal.CheckHealth(ctx, nil); return err }},
	}
	if brokers := m.Cfg.KafkaBrokers; brokers != "" {
		checks = append(checks, api.Check{Name: "kafka", Ping: func(ctx context.Context) error { return events.Ping(ctx, brokers) }})
	}
	return checks
}

// Run serves the node on ln until ctx ends, then shuts down in order:
// sockets close (clients reconnect elsewhere and sync), HTTP stops, and
// the pending message batches are flushed into Temporal.
func (n *Node) Run(ctx context.Context, ln net.Listener) error {
	loops, stopLoops := context.WithCancel(context.WithoutCancel(ctx))
	defer stopLoops()
	coreDone := make(chan struct{})
	go func() { defer close(coreDone); n.Chat.Run(loops) }()
	go n.Realtime.Run(loops)

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		if err := n.API.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	})
	g.Go(func() error {
		<-gctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 25*time.Second)
		defer cancel()
		err := n.API.Shutdown(sctx)
		stopLoops()
		select {
		case <-coreDone:
		case <-sctx.Done():
		}
		return err
	})
	return g.Wait()
}

// Workers is a worker process's pools and what their activities use.
type Workers struct {
	Pools []worker.Worker
	Acts  *activities.Activities
	// Core is the message core the sagas post room events through; it
	// must run (Core.Run) while the pools do.
	Core *chat.Service
}

// NewWorkers builds the worker pools, publishing to Kafka through pub. The
// sagas' activities post into rooms through a message core of the worker's
// own and revoke sessions through the token store (sockets close on every
// node through the core's pub/sub).
func (m *Main) NewWorkers(pub activities.Publisher) *Workers {
	acts := activities.New(m.Pool, pub)
	acts.Redis, acts.Cfg = m.Redis, m.Cfg.Activities
	cc := m.Cfg.Chat
	cc.NodeID += "-worker"
	core := chat.New(cc, m.Redis, postgresStore(m.Pool), m.Temporal, m.Log)
	tokens := token.New(m.Cfg.Token, m.Redis)
	tokens.OnRevoke(core.SessionRevoked)
	acts.Rooms, acts.Sessions = core, tokens
	acts.Members = core
	if m.Cfg.Objects.Bucket != "" {
		acts.Objects = blob.New(m.Cfg.Objects) // no network until used
	}
	return &Workers{Pools: workers.New(m.Temporal, acts, m.Cfg.Workers), Acts: acts, Core: core}
}

// RunWorkers runs the pools until ctx ends, then stops them, letting
// in-flight activities finish.
func RunWorkers(ctx context.Context, ws []worker.Worker) error {
	for i, w := range ws {
		if err := w.Start(); err != nil {
			for _, s := range ws[:i] {
				s.Stop()
			}
			return fmt.Errorf("start worker: %w", err)
		}
	}
	<-ctx.Done()
	for _, w := range ws {
		w.Stop()
	}
	return nil
}

// Roles picks what a process runs.
type Roles struct{ API, Worker bool }

// Run runs the chosen roles until ctx ends. The api flushes its pending
// batches before the workers stop, so a dev process loses nothing on exit.
func (m *Main) Run(ctx context.Context, roles Roles) error {
	g, gctx := errgroup.WithContext(ctx)
	var node *Node
	if roles.API {
		var err error
		if node, err = m.NewNode(); err != nil {
			return err
		}
	}
	workersCtx, stopWorkers := context.WithCancel(context.WithoutCancel(ctx))
	defer stopWorkers()
	if roles.Worker {
		pub := events.NewPublisher(m.Cfg.KafkaBrokers)
		defer pub.Close()
		w := m.NewWorkers(pub)
		ws, acts := w.Pools, w.Acts
		coreDone := make(chan struct{})
		go func() { defer close(coreDone); w.Core.Run(workersCtx) }()
		defer func() { stopWorkers(); <-coreDone }()
		if err := workers.EnsureSchedules(ctx, m.Temporal, m.Cfg.Workers); err != nil {
			return err
		}
		if node == nil {
			g.Go(func() error {
				return serveMetrics(gctx, m.Cfg.MetricsAddr, workerMetrics(acts.Metrics.Collectors()), m.Cfg.TemporalUIOrigins, m.Log)
			})
		} else {
			node.API.Register(acts.Metrics.Collectors()...)
		}
		workersDone := make(chan error, 1)
		go func() { workersDone <- RunWorkers(workersCtx, ws) }()
		g.Go(func() error {
			select {
			case err := <-workersDone:
				return err
			case <-gctx.Done():
				return nil
			}
		})
		m.Log.Info("worker pools running", "temporal", m.Cfg.TemporalAddress)
	}
	if node != nil {
		ln, err := net.Listen("tcp", m.Cfg.HTTPAddr)
		if err != nil {
			return err
		}
		m.Log.Info("api listening", "addr", ln.Addr().String(), "node", m.Cfg.API.NodeID)
		g.Go(func() error { return node.Run(gctx, ln) })
		g.Go(func() error {
			return serveMetrics(gctx, m.Cfg.MetricsAddr, node.API.MetricsHandler(), m.Cfg.TemporalUIOrigins, m.Log)
		})
	}
	err := g.Wait()
	stopWorkers() // only after the api has flushed its batches
	return err
}

// workerMetrics is the metrics handler of a worker-only process.
func workerMetrics(cs []prometheus.Collector) http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(cs...)
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
}

// serveMetrics serves /metrics, and the Web UI's codec endpoint under
// /codec/, on addr (METRICS_ADDR: an internal address, never the public
// listener) until ctx ends. A failure to listen is logged, not fatal: the
// process keeps serving without metrics.
func serveMetrics(ctx context.Context, addr string, h http.Handler, uiOrigins []string, log *slog.Logger) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		log.Warn("metrics server", "addr", addr, "error", err)
		return nil
	}
	return metricsServer(ctx, ln, h, uiOrigins, log)
}

func metricsServer(ctx context.Context, ln net.Listener, h http.Handler, uiOrigins []string, log *slog.Logger) error {
	mux := http.NewServeMux()
	mux.Handle("/metrics", h)
	mux.Handle("/codec/", codec.Handler(uiOrigins))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { <-ctx.Done(); _ = srv.Close() }()
	log.Info("metrics listening", "addr", ln.Addr().String())
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Warn("metrics server", "error", err)
	}
	return nil
}

// ServeMetrics serves the node's /metrics on ln (an internal address) until
// ctx ends.
func (n *Node) ServeMetrics(ctx context.Context, ln net.Listener) error {
	return metricsServer(ctx, ln, n.API.MetricsHandler(), nil, n.log)
}
