// Command chatflow is the one binary of the chat backend. Its subcommand
// picks the role:
//
//	chatflow api           HTTP + WebSocket node
//	chatflow worker        Temporal worker pool (sign-up sagas, message batches)
//	chatflow dev           api + worker in one process
//	chatflow migrate       apply database migrations and exit
//	chatflow kafka-broker  Kafka-protocol dev broker (franz-go kfake)
//	chatflow bench         load generator
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	_ "net/http/pprof"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/redis/go-redis/v9"
	"go.temporal.io/sdk/client"
	tlog "go.temporal.io/sdk/log"

	"github.com/chatflow/chatflow/activities"
	"github.com/chatflow/chatflow/api"
	"github.com/chatflow/chatflow/events"
	"github.com/chatflow/chatflow/postgres"
	"github.com/chatflow/chatflow/token"
	"github.com/chatflow/chatflow/workers"
)

func main() {
	if len(os.Args) < 2 {
		usage()
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if addr := os.Getenv("PPROF_ADDR"); addr != "" {
		// profiling on demand, on its own (loopback) port
		go func() { _ = http.ListenAndServe(addr, nil) }()
	}
	var err error
	switch cmd, args := os.Args[1], os.Args[2:]; cmd {
	case "api":
		err = run(ctx, true, false)
	case "worker":
		err = run(ctx, false, true)
	case "dev":
		err = run(ctx, true, true)
	case "migrate":
		err = migrate(ctx)
	case "kafka-broker":
		err = kafkaBroker(ctx, args)
	case "bench":
		err = runBench(ctx, args)
	case "-h", "--help", "help":
		usage()
	default:
		fmt.Fprintf(os.Stderr, "chatflow: unknown command %q\n", cmd)
		usage()
		os.Exit(2)
	}
	if err != nil {
		slog.Error("chatflow failed", "error", err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprint(os.Stderr, `usage: chatflow <command>

commands:
  api           serve HTTP + WebSocket (one node; run several behind a load balancer)
  worker        run the Temporal worker pools
  dev           api + worker in one process against the local services
  migrate       apply database migrations
  kafka-broker  run the Kafka-protocol dev broker (-addr, -data-dir)
  bench         drive a running system with load (see: chatflow bench -h)

configuration comes from the environment; see README.md.
`)
}

func newLogger(level string) *slog.Logger {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		l = slog.LevelInfo
	}
	log := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: l}))
	slog.SetDefault(log)
	return log
}

