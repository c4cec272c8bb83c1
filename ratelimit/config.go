// Package ratelimit holds the abuse limits of an api node: request rates
// shared by every node through Redis (GCRA, github.com/go-redis/redis_rate),
// open WebSocket connections per user (a Redis sorted set of expiring
// slots), and the caps on room creation and members per call. It knows
// nothing of HTTP: api/ and realtime/ ask it and turn a refusal into a 429
// problem or an error frame.
package ratelimit

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// Rule allows Rate events per Period, Burst of them at once (GCRA: after a
// burst, one event every Period/Rate). A zero Rule allows everything.
type Rule struct {
	Rate   int
	Period time.Duration
	Burst  int
}

// Per builds a rule whose burst equals its rate ("10 per minute": ten at
// once, then one every six seconds).
func Per(rate int, period time.Duration) Rule { return Rule{Rate: rate, Period: period, Burst: rate} }

// Off reports whether the rule allows everything.
func (r Rule) Off() bool { return r.Rate <= 0 || r.Period <= 0 }

// String renders the rule in the form ParseRule reads.
func (r Rule) String() string {
	if r.Off() {
		return "off"
	}
	p := fmtPeriod(r.Period)
	if r.Burst > 0 && r.Burst != r.Rate {
		return fmt.Sprintf("%d/%s,burst=%d", r.Rate, p, r.Burst)
	}
	return fmt.Sprintf("%d/%s", r.Rate, p)
}

func fmtPeriod(d time.Duration) string {
	switch d {
	case time.Second:
		return "s"
	case time.Minute:
		return "m"
	case time.Hour:
		return "h"
	case 24 * time.Hour:
		return "d"
	}
	return d.String()
}

// ParseRule reads "RATE/PERIOD" with an optional ",burst=N": "10/m",
// "20/s,burst=40", "100/24h", "5/10m". PERIOD is s, m, h, d or a Go
// duration. "off" or "0" disables the rule.
func ParseRule(s string) (Rule, error) {
	s = strings.TrimSpace(s)
	if s == "off" || s == "0" {
		return Rule{}, nil
	}
	spec, burstPart, hasBurst := strings.Cut(s, ",")
	rateS, periodS, ok := strings.Cut(spec, "/")
	if !ok {
		return Rule{}, fmt.Errorf("rate limit %q: want RATE/PERIOD such as 10/m", s)
	}
	rate, err := strconv.Atoi(strings.TrimSpace(rateS))
	if err != nil || rate <= 0 {
		return Rule{}, fmt.Errorf("rate limit %q: rate must be a positive integer", s)
	}
	var period time.Duration
	switch p := strings.TrimSpace(periodS); p {
	case "s":
		period = time.Second
	case "m":
		period = time.Minute
	case "h":
		period = time.Hour
	case "d":
		period = 24 * time.Hour
	default:
		if period, err = time.ParseDuration(p); err != nil || period <= 0 {
			return Rule{}, fmt.Errorf("rate limit %q: period must be s, m, h, d or a positive duration", s)
		}
	}
	r := Per(rate, period)
	if hasBurst {
		v, ok := strings.CutPrefix(strings.TrimSpace(burstPart), "burst=")
		b, err := strconv.Atoi(v)
		if !ok || err != nil || b <= 0 {
			return Rule{}, fmt.Errorf("rate limit %q: burst must be written burst=N with N > 0", s)
		}
		r.Burst = b
	}
	return r, nil
}

// Config is every abuse limit of a node. Rates are shared by all nodes on
// the same Redis; a zero Rule or cap disables that limit.
type Config struct {
	// KeyPrefix namespaces the Redis keys (each test run gets its own).
	KeyPrefix string

	// LoginUser limits login attempts per username (password guessing on
	// one account); LoginIP per client address (guessing across accounts).
	LoginUser Rule
	LoginIP   Rule
	// SignupIP limits sign-ups per client address (each costs a bcrypt
	// hash and a saga).
	SignupIP Rule
	// RoomCreate limits rooms created per user.
	RoomCreate Rule
	// Invite limits the users one user names in room creations and
	// invites (each named user costs one).
	Invite Rule
	// RESTSend and WSSend limit messages sent per user, over REST and over
	// all of the user's WebSockets together (the per-connection frame
	// bucket of realtime comes on top).
	RESTSend Rule
	WSSend   Rule
	// Search limits message searches per user.
	Search Rule

	// MaxConns caps a user's open WebSocket connections over all nodes.
	MaxConns int
	// ConnTTL is how long a connection's slot lives unless its node
	// refreshes it (every ConnTTL/3), so a dead node's slots lapse.
	ConnTTL time.Duration

	// RoomsPerCreator caps the rooms one user may have created in total.
	RoomsPerCreator int
	// MembersPerCall caps the users named in one room creation or invite.
	MembersPerCall int

	// TrustedProxies are the peers (load balancers) whose X-Forwarded-For
	// is believed; the client address is the right-most untrusted entry.
	// Without them every request's address is its TCP peer.
	TrustedProxies []netip.Prefix
}

// DefaultConfig is the configuration `make dev` and deployments run with.
func DefaultConfig() Config {
	return Config{
		KeyPrefix:       "rl:",
		LoginUser:       Per(10, time.Minute),
		LoginIP:         Per(60, time.Minute),
		SignupIP:        Per(20, time.Hour),
		RoomCreate:      Per(100, 24*time.Hour),
		Invite:          Per(200, time.Hour),
		RESTSend:        Rule{Rate: 10, Period: time.Second, Burst: 20},
		WSSend:          Rule{Rate: 20, Period: time.Second, Burst: 40},
		Search:          Rule{Rate: 2, Period: time.Second, Burst: 10},
		MaxConns:        20,
		ConnTTL:         90 * time.Second,
		RoomsPerCreator: 500,
		MembersPerCall:  50,
	}
}

// Unlimited turns off every rate and the connection and room caps (load
// tests, test suites); MembersPerCall stays, as it is input validation.
func (c Config) Unlimited() Config {
	c.LoginUser, c.LoginIP, c.SignupIP, c.RoomCreate, c.Invite, c.RESTSend, c.WSSend, c.Search = Rule{}, Rule{}, Rule{}, Rule{}, Rule{}, Rule{}, Rule{}, Rule{}
	c.MaxConns, c.RoomsPerCreator = 0, 0
	return c
}

// ParsePrefixes reads a comma-separated list of addresses and CIDR prefixes.
func ParsePrefixes(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		if p, err := netip.ParsePrefix(f); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(f)
		if err != nil {
			return nil, fmt.Errorf("%q is neither an address nor a CIDR prefix", f)
		}
		out = append(out, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
	}
	return out, nil
}
