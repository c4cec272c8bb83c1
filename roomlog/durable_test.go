package roomlog

import (
	"context"
	"fmt"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// TestCheckDurable runs a Redis of its own (the settings are changed on it,
// never on the shared one) through no AOF, everysec and always.
func TestCheckDurable(t *testing.T) {
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Skip("redis-server not installed")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	srv := exec.Command("redis-server", "--port", fmt.Sprint(port), "--bind", "127.0.0.1", "--dir", t.TempDir(),
		"--save", "", "--appendonly", "no")
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Process.Kill(); _ = srv.Wait() })
	ctx := context.Background()
	rdb := redis.NewClient(&redis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", port)})
	defer rdb.Close()
	for i := 0; rdb.Ping(ctx).Err() != nil; i++ {
		if i > 100 {
			t.Fatal("redis did not start")
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, c := range []struct {
		set  map[string]string
		want string // "" for durable
	}{
		{nil, `appendonly "no"`},
		{map[string]string{"appendonly": "yes", "appendfsync": "everysec"}, `appendfsync "everysec"`},
		{map[string]string{"appendfsync": "no"}, `appendfsync "no"`},
		{map[string]string{"appendfsync": "always"}, ""},
	} {
		for k, v := range c.set {
			if err := rdb.ConfigSet(ctx, k, v).Err(); err != nil {
				t.Fatal(err)
			}
		}
		err := CheckDurable(ctx, rdb)
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%v: %v", c.set, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%v: got %v, want an error naming %s", c.set, err, c.want)
		}
	}
}
