// Package testenv connects tests to the real local services started by
// `make test` (scripts/services.sh) and runs in-process api nodes and worker
// pools against them. It fails a test loudly when a service is missing.
package testenv

import (
	"context"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"

	"github.com/chatflow/chatflow/activities"
	"github.com/chatflow/chatflow/events"
	"github.com/chatflow/chatflow/internal/app"
	"github.com/chatflow/chatflow/postgres"
	"github.com/chatflow/chatflow/ratelimit"
	"github.com/chatflow/chatflow/token"
	"github.com/chatflow/chatflow/workers"
)

// Env is a connection to the local services.
type Env struct {
	Pool         *pgxpool.Pool
	Redis        redis.UniversalClient
	Temporal     client.Client
	KafkaBrokers string
	Log          *slog.Logger
}

func getenv(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

// Task queues of this test binary, so that concurrent test runs never
// execute each other's workflows.
var (
	runID             = uuid.NewString()[:8]
	SignupTaskQueue   = "test-signup-" + runID
	MessagesTaskQueue = "test-messages-" + runID
)

// Secret is the JWT key the test nodes use. It is published, so a deployed
// role refuses it (token.ValidateDeployable); tests build their config here
// and only check its length.
const Secret = token.TestSecret

var (
	once    sync.Once
	shared  *Env
	openErr error
)

// Config is the configuration of the test processes: the defaults of
// `make dev`, service addresses from the environment, this binary's task
// queues and the test key.
func Config() app.Config {
	c := app.DefaultConfig()
	c.DatabaseURL = getenv("DATABASE_URL", c.DatabaseURL)
	c.RedisAddr = getenv("REDIS_ADDR", c.RedisAddr)
	c.RedisClusterAddrs = getenv("REDIS_CLUSTER_ADDRS", c.RedisClusterAddrs)
	c.TemporalAddress = getenv("TEMPORAL_ADDRESS", c.TemporalAddress)
	c.KafkaBrokers = getenv("KAFKA_BROKERS", c.KafkaBrokers)
	c.Objects.Endpoint = getenv("S3_ENDPOINT", c.Objects.Endpoint)
	c.Objects.AccessKey = getenv("S3_ACCESS_KEY", c.Objects.AccessKey)
	c.Objects.SecretKey = getenv("S3_SECRET_KEY", c.Objects.SecretKey)
	c.Token.Secret = []byte(Secret)
	c.Token.RefreshTTL = time.Hour
	c.API.SignupTaskQueue, c.Workers.SignupTaskQueue = SignupTaskQueue, SignupTaskQueue
	c.Chat.MessagesTaskQueue, c.Workers.MessagesTaskQueue = MessagesTaskQueue, MessagesTaskQueue
	c.API.BcryptCost = 4 // bcrypt.MinCost: tests exercise the flow, not the hash cost
	// tests send one message at a time and wait for each ack: no company to wait for
	c.Chat.BatchLinger = 5 * time.Millisecond
	c.Workers.ReconcileEvery = 2 * time.Second
	c.Activities.ReconcileAfter = 2 * time.Second
	// Every test signs up and logs in from 127.0.0.1: no rate limits here.
	// Rate-limit tests set their own (NodeConfig.RateLimit, RateLimitConfig).
	c.RateLimit = c.RateLimit.Unlimited()
	c.RateLimit.KeyPrefix = "rl:test-" + runID + ":"
	return c
}

// RateLimitConfig is the default limits (small enough to reach) under a
// Redis key prefix of their own, for a test that checks a limit: nodes
// given the same value share their counters, and no other test does.
func RateLimitConfig() ratelimit.Config {
	c := ratelimit.DefaultConfig()
	c.KeyPrefix = "rl:test-" + runID + "-" + Unique() + ":"
	return c
}

// Open returns the shared connection to the services, migrating the schema
// once per test binary.
func Open(t testing.TB) *Env {
	t.Helper()
	once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		cfg := Config()
		e := &Env{KafkaBrokers: cfg.KafkaBrokers}
		level := slog.LevelWarn
		if os.Getenv("TEST_LOG") != "" {
			level = slog.LevelDebug
		}
		e.Log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
		e.Pool, openErr = postgres.Open(ctx, cfg.DatabaseURL, 40)
		if openErr != nil {
			return
		}
		if openErr = postgres.Migrate(ctx, e.Pool); openErr != nil {
			return
		}
		e.Redis = app.NewRedis(cfg, 200, 0)
		if openErr = e.Redis.Ping(ctx).Err(); openErr != nil {
			return
		}
		e.Temporal, openErr = client.Dial(app.TemporalOptions(cfg, slog.New(slog.NewTextHandler(io.Discard, nil))))
		if openErr != nil {
			return
		}
		if openErr = events.Ping(ctx, e.KafkaBrokers); openErr != nil {
			return
		}
		shared = e
	})
	if openErr != nil {
		t.Fatalf("local services are not reachable (%v); run `make test`, or `scripts/services.sh start` first", openErr)
	}
	return shared
}

