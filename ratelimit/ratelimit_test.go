package ratelimit

import (
	"context"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"

	"github.com/chatflow/chatflow"
)

func TestParseRule(t *testing.T) {
	for in, want := range map[string]Rule{
		"10/m":              Per(10, time.Minute),
		"20/s,burst=40":     {Rate: 20, Period: time.Second, Burst: 40},
		"100/24h":           Per(100, 24*time.Hour),
		"5/10m":             Per(5, 10*time.Minute),
		" 3/d ":             Per(3, 24*time.Hour),
		"off":               {},
		"0":                 {},
		"7/h, burst=9":      {Rate: 7, Period: time.Hour, Burst: 9},
		"1/1m30s,burst=2":   {Rate: 1, Period: 90 * time.Second, Burst: 2},
		"60/m,burst=60":     Per(60, time.Minute),
		"2/500ms,burst=100": {Rate: 2, Period: 500 * time.Millisecond, Burst: 100},
	} {
		got, err := ParseRule(in)
		if err != nil || got != want {
			t.Errorf("ParseRule(%q) = %+v, %v; want %+v", in, got, err, want)
		}
		if again, err := ParseRule(got.String()); err != nil || again != got {
			t.Errorf("%q does not round-trip: %q → %+v, %v", in, got.String(), again, err)
		}
	}
	for _, bad := range []string{"", "10", "x/m", "-1/m", "10/fortnight", "10/m,40", "10/m,burst=0", "10/-1s", "10/m,burst=x"} {
		if r, err := ParseRule(bad); err == nil {
			t.Errorf("ParseRule(%q) = %+v, want an error", bad, r)
		}
	}
}

func TestClientIP(t *testing.T) {
	proxies, err := ParsePrefixes("10.0.0.0/8, 192.168.1.5")
	if err != nil {
		t.Fatal(err)
	}
	l := &Limiter{cfg: Config{TrustedProxies: proxies}}
	open := &Limiter{}
	a := netip.MustParseAddr
	for _, c := range []struct {
		l    *Limiter
		peer netip.Addr
		xff  string
		want string
	}{
		// no trusted proxies: the peer, whatever the header says
		{open, a("203.0.113.7"), "1.2.3.4", "203.0.113.7"},
		{nil, a("203.0.113.7"), "1.2.3.4", "203.0.113.7"},
		// an untrusted peer cannot choose its address
		{l, a("203.0.113.7"), "1.2.3.4", "203.0.113.7"},
		// a trusted proxy: the right-most entry it did not add itself
		{l, a("10.1.2.3"), "1.2.3.4", "1.2.3.4"},
		{l, a("10.1.2.3"), "6.6.6.6, 1.2.3.4, 10.9.9.9", "1.2.3.4"},
		{l, a("192.168.1.5"), "1.2.3.4", "1.2.3.4"},
		{l, a("192.168.1.6"), "1.2.3.4", "192.168.1.6"},
		// garbage stops the walk at the last good hop
		{l, a("10.1.2.3"), "1.2.3.4, nonsense", "10.1.2.3"},
		{l, a("10.1.2.3"), "", "10.1.2.3"},
		// IPv4-mapped IPv6 is IPv4; IPv6 is keyed by its /64
		{open, a("::ffff:198.51.100.1"), "", "198.51.100.1"},
		{open, a("2001:db8:1:2:3:4:5:6"), "", "2001:db8:1:2::/64"},
		{open, netip.Addr{}, "", "unknown"},
	} {
		if got := c.l.ClientIP(c.peer, c.xff); got != c.want {
			t.Errorf("ClientIP(%v, %q) = %q, want %q", c.peer, c.xff, got, c.want)
		}
	}
	if _, err := ParsePrefixes("10.0.0.0/8,bogus"); err == nil {
		t.Error("ParsePrefixes accepted garbage")
	}
}

func TestUsernameKey(t *testing.T) {
	if k := usernameKey("  Alice_1 "); k != "alice_1" {
		t.Errorf("usernameKey = %q", k)
	}
	long := usernameKey(string(make([]byte, 5000)))
	if len(long) > 40 || long[:2] != "h:" {
		t.Errorf("a long username makes key %q", long)
	}
	if usernameKey("a b") == usernameKey("a_b") || usernameKey("ä") == usernameKey("a") {
		t.Error("distinct usernames share a key")
	}
}

func TestNilLimiterAllowsEverything(t *testing.T) {
	var l *Limiter
	ctx := context.Background()
	if err := l.Login(ctx, "1.2.3.4", "x"); err != nil {
		t.Fatal(err)
	}
	slot, err := l.OpenConn(ctx, uuid.New())
	if err != nil || slot != nil {
		t.Fatalf("OpenConn on nil limiter: %v %v", slot, err)
	}
	slot.Keep()()
	l.Refused(Invite)
	if l.Collectors() != nil || l.Config().MaxConns != 0 {
		t.Fatal("nil limiter has state")
	}
}

