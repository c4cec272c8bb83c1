package chaos

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Ports of the suite's own services and processes: below the kernel's
// ephemeral port range and apart from the default ones, which other runs use.
const (
	pgPort         = 25432
	redisPort      = 26379
	kafkaPort      = 29092
	temporalPort   = 27233
	temporalUIPort = 28233
	s3Port         = 29000 // the object store: started with the rest, no fault targets it
	apiAddr        = "127.0.0.1:28080"
	metricsAddr    = "127.0.0.1:28090" // the worker's
	apiMetricsAddr = "127.0.0.1:28091"
)

// Env is the suite's own set of services and chatflow processes.
type Env struct {
	Root string // repository root (scripts/services.sh)
	Data string // CHATFLOW_DATA of the suite's services
	Bin  string // the chatflow binary the processes run (a copy of the suite's own)
	Logs string
	log  func(format string, args ...any)

	jwt    string
	API    *Proc
	Worker *Proc
}

// BaseURL is the api node's HTTP address.
func (e *Env) BaseURL() string { return "http://" + apiAddr }

// DatabaseURL is the suite's Postgres.
func (e *Env) DatabaseURL() string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/chatflow?sslmode=disable", pgPort)
}

// KafkaAddr is the suite's broker.
func (e *Env) KafkaAddr() string { return fmt.Sprintf("127.0.0.1:%d", kafkaPort) }

func (e *Env) serviceEnv() []string {
	return append(os.Environ(),
		"CHATFLOW_DATA="+e.Data,
		"PG_PORT="+strconv.Itoa(pgPort), "REDIS_PORT="+strconv.Itoa(redisPort),
		"KAFKA_PORT="+strconv.Itoa(kafkaPort), "TEMPORAL_PORT="+strconv.Itoa(temporalPort),
		"TEMPORAL_UI_PORT="+strconv.Itoa(temporalUIPort), "S3_PORT="+strconv.Itoa(s3Port))
}

// appEnv is the environment of migrate, api and worker: the suite's services
// and nothing inherited that could point elsewhere.
func (e *Env) appEnv(node string) []string {
	own := map[string]string{
		"DATABASE_URL":     e.DatabaseURL(),
		"REDIS_ADDR":       fmt.Sprintf("127.0.0.1:%d", redisPort),
		"TEMPORAL_ADDRESS": fmt.Sprintf("127.0.0.1:%d", temporalPort),
		"KAFKA_BROKERS":    e.KafkaAddr(),
		"S3_ENDPOINT":      fmt.Sprintf("http://127.0.0.1:%d", s3Port),
		"HTTP_ADDR":        apiAddr,
		"METRICS_ADDR":     metricsAddr,
		"JWT_SECRET":       e.jwt,
		"NODE_ID":          node,
		"BCRYPT_COST":      "4",
		// one address, many users, reconnect waves: the abuse limits would
		// throttle the load itself
		"RATE_LIMITS": "off",
		"ACCESS_TTL":  "2h",
		"LOG_LEVEL":   "info",
	}
	if strings.HasPrefix(node, "chaos-api-") {
		own["METRICS_ADDR"] = apiMetricsAddr // api nodes serve metrics too, on a port of their own
	}
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if _, ours := own[k]; !ours && k != "PPROF_ADDR" {
			env = append(env, kv)
		}
	}
	for k, v := range own {
		env = append(env, k+"="+v)
	}
	return env
}

// NewEnv describes the suite's environment under root/.data/chaos.
func NewEnv(root string, logf func(string, ...any)) *Env {
	data := filepath.Join(root, ".data", "chaos")
	const alnum = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	secret := make([]byte, 40)
	_, _ = rand.Read(secret)
	for i, b := range secret {
		secret[i] = alnum[int(b)%len(alnum)]
	}
	return &Env{Root: root, Data: data, Logs: filepath.Join(data, "logs"), log: logf, jwt: string(secret)}
}

// Prepare stops what a previous run may have left, wipes the data directory
// (unless keep) and copies the running binary, so that a rebuild of
// bin/chatflow during the run does not change the processes under test.
func (e *Env) Prepare(ctx context.Context, keep bool) error {
	if _, err := os.Stat(filepath.Join(e.Data, "pg")); err == nil {
		_ = e.Services(ctx, "stop")
	}
	if !keep {
		if err := os.RemoveAll(e.Data); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(filepath.Join(e.Data, "bin"), 0o755); err != nil {
		return err
	}
	if err := os.MkdirAll(e.Logs, 0o755); err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	e.Bin = filepath.Join(e.Data, "bin", "chatflow")
	return copyFile(self, e.Bin)
}

func copyFile(from, to string) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	tmp := to + ".tmp"
	out, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o755)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	if err := out.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, to)
}

// Services runs scripts/services.sh verb on the suite's ports and data.
func (e *Env) Services(ctx context.Context, verb string) error {
	limit := 5 * time.Minute // a first start may install packages / build temporal
	if verb == "stop" {
		limit = 2 * time.Minute
	}
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	cmd := exec.CommandContext(ctx, "scripts/services.sh", verb)
	cmd.Dir = e.Root
	cmd.Env = e.serviceEnv()
	// own process group: a Ctrl-C on the terminal reaches the suite, which
	// then stops everything in order; the services must not see it first
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.WaitDelay = 5 * time.Second
	err := cmd.Run()
	appendLog(filepath.Join(e.Logs, "services.log"), fmt.Sprintf("== %s services.sh %s\n%s", time.Now().Format(time.RFC3339), verb, out.String()))
	if err != nil {
		return fmt.Errorf("services.sh %s: %v: %s", verb, err, strings.TrimSpace(lastLines(out.String(), 4)))
	}
	return nil
}

