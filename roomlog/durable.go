package roomlog

import (
	"context"
	"errors"
	"fmt"

	"github.com/redis/go-redis/v9"
)

// CheckDurable reports whether every Redis node the client writes to keeps
// its AOF with appendfsync always. The ack of a send is durable only then:
// Redis answers the send script after the fsync of its event-loop turn, and
// with everysec (or no AOF) an OS crash loses the last second of acked
// messages, which the fault suite's redis-oscrash scenario shows. A node
// that refuses CONFIG (some managed services) is reported as unknown.
func CheckDurable(ctx context.Context, rdb redis.UniversalClient) error {
	check := func(ctx context.Context, c *redis.Client) error {
		vals, err := c.ConfigGet(ctx, "append*").Result()
		if err != nil {
			return fmt.Errorf("redis %s: cannot read its AOF settings (%v); acks are durable only with appendonly yes and appendfsync always", c.Options().Addr, err)
		}
		if vals["appendonly"] != "yes" || vals["appendfsync"] != "always" {
			return fmt.Errorf("redis %s runs appendonly %q, appendfsync %q: an OS crash can lose acked messages; run it with appendonly yes and appendfsync always",
				c.Options().Addr, vals["appendonly"], vals["appendfsync"])
		}
		return nil
	}
	switch c := rdb.(type) {
	case *redis.ClusterClient:
		return c.ForEachMaster(ctx, check)
	case *redis.Client:
		return check(ctx, c)
	default:
		return errors.New("redis: unknown client type; cannot check its AOF settings")
	}
}
