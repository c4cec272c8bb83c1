package chaos

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Scenario is one fault, injected mid-load. Inject returns once the fault
// is over (the component is back); the load runs on meanwhile.
type Scenario struct {
	Name   string
	What   string
	Inject func(ctx context.Context, r *run) error
}

// Scenarios lists the suite; short is the CI subset.
func Scenarios(short bool) []Scenario {
	if short {
		return []Scenario{
			{"api-kill9", "SIGKILL the api node, start it again after 2 s", apiKill9},
			{"postgres-stop", "pg_ctl stop -m fast, start again after 30 s (past the old 23 s cut-off)", postgresStop(30 * time.Second)},
			{"poison", "poison messages over WebSocket and REST among normal traffic for 20 s", poison(20 * time.Second)},
		}
	}
	return []Scenario{
		{"api-kill9", "SIGKILL the api node, start it again after 2 s", apiKill9},
		{"worker-kill9", "SIGKILL the worker, start it again after 2 s", workerKill9},
		{"temporal-stop", "stop the Temporal dev server (SIGTERM), start it again after 60 s", temporalStop(60 * time.Second)},
		{"postgres-stop", "pg_ctl stop -m fast, start again after 120 s", postgresStop(120 * time.Second)},
		{"kafka-stop", "stop the Kafka broker (SIGTERM), start it again after 120 s", kafkaStop(120 * time.Second)},
		{"redis-shutdown", "redis-cli SHUTDOWN, start again after 2 s", redisShutdown},
		{"redis-kill9", "SIGKILL redis-server, start again after 2 s", redisKill9},
		{"redis-oscrash", "SIGKILL redis-server, cut the AOF back to its size 1 s earlier, start again", redisOSCrash(time.Second)},
		{"poison", "poison messages over WebSocket and REST among normal traffic for 30 s", poison(30 * time.Second)},
	}
}

// sleepCtx sleeps d or until ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// every calls fn every d until the returned stop is called; stop returns
// after fn's last call.
func every(d time.Duration, fn func()) (stop func()) {
	quit, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(d)
		defer t.Stop()
		for {
			select {
			case <-quit:
				return
			case <-t.C:
				fn()
			}
		}
	}()
	return func() { close(quit); <-done }
}

// outage keeps a service down for d (counted from down), then starts the
// services again and notes how long it was down.
func outage(ctx context.Context, r *run, what string, down time.Time, d time.Duration) error {
	if err := sleepCtx(ctx, time.Until(down.Add(d))); err != nil {
		return err
	}
	if err := r.env.Services(ctx, "start"); err != nil {
		return err
	}
	r.note("%s down %.1f s", what, time.Since(down).Seconds())
	return nil
}

var (
	apiKill9    = kill9("api", func(e *Env) *Proc { return e.API })
	workerKill9 = kill9("worker", func(e *Env) *Proc { return e.Worker })
)

// kill9 SIGKILLs one of the chatflow processes and starts it again after 2 s.
func kill9(name string, proc func(*Env) *Proc) func(context.Context, *run) error {
	return func(ctx context.Context, r *run) error {
		p := proc(r.env)
		if err := p.Kill9(); err != nil {
			return err
		}
		down := time.Now()
		if err := sleepCtx(ctx, 2*time.Second); err != nil {
			return err
		}
		err := p.Start(ctx)
		r.note("%s down %.1f s", name, time.Since(down).Seconds())
		return err
	}
}

// stopPidFile signals the process of a services pid file and waits for it
// to end. The services are daemons whose parent is init; an init that reaps
// late leaves a zombie that services.sh would take for a running service, so
// the suite waits for it to be reaped and else removes the (stale) pid file,
// as a reboot would.
func stopPidFile(path string, sig syscall.Signal) error {
	pid, err := pidFile(path)
	if err != nil {
		return err
	}
	if !alive(pid) {
		return fmt.Errorf("%s: pid %d is not running", path, pid)
	}
	if err := signalAndWait(pid, sig, 20*time.Second); err != nil {
		return err
	}
	for i := 0; i < 100 && !gone(pid); i++ {
		time.Sleep(50 * time.Millisecond)
	}
	if !gone(pid) {
		return os.Remove(path)
	}
	return nil
}

