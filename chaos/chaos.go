// Package chaos is the fault suite behind `chatflow chaos`: it starts its
// own services (scripts/services.sh on its own ports and data directory)
// and its own api and worker processes, puts chat load on them, injects one
// fault per scenario mid-load, and then verifies from Postgres, Kafka and
// the clients' own records that no acked or seen message was lost,
// duplicated or re-sequenced. See RELIABILITY.md.
package chaos

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// Options configure a run.
type Options struct {
	Root      string   // repository root; found from the working directory when empty
	Short     bool     // the CI subset
	Only      []string // scenario names; empty: all of the selected set
	Out       string   // Markdown report file
	Users     int      // load clients (default 50)
	RoomSize  int      // members per room (default 5)
	Rate      float64  // new messages per second, all clients together (default 400)
	Transfers float64  // new transfers per second, all rooms together (default 3)
	KeepData  bool     // do not wipe .data/chaos first
	Keep      bool     // leave the services running at the end
	Stdout    io.Writer
	Stderr    io.Writer
}

// timing of one scenario.
type timing struct {
	warmup, after    time.Duration // load before the fault, and after it is over
	drain            time.Duration // resends after the senders stop, at most
	pgLimit, pgStall time.Duration
	holeGrace        time.Duration
	kafkaLimit       time.Duration
	kafkaStall       time.Duration
}

func (o Options) timing() timing {
	if o.Short {
		return timing{warmup: 8 * time.Second, after: 15 * time.Second, drain: 30 * time.Second,
			pgLimit: 150 * time.Second, pgStall: 45 * time.Second, holeGrace: 45 * time.Second,
			kafkaLimit: 60 * time.Second, kafkaStall: 20 * time.Second}
	}
	return timing{warmup: 10 * time.Second, after: 20 * time.Second, drain: 60 * time.Second,
		pgLimit: 180 * time.Second, pgStall: 120 * time.Second, holeGrace: 90 * time.Second,
		kafkaLimit: 120 * time.Second, kafkaStall: 45 * time.Second}
}

func (o Options) transferRate() float64 {
	if o.Transfers > 0 {
		return o.Transfers
	}
	return 3
}

// FindRoot walks up from the working directory to the repository root.
func FindRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "scripts", "services.sh")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("not inside the chatflow repository (no scripts/services.sh above the working directory)")
		}
		dir = parent
	}
}

// Run runs the selected scenarios and returns their rows. The error is set
// when the suite itself could not run; failed verdicts are in the rows.
func Run(ctx context.Context, o Options) ([]Row, error) {
	if o.Stdout == nil {
		o.Stdout = os.Stdout
	}
	if o.Stderr == nil {
		o.Stderr = os.Stderr
	}
	o.Users = cmp(o.Users, 50)
	o.RoomSize = cmp(o.RoomSize, 5)
	if o.Rate <= 0 {
		o.Rate = 400
	}
	if o.Users < o.RoomSize || o.RoomSize < 2 {
		return nil, fmt.Errorf("need at least one room of >= 2 users (users %d, room size %d)", o.Users, o.RoomSize)
	}
	list, err := selectScenarios(o.Short, o.Only)
	if err != nil {
		return nil, err
	}
	if o.Root == "" {
		if o.Root, err = FindRoot(); err != nil {
			return nil, err
		}
	}
	start := time.Now()
	logf := func(format string, args ...any) {
		fmt.Fprintf(o.Stderr, "[chaos %5.0fs] %s\n", time.Since(start).Seconds(), fmt.Sprintf(format, args...))
	}
	env := NewEnv(o.Root, logf)
	defer func() {
		// cleanup runs on its own clock: ctx may be cancelled (Ctrl-C)
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 3*time.Minute)
		defer cancel()
		logf("stopping the api and worker")
		env.StopProcs()
		if o.Keep {
			logf("leaving the services of %s running (-keep)", env.Data)
			return
		}
		logf("stopping the services of %s", env.Data)
		if err := env.Services(cctx, "stop"); err != nil {
			logf("%v", err)
		}
	}()
	logf("preparing %s", env.Data)
	if err := env.Prepare(ctx, o.KeepData); err != nil {
		return nil, err
	}
	logf("starting services (Postgres :%d, Redis :%d, Kafka :%d, Temporal :%d)", pgPort, redisPort, kafkaPort, temporalPort)
	if err := env.Services(ctx, "start"); err != nil {
		return nil, err
	}
	if err := env.Migrate(ctx); err != nil {
		return nil, err
	}
	logf("starting worker and api (%s)", env.BaseURL())
	if err := env.StartProcs(ctx); err != nil {
		return nil, err
	}
	var rows []Row
	for i, sc := range list {
		if ctx.Err() != nil {
			break
		}
		logf("=== scenario %d/%d: %s: %s", i+1, len(list), sc.Name, sc.What)
		row := runScenario(ctx, env, o, sc, i, logf)
		rows = append(rows, row)
		logf("=== %s: %s", sc.Name, row.Verdict())
	}
	report := Report(rows, o, time.Since(start))
	fmt.Fprint(o.Stdout, report)
	if o.Out != "" {
		if err := os.WriteFile(o.Out, []byte(report), 0o644); err != nil {
			return rows, err
		}
	}
	if ctx.Err() != nil {
		return rows, ctx.Err()
	}
	return rows, nil
}

func cmp(v, def int) int {
	if v <= 0 {
		return def
	}
	return v
}

// selectScenarios picks the named scenarios, from the short set first (its
// durations) when short, else from the full set.
func selectScenarios(short bool, only []string) ([]Scenario, error) {
	if len(only) == 0 {
		return Scenarios(short), nil
	}
	sets := [][]Scenario{Scenarios(short), Scenarios(false)}
	var out []Scenario
	for _, name := range only {
		found := false
		for _, set := range sets {
			if i := slices.IndexFunc(set, func(s Scenario) bool { return s.Name == name }); i >= 0 {
				out, found = append(out, set[i]), true
				break
			}
		}
		if !found {
			var names []string
			for _, s := range sets[1] {
				names = append(names, s.Name)
			}
			return nil, fmt.Errorf("unknown scenario %q (known: %s)", name, strings.Join(names, ", "))
		}
	}
	return out, nil
}

// Report is the table, the notes and how the run was made, as Markdown.
func Report(rows []Row, o Options, took time.Duration) string {
	var b strings.Builder
	b.WriteString(Table(rows))
	if n := Notes(rows); n != "" {
		b.WriteString("\n" + n)
	}
	failed := 0
	for _, r := range rows {
		if !r.Passed() {
			failed++
		}
	}
	fmt.Fprintf(&b, "\n%d scenarios, %d passed, %d failed; %d users in rooms of %d at %.0f msg/s; %s, %s.\n",
		len(rows), len(rows)-failed, failed, o.Users, o.RoomSize, o.Rate, took.Round(time.Second), time.Now().UTC().Format(time.RFC3339))
	return b.String()
}