// run starts the api node and/or the worker pools and blocks until a signal.
func run(ctx context.Context, withAPI, withWorker bool) error {
	cfg, err := loadConfig()
	if err != nil {
		return err
	}
	log := newLogger(cfg.LogLevel)
	pool, err := postgres.Open(ctx, cfg.DatabaseURL, cfg.PGMaxConns)
	if err != nil {
		return err
	}
	defer pool.Close()
	if err := postgres.Migrate(ctx, pool); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	tc, err := client.Dial(client.Options{
		HostPort: cfg.TemporalAddress, Namespace: cfg.TemporalNamespace,
		Logger: tlog.NewStructuredLogger(log.With("component", "temporal")),
	})
	if err != nil {
		return fmt.Errorf("temporal: %w", err)
	}
	defer tc.Close()

	errc := make(chan error, 2)
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	workerDone := make(chan struct{})
	var acts *activities.Activities
	if withWorker {
		pub := events.NewPublisher(cfg.KafkaBrokers)
		defer pub.Close()
		acts = activities.New(pool, pub)
		if !withAPI {
			go serveWorkerMetrics(cfg.MetricsAddr, acts.Metrics, log)
		}
		ws := workers.New(tc, acts, workers.Options{
			SignupConcurrency: cfg.SignupWorkers, MessagesConcurrency: cfg.MessageWorkers,
		})
		go func() {
			defer close(workerDone)
			if err := workers.Run(runCtx, ws); err != nil {
				errc <- err
			}
		}()
		log.Info("worker pools running", "temporal", cfg.TemporalAddress)
	} else {
		close(workerDone)
	}
	var srv *api.Server
	if withAPI {
		if cfg.JWTSecret == DevJWTSecret {
			log.Warn("JWT_SECRET is the development default; set it in any shared environment")
		}
		rdb := redis.NewClient(&redis.Options{Addr: cfg.RedisAddr, PoolSize: 256, MinIdleConns: 8})
		defer rdb.Close()
		if err := rdb.Ping(ctx).Err(); err != nil {
			return fmt.Errorf("redis: %w", err)
		}
		srv = newServer(pool, rdb, tc, cfg, log)
		if acts != nil {
			srv.Register(acts.Metrics.Collectors()...)
		}
		srv.Start(runCtx)
		go func() {
			log.Info("api listening", "addr", cfg.HTTPAddr, "node", cfg.NodeID)
			if err := srv.Listen(cfg.HTTPAddr); err != nil && !errors.Is(err, http.ErrServerClosed) {
				errc <- err
			}
		}()
	}
	var runErr error
	select {
	case <-ctx.Done():
		log.Info("signal received, stopping")
	case runErr = <-errc:
	}
	// Order matters: the api flushes its pending batches into Temporal first,
	// then the workers finish their in-flight activities, and only then do the
	// Temporal client and the pools close (deferred above).
	if srv != nil {
		sctx, c := context.WithTimeout(context.Background(), 25*time.Second)
		if err := srv.Shutdown(sctx); err != nil {
			log.Error("api shutdown", "error", err)
		}
		c()
	}
	cancel()
	<-workerDone
	log.Info("stopped")
	return runErr
}

func newServer(pool *pgxpool.Pool, rdb redis.UniversalClient, tc client.Client, cfg Config, log *slog.Logger) *api.Server {
	tokens := token.New(token.Config{
		Secret: []byte(cfg.JWTSecret), Issuer: cfg.JWTIssuer, Audience: cfg.JWTAudience,
		AccessTTL: cfg.AccessTTL, RefreshTTL: cfg.RefreshTTL,
	}, rdb)
	return api.New(pool, rdb, tc, tokens, log, api.Config{
		NodeID: cfg.NodeID, AdminUsernames: cfg.AdminUsernames, BcryptCost: cfg.BcryptCost,
		BatchLinger: cfg.BatchLinger, BatchMax: cfg.BatchMax, BatchInflight: cfg.BatchInflight,
		WSSendRate: cfg.WSRate, WSSendBurst: cfg.WSBurst, WSQueue: cfg.WSQueue, KafkaBrokers: cfg.KafkaBrokers,
	})
}

// serveWorkerMetrics exposes a worker process's metrics for Prometheus.
func serveWorkerMetrics(addr string, m *activities.Metrics, log *slog.Logger) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(m.Collectors()...)
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	log.Info("worker metrics", "addr", addr)
	if err := http.ListenAndServe(addr, mux); err != nil {
		log.Warn("worker metrics server", "error", err)
	}
}

func migrate(ctx context.Context) error {
	cfg, err := loadConfig()
	if err != nil {
		return err
	}
	newLogger(cfg.LogLevel)
	pool, err := postgres.Open(ctx, cfg.DatabaseURL, 2)
	if err != nil {
		return err
	}
	defer pool.Close()
	return postgres.Migrate(ctx, pool)
}

func kafkaBroker(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("kafka-broker", flag.ExitOnError)
	addr := fs.String("addr", "127.0.0.1:59092", "listen address")
	dir := fs.String("data-dir", ".data/kafka", "directory where topics persist")
	parts := fs.Int("partitions", 4, "partitions per topic")
	_ = fs.Parse(args)
	log := newLogger("info")
	log.Info("kafka dev broker", "addr", *addr, "data_dir", *dir)
	return events.RunDevBroker(ctx, *addr, *dir, int32(*parts))
}
