package chat

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"

	"github.com/chatflow/chatflow"
	"github.com/chatflow/chatflow/roomlog"
)

// Membership authority.
//
// Postgres holds who is in a room. Sends (the send script), typing and sync
// check a copy of a room's member set cached in Redis, which must never say
// "member" to someone a returned leave removed, nor "not a member" to
// someone a returned invite added. Every change runs in this order:
//
//  1. the change commits in Postgres;
//  2. one script increments the room's membership version and applies the
//     change to the cached set, if one is cached.
//
// A rebuild of the cache reads the version first, then Postgres, and its
// install script refuses the set if the version moved meanwhile. A rebuild
// that read Postgres before a change committed read the version before
// step 2 incremented it: if its install comes after step 2 it is refused,
// and if it comes before, step 2 applies the change on top of it. Either way
// the cache agrees with Postgres once step 2 has run, and the change returns
// to its caller only after step 2. There is no window and no expiry to wait
// for; the TTL only drops the sets of idle rooms.

// memberSentinel keeps a room's member set present in Redis even when empty,
// so that "missing" always means "not cached" rather than "no members".
const memberSentinel = "-"

// membersTTL is how long an idle room's cached member set (and its version)
// stays in Redis. Correctness does not depend on it (see above).
const membersTTL = time.Hour

// dedupeTTL is how long a (sender, client_msg_id) is remembered in Redis;
// Postgres keeps the key for good.
const dedupeTTL = time.Hour

// errMembersMoved: the membership changed while the cache was being
// rebuilt, so the rebuild was refused; read again.
var errMembersMoved = errors.New("room membership changed during the cache rebuild")

// installMembers caches a member set read from Postgres, unless the room's
// membership version moved since it was read.
//
// KEYS: members, version
// ARGV: version read before Postgres (” if none), ttl (s), members...
var installMembers = redis.NewScript(`
if (redis.call('GET', KEYS[2]) or '') ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
for i = 3, #ARGV, 1000 do
  redis.call('SADD', KEYS[1], unpack(ARGV, i, math.min(i + 999, #ARGV)))
end
redis.call('EXPIRE', KEYS[1], ARGV[2])
return 1`)

// changeMembers records a membership change Postgres has committed: it
// moves the version, applies the change to a cached set ('seed' creates the
// set of a new room) and publishes the change's events, each frame ending in
// the room's seq at the change, all atomically: any message sequenced after
// the change is published after its events, and a leaver's sends after it
// are refused.
//
// KEYS: members, version, seq
// ARGV: op (add|rem|seed), ttl (s), n, seq if the key is missing, n user ids, then (channel, frame prefix) pairs
var changeMembers, changeMembersSharded = roomlog.Scripts(`
redis.call('INCR', KEYS[2])
redis.call('EXPIRE', KEYS[2], ARGV[2])
local n = tonumber(ARGV[3])
local last = 4 + n
local cached = redis.call('EXISTS', KEYS[1]) == 1
if ARGV[1] == 'seed' and not cached then
  redis.call('SADD', KEYS[1], '-')
  redis.call('EXPIRE', KEYS[1], ARGV[2])
  cached = true
end
if cached then
  for i = 5, last, 1000 do
    local j = math.min(i + 999, last)
    if ARGV[1] == 'rem' then
      redis.call('SREM', KEYS[1], unpack(ARGV, i, j))
    else
      redis.call('SADD', KEYS[1], unpack(ARGV, i, j))
    end
  end
end
local seq = redis.call('GET', KEYS[3]) or ARGV[4]
for i = last + 1, #ARGV, 2 do
  redis.call('PUBLISH', ARGV[i], ARGV[i + 1] .. seq .. '}')
end
return tonumber(seq)`)

// checkMember answers whether ARGV[1] is in the cached member set, and
// publishes ARGV[3] on channel ARGV[2] if so (typing).
var checkMember, checkMemberSharded = roomlog.Scripts(`
if redis.call('EXISTS', KEYS[1]) == 0 then return -2 end
if redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 0 then return -1 end
if #ARGV >= 3 then redis.call('PUBLISH', ARGV[2], ARGV[3]) end
return 1`)

