package chat

import (
	"context"
	"encoding/json"
	"hash/fnv"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"
)

// Presence with a heartbeat per node.
//
// Each node instance counts its own sockets per user, in memory. A user
// with sockets here has an entry for this instance in the user's presence
// set in Redis (presenceKey), scored by when it expires; the node renews
// the entries of all its users every PresenceHeartbeat, to last PresenceTTL.
// A user is online while any entry is unexpired, so when a node dies
// without closing anything its users read offline PresenceTTL later at
// most. Live instances also renew their entry in a registry
// (presenceNodesKey); every node sweeps it for instances that expired and
// tells the rooms of their users who are now offline everywhere. All times
// are Redis's clock, so the nodes' clocks do not matter.

// presence is the node's side of it.
type presence struct {
	inst  string // this node instance: node id plus a per-process suffix
	mu    sync.Mutex
	local map[string]int // user → sockets on this node
	// locks serialise each user's transitions, so that Redis sees a user's
	// online and offline steps in the order this node took them.
	locks [64]sync.Mutex
	// dead: the node behaves as if its process had died (Crash).
	dead atomic.Bool
}

func newPresence(nodeID string) *presence {
	return &presence{inst: nodeID + "-" + uuid.NewString()[:8], local: map[string]int{}}
}

func (p *presence) lock(user string) *sync.Mutex {
	h := fnv.New32a()
	_, _ = h.Write([]byte(user))
	return &p.locks[h.Sum32()%uint32(len(p.locks))]
}

// redisNowMs is the current Redis time in unix milliseconds, in Lua.
const redisNowMs = `local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
`

// presenceUp adds (or renews) this instance's entry and answers how many
// other live entries the user has: 0 means the user just came online.
//
// KEYS: user's presence; ARGV: instance, ttl (ms)
var presenceUp = redis.NewScript(redisNowMs + `
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. now)
local others = redis.call('ZCARD', KEYS[1])
if redis.call('ZSCORE', KEYS[1], ARGV[1]) then others = others - 1 end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
redis.call('PEXPIRE', KEYS[1], 2 * tonumber(ARGV[2]))
return others`)

// presenceDown removes an instance's entry and answers how many live
// entries the user has left: 0 means the user is offline now.
//
// KEYS: user's presence; ARGV: instance
var presenceDown = redis.NewScript(redisNowMs + `
local had = redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. now)
local left = redis.call('ZCARD', KEYS[1])
if left == 0 then redis.call('DEL', KEYS[1]) end
if had == 0 then return -1 end
return left`)

// Presence counts the user's sockets on this node and announces the
// transitions online/offline (across all nodes) to the given rooms. When
// the user's last socket on any node closed, it records the user's last
// seen time, after the user's lock is released (a slow Postgres must not
// hold up other users' presence).
func (s *Service) Presence(ctx context.Context, user string, rooms []string, online bool) {
	if s.presence.dead.Load() {
		return
	}
	if offline := s.transition(ctx, user, rooms, online); offline {
		s.seen(ctx, user)
	}
}

// transition is Presence under the user's lock; it answers whether the
// user just went offline everywhere.
func (s *Service) transition(ctx context.Context, user string, rooms []string, online bool) (offline bool) {
	p := s.presence
	l := p.lock(user)
	l.Lock()
	defer l.Unlock()
	p.mu.Lock()
	n := p.local[user]
	if online {
		n++
	} else if n > 0 {
		n--
	} else {
		p.mu.Unlock()
		return false
	}
	if n == 0 {
		delete(p.local, user)
	} else {
		p.local[user] = n
	}
	p.mu.Unlock()
	if p.dead.Load() || (online && n != 1) || (!online && n != 0) {
		return false // not a transition of this node
	}
	key := presenceKey(user)
	var changed bool
	if online {
		others, err := presenceUp.Run(ctx, s.rdb, []string{key}, p.inst, s.cfg.PresenceTTL.Milliseconds()).Int64()
		if err != nil {
			return false // the next heartbeat adds the entry
		}
		s.rdb.SAdd(ctx, presenceNodeKey(p.inst), user)
		changed = others == 0
	} else {
		s.rdb.SRem(ctx, presenceNodeKey(p.inst), user)
		left, err := presenceDown.Run(ctx, s.rdb, []string{key}, p.inst).Int64()
		changed = err == nil && left == 0
	}
	if changed {
		s.announce(ctx, user, rooms, online)
	}
	return changed && !online
}

