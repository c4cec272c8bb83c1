package bench

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/fasthttp/websocket"
	"golang.org/x/sync/errgroup"
)

// runIdle opens o.Conns idle WebSocket connections (spread over a few users,
// as multi-device clients) and reports the api process's memory per connection.
func runIdle(ctx context.Context, o Options, r *Result) error {
	var dial func(i int) (*websocket.Conn, error)
	procName := "chatflow api"
	if isCentrifugo(o) {
		// Each connection connects with a token and subscribes to a room
		// channel (rooms of RoomSize), as a chat client would.
		procName = "centrifugo"
		t := newCentrifugoTarget(o)
		if t.secret == "" {
			return fmt.Errorf("centrifugo: -centrifugo-secret (or BENCH_CENTRIFUGO_SECRET) is required to sign connection tokens")
		}
		size := max(1, o.RoomSize)
		dial = func(i int) (*websocket.Conn, error) {
			c := &wsClient{u: user{ID: fmt.Sprintf("%s-idle%d", t.run, i)}, room: fmt.Sprintf("%s:%s-idle%d", centrifugoNamespace, t.run, i/size)}
			return cfDial(o.URLs[i%len(o.URLs)], t.secret, c, 256)
		}
	}
	pid := o.ServerPID
	if pid == 0 {
		var err error
		if pid, err = serverPID(procName); err != nil {
			return err
		}
	}
	if dial == nil {
		users, err := signupUsers(ctx, o, max(1, o.Clients), r, "setup_signup")
		if err != nil {
			return err
		}
		dial = func(i int) (*websocket.Conn, error) {
			u := users[i%len(users)]
			node := o.URLs[i%len(o.URLs)]
			d := websocket.Dialer{HandshakeTimeout: 30 * time.Second, ReadBufferSize: 256, WriteBufferSize: 256}
			c, _, err := d.Dial("ws"+strings.TrimPrefix(node, "http")+"/ws?access_token="+u.Access, nil)
			return c, err
		}
	}
	settle := func() float64 {
		time.Sleep(2 * time.Second)
		return rssKB(pid)
	}
	before := settle()
	conns := make([]*websocket.Conn, o.Conns)
	var opened, failed atomic.Int64
	var firstErr atomic.Value
	endProgress := progress(func() string {
		return fmt.Sprintf("[idle] connections %d/%d failed %d", opened.Load(), o.Conns, failed.Load())
	})
	start := time.Now()
	var g errgroup.Group // a failed dial is counted, not fatal to the rest
	g.SetLimit(100)
	for i := range conns {
		g.Go(func() error {
			c, err := dial(i)
			if err != nil {
				failed.Add(1)
				firstErr.CompareAndSwap(nil, err)
				return nil
			}
			conns[i] = c
			opened.Add(1)
			return nil
		})
	}
	_ = g.Wait()
	connectEl := time.Since(start)
	endProgress()
	runtime.GC()
	after := settle()
	for _, c := range conns {
		if c != nil {
			c.Close()
		}
	}
	n := opened.Load()
	r.Metrics["idle_connections"] = float64(n)
	r.Metrics["idle_connect_per_s"] = float64(n) / connectEl.Seconds()
	// The metric keeps its name for both targets ("api" is the server
	// process holding the connections: chatflow api or centrifugo).
	r.Metrics["api_rss_before_mb"] = before / 1024
	r.Metrics["api_rss_after_mb"] = after / 1024
	perConn := (after - before) / float64(max(n, 1))
	r.Metrics["api_kb_per_idle_connection"] = perConn
	r.check("idle_connections", failed.Load() == 0, fmt.Sprintf("%d opened, %d failed (%v)", n, failed.Load(), firstErr.Load()))
	if isCentrifugo(o) { // the target is chatflow's; the peer's figure is for comparison
		return nil
	}
	r.check("idle_memory", perConn < 30, fmt.Sprintf("%.1f KB RSS per idle connection (target < 30)", perConn))
	return nil
}

// serverPID finds the single running server process that holds the
// connections: `chatflow api` (or `chatflow dev`), or `centrifugo`.
func serverPID(name string) (int, error) {
	var found []int
	for pid, n := range watchedPIDs() {
		if n == name || (name == "chatflow api" && n == "chatflow dev") {
			found = append(found, pid)
		}
	}
	if len(found) != 1 {
		return 0, fmt.Errorf("idle: need exactly one %s process to measure, found %d", name, len(found))
	}
	return found[0], nil
}

func rssKB(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "VmRSS:") {
			f := strings.Fields(line)
			v, _ := strconv.ParseFloat(f[1], 64)
			return v
		}
	}
	return 0
}
