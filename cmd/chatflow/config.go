package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/chatflow/chatflow/internal/app"
)

// DevJWTSecret is the signing key of `chatflow dev` when JWT_SECRET is unset;
// fine on a laptop, warned about, and never a default of the other roles.
const DevJWTSecret = "chatflow-dev-secret-change-me-0123456789"

// loadConfig reads the environment over the defaults of every package. It is
// the only place that reads configuration from the environment.
func loadConfig() (app.Config, error) {
	c := app.DefaultConfig()
	host, _ := os.Hostname()
	c.SetNodeID(env("NODE_ID", fmt.Sprintf("%s-%d", host, os.Getpid())))
	str := func(dst *string, name string) { *dst = env(name, *dst) }
	str(&c.HTTPAddr, "HTTP_ADDR")
	str(&c.MetricsAddr, "METRICS_ADDR")
	str(&c.DatabaseURL, "DATABASE_URL")
	str(&c.RedisAddr, "REDIS_ADDR")
	str(&c.TemporalAddress, "TEMPORAL_ADDRESS")
	str(&c.TemporalNamespace, "TEMPORAL_NAMESPACE")
	str(&c.KafkaBrokers, "KAFKA_BROKERS")
	str(&c.LogLevel, "LOG_LEVEL")
	str(&c.Token.Issuer, "JWT_ISSUER")
	str(&c.Token.Audience, "JWT_AUDIENCE")
	c.Token.Secret = []byte(env("JWT_SECRET", DevJWTSecret))
	if a := env("ADMIN_USERNAMES", ""); a != "" {
		c.API.AdminUsernames = strings.Split(a, ",")
	}

	var err error
	parse := func(name string, fn func(string) error) {
		if v := os.Getenv(name); v != "" && err == nil {
			if e := fn(v); e != nil {
				err = fmt.Errorf("%s=%q: %w", name, v, e)
			}
		}
	}
	dur := func(dst *time.Duration) func(string) error {
		return func(v string) (e error) { *dst, e = time.ParseDuration(v); return }
	}
	num := func(dst *int) func(string) error {
		return func(v string) (e error) { *dst, e = strconv.Atoi(v); return }
	}
	parse("ACCESS_TTL", dur(&c.Token.AccessTTL))
	parse("REFRESH_TTL", dur(&c.Token.RefreshTTL))
	parse("REFRESH_GRACE", dur(&c.Token.RefreshGrace))
	parse("ROOM_IDLE_TTL", dur(&c.Chat.RoomIdleTTL))
	c.Activities.RoomIdleTTL = c.Chat.RoomIdleTTL
	parse("PRESENCE_HEARTBEAT", dur(&c.Chat.PresenceHeartbeat))
	parse("PRESENCE_TTL", dur(&c.Chat.PresenceTTL))
	parse("BCRYPT_COST", num(&c.API.BcryptCost))
	parse("BATCH_LINGER", dur(&c.Chat.BatchLinger))
	parse("BATCH_MAX", num(&c.Chat.BatchMax))
	parse("BATCH_INFLIGHT", num(&c.Chat.BatchInflight))
	parse("HISTORY_CAP", num(&c.Activities.HistoryCap))
	parse("MAX_BACKLOG", func(v string) (e error) { c.Chat.MaxBacklog, e = strconv.ParseInt(v, 10, 64); return })
	parse("SEQ_FENCE", func(v string) (e error) { c.Chat.SeqFence, e = strconv.ParseInt(v, 10, 64); return })
	parse("REDIS_MEMORY_LIMIT", func(v string) (e error) { c.Chat.RedisMemoryLimit, e = strconv.ParseInt(v, 10, 64); return })
	parse("RECONCILE_EVERY", dur(&c.Workers.ReconcileEvery))
	parse("RECONCILE_AFTER", dur(&c.Activities.ReconcileAfter))
	parse("HOLE_GRACE", dur(&c.Activities.HoleGrace))
	parse("WS_BURST", num(&c.Realtime.SendBurst))
	parse("WS_QUEUE", num(&c.Realtime.Queue))
	parse("WS_RATE", func(v string) (e error) { c.Realtime.SendRate, e = strconv.ParseFloat(v, 64); return })
	parse("SIGNUP_WORKERS", num(&c.Workers.SignupConcurrency))
	parse("MESSAGE_WORKERS", num(&c.Workers.MessagesConcurrency))
	parse("PG_MAX_CONNS", func(v string) error {
		n, e := strconv.ParseInt(v, 10, 32)
		c.PGMaxConns = int32(n)
		return e
	})
	if err == nil {
		err = c.Token.Validate()
	}
	return c, err
}

func env(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}