// SeenRecorder is the part of the store that records when a user's last
// socket on any node closed (auth.users.last_seen_at). A store without it
// records nothing.
type SeenRecorder interface {
	TouchLastSeen(ctx context.Context, id uuid.UUID) error
}

// seen records that user just went offline everywhere. It is best effort:
// presence frames do not wait on Postgres, and a failed write only leaves
// an older last-seen time.
func (s *Service) seen(ctx context.Context, user string) {
	rec, ok := s.store.(SeenRecorder)
	if !ok {
		return
	}
	id, err := uuid.Parse(user)
	if err != nil {
		return
	}
	if err := rec.TouchLastSeen(ctx, id); err != nil {
		s.log.Warn("presence: record last seen", "user", user, "error", err)
	}
}

// announce publishes a presence change to the user's rooms. The frame goes to every room of the user, so a socket sharing k rooms
// with them receives it k times; event_id is the same in every copy, and
// the hub delivers one copy per socket (realtime Hub.dispatch).
func (s *Service) announce(ctx context.Context, user string, rooms []string, online bool) {
	frame, _ := json.Marshal(map[string]any{"type": "presence", "user_id": user, "online": online, "event_id": uuid.NewString()})
	pipe := s.rdb.Pipeline()
	for _, room := range rooms {
		s.publish(ctx, pipe, RoomChannel(room), frame)
	}
	_, _ = pipe.Exec(ctx)
}

// redisNow reads Redis's clock.
func (s *Service) redisNow(ctx context.Context) (time.Time, error) {
	return s.rdb.Time(ctx).Result()
}

// Online reports, for each user, whether it has a live connection on any
// node, in two round trips.
func (s *Service) Online(ctx context.Context, users []uuid.UUID) []bool {
	out := make([]bool, len(users))
	if len(users) == 0 {
		return out
	}
	now, err := s.redisNow(ctx)
	if err != nil {
		return out
	}
	from := strconv.FormatInt(now.UnixMilli(), 10)
	pipe := s.rdb.Pipeline()
	cmds := make([]*redis.IntCmd, len(users))
	for i, u := range users {
		cmds[i] = pipe.ZCount(ctx, presenceKey(u.String()), from, "+inf")
	}
	_, _ = pipe.Exec(ctx) // absent keys mean offline
	for i, c := range cmds {
		out[i] = c.Val() > 0
	}
	return out
}

// runPresence renews this node's presence every PresenceHeartbeat and
// sweeps dead nodes, until ctx ends; then it leaves the registry.
func (s *Service) runPresence(ctx context.Context) {
	every := s.cfg.PresenceHeartbeat
	if every <= 0 || s.cfg.PresenceTTL <= 0 {
		return
	}
	// sweeps run twice per heartbeat, so that a dead node's users get their
	// offline frames at most half a heartbeat after their entries expired
	t := time.NewTicker(every / 2)
	defer t.Stop()
	for tick := 0; ; tick++ {
		if s.presence.dead.Load() {
			return
		}
		bctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), every/2)
		if tick%2 == 0 {
			if err := s.heartbeat(bctx); err != nil {
				s.log.Warn("presence heartbeat", "error", err)
			}
		}
		if err := s.sweep(bctx); err != nil {
			s.log.Warn("presence sweep", "error", err)
		}
		cancel()
		select {
		case <-ctx.Done():
			s.leavePresence()
			return
		case <-t.C:
		}
	}
}

// heartbeat renews the entries of this node's users and of the node itself.
func (s *Service) heartbeat(ctx context.Context) error {
	p := s.presence
	p.mu.Lock()
	users := make([]string, 0, len(p.local))
	for u := range p.local {
		users = append(users, u)
	}
	p.mu.Unlock()
	now, err := s.redisNow(ctx)
	if err != nil {
		return err
	}
	ttl := s.cfg.PresenceTTL
	exp := float64(now.Add(ttl).UnixMilli())
	const chunk = 500
	for i := 0; i < len(users) || i == 0; i += chunk {
		pipe := s.rdb.Pipeline()
		if i == 0 {
			pipe.ZAdd(ctx, presenceNodesKey, redis.Z{Score: exp, Member: p.inst})
		}
		part := users[i:min(i+chunk, len(users))]
		members := make([]any, len(part))
		for j, u := range part {
			members[j] = u
			pipe.ZAdd(ctx, presenceKey(u), redis.Z{Score: exp, Member: p.inst})
			pipe.PExpire(ctx, presenceKey(u), 2*ttl)
		}
		if len(members) > 0 {
			pipe.SAdd(ctx, presenceNodeKey(p.inst), members...)
		}
		pipe.PExpire(ctx, presenceNodeKey(p.inst), 4*ttl)
		if _, err := pipe.Exec(ctx); err != nil {
			return err
		}
	}
	// A user who left this node while the renewals were on the wire was
	// renewed after its entry was removed: remove it again.
	for _, u := range users {
		l := p.lock(u)
		l.Lock()
		p.mu.Lock()
		gone := p.local[u] == 0
		p.mu.Unlock()
		if gone && !p.dead.Load() {
			s.rdb.SRem(ctx, presenceNodeKey(p.inst), u)
			presenceDown.Run(ctx, s.rdb, []string{presenceKey(u)}, p.inst)
		}
		l.Unlock()
	}
	return nil
}

