package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/chatflow/chatflow/chaos"
)

// runChaos is `chatflow chaos`: the fault suite (see RELIABILITY.md). It
// starts its own services and processes; the exit status is non-zero when
// any scenario fails.
func runChaos(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("chaos", flag.ExitOnError)
	short := fs.Bool("short", false, "run the CI subset: api-kill9, postgres-stop (30 s), poison")
	only := fs.String("only", "", "comma-separated scenario names to run (default: all of the set)")
	out := fs.String("out", "", "also write the result table as Markdown to this file")
	users := fs.Int("users", 50, "load clients (each its own user and WebSocket)")
	roomSize := fs.Int("room-size", 5, "members per room")
	rate := fs.Float64("rate", 400, "new messages per second, all clients together")
	transfers := fs.Float64("transfers", 3, "new transfers per second (the transfer saga), all rooms together")
	keepData := fs.Bool("keep-data", false, "do not wipe .data/chaos before the run")
	keep := fs.Bool("keep", false, "leave the suite's services running at the end")
	fs.Usage = func() {
		fmt.Fprintf(os.Stderr, "usage: chatflow chaos [-short] [-only NAME,...] [-out FILE]\n\n"+
			"Starts its own services (.data/chaos; ports 25432, 26379, 29092, 27233/28233) and its own\n"+
			"api (127.0.0.1:28080) and worker, injects each fault under chat and transfer load and verifies\n"+
			"from Postgres, Kafka, the ledger and the clients' records. Scenarios: api-kill9, worker-kill9, temporal-stop,\n"+
			"postgres-stop, kafka-stop, redis-shutdown, redis-kill9, redis-oscrash, poison.\n\n")
		fs.PrintDefaults()
	}
	_ = fs.Parse(args)
	var names []string
	for _, n := range strings.Split(*only, ",") {
		if n = strings.TrimSpace(n); n != "" {
			names = append(names, n)
		}
	}
	rows, err := chaos.Run(ctx, chaos.Options{Short: *short, Only: names, Out: *out, Users: *users, RoomSize: *roomSize,
		Rate: *rate, Transfers: *transfers, KeepData: *keepData, Keep: *keep})
	if err != nil {
		return err
	}
	failed := 0
	for _, r := range rows {
		if !r.Passed() {
			failed++
		}
	}
	if failed > 0 {
		return fmt.Errorf("chaos: %d of %d scenarios failed", failed, len(rows))
	}
	return nil
}
