package ratelimit

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/chatflow/chatflow"
)

// Limit names: the label of the refusals metric and part of the Redis key.
const (
	LoginUser       = "login_user"
	LoginIP         = "login_ip"
	SignupIP        = "signup_ip"
	RoomCreate      = "room_create"
	Invite          = "invite"
	RESTSend        = "rest_send"
	WSSend          = "ws_send"
	Connections     = "connections"
	RoomsPerCreator = "rooms_per_creator"
	MembersPerCall  = "members_per_call"
	Search          = "search"
)

var names = []string{LoginUser, LoginIP, SignupIP, RoomCreate, Invite, RESTSend, WSSend, Connections, RoomsPerCreator, MembersPerCall, Search}

// connRetry is the Retry-After of a refused connection: closing any of the
// user's sockets frees a slot at once, so there is no better estimate.
const connRetry = 10 * time.Second

// Exceeded is the cause of a rate_limited refusal.
type Exceeded struct {
	Limit      string
	RetryAfter time.Duration
}

func (e *Exceeded) Error() string {
	return fmt.Sprintf("limit %s exceeded, retry after %s", e.Limit, e.RetryAfter)
}

// RetryAfter returns how long the client should wait, if err is a refusal.
func RetryAfter(err error) (time.Duration, bool) {
	var e *Exceeded
	if errors.As(err, &e) {
		return e.RetryAfter, true
	}
	return 0, false
}

// Seconds rounds a wait up to whole seconds, at least one (Retry-After).
func Seconds(d time.Duration) int {
	return max(int(math.Ceil(d.Seconds())), 1)
}

// Limiter checks the limits of one node against Redis. A nil *Limiter
// allows everything.
type Limiter struct {
	cfg     Config
	rdb     redis.UniversalClient
	gcra    *redis_rate.Limiter
	refused *prometheus.CounterVec
}

// New returns a limiter over rdb.
func New(cfg Config, rdb redis.UniversalClient) *Limiter {
	l := &Limiter{
		cfg: cfg, rdb: rdb, gcra: redis_rate.NewLimiter(rdb),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "chatflow_rate_limited_total", Help: "Requests, frames and connections refused by an abuse limit, by limit.",
		}, []string{"limit"}),
	}
	for _, n := range names {
		l.refused.WithLabelValues(n)
	}
	return l
}

// Config returns the limits in force.
func (l *Limiter) Config() Config {
	if l == nil {
		return Config{}
	}
	return l.cfg
}

// Collectors lists the metrics for a registry.
func (l *Limiter) Collectors() []prometheus.Collector {
	if l == nil {
		return nil
	}
	return []prometheus.Collector{l.refused}
}

// Refused counts a refusal that the caller decided (a cap).
func (l *Limiter) Refused(name string) {
	if l != nil {
		l.refused.WithLabelValues(name).Inc()
	}
}

func (l *Limiter) refuse(name string, retry time.Duration, what string) error {
	l.Refused(name)
	return &chatflow.Error{
		Code:   chatflow.ECodeRateLimited,
		Detail: fmt.Sprintf("too many %s; retry in %d s", what, Seconds(retry)),
		Err:    &Exceeded{Limit: name, RetryAfter: retry},
	}
}

// allow charges cost events to key under rule.
func (l *Limiter) allow(ctx context.Context, name string, rule Rule, key string, cost int, what string) error {
	if l == nil || rule.Off() || cost <= 0 {
		return nil
	}
	burst := rule.Burst
	if burst <= 0 {
		burst = rule.Rate
	}
	// A cost above the burst could never pass; the callers cap their costs
	// (MembersPerCall) below any sensible burst, so this only saturates.
	cost = min(cost, burst)
	res, err := l.gcra.AllowN(ctx, l.cfg.KeyPrefix+name+":"+key, redis_rate.Limit{Rate: rule.Rate, Burst: burst, Period: rule.Period}, cost)
	if err != nil {
		return &chatflow.Error{Code: chatflow.ECodeUnavailable, Detail: "rate limiter unavailable; try again", Err: err}
	}
	if res.Allowed < cost {
		return l.refuse(name, res.RetryAfter, what)
	}
	return nil
}

// Login charges one login attempt to the client address and to the username.
func (l *Limiter) Login(ctx context.Context, ip, username string) error {
	if err := l.allow(ctx, LoginIP, l.Config().LoginIP, ip, 1, "login attempts from this address"); err != nil {
		return err
	}
	return l.allow(ctx, LoginUser, l.Config().LoginUser, usernameKey(username), 1, "login attempts for this username")
}

// Signup charges one sign-up to the client address.
func (l *Limiter) Signup(ctx context.Context, ip string) error {
	return l.allow(ctx, SignupIP, l.Config().SignupIP, ip, 1, "sign-ups from this address")
}

// CreateRoom charges one room creation to the user.
func (l *Limiter) CreateRoom(ctx context.Context, user uuid.UUID) error {
	return l.allow(ctx, RoomCreate, l.Config().RoomCreate, user.String(), 1, "rooms created")
}

// Invite charges n named users to the user.
func (l *Limiter) Invite(ctx context.Context, user uuid.UUID, n int) error {
	return l.allow(ctx, Invite, l.Config().Invite, user.String(), n, "users invited")
}