// gone reports whether pid has no /proc entry any more (a zombie still has one).
func gone(pid int) bool {
	_, err := os.Stat(fmt.Sprintf("/proc/%d", pid))
	return os.IsNotExist(err)
}

func temporalStop(d time.Duration) func(context.Context, *run) error {
	return func(ctx context.Context, r *run) error {
		if err := stopPidFile(filepath.Join(r.env.Data, "temporal", "pid"), syscall.SIGTERM); err != nil {
			return err
		}
		return outage(ctx, r, "temporal", time.Now(), d)
	}
}

func kafkaStop(d time.Duration) func(context.Context, *run) error {
	return func(ctx context.Context, r *run) error {
		if err := stopPidFile(filepath.Join(r.env.Data, "kafka", "pid"), syscall.SIGTERM); err != nil {
			return err
		}
		return outage(ctx, r, "kafka", time.Now(), d)
	}
}

func postgresStop(d time.Duration) func(context.Context, *run) error {
	return func(ctx context.Context, r *run) error {
		cctx, cancel := context.WithTimeout(ctx, 60*time.Second)
		defer cancel()
		args := []string{"/usr/lib/postgresql/15/bin/pg_ctl", "-D", filepath.Join(r.env.Data, "pg"), "-m", "fast", "-w", "stop"}
		if os.Geteuid() == 0 { // the cluster belongs to the postgres user (services.sh)
			args = append([]string{"runuser", "-u", "postgres", "--"}, args...)
		}
		out, err := exec.CommandContext(cctx, args[0], args[1:]...).CombinedOutput()
		if err != nil {
			return fmt.Errorf("pg_ctl stop: %v: %s", err, out)
		}
		return outage(ctx, r, "postgres", time.Now(), d)
	}
}

func redisPidPath(r *run) string { return filepath.Join(r.env.Data, "redis", "redis.pid") }

func redisShutdown(ctx context.Context, r *run) error {
	pid, err := pidFile(redisPidPath(r))
	if err != nil {
		return err
	}
	cctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	// SHUTDOWN closes the connection instead of answering: no error check on the exit status
	_ = exec.CommandContext(cctx, "redis-cli", "-p", strconv.Itoa(redisPort), "SHUTDOWN").Run()
	deadline := time.Now().Add(20 * time.Second)
	for alive(pid) && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if alive(pid) {
		return fmt.Errorf("redis (pid %d) still running 20 s after SHUTDOWN", pid)
	}
	for i := 0; i < 100 && !gone(pid); i++ {
		time.Sleep(50 * time.Millisecond)
	}
	if !gone(pid) {
		_ = os.Remove(redisPidPath(r))
	}
	return outage(ctx, r, "redis", time.Now(), 2*time.Second)
}

func redisKill9(ctx context.Context, r *run) error {
	if err := stopPidFile(redisPidPath(r), syscall.SIGKILL); err != nil {
		return err
	}
	return outage(ctx, r, "redis", time.Now(), 2*time.Second)
}

// aofSample is the newest incremental AOF file and its size at a time.
type aofSample struct {
	at   time.Time
	name string
	size int64
}

var incrAOF = regexp.MustCompile(`\.(\d+)\.incr\.aof$`)

// newestIncrAOF finds the incremental AOF file Redis 7 appends to now: the
// *.incr.aof with the highest sequence number under appendonlydir.
func newestIncrAOF(dir string) (string, int64, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return "", 0, err
	}
	best, bestN := "", -1
	for _, e := range entries {
		if m := incrAOF.FindStringSubmatch(e.Name()); m != nil {
			if n, _ := strconv.Atoi(m[1]); n > bestN {
				best, bestN = e.Name(), n
			}
		}
	}
	if best == "" {
		return "", 0, fmt.Errorf("no *.incr.aof in %s", dir)
	}
	st, err := os.Stat(filepath.Join(dir, best))
	if err != nil {
		return "", 0, err
	}
	return best, st.Size(), nil
}

