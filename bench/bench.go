// Package bench drives a running chatflow system the way real clients do and
// measures it: sign-up storms, chat load over WebSocket across nodes,
// reconnect storms with sync, and history reads. Results come out as a
// progress line, a table and a JSON file.
package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Options configure a run.
type Options struct {
	URLs        []string      // api nodes, clients spread round-robin
	DatabaseURL string        // for the loss check and the COPY baseline
	RedisPort   string        // for the PUBLISH baseline
	Scenario    string        // signup | chat | reconnect | history | baseline
	Signups     int           // (a) concurrent sign-ups
	Clients     int           // (b) WebSocket clients
	RoomSize    int           // (b) members per room
	Rate        float64       // (b) messages/s per client
	Duration    time.Duration // (b)(d) load duration
	Readers     int           // (d) concurrent history readers
	Conns       int           // idle: connections to open
	Concurrency int           // parallel sign-ups during setup
	Out         string        // JSON result file
	UsersFile   string        // reuse the users created by earlier runs
	Preload     int           // history/search: stored messages to have in Postgres first
	Label       string
	// Target is the system driven: "chatflow" (default) or "centrifugo"
	// (chat and idle scenarios; URLs are then its WebSocket endpoints).
	Target           string
	CentrifugoSecret string // HMAC key for Centrifugo connection tokens
	ServerPID        int    // idle: the server process to measure (0: find the one running)
}

// Result is one run's measurements.
type Result struct {
	Label     string             `json:"label"`
	Scenario  string             `json:"scenario"`
	StartedAt time.Time          `json:"started_at"`
	Params    map[string]any     `json:"params"`
	Metrics   map[string]float64 `json:"metrics"`
	Latency   map[string]Summary `json:"latency_ms"`
	Processes []ProcStat         `json:"processes"`
	Checks    map[string]string  `json:"checks"`
	OK        bool               `json:"ok"`
}

// Summary holds latency percentiles in milliseconds.
type Summary struct {
	N   int     `json:"n"`
	P50 float64 `json:"p50"`
	P95 float64 `json:"p95"`
	P99 float64 `json:"p99"`
	Max float64 `json:"max"`
	// Hist counts the durations up to each of histEdgesMs (the last bucket
	// is everything above), to see the shape of a tail, not only its p99.
	Hist []int `json:"hist,omitempty"`
}

// histEdgesMs are the upper edges of Summary.Hist's buckets, in ms.
var histEdgesMs = [...]float64{0.25, 0.5, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024}

// Summarize computes percentiles of durations.
func Summarize(ds []time.Duration) Summary {
	if len(ds) == 0 {
		return Summary{}
	}
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	q := func(p float64) float64 {
		i := int(math.Ceil(p*float64(len(ds)))) - 1
		i = max(0, min(i, len(ds)-1))
		return float64(ds[i].Microseconds()) / 1000
	}
	hist := make([]int, len(histEdgesMs)+1)
	b := 0
	for _, d := range ds { // sorted
		ms := float64(d.Microseconds()) / 1000
		for b < len(histEdgesMs) && ms > histEdgesMs[b] {
			b++
		}
		hist[b]++
	}
	return Summary{N: len(ds), P50: q(0.50), P95: q(0.95), P99: q(0.99), Max: q(1), Hist: hist}
}

// Run executes the scenario and writes the result.
func Run(ctx context.Context, o Options) (*Result, error) {
	r := &Result{Label: o.Label, Scenario: o.Scenario, StartedAt: time.Now().UTC(), Metrics: map[string]float64{},
		Latency: map[string]Summary{}, Checks: map[string]string{}, OK: true,
		Params: map[string]any{"urls": o.URLs, "signups": o.Signups, "clients": o.Clients, "room_size": o.RoomSize,
			"rate_per_client": o.Rate, "duration_s": o.Duration.Seconds(), "readers": o.Readers, "conns": o.Conns, "target": targetName(o)}}
	procs := startProcWatch()
	var err error
	switch o.Scenario {
	case "signup":
		err = runSignups(ctx, o, r)
	case "chat":
		err = runChat(ctx, o, r, false)
	case "reconnect":
		err = runChat(ctx, o, r, true)
	case "history":
		err = runHistory(ctx, o, r)
	case "search":
		err = runSearch(ctx, o, r)
	case "baseline":
		err = runBaselines(ctx, o, r)
	case "idle":
		err = runIdle(ctx, o, r)
	default:
		err = fmt.Errorf("unknown scenario %q", o.Scenario)
	}
	if all := procs.stop(); r.Processes == nil {
		r.Processes = all // scenarios with a load phase measure just that phase
	}
	if err != nil {
		return r, err
	}
	printTable(os.Stdout, r)
	if o.Out != "" {
		b, _ := json.MarshalIndent(r, "", "  ")
		if err := os.WriteFile(o.Out, b, 0o644); err != nil {
			return r, err
		}
	}
	return r, nil
}