// RESTSend charges one REST message to the user.
func (l *Limiter) RESTSend(ctx context.Context, user uuid.UUID) error {
	return l.allow(ctx, RESTSend, l.Config().RESTSend, user.String(), 1, "messages")
}

// WSSend charges one WebSocket message to the user.
func (l *Limiter) WSSend(ctx context.Context, user uuid.UUID) error {
	return l.allow(ctx, WSSend, l.Config().WSSend, user.String(), 1, "messages")
}

// Search charges one message search to the user: a search ranks every hit
// in the user's rooms, so it costs Postgres far more than a history page.
func (l *Limiter) Search(ctx context.Context, user uuid.UUID) error {
	return l.allow(ctx, Search, l.Config().Search, user.String(), 1, "searches")
}

// usernameKey keeps usernames readable in Redis and anything else short.
func usernameKey(u string) string {
	u = strings.ToLower(strings.TrimSpace(u))
	if len(u) <= 64 && strings.Trim(u, "abcdefghijklmnopqrstuvwxyz0123456789_.-") == "" {
		return u
	}
	sum := sha256.Sum256([]byte(u))
	return "h:" + hex.EncodeToString(sum[:16])
}

// ClientIP is the key of a request's client address: the TCP peer, or, when
// the peer is a trusted proxy, the right-most X-Forwarded-For entry that is
// not one. IPv6 clients are keyed by their /64, which one subscriber holds.
func (l *Limiter) ClientIP(peer netip.Addr, forwardedFor string) string {
	addr := peer.Unmap()
	if l != nil && l.trusted(addr) && forwardedFor != "" {
		hops := strings.Split(forwardedFor, ",")
		for i := len(hops) - 1; i >= 0; i-- {
			a, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
			if err != nil {
				break // a garbled hop: stop at the last address we could trust
			}
			addr = a.Unmap()
			if !l.trusted(addr) {
				break
			}
		}
	}
	if addr.Is6() {
		p, _ := addr.Prefix(64)
		return p.String()
	}
	if !addr.IsValid() {
		return "unknown"
	}
	return addr.String()
}

func (l *Limiter) trusted(a netip.Addr) bool {
	for _, p := range l.cfg.TrustedProxies {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// connSlot adds a connection to its user's set of live slots unless the
// set is full. Slots are scored by their expiry (Redis time), so a node
// that dies without closing its sockets frees their slots within ConnTTL.
var connSlot = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[1])
local max = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if max > 0 and not redis.call('ZSCORE', KEYS[1], ARGV[3]) and redis.call('ZCARD', KEYS[1]) >= max then
  return 0
end
redis.call('ZADD', KEYS[1], now + ttl, ARGV[3])
redis.call('PEXPIRE', KEYS[1], ttl)
return 1`)

// Slot is one open connection's place among its user's connections.
type Slot struct {
	l        *Limiter
	key, id  string
	released chan struct{}
	once     sync.Once
	kept     chan struct{} // closed when the refresher has stopped (Keep)
}

func (l *Limiter) connKey(user uuid.UUID) string {
	return l.cfg.KeyPrefix + "conns:{u:" + user.String() + "}"
}

// OpenConn takes a connection slot for the user, or refuses with
// rate_limited when MaxConns are open. A nil slot (no cap) needs no Keep.
func (l *Limiter) OpenConn(ctx context.Context, user uuid.UUID) (*Slot, error) {
	if l == nil || l.cfg.MaxConns <= 0 {
		return nil, nil
	}
	s := &Slot{l: l, key: l.connKey(user), id: uuid.NewString(), released: make(chan struct{})}
	ok, err := s.put(ctx, l.cfg.MaxConns)
	if err != nil {
		return nil, &chatflow.Error{Code: chatflow.ECodeUnavailable, Detail: "connection limiter unavailable; try again", Err: err}
	}
	if !ok {
		return nil, l.refuse(Connections, connRetry, fmt.Sprintf("open connections (at most %d per user)", l.cfg.MaxConns))
	}
	return s, nil
}

func (s *Slot) put(ctx context.Context, max int) (bool, error) {
	n, err := connSlot.Run(ctx, s.l.rdb, []string{s.key}, s.l.ttl().Milliseconds(), max, s.id).Int()
	return n == 1, err
}

func (l *Limiter) ttl() time.Duration {
	if l.cfg.ConnTTL <= 0 {
		return 90 * time.Second
	}
	return l.cfg.ConnTTL
}

// Keep refreshes the slot while the connection lives; stop releases it.
// A nil slot keeps nothing.
func (s *Slot) Keep() (stop func()) {
	if s == nil {
		return func() {}
	}
	s.kept = make(chan struct{})
	go func() {
		defer close(s.kept)
		t := time.NewTicker(s.l.ttl() / 3)
		defer t.Stop()
		for {
			select {
			case <-s.released:
				return
			case <-t.C:
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				_, _ = s.put(ctx, 0) // refresh: never refused
				cancel()
			}
		}
	}()
	return s.Release
}

// Release gives the slot back; calling it again does nothing.
func (s *Slot) Release() {
	if s == nil {
		return
	}
	first := false
	s.once.Do(func() { close(s.released); first = true })
	if !first {
		return
	}
	if s.kept != nil {
		<-s.kept // a refresh in flight must not re-add the slot after ZREM
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = s.l.rdb.ZRem(ctx, s.key, s.id).Err()
}
