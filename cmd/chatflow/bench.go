package main

import (
	"context"
	"flag"
	"fmt"
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
	_ = fs.Parse(args)
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