// CutSize is the size to cut file back to after a crash at crash: its size
// at the last sample taken at least window before; 0 when the file did not
// exist then (it was started within the window).
func CutSize(samples []aofSample, file string, crash time.Time, window time.Duration) int64 {
	var size int64
	for _, s := range samples {
		if s.name == file && !s.at.After(crash.Add(-window)) {
			size = s.size
		}
	}
	return size
}

// redisOSCrash emulates an OS crash under appendfsync everysec: Redis is
// killed and its AOF loses what was written in the last window.
func redisOSCrash(window time.Duration) func(context.Context, *run) error {
	return func(ctx context.Context, r *run) error {
		dir := filepath.Join(r.env.Data, "redis", "appendonlydir")
		var mu sync.Mutex
		var samples []aofSample
		sample := func() {
			if name, size, err := newestIncrAOF(dir); err == nil {
				mu.Lock()
				samples = append(samples, aofSample{time.Now(), name, size})
				mu.Unlock()
			}
		}
		sample()
		stop := every(50*time.Millisecond, sample)
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		if out, err := exec.CommandContext(cctx, "redis-cli", "-p", strconv.Itoa(redisPort), "CONFIG", "GET", "appendfsync").Output(); err == nil {
			if f := strings.Fields(string(out)); len(f) == 2 {
				r.note("redis appendfsync %s", f[1])
			}
		}
		cancel()
		err := sleepCtx(ctx, 3*time.Second) // sample under load for a while
		stop()
		sample()
		crash := time.Now() // the last sample is at most 50 ms old: a crash loses nothing more recent
		if err == nil {
			err = stopPidFile(redisPidPath(r), syscall.SIGKILL)
		}
		if err != nil {
			return err
		}
		name, size, err := newestIncrAOF(dir)
		if err != nil {
			return err
		}
		mu.Lock()
		sort.Slice(samples, func(i, j int) bool { return samples[i].at.Before(samples[j].at) })
		cut := CutSize(samples, name, crash, window)
		mu.Unlock()
		if cut < size {
			if err := os.Truncate(filepath.Join(dir, name), cut); err != nil {
				return err
			}
		}
		r.note("AOF %s cut from %d to %d bytes (-%d)", name, size, cut, size-cut)
		return outage(ctx, r, "redis", crash, 0)
	}
}

// poison sends every poison case over WebSocket and REST, round after
// round, into the test rooms while the normal load runs.
func poison(d time.Duration) func(context.Context, *run) error {
	return func(ctx context.Context, r *run) error {
		if r.poison == nil {
			return fmt.Errorf("no poison client")
		}
		end := time.Now().Add(d)
		for round := 0; time.Now().Before(end) && ctx.Err() == nil; round++ {
			room := r.rooms[round%len(r.rooms)]
			r.poisonResults = append(r.poisonResults, poisonRound(ctx, r.poison, r.env.BaseURL(), room, round)...)
			if err := sleepCtx(ctx, time.Second); err != nil {
				return err
			}
		}
		return ctx.Err()
	}
}

// pidFile reads a pid file of the services (first line).
func pidFile(path string) (int, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	line, _, _ := strings.Cut(string(raw), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil || pid <= 0 {
		return 0, fmt.Errorf("%s: no pid", path)
	}
	return pid, nil
}

// alive reports whether pid exists (and is not a zombie).
func alive(pid int) bool {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(raw)
	if i := strings.LastIndexByte(s, ')'); i >= 0 && i+2 < len(s) {
		return s[i+2] != 'Z'
	}
	return true
}

// signalAndWait signals pid and waits up to limit for it to end; SIGKILL
// follows when it has not ended by then (unless sig was SIGKILL already).
func signalAndWait(pid int, sig syscall.Signal, limit time.Duration) error {
	if err := syscall.Kill(pid, sig); err != nil {
		return fmt.Errorf("kill -%d %d: %w", sig, pid, err)
	}
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		if !alive(pid) {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	if sig != syscall.SIGKILL {
		_ = syscall.Kill(pid, syscall.SIGKILL)
		time.Sleep(500 * time.Millisecond)
		if !alive(pid) {
			return nil
		}
	}
	return fmt.Errorf("pid %d still alive %s after signal %d", pid, limit, sig)
}