// Migrate runs `chatflow migrate` against the suite's Postgres.
func (e *Env) Migrate(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, e.Bin, "migrate")
	cmd.Env = e.appEnv("chaos-migrate")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	out, err := cmd.CombinedOutput()
	appendLog(filepath.Join(e.Logs, "migrate.log"), string(out))
	if err != nil {
		return fmt.Errorf("migrate: %v: %s", err, lastLines(string(out), 3))
	}
	return nil
}

// StartProcs starts the worker and the api and waits until both answer.
func (e *Env) StartProcs(ctx context.Context) error {
	e.Worker = &Proc{Name: "worker", env: e, args: []string{"worker"}, ready: "http://" + metricsAddr + "/metrics"}
	e.API = &Proc{Name: "api", env: e, args: []string{"api"}, ready: e.BaseURL() + "/healthz"}
	for _, p := range []*Proc{e.Worker, e.API} {
		if err := p.Start(ctx); err != nil {
			return err
		}
	}
	return nil
}

// StopProcs ends the api and the worker (SIGTERM, then SIGKILL).
func (e *Env) StopProcs() {
	for _, p := range []*Proc{e.API, e.Worker} {
		if p != nil {
			p.Stop(20 * time.Second)
		}
	}
}

// Proc is one chatflow process of the suite. While it is wanted, an exit
// the suite did not cause is noted and the process is started again after a
// second, as a supervisor (systemd, Kubernetes) would.
type Proc struct {
	Name  string
	env   *Env
	args  []string
	ready string

	mu         sync.Mutex
	cmd        *exec.Cmd
	exited     chan struct{}
	wanted     bool
	gen        int
	unexpected []string // exits the suite did not cause
}

// Start starts the process and waits (up to 90 s) until it answers ready.
func (p *Proc) Start(ctx context.Context) error {
	p.mu.Lock()
	p.wanted = true
	err := p.spawnLocked()
	p.mu.Unlock()
	if err != nil {
		return err
	}
	return p.WaitReady(ctx, 90*time.Second)
}

func (p *Proc) spawnLocked() error {
	p.gen++
	cmd := exec.Command(p.env.Bin, p.args...)
	cmd.Env = p.env.appEnv(fmt.Sprintf("chaos-%s-%d", p.Name, p.gen))
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	f, err := os.OpenFile(filepath.Join(p.env.Logs, p.Name+".log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	fmt.Fprintf(f, "== %s start %d\n", time.Now().Format(time.RFC3339Nano), p.gen)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		f.Close()
		return fmt.Errorf("start %s: %w", p.Name, err)
	}
	exited := make(chan struct{})
	p.cmd, p.exited = cmd, exited
	gen := p.gen
	go func() {
		err := cmd.Wait()
		f.Close()
		close(exited)
		p.mu.Lock()
		defer p.mu.Unlock()
		if !p.wanted || p.gen != gen {
			return
		}
		p.unexpected = append(p.unexpected, fmt.Sprintf("%s exited by itself at %s (%v)", p.Name, time.Now().Format("15:04:05"), err))
		p.env.log("%s exited unexpectedly (%v); restarting it in 1 s", p.Name, err)
		time.AfterFunc(time.Second, func() {
			p.mu.Lock()
			defer p.mu.Unlock()
			if p.wanted && p.gen == gen {
				if err := p.spawnLocked(); err != nil {
					p.env.log("restart %s: %v", p.Name, err)
				}
			}
		})
	}()
	return nil
}

// WaitReady polls the ready URL until it answers 200.
func (p *Proc) WaitReady(ctx context.Context, limit time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	hc := &http.Client{Timeout: 2 * time.Second}
	for {
		req, _ := http.NewRequestWithContext(ctx, "GET", p.ready, nil)
		if resp, err := hc.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s not ready within %s; see %s", p.Name, limit, filepath.Join(p.env.Logs, p.Name+".log"))
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// Kill9 sends SIGKILL and waits until the process is gone; it stays down
// until Start.
func (p *Proc) Kill9() error {
	p.mu.Lock()
	p.wanted = false
	cmd, exited := p.cmd, p.exited
	p.mu.Unlock()
	if cmd == nil {
		return errors.New(p.Name + " is not running")
	}
	_ = cmd.Process.Signal(syscall.SIGKILL)
	select {
	case <-exited:
		return nil
	case <-time.After(10 * time.Second):
		return fmt.Errorf("%s survived SIGKILL for 10 s", p.Name)
	}
}

// Stop sends SIGTERM, then SIGKILL after grace.
func (p *Proc) Stop(grace time.Duration) {
	p.mu.Lock()
	p.wanted = false
	cmd, exited := p.cmd, p.exited
	p.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
		return
	case <-time.After(grace):
	}
	_ = cmd.Process.Signal(syscall.SIGKILL)
	select {
	case <-exited:
	case <-time.After(5 * time.Second):
	}
}

// TakeUnexpected returns and clears the exits the suite did not cause.
func (p *Proc) TakeUnexpected() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	u := p.unexpected
	p.unexpected = nil
	return u
}

func appendLog(path, text string) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return
	}
	defer f.Close()
	_, _ = f.WriteString(text)
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " / ")
}