// sweep ends the presence of the users of node instances that stopped
// renewing their registry entry (died), telling their rooms. Each dead
// instance is claimed by exactly one sweeping node.
func (s *Service) sweep(ctx context.Context) error {
	now, err := s.redisNow(ctx)
	if err != nil {
		return err
	}
	dead, err := s.rdb.ZRangeByScore(ctx, presenceNodesKey, &redis.ZRangeBy{
		Min: "-inf", Max: "(" + strconv.FormatInt(now.UnixMilli(), 10), Count: 20,
	}).Result()
	if err != nil {
		return err
	}
	for _, inst := range dead {
		if inst == s.presence.inst {
			continue
		}
		if n, err := s.rdb.ZRem(ctx, presenceNodesKey, inst).Result(); err != nil || n == 0 {
			continue // another node claimed it
		}
		users, err := s.rdb.SMembers(ctx, presenceNodeKey(inst)).Result()
		if err != nil {
			return err
		}
		for _, u := range users {
			left, err := presenceDown.Run(ctx, s.rdb, []string{presenceKey(u)}, inst).Int64()
			if err != nil || left != 0 {
				continue // still online elsewhere (or its entry was gone: -1)
			}
			s.metrics.presenceSwept.Inc()
			uid, err := uuid.Parse(u)
			if err != nil {
				continue
			}
			rooms, err := s.UserRooms(ctx, uid)
			if err != nil {
				s.log.Warn("presence sweep: rooms of user", "user", u, "error", err)
				continue
			}
			s.announce(ctx, u, rooms, false)
			// The user was last seen when the dead node stopped renewing,
			// up to PresenceTTL before now: close enough for "last seen".
			s.seen(ctx, u)
		}
		s.rdb.Del(ctx, presenceNodeKey(inst))
		s.log.Info("presence: swept a dead node", "instance", inst, "users", len(users))
	}
	return nil
}

// leavePresence takes a stopping node out of the registry once it has no
// users left (its sockets closed cleanly); otherwise a sweep does it later.
func (s *Service) leavePresence() {
	p := s.presence
	if p.dead.Load() {
		return
	}
	p.mu.Lock()
	n := len(p.local)
	p.mu.Unlock()
	if n > 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	s.rdb.ZRem(ctx, presenceNodesKey, p.inst)
	s.rdb.Del(ctx, presenceNodeKey(p.inst))
}

// Crash makes this node's presence behave as if its process had died: no
// more heartbeats, and nothing it does from now on (closing its sockets
// included) touches presence state in Redis. Tests use it to kill a node
// without the clean close path; the other nodes' sweeps then end the
// presence of its users.
func (s *Service) Crash() { s.presence.dead.Store(true) }

// Connections counts the users online on every live node (a user connected
// to two nodes counts twice): the size of each live node's user set.
func (s *Service) Connections(ctx context.Context) int64 {
	now, err := s.redisNow(ctx)
	if err != nil {
		return 0
	}
	nodes, err := s.rdb.ZRangeByScore(ctx, presenceNodesKey, &redis.ZRangeBy{Min: strconv.FormatInt(now.UnixMilli(), 10), Max: "+inf"}).Result()
	if err != nil {
		return 0
	}
	pipe := s.rdb.Pipeline()
	cmds := make([]*redis.IntCmd, len(nodes))
	for i, inst := range nodes {
		cmds[i] = pipe.SCard(ctx, presenceNodeKey(inst))
	}
	_, _ = pipe.Exec(ctx)
	var total int64
	for _, c := range cmds {
		total += c.Val()
	}
	return total
}
