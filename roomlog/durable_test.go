package roomlog

import (
	"context"
	"strings"
	"testing"
)

// TestCheckDurable runs a Redis of its own (the settings are changed on it,
// never on the shared one) through no AOF, everysec and always.
func TestCheckDurable(t *testing.T) {
	r := startOwnRedis(t, t.TempDir(), 0)
	ctx, rdb := context.Background(), r.rdb
	for _, c := range []struct {
		set  map[string]string
		want string // "" for durable
	}{
		{map[string]string{"appendonly": "no"}, `appendonly "no"`},
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
	r.waitPersistence() // turning appendonly on started a rewrite
}