// cacheMembers loads a room's members from Postgres into Redis; it answers
// errMembersMoved when a change raced it (read again).
func (s *Service) cacheMembers(ctx context.Context, room uuid.UUID) error {
	ver, err := s.rdb.Get(ctx, roomlog.MembersVersionKey(room.String())).Result()
	if err != nil && err != redis.Nil {
		return unavailable(err)
	}
	if _, err := s.store.GetRoom(ctx, room); err != nil {
		if isNotFound(err) {
			return chatflow.Errorf(chatflow.ECodeNotFound, "room %s not found", room)
		}
		return unavailable(err)
	}
	ids, err := s.store.RoomMemberIDs(ctx, room)
	if err != nil {
		return unavailable(err)
	}
	args := []any{ver, int64(membersTTL / time.Second), memberSentinel}
	for _, id := range ids {
		args = append(args, id.String())
	}
	ok, err := installMembers.Run(ctx, s.rdb, []string{roomlog.MembersKey(room.String()), roomlog.MembersVersionKey(room.String())}, args...).Int64()
	if err != nil {
		return unavailable(err)
	}
	if ok == 0 {
		s.metrics.membersRebuildRaced.Inc()
		return errMembersMoved
	}
	return nil
}

// cacheSeq re-seeds a room's lost (or expired) seq counter and watermark
// from Postgres (a live value wins).
func (s *Service) cacheSeq(ctx context.Context, room uuid.UUID) error {
	head, err := s.store.RoomLogHead(ctx, room)
	if isNotFound(err) {
		return chatflow.Errorf(chatflow.ECodeNotFound, "room %s not found", room)
	}
	if err != nil {
		return unavailable(err)
	}
	if err := roomlog.Seed(ctx, s.rdb, room.String(), head.LastSeq, head.PersistedSeq, s.cfg.RoomIdleTTL); err != nil {
		return unavailable(err)
	}
	return nil
}

// SeedRoom seeds a new room's Redis state: seq counter and member set.
func (s *Service) SeedRoom(ctx context.Context, room uuid.UUID, members []uuid.UUID) error {
	if err := roomlog.SeedNew(ctx, s.rdb, room.String(), s.cfg.RoomIdleTTL); err != nil {
		return err
	}
	_, err := s.changeMembers(ctx, room, "seed", members, nil)
	return err
}

// roomEvent is one event changeMembers publishes.
type roomEvent struct {
	channel string
	ev      RoomEvent
}

// changeMembers runs the changeMembers script, retrying transport errors
// (the script is safe to repeat: the version only moves further), and
// returns the room's seq at the change.
func (s *Service) changeMembers(ctx context.Context, room uuid.UUID, op string, users []uuid.UUID, events []roomEvent) (int64, error) {
	r := room.String()
	var fallback int64
	if len(events) > 0 {
		// the events carry the room's seq: make sure it is in Redis
		cur, err := s.CurrentSeq(ctx, room)
		if err != nil {
			return 0, err
		}
		fallback = cur
	}
	args := []any{op, int64(membersTTL / time.Second), len(users), fallback}
	for _, u := range users {
		args = append(args, u.String())
	}
	script := changeMembers
	var after []roomEvent // sharded: events on other slots than the room's
	for _, e := range events {
		if s.sharded && e.channel != RoomChannel(r) {
			after = append(after, e)
			continue
		}
		b, err := json.Marshal(e.ev)
		if err != nil {
			return 0, err
		}
		args = append(args, e.channel, string(b[:len(b)-1])+`,"seq":`)
	}
	if s.sharded {
		script = changeMembersSharded
	}
	keys := []string{roomlog.MembersKey(r), roomlog.MembersVersionKey(r), roomlog.SeqKey(r)}
	var err error
	for attempt := 0; attempt < 3; attempt++ {
		var seq int64
		if seq, err = script.Run(ctx, s.rdb, keys, args...).Int64(); err == nil {
			s.publishAfter(ctx, after, seq)
			return seq, nil
		}
		if ctx.Err() != nil {
			break
		}
		time.Sleep(time.Duration(attempt+1) * 50 * time.Millisecond)
	}
	return 0, unavailable(err)
}

