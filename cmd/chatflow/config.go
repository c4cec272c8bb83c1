package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/chatflow/chatflow/internal/app"
	"github.com/chatflow/chatflow/ratelimit"
	"github.com/chatflow/chatflow/token"
)

// DevJWTSecret is the signing key of `chatflow dev` when JWT_SECRET is unset;
// fine on a laptop, warned about, and refused by every other role.
const DevJWTSecret = token.DevSecret

// What a command does with the JWT keys decides how they are checked.
const (
	// keysDeployed: api, worker, migrate. JWT_SECRET must be set, at least
	// 32 bytes and not a value published in the repository.
	keysDeployed = iota
	// keysDev: `chatflow dev`. An unset JWT_SECRET is the dev default
	// (warned about); published values are warned about, not refused.
	keysDev
	// keysUnused: commands that neither sign nor verify tokens (admin).
	keysUnused
)

// loadConfig reads the environment over the defaults of every package. It is
// the only place that reads configuration from the environment. keys says
// how the JWT keys are checked (keysDeployed, keysDev, keysUnused).
func loadConfig(keys int) (app.Config, error) {
	c := app.DefaultConfig()
	host, _ := os.Hostname()
	c.SetNodeID(env("NODE_ID", fmt.Sprintf("%s-%d", host, os.Getpid())))
	str := func(dst *string, name string) { *dst = env(name, *dst) }
	str(&c.HTTPAddr, "HTTP_ADDR")
	str(&c.MetricsAddr, "METRICS_ADDR")
	str(&c.DatabaseURL, "DATABASE_URL")
	str(&c.RedisAddr, "REDIS_ADDR")
	str(&c.RedisClusterAddrs, "REDIS_CLUSTER_ADDRS")
	str(&c.TemporalAddress, "TEMPORAL_ADDRESS")
	str(&c.TemporalNamespace, "TEMPORAL_NAMESPACE")
	str(&c.KafkaBrokers, "KAFKA_BROKERS")
	str(&c.LogLevel, "LOG_LEVEL")
	str(&c.Objects.Endpoint, "S3_ENDPOINT")
	str(&c.Objects.Bucket, "S3_BUCKET")
	str(&c.Objects.Region, "S3_REGION")
	str(&c.Objects.AccessKey, "S3_ACCESS_KEY")
	str(&c.Objects.SecretKey, "S3_SECRET_KEY")
	if c.Objects.Endpoint == "aws" { // AWS S3 itself: virtual-hosted addressing for S3_REGION
		c.Objects.Endpoint = ""
	}
	if c.Objects.Bucket == "off" {
		c.Objects.Bucket = ""
	}
	str(&c.Token.Issuer, "JWT_ISSUER")
	str(&c.Token.Audience, "JWT_AUDIENCE")
	c.Token.Secret = []byte(os.Getenv("JWT_SECRET"))
	c.Token.PreviousSecret = []byte(os.Getenv("JWT_PREVIOUS_SECRET"))
	if keys == keysDev && len(c.Token.Secret) == 0 {
		c.Token.Secret = []byte(DevJWTSecret)
	}
	if os.Getenv("ADMIN_USERNAMES") != "" {
		return c, fmt.Errorf("ADMIN_USERNAMES is no longer supported (it made whoever registered a listed name first an admin): unset it and grant the role with `chatflow admin grant USERNAME`")
	}
	for _, o := range strings.Split(os.Getenv("WS_ORIGINS"), ",") {
		if o = strings.TrimSpace(o); o != "" {
			c.API.WSOrigins = append(c.API.WSOrigins, o)
		}
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
	boolean := func(dst *bool) func(string) error {
		return func(v string) (e error) { *dst, e = strconv.ParseBool(v); return }
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
	parse("TEMPORAL_COMPRESS_OVER", num(&c.TemporalCompressOver))
	parse("TEMPORAL_GRPC_GZIP", boolean(&c.TemporalGRPCGzip))
	parse("TEMPORAL_UI_ORIGINS", func(v string) error { c.TemporalUIOrigins = strings.Split(v, ","); return nil })
	parse("BATCH_MAX", num(&c.Chat.BatchMax))
	parse("BATCH_INFLIGHT", num(&c.Chat.BatchInflight))
	parse("SEND_PIPELINES", num(&c.Chat.SendPipelines))
	parse("HISTORY_CAP", num(&c.Activities.HistoryCap))
	parse("MAX_BACKLOG", func(v string) (e error) { c.Chat.MaxBacklog, e = strconv.ParseInt(v, 10, 64); return })
	parse("SEQ_FENCE", func(v string) (e error) { c.Chat.SeqFence, e = strconv.ParseInt(v, 10, 64); return })
	parse("REDIS_MEMORY_LIMIT", func(v string) (e error) { c.Chat.RedisMemoryLimit, e = strconv.ParseInt(v, 10, 64); return })
	parse("RECONCILE_EVERY", dur(&c.Workers.ReconcileEvery))
	parse("RECONCILE_AFTER", dur(&c.Activities.ReconcileAfter))
	parse("HOLE_GRACE", dur(&c.Activities.HoleGrace))
	parse("WS_BURST", num(&c.Realtime.SendBurst))
	parse("WS_QUEUE", num(&c.Realtime.Queue))
	parse("WS_FLUSH_YIELD", boolean(&c.Realtime.FlushYield))
	parse("WS_RATE", func(v string) (e error) { c.Realtime.SendRate, e = strconv.ParseFloat(v, 64); return })
	parse("SIGNUP_WORKERS", num(&c.Workers.SignupConcurrency))
	parse("MESSAGE_WORKERS", num(&c.Workers.MessagesConcurrency))
	// Abuse limits: RATE_LIMITS=off lifts them all (load tests); each
	// RATE_* rule is RATE/PERIOD[,burst=N] or off.
	if os.Getenv("RATE_LIMITS") == "off" {
		c.RateLimit = c.RateLimit.Unlimited()
	}
	str(&c.RateLimit.KeyPrefix, "RATE_KEY_PREFIX")
	rule := func(dst *ratelimit.Rule) func(string) error {
		return func(v string) (e error) { *dst, e = ratelimit.ParseRule(v); return }
	}
	parse("RATE_LOGIN_USER", rule(&c.RateLimit.LoginUser))
	parse("RATE_LOGIN_IP", rule(&c.RateLimit.LoginIP))
	parse("RATE_SIGNUP_IP", rule(&c.RateLimit.SignupIP))
	parse("RATE_ROOM_CREATE", rule(&c.RateLimit.RoomCreate))
	parse("RATE_INVITE", rule(&c.RateLimit.Invite))
	parse("RATE_REST_SEND", rule(&c.RateLimit.RESTSend))
	parse("RATE_WS_SEND", rule(&c.RateLimit.WSSend))
	parse("RATE_SEARCH", rule(&c.RateLimit.Search))
	parse("MAX_CONNS_PER_USER", num(&c.RateLimit.MaxConns))
	parse("CONN_SLOT_TTL", dur(&c.RateLimit.ConnTTL))
	parse("MAX_ROOMS_PER_CREATOR", num(&c.RateLimit.RoomsPerCreator))
	parse("MAX_MEMBERS_PER_CALL", num(&c.RateLimit.MembersPerCall))
	parse("TRUSTED_PROXIES", func(v string) (e error) { c.RateLimit.TrustedProxies, e = ratelimit.ParsePrefixes(v); return })
	parse("MAX_AVATAR_BYTES", func(v string) (e error) { c.API.MaxAvatarBytes, e = strconv.ParseInt(v, 10, 64); return })
	parse("MAX_UPLOAD_BYTES", func(v string) (e error) { c.Objects.MaxUploadBytes, e = strconv.ParseInt(v, 10, 64); return })
	parse("S3_URL_TTL", func(v string) (e error) {
		c.Objects.PutTTL, e = time.ParseDuration(v)
		c.Objects.GetTTL = c.Objects.PutTTL
		return
	})
	parse("UPLOAD_SWEEP_EVERY", dur(&c.Workers.SweepEvery))
	parse("TRANSFER_RESUME_EVERY", dur(&c.Workers.ResumeEvery))
	parse("TRANSFER_RESUME_AFTER", dur(&c.Activities.TransferResumeAfter))
	parse("UPLOAD_PENDING_TTL", dur(&c.Activities.UploadPendingTTL))
	if err == nil && c.Activities.UploadPendingTTL <= c.Objects.PutTTL {
		// a sweep must never take an upload whose pre-signed PUT still works
		err = fmt.Errorf("UPLOAD_PENDING_TTL=%s must be longer than the pre-signed URLs' S3_URL_TTL=%s", c.Activities.UploadPendingTTL, c.Objects.PutTTL)
	}
	parse("PG_MAX_CONNS", func(v string) error {
		n, e := strconv.ParseInt(v, 10, 32)
		c.PGMaxConns = int32(n)
		return e
	})
	if err == nil {
		err = checkKeys(c.Token, keys)
	}
	return c, err
}

// checkKeys refuses JWT keys that would make tokens forgeable: missing or
// short ones everywhere, and for deployed roles also every key that appears
// in the repository (anyone could mint an admin token with it).
func checkKeys(c token.Config, keys int) error {
	var err error
	switch keys {
	case keysUnused:
		return nil
	case keysDev:
		err = c.Validate()
	default:
		err = c.ValidateDeployable()
	}
	if err != nil {
		return fmt.Errorf("refusing JWT_SECRET/JWT_PREVIOUS_SECRET: %w (generate a key with `openssl rand -base64 48`)", err)
	}
	return nil
}

func env(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}
