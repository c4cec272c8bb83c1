// Command chatflow is the one binary of the chat backend. Its subcommand
// picks the role:
//
//	chatflow api           HTTP + WebSocket node
//	chatflow worker        Temporal worker pool (sign-up sagas, message batches)
//	chatflow dev           api + worker in one process
//	chatflow migrate       apply database migrations and exit
//	chatflow admin         grant or revoke the admin role
//	chatflow kafka-broker  Kafka-protocol dev broker (franz-go kfake)
//	chatflow bench         load generator
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	_ "net/http/pprof"
	"os"
	"os/signal"
	"runtime"
	"syscall"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/chatflow/chatflow/events"
	"github.com/chatflow/chatflow/internal/app"
	"github.com/chatflow/chatflow/postgres"
	"github.com/chatflow/chatflow/token"
)

func main() {
	if len(os.Args) < 2 {
		usage()
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if addr := os.Getenv("PPROF_ADDR"); addr != "" {
		// profiling on demand, on its own (loopback) port; contention is
		// sampled too (1 in 5 mutex events, blocking of 10 µs or more),
		// which costs a little, so only when profiling is asked for
		runtime.SetMutexProfileFraction(5)
		runtime.SetBlockProfileRate(10_000)
		go func() { _ = http.ListenAndServe(addr, nil) }()
	}
	var err error
	switch cmd, args := os.Args[1], os.Args[2:]; cmd {
	case "api":
		err = run(ctx, app.Roles{API: true}, keysDeployed)
	case "worker":
		err = run(ctx, app.Roles{Worker: true}, keysDeployed)
	case "dev":
		err = run(ctx, app.Roles{API: true, Worker: true}, keysDev)
	case "migrate":
		err = migrate(ctx)
	case "admin":
		err = runAdmin(ctx, args)
	case "kafka-broker":
		err = kafkaBroker(ctx, args)
	case "bench":
		err = runBench(ctx, args)
	case "chaos":
		err = runChaos(ctx, args)
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
  admin         grant, revoke or list the admin role (chatflow admin grant USERNAME)
  kafka-broker  run the Kafka-protocol dev broker (-addr, -data-dir)
  bench         drive a running system with load (see: chatflow bench -h)
  chaos         fault suite on its own services and ports (see: chatflow chaos -h, RELIABILITY.md)

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
func run(ctx context.Context, roles app.Roles, keys int) error {
	cfg, err := loadConfig(keys)
	if err != nil {
		return err
	}
	log := newLogger(cfg.LogLevel)
	if token.IsShipped(cfg.Token.Secret) || token.IsShipped(cfg.Token.PreviousSecret) {
		// only `chatflow dev` gets here with such a key
		log.Warn("JWT_SECRET is a key published in the chatflow repository: anyone can sign tokens for this process; never expose it")
	}
	m, err := app.Open(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer m.Close()
	err = m.Run(ctx, roles)
	log.Info("stopped")
	return err
}

func migrate(ctx context.Context) error {
	// migrate refuses the keys api and worker would refuse, so that a
	// deployment with a bad JWT_SECRET fails at its first step.
	_, pool, err := openMigrated(ctx, keysDeployed)
	if err != nil {
		return err
	}
	pool.Close()
	return nil
}

// openMigrated reads the configuration, opens a small Postgres pool and
// brings the schema up to date: what the one-shot commands share.
func openMigrated(ctx context.Context, keys int) (app.Config, *pgxpool.Pool, error) {
	cfg, err := loadConfig(keys)
	if err != nil {
		return cfg, nil, err
	}
	newLogger(cfg.LogLevel)
	pool, err := postgres.Open(ctx, cfg.DatabaseURL, 2)
	if err != nil {
		return cfg, nil, err
	}
	if err := postgres.Migrate(ctx, pool); err != nil {
		pool.Close()
		return cfg, nil, err
	}
	return cfg, pool, nil
}

func kafkaBroker(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("kafka-broker", flag.ExitOnError)
	addr := fs.String("addr", "127.0.0.1:19092", "listen address")
	dir := fs.String("data-dir", ".data/kafka", "directory where topics persist")
	parts := fs.Int("partitions", 4, "partitions per topic")
	_ = fs.Parse(args)
	log := newLogger("info")
	log.Info("kafka dev broker", "addr", *addr, "data_dir", *dir)
	return events.RunDevBroker(ctx, *addr, *dir, int32(*parts))
}