// publishAfter publishes, on a Redis Cluster, the events of a membership
// change that the script could not (a script's SPUBLISH must stay on the
// slot of its keys, and a user's channel is on the user's slot). They go
// out after the change, so a user's "left" may reach its node after the
// room's own "left" and the messages sequenced after it; the hub therefore
// also follows a room's "left" of a local user (Hub.dispatch), which comes
// before any later message on the room's channel.
func (s *Service) publishAfter(ctx context.Context, events []roomEvent, seq int64) {
	for _, e := range events {
		b, err := json.Marshal(e.ev)
		if err != nil {
			continue
		}
		frame := string(b[:len(b)-1]) + `,"seq":` + strconv.FormatInt(seq, 10) + `}`
		for attempt := 0; attempt < 3; attempt++ {
			if err = s.publish(ctx, s.rdb, e.channel, frame).Err(); err == nil || ctx.Err() != nil {
				break
			}
			time.Sleep(time.Duration(attempt+1) * 50 * time.Millisecond)
		}
		if err != nil {
			s.log.Warn("membership event: publish", "channel", e.channel, "error", err)
		}
	}
}

// MembersAdded records, after members were added in Postgres, the change in
// Redis; once it returns they can send. The caller publishes the events.
func (s *Service) MembersAdded(ctx context.Context, room uuid.UUID, added []uuid.UUID) error {
	if len(added) == 0 {
		return nil
	}
	_, err := s.changeMembers(ctx, room, "add", added, nil)
	return err
}

// MemberRemoved records, after a member was removed in Postgres, the change
// in Redis; once it returns that user's sends are refused.
func (s *Service) MemberRemoved(ctx context.Context, room, user uuid.UUID) error {
	_, err := s.changeMembers(ctx, room, "rem", []uuid.UUID{user}, nil)
	return err
}

// Leave is MemberRemoved for a member leaving: the "left" events go to the
// user's sockets (first, so their nodes stop fanning the room out to them)
// and to the room, atomically with the removal. It returns the room's seq at
// the leave: every message of the leaver has a seq at or below it.
func (s *Service) Leave(ctx context.Context, room, user uuid.UUID) (int64, error) {
	ev := RoomEvent{Type: "room", Event: "left", RoomID: room.String(), UserID: user.String()}
	return s.changeMembers(ctx, room, "rem", []uuid.UUID{user}, []roomEvent{
		{UserChannel(user.String()), ev}, {RoomChannel(room.String()), ev},
	})
}

// Authorize checks, through the same cached member set the send script
// checks, that user is a member of room.
func (s *Service) Authorize(ctx context.Context, user, room uuid.UUID) error {
	return s.member(ctx, user, room, "", nil)
}

// typingEvent starts with its type, so the hub can tell it apart cheaply.
type typingEvent struct {
	Type   string `json:"type"`
	RoomID string `json:"room_id"`
	UserID string `json:"user_id"`
}

// Typing tells the room that user is typing, if user is a member (checked
// as Authorize checks, in the same script that publishes).
func (s *Service) Typing(ctx context.Context, user, room uuid.UUID) error {
	b, err := json.Marshal(typingEvent{Type: "typing", RoomID: room.String(), UserID: user.String()})
	if err != nil {
		return err
	}
	return s.member(ctx, user, room, RoomChannel(room.String()), b)
}

func (s *Service) member(ctx context.Context, user, room uuid.UUID, channel string, frame []byte) error {
	args := []any{user.String()}
	if channel != "" {
		args = append(args, channel, frame)
	}
	for attempt := 0; attempt < 5; attempt++ {
		script := checkMember
		if s.sharded {
			script = checkMemberSharded
		}
		n, err := script.Run(ctx, s.rdb, []string{roomlog.MembersKey(room.String())}, args...).Int64()
		if err != nil {
			return unavailable(err)
		}
		switch n {
		case 1:
			return nil
		case -1:
			return chatflow.Errorf(chatflow.ECodeNotMember, "you are not a member of room %s", room)
		}
		if err := s.cacheMembers(ctx, room); err != nil && !errors.Is(err, errMembersMoved) {
			return err
		}
	}
	return chatflow.Errorf(chatflow.ECodeUnavailable, "room %s membership is changing; retry", room)
}
