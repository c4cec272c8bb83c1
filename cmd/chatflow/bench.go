package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/chatflow/chatflow/bench"
)

func runBench(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("bench", flag.ExitOnError)
	var o bench.Options
	urls := fs.String("url", "http://127.0.0.1:8080", "api node base URLs, comma-separated (clients spread round-robin)")
	fs.StringVar(&o.Scenario, "scenario", "chat", "signup | chat | reconnect | history | search | idle | baseline")
	fs.IntVar(&o.Signups, "signups", 200, "signup: concurrent sign-ups")
	fs.IntVar(&o.Clients, "clients", 100, "chat: WebSocket clients (users)")
	fs.IntVar(&o.RoomSize, "room-size", 5, "chat: members per room")
	fs.Float64Var(&o.Rate, "rate", 2, "chat: messages per second per client")
	fs.DurationVar(&o.Duration, "duration", 20*time.Second, "chat/history: load duration")
	fs.IntVar(&o.Readers, "readers", 32, "history: concurrent readers")
	fs.IntVar(&o.Preload, "preload", 0, "history/search: first fill chat.messages up to this many rows (filler rooms, COPY)")
	fs.IntVar(&o.Conns, "conns", 10000, "idle: WebSocket connections to open")
	fs.IntVar(&o.Concurrency, "concurrency", 64, "parallel sign-ups during setup")
	fs.StringVar(&o.Out, "out", "", "write the JSON result here")
	fs.StringVar(&o.Label, "label", "", "label for the result")
	fs.StringVar(&o.UsersFile, "users-file", "", "reuse users signed up by earlier runs (created and extended as needed)")
	fs.StringVar(&o.DatabaseURL, "db", env("DATABASE_URL", "postgres://postgres@127.0.0.1:15432/chatflow?sslmode=disable"), "Postgres, for the loss check and COPY baseline")
	fs.StringVar(&o.RedisPort, "redis-port", "16379", "Redis port, for the PUBLISH baseline")
	fs.StringVar(&o.Target, "target", "chatflow", "chatflow | centrifugo (chat and idle scenarios; -url is then Centrifugo's WebSocket endpoint, e.g. ws://127.0.0.1:18000/connection/websocket)")
	fs.StringVar(&o.CentrifugoSecret, "centrifugo-secret", env("BENCH_CENTRIFUGO_SECRET", ""), "HMAC key that signs Centrifugo connection tokens")
	fs.IntVar(&o.ServerPID, "pid", 0, "idle: pid of the server process to measure (default: the single chatflow api/dev, or centrifugo, running)")
	peerTable := fs.String("peer-table", "", "print the peer comparison table from this bench-peer results directory and exit")
	cfConfig := fs.String("write-centrifugo-config", "", "write a Centrifugo v6 config for the peer run to this path and exit")
	var cc bench.CentrifugoConfig
	fs.IntVar(&cc.Port, "centrifugo-port", 18000, "Centrifugo config: HTTP/WebSocket port")
	fs.StringVar(&cc.RedisAddr, "centrifugo-redis", "127.0.0.1:16379", "Centrifugo config: Redis host:port")
	fs.IntVar(&cc.RedisDB, "centrifugo-redis-db", 2, "Centrifugo config: Redis database index of its own")
	fs.StringVar(&cc.RedisPrefix, "centrifugo-redis-prefix", "centrifugo-bench", "Centrifugo config: Redis key prefix")
	fs.IntVar(&cc.HistorySize, "centrifugo-history-size", 100, "Centrifugo config: channel history size")
	fs.DurationVar(&cc.HistoryTTL, "centrifugo-history-ttl", 5*time.Minute, "Centrifugo config: channel history TTL")
	_ = fs.Parse(args)
	switch {
	case *peerTable != "":
		pairs, ic, ih, err := bench.LoadPeerResults(*peerTable)
		if err != nil {
			return err
		}
		fmt.Print(bench.PeerTable(pairs, ic, ih))
		return nil
	case *cfConfig != "":
		cc.HMACSecret = o.CentrifugoSecret
		b, err := cc.Render()
		if err != nil {
			return err
		}
		return os.WriteFile(*cfConfig, b, 0o600)
	}
	o.URLs = strings.Split(*urls, ",")
	r, err := bench.Run(ctx, o)
	if err != nil {
		return err
	}
	if !r.OK {
		return fmt.Errorf("bench: a check failed (see above)")
	}
	return nil
}