func TestUnlimitedKeepsMembersPerCall(t *testing.T) {
	u := DefaultConfig().Unlimited()
	if !u.LoginUser.Off() || !u.WSSend.Off() || u.MaxConns != 0 || u.RoomsPerCreator != 0 || u.MembersPerCall != 50 {
		t.Fatalf("Unlimited: %+v", u)
	}
}

func testRedis(t *testing.T) *redis.Client {
	t.Helper()
	addr := os.Getenv("REDIS_ADDR")
	if addr == "" {
		addr = "127.0.0.1:16379"
	}
	rdb := redis.NewClient(&redis.Options{Addr: addr})
	if err := rdb.Ping(context.Background()).Err(); err != nil {
		t.Fatalf("redis at %s is not reachable (%v); start the local services", addr, err)
	}
	t.Cleanup(func() { rdb.Close() })
	return rdb
}

func testConfig() Config {
	c := DefaultConfig()
	c.KeyPrefix = "rl:unit-" + uuid.NewString()[:8] + ":"
	return c
}

// Two limiters on the same Redis (two nodes) share one budget: the
// eleventh login for a username is refused on either, with a wait.
func TestLimitIsSharedAcrossLimiters(t *testing.T) {
	rdb := testRedis(t)
	cfg := testConfig()
	a, b := New(cfg, rdb), New(cfg, rdb)
	ctx := context.Background()
	for i := range 10 {
		l := a
		if i%2 == 1 {
			l = b
		}
		if err := l.Login(ctx, "ip-"+uuid.NewString(), "victim"); err != nil {
			t.Fatalf("attempt %d: %v", i+1, err)
		}
	}
	for _, l := range []*Limiter{a, b} {
		err := l.Login(ctx, "ip-"+uuid.NewString(), "VICTIM")
		if chatflow.ErrorCode(err) != chatflow.ECodeRateLimited {
			t.Fatalf("11th attempt: %v", err)
		}
		wait, ok := RetryAfter(err)
		if !ok || wait <= 0 || wait > 6*time.Second || Seconds(wait) < 1 {
			t.Fatalf("retry after %v %v", wait, ok)
		}
	}
	if got := testutil.ToFloat64(a.refused.WithLabelValues(LoginUser)); got != 1 {
		t.Fatalf("refusals counted on a: %v", got)
	}
	// another username is not affected
	if err := a.Login(ctx, "ip-"+uuid.NewString(), "someone-else"); err != nil {
		t.Fatal(err)
	}
}

func TestCostAboveBurstSaturates(t *testing.T) {
	rdb := testRedis(t)
	cfg := testConfig()
	cfg.Invite = Per(5, time.Hour)
	l := New(cfg, rdb)
	ctx, u := context.Background(), uuid.New()
	if err := l.Invite(ctx, u, 50); err != nil {
		t.Fatalf("a call naming more users than the burst drains it: %v", err)
	}
	if err := l.Invite(ctx, u, 1); chatflow.ErrorCode(err) != chatflow.ECodeRateLimited {
		t.Fatalf("after the burst: %v", err)
	}
}

func TestConnectionSlots(t *testing.T) {
	rdb := testRedis(t)
	cfg := testConfig()
	cfg.MaxConns, cfg.ConnTTL = 2, 600*time.Millisecond
	l := New(cfg, rdb)
	ctx, u := context.Background(), uuid.New()
	s1, err := l.OpenConn(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	stop1 := s1.Keep()
	s2, err := l.OpenConn(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.OpenConn(ctx, u); chatflow.ErrorCode(err) != chatflow.ECodeRateLimited {
		t.Fatalf("third connection: %v", err)
	}
	// s2 is not kept (its node died): its slot lapses, s1's is refreshed
	time.Sleep(3 * cfg.ConnTTL)
	s3, err := l.OpenConn(ctx, u)
	if err != nil {
		t.Fatalf("a dead connection's slot did not lapse: %v", err)
	}
	if _, err := l.OpenConn(ctx, u); chatflow.ErrorCode(err) != chatflow.ECodeRateLimited {
		t.Fatalf("a kept slot lapsed: %v", err)
	}
	stop1()
	stop1() // twice is harmless
	if _, err := l.OpenConn(ctx, u); err != nil {
		t.Fatalf("a released slot was not freed: %v", err)
	}
	s2.Release()
	s3.Release()
	// other users are not affected
	if _, err := l.OpenConn(ctx, uuid.New()); err != nil {
		t.Fatal(err)
	}
}
