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
	pid, err := apiPID()
	if err != nil {
		return err
	}
	users, err := signupUsers(ctx, o, max(1, o.Clients), r, "setup_signup")
	if err != nil {
		return err
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
			u := users[i%len(users)]
			node := o.URLs[i%len(o.URLs)]
			d := websocket.Dialer{HandshakeTimeout: 30 * time.Second, ReadBufferSize: 256, WriteBufferSize: 256}
			c, _, err := d.Dial("ws"+strings.TrimPrefix(node, "http")+"/ws?access_token="+u.Access, nil)
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
	r.Metrics["api_rss_before_mb"] = before / 1024
	r.Metrics["api_rss_after_mb"] = after / 1024
	perConn := (after - before) / float64(max(n, 1))
	r.Metrics["api_kb_per_idle_connection"] = perConn
	r.check("idle_connections", failed.Load() == 0, fmt.Sprintf("%d opened, %d failed (%v)", n, failed.Load(), firstErr.Load()))
	r.check("idle_memory", perConn < 30, fmt.Sprintf("%.1f KB RSS per idle connection (target < 30)", perConn))
	return nil
}

// apiPID finds the single running `chatflow api` or `chatflow dev` process.
func apiPID() (int, error) {
	var found []int
	for pid, name := range watchedPIDs() {
		if name == "chatflow api" || name == "chatflow dev" {
			found = append(found, pid)
		}
	}
	if len(found) != 1 {
		return 0, fmt.Errorf("idle: need exactly one chatflow api/dev process to measure, found %d", len(found))
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
