package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// Config is read from the environment; every value has a default that
// matches the local services started by `make dev`.
type Config struct {
	HTTPAddr          string
	MetricsAddr       string
	DatabaseURL       string
	PGMaxConns        int32
	RedisAddr         string
	TemporalAddress   string
	TemporalNamespace string
	KafkaBrokers      string
	JWTSecret         string
	JWTIssuer         string
	JWTAudience       string
	AccessTTL         time.Duration
	RefreshTTL        time.Duration
	NodeID            string
	AdminUsernames    []string
	BcryptCost        int
	LogLevel          string
	BatchLinger       time.Duration
	BatchMax          int
	BatchInflight     int
	WSRate            float64
	WSBurst           int
	WSQueue           int
	SignupWorkers     int
	MessageWorkers    int
}

// DevJWTSecret is the default signing key; fine on a laptop, refused nowhere
// but warned about, so set JWT_SECRET anywhere else.
const DevJWTSecret = "chatflow-dev-secret-change-me-0123456789"

func loadConfig() (Config, error) {
	host, _ := os.Hostname()
	c := Config{
		HTTPAddr:          env("HTTP_ADDR", ":8080"),
		MetricsAddr:       env("METRICS_ADDR", ":9090"),
		DatabaseURL:       env("DATABASE_URL", "postgres://postgres@127.0.0.1:55432/chatflow?sslmode=disable"),
		RedisAddr:         env("REDIS_ADDR", "127.0.0.1:56379"),
		TemporalAddress:   env("TEMPORAL_ADDRESS", "127.0.0.1:7233"),
		TemporalNamespace: env("TEMPORAL_NAMESPACE", "default"),
		KafkaBrokers:      env("KAFKA_BROKERS", "127.0.0.1:59092"),
		JWTSecret:         env("JWT_SECRET", DevJWTSecret),
		JWTIssuer:         env("JWT_ISSUER", "chatflow"),
		JWTAudience:       env("JWT_AUDIENCE", "chatflow-clients"),
		NodeID:            env("NODE_ID", fmt.Sprintf("%s-%d", host, os.Getpid())),
		LogLevel:          env("LOG_LEVEL", "info"),
	}
	if a := env("ADMIN_USERNAMES", ""); a != "" {
		c.AdminUsernames = strings.Split(a, ",")
	}
	var err error
	parse := func(name string, fn func(string) error) {
		if v := os.Getenv(name); v != "" && err == nil {
			if e := fn(v); e != nil {
				err = fmt.Errorf("%s=%q: %w", name, v, e)
			}
		}
	}
	dur := func(dst *time.Duration, def time.Duration) func(string) error {
		*dst = def
		return func(v string) (e error) { *dst, e = time.ParseDuration(v); return }
	}
	num := func(dst *int, def int) func(string) error {
		*dst = def
		return func(v string) (e error) { *dst, e = strconv.Atoi(v); return }
	}
	parse("ACCESS_TTL", dur(&c.AccessTTL, 15*time.Minute))
	parse("REFRESH_TTL", dur(&c.RefreshTTL, 30*24*time.Hour))
	parse("BATCH_LINGER", dur(&c.BatchLinger, 100*time.Millisecond))
	parse("BCRYPT_COST", num(&c.BcryptCost, 10))
	parse("BATCH_MAX", num(&c.BatchMax, 2000))
	parse("BATCH_INFLIGHT", num(&c.BatchInflight, 1))
	parse("WS_BURST", num(&c.WSBurst, 100))
	parse("WS_QUEUE", num(&c.WSQueue, 1024))
	parse("SIGNUP_WORKERS", num(&c.SignupWorkers, 32))
	parse("MESSAGE_WORKERS", num(&c.MessageWorkers, 64))
	var pgMax int
	parse("PG_MAX_CONNS", num(&pgMax, 32))
	c.PGMaxConns = int32(pgMax)
	c.WSRate = 50
	parse("WS_RATE", func(v string) (e error) { c.WSRate, e = strconv.ParseFloat(v, 64); return })
	if len(c.JWTSecret) < 32 && err == nil {
		err = fmt.Errorf("JWT_SECRET must be at least 32 bytes")
	}
	return c, err
}

func env(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}