func targetName(o Options) string {
	if isCentrifugo(o) {
		return "centrifugo"
	}
	return "chatflow"
}

func (r *Result) check(name string, ok bool, detail string) {
	if ok {
		r.Checks[name] = "ok: " + detail
	} else {
		r.Checks[name] = "FAIL: " + detail
		r.OK = false
	}
}

func printTable(w io.Writer, r *Result) {
	fmt.Fprintf(w, "\n== %s %s ==\n", r.Scenario, r.Label)
	for _, k := range slices.Sorted(maps.Keys(r.Metrics)) {
		fmt.Fprintf(w, "  %-34s %12.1f\n", k, r.Metrics[k])
	}
	if len(r.Latency) > 0 {
		fmt.Fprintf(w, "  %-22s %8s %9s %9s %9s %9s\n", "latency (ms)", "n", "p50", "p95", "p99", "max")
		for _, k := range slices.Sorted(maps.Keys(r.Latency)) {
			s := r.Latency[k]
			fmt.Fprintf(w, "  %-22s %8d %9.2f %9.2f %9.2f %9.2f\n", k, s.N, s.P50, s.P95, s.P99, s.Max)
		}
		fmt.Fprintf(w, "  histogram (count up to ms: %v, then above)\n", histEdgesMs)
		for _, k := range slices.Sorted(maps.Keys(r.Latency)) {
			fmt.Fprintf(w, "  %-22s %v\n", k, r.Latency[k].Hist)
		}
	}
	if len(r.Processes) > 0 {
		fmt.Fprintf(w, "  %-28s %10s %10s\n", "process", "cpu cores", "max PSS MB")
		for _, p := range r.Processes {
			fmt.Fprintf(w, "  %-28s %10.2f %10.1f\n", p.Name, p.CPUCores, p.MaxRSSMB)
		}
	}
	for _, k := range slices.Sorted(maps.Keys(r.Checks)) {
		fmt.Fprintf(w, "  check %-22s %s\n", k, r.Checks[k])
	}
}

// httpJSON does one JSON request against base.
func httpJSON(ctx context.Context, hc *http.Client, method, url, token string, body, out any) (int, error) {
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if out != nil && len(raw) > 0 && resp.StatusCode < 300 {
		if err := json.Unmarshal(raw, out); err != nil {
			return resp.StatusCode, err
		}
	}
	if resp.StatusCode >= 300 {
		return resp.StatusCode, fmt.Errorf("%s %s: %d %s", method, url, resp.StatusCode, strings.TrimSpace(string(raw)))
	}
	return resp.StatusCode, nil
}

func newHTTPClient() *http.Client {
	return &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 512, MaxConnsPerHost: 1024}}
}

// progress prints a line a second until stop is closed.
func progress(line func() string) (end func()) {
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-stop:
				fmt.Fprintln(os.Stderr)
				return
			case <-t.C:
				fmt.Fprintf(os.Stderr, "\r%s   ", line())
			}
		}
	}()
	return func() { close(stop); <-done }
}

// ProcStat is the CPU and memory a process used during a run.
type ProcStat struct {
	Name     string  `json:"name"`
	PID      int     `json:"pid"`
	CPUCores float64 `json:"cpu_cores"`
	MaxRSSMB float64 `json:"max_pss_mb"`
}

type procWatch struct {
	start  time.Time
	cpu0   map[int]float64
	names  map[int]string
	maxRSS map[int]float64
	stopc  chan struct{}
	wg     sync.WaitGroup
	mu     sync.Mutex
}