// Main is the app wiring of cmd/chatflow on the shared connections.
func (e *Env) Main(cfg app.Config) *app.Main {
	return &app.Main{Cfg: cfg, Log: e.Log, Pool: e.Pool, Redis: e.Redis, Temporal: e.Temporal}
}

// Tokens returns a token service with the test key.
func (e *Env) Tokens() *token.Service { return token.New(Config().Token, e.Redis) }

// Worker runs the worker pools of this test binary until the test ends
// (pub nil: the real Kafka publisher); it returns a stop function for tests
// that kill a worker mid-load.
func (e *Env) Worker(t testing.TB, pub activities.Publisher) (stop func()) {
	t.Helper()
	return e.WorkerWith(t, pub, nil)
}

// WorkerWith is Worker with a test's changes to the configuration (nil: none).
func (e *Env) WorkerWith(t testing.TB, pub activities.Publisher, change func(*app.Config)) (stop func()) {
	t.Helper()
	full := Config()
	if change != nil {
		change(&full)
	}
	ws := e.workers(t, pub, full)
	cfg := full.Workers
	// the dev server answers slowly while the whole suite runs at once
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := workers.EnsureSchedules(ctx, e.Temporal, cfg); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, id := range workers.ScheduleIDs(cfg) {
			_ = e.Temporal.ScheduleClient().GetHandle(context.Background(), id).Delete(context.Background())
		}
	})
	for _, w := range ws {
		if err := w.Start(); err != nil {
			t.Fatalf("start worker: %v", err)
		}
	}
	var o sync.Once
	stop = func() {
		o.Do(func() {
			for _, w := range ws {
				w.Stop()
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// Workers builds, without starting them, the worker pools of this test
// binary (pub nil: the real Kafka publisher).
func (e *Env) Workers(t testing.TB, pub activities.Publisher) []worker.Worker {
	return e.workers(t, pub, Config())
}

func (e *Env) workers(t testing.TB, pub activities.Publisher, cfg app.Config) []worker.Worker {
	if pub == nil {
		p := events.NewPublisher(e.KafkaBrokers)
		t.Cleanup(func() { p.Close() })
		pub = p
	}
	w := e.Main(cfg).NewWorkers(pub)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); w.Core.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return w.Pools
}

// NodeConfig is what a test may change of a node; zero fields keep Config's.
type NodeConfig struct {
	NodeID          string
	WSOrigins       []string
	KafkaBrokers    string
	WSSendRate      float64
	WSSendBurst     int
	WSQueue         int
	SignupTaskQueue string
	BatchLinger     time.Duration
	// RateLimit replaces the (unlimited) abuse limits of the test config.
	RateLimit *ratelimit.Config
	// AccessTTL is the lifetime of the access tokens the node issues;
	// RefreshGrace its refresh grace window (negative: none).
	AccessTTL    time.Duration
	RefreshGrace time.Duration
	// RoomIdleTTL is the TTL of a wholly persisted room's log keys.
	RoomIdleTTL time.Duration
	// PresenceHeartbeat and PresenceTTL tune the node's presence renewal.
	PresenceHeartbeat time.Duration
	PresenceTTL       time.Duration
}

func (nc NodeConfig) apply(c *app.Config) {
	if nc.NodeID == "" {
		nc.NodeID = "test-" + uuid.NewString()[:8]
	}
	c.SetNodeID(nc.NodeID)
	c.API.WSOrigins = nc.WSOrigins
	set := func(dst *int, v int) {
		if v != 0 {
			*dst = v
		}
	}
	set(&c.Realtime.SendBurst, nc.WSSendBurst)
	set(&c.Realtime.Queue, nc.WSQueue)
	if nc.WSSendRate != 0 {
		c.Realtime.SendRate = nc.WSSendRate
	}
	if nc.KafkaBrokers != "" {
		c.KafkaBrokers = nc.KafkaBrokers
	}
	if nc.SignupTaskQueue != "" {
		c.API.SignupTaskQueue = nc.SignupTaskQueue
	}
	if nc.BatchLinger != 0 {
		c.Chat.BatchLinger = nc.BatchLinger
	}
	if nc.RateLimit != nil {
		c.RateLimit = *nc.RateLimit
	}
	setDur := func(dst *time.Duration, v time.Duration) {
		if v != 0 {
			*dst = max(v, 0)
		}
	}
	setDur(&c.Token.AccessTTL, nc.AccessTTL)
	setDur(&c.Token.RefreshGrace, nc.RefreshGrace)
	setDur(&c.Chat.RoomIdleTTL, nc.RoomIdleTTL)
	setDur(&c.Chat.PresenceHeartbeat, nc.PresenceHeartbeat)
	setDur(&c.Chat.PresenceTTL, nc.PresenceTTL)
}

// Node is an in-process api node listening on a loopback port, with its
// metrics on another (internal) loopback port, as METRICS_ADDR serves them.
type Node struct {
	*app.Node
	URL        string // http://127.0.0.1:port
	Addr       string
	MetricsURL string // http://127.0.0.1:port/metrics
	stop       func()
}

// Kill stops the node as a crash would, as far as shared state goes: its
// presence stays in Redis for the other nodes to end (realtime.Node.Crash),
// then the node stops.
func (n *Node) Kill() {
	n.Realtime.Crash()
	n.stop()
}

// StartNode runs an api node, wired as cmd/chatflow wires one, until the
// test ends.
func (e *Env) StartNode(t testing.TB, nc NodeConfig) *Node {
	t.Helper()
	cfg := Config()
	nc.apply(&cfg)
	n, err := e.Main(cfg).NewNode()
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	mln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{}, 2)
	go func() { defer func() { done <- struct{}{} }(); _ = n.Run(ctx, ln) }()
	go func() { defer func() { done <- struct{}{} }(); _ = n.ServeMetrics(ctx, mln) }()
	var once sync.Once
	stop := func() { once.Do(func() { cancel(); <-done; <-done }) }
	t.Cleanup(stop)
	addr := ln.Addr().String()
	return &Node{Node: n, URL: "http://" + addr, Addr: addr, MetricsURL: "http://" + mln.Addr().String() + "/metrics", stop: stop}
}

// Cluster reports whether the tests run on a Redis Cluster
// (REDIS_CLUSTER_ADDRS), where chatflow uses sharded pub/sub.
func (e *Env) Cluster() bool { _, ok := e.Redis.(*redis.ClusterClient); return ok }

// NumSub is how many connections subscribe to a pub/sub channel: PUBSUB
// NUMSUB, or on a Redis Cluster PUBSUB SHARDNUMSUB on the master of the
// channel's slot.
func (e *Env) NumSub(ctx context.Context, channel string) int64 {
	cc, ok := e.Redis.(*redis.ClusterClient)
	if !ok {
		return e.Redis.PubSubNumSub(ctx, channel).Val()[channel]
	}
	node, err := cc.MasterForKey(ctx, channel)
	if err != nil {
		return -1
	}
	return node.PubSubShardNumSub(ctx, channel).Val()[channel]
}

// Keys lists the keys matching pattern, on every master of a Redis Cluster.
func (e *Env) Keys(ctx context.Context, pattern string) ([]string, error) {
	var mu sync.Mutex
	var out []string
	scan := func(ctx context.Context, c redis.Cmdable) error {
		iter := c.Scan(ctx, 0, pattern, 1000).Iterator()
		for iter.Next(ctx) {
			mu.Lock()
			out = append(out, iter.Val())
			mu.Unlock()
		}
		return iter.Err()
	}
	if cc, ok := e.Redis.(*redis.ClusterClient); ok {
		err := cc.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error { return scan(ctx, c) })
		return out, err
	}
	return out, scan(ctx, e.Redis)
}