// watched names the processes of the local system worth reporting.
func watchedPIDs() map[int]string {
	out := map[int]string{}
	ents, _ := os.ReadDir("/proc")
	self := os.Getpid()
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmd, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if err != nil || len(cmd) == 0 {
			continue
		}
		args := strings.Split(strings.TrimRight(string(cmd), "\x00"), "\x00")
		base := args[0][strings.LastIndex(args[0], "/")+1:]
		name := ""
		switch {
		case pid == self:
			name = "bench (load generator)"
		case base == "chatflow" && len(args) > 1:
			name = "chatflow " + args[1]
		case base == "centrifugo":
			name = "centrifugo"
		case base == "temporal":
			name = "temporal dev server"
		case strings.HasPrefix(base, "redis-server"):
			name = "redis"
		case base == "postgres" || strings.HasPrefix(base, "postgres:"):
			name = "postgres (all backends)"
		}
		if name != "" {
			out[pid] = name
		}
	}
	return out
}

// procCPU returns a process's CPU seconds.
func procCPU(pid int) (cpuSec float64, ok bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, false
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	if len(f) < 22 {
		return 0, false
	}
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (ut + st) / 100, true
}

// pssSampleEvery is how often a run samples its processes' memory. Reading
// smaps_rollup walks every page table entry of the process, under its mmap
// lock: with a 1.3 GB Redis, an 800 MB Kafka broker and a shared-buffers
// mapping in every Postgres backend, sampling every 500 ms took ~0.2 of the
// box's 2 cores in a system-wide perf profile (BENCHMARKS.md, round 5) —
// CPU the generator took from the system it measured.
const pssSampleEvery = 5 * time.Second

// pssMB returns a process's proportional set size (PSS: shared pages split
// between sharers, so Postgres backends sum right).
func pssMB(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "Pss:") {
			v, _ := strconv.ParseFloat(strings.Fields(line)[1], 64)
			return v / 1024
		}
	}
	return 0
}

func startProcWatch() *procWatch {
	w := &procWatch{start: time.Now(), cpu0: map[int]float64{}, names: watchedPIDs(), maxRSS: map[int]float64{}, stopc: make(chan struct{})}
	for pid := range w.names {
		c, _ := procCPU(pid)
		w.cpu0[pid] = c
	}
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		t := time.NewTicker(pssSampleEvery)
		defer t.Stop()
		for {
			select {
			case <-w.stopc:
				return
			case <-t.C:
				w.mu.Lock()
				for pid := range w.names {
					if rss := pssMB(pid); rss > w.maxRSS[pid] {
						w.maxRSS[pid] = rss
					}
				}
				w.mu.Unlock()
			}
		}
	}()
	return w
}

func (w *procWatch) stop() []ProcStat {
	close(w.stopc)
	w.wg.Wait()
	el := time.Since(w.start).Seconds()
	// processes born during the run (new Postgres backends, say) count from zero
	for pid, name := range watchedPIDs() {
		if _, ok := w.names[pid]; !ok {
			w.names[pid] = name
		}
	}
	agg := map[string]*ProcStat{}
	for pid, name := range w.names {
		c, ok := procCPU(pid)
		if !ok {
			continue
		}
		rss := pssMB(pid)
		p := agg[name]
		if p == nil {
			p = &ProcStat{Name: name, PID: pid}
			agg[name] = p
		}
		p.CPUCores += (c - w.cpu0[pid]) / el
		p.MaxRSSMB += max(rss, w.maxRSS[pid])
	}
	out := make([]ProcStat, 0, len(agg))
	for _, p := range agg {
		out = append(out, *p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].CPUCores > out[j].CPUCores })
	return out
}

// runBaselines measures the raw limits on this machine: Redis PUBLISH and
// Postgres COPY of the message row.
func runBaselines(ctx context.Context, o Options, r *Result) error {
	out, err := exec.CommandContext(ctx, "redis-benchmark", "-p", o.RedisPort, "-n", "400000", "-c", "50", "-P", "16", "-q",
		"PUBLISH", "{r:bench}", strings.Repeat("x", 300)).CombinedOutput()
	if err != nil {
		return fmt.Errorf("redis-benchmark: %v: %s", err, out)
	}
	r.Metrics["baseline_redis_publish_per_s"] = parseRPS(string(out))
	n, rate, err := copyBaseline(ctx, o.DatabaseURL, 200000)
	if err != nil {
		return err
	}
	r.Metrics["baseline_pg_copy_rows"] = float64(n)
	r.Metrics["baseline_pg_copy_rows_per_s"] = rate
	return nil
}

func parseRPS(s string) float64 {
	// "PUBLISH {r:bench} xxx: 512345.67 requests per second, p50=..."
	i := strings.Index(s, "requests per second")
	if i < 0 {
		return 0
	}
	f := strings.Fields(s[:i])
	v, _ := strconv.ParseFloat(f[len(f)-1], 64)
	return v
}
