package chat

import (
	"context"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"

	"github.com/chatflow/chatflow"
	"github.com/chatflow/chatflow/roomlog"
)

// memberSentinel keeps a room's member set present in Redis even when empty,
// so that "missing" always means "not cached" rather than "no members".
const memberSentinel = "-"

// membersTTL bounds how long a room's cached member set lives: Postgres is
// the truth, and a set rebuilt while a member was leaving heals by expiring.
const membersTTL = time.Hour

// dedupeTTL is how long a (sender, client_msg_id) is remembered in Redis;
// Postgres keeps the key for good.
const dedupeTTL = time.Hour

// cacheMembers loads a room's members from Postgres into Redis.
func (s *Service) cacheMembers(ctx context.Context, room uuid.UUID) error {
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
	members := []any{memberSentinel}
	for _, id := range ids {
		members = append(members, id.String())
	}
	_, err = s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.SAdd(ctx, roomlog.MembersKey(room.String()), members...)
		p.Expire(ctx, roomlog.MembersKey(room.String()), membersTTL)
		return nil
	})
	if err != nil {
		return unavailable(err)
	}
	return nil
}

// cacheSeq re-seeds a room's lost seq counter and watermark from Postgres
// (a live value wins).
func (s *Service) cacheSeq(ctx context.Context, room uuid.UUID) error {
	head, err := s.store.RoomLogHead(ctx, room)
	if isNotFound(err) {
		return chatflow.Errorf(chatflow.ECodeNotFound, "room %s not found", room)
	}
	if err != nil {
		return unavailable(err)
	}
	if err := roomlog.Seed(ctx, s.rdb, room.String(), head.LastSeq, head.PersistedSeq); err != nil {
		return unavailable(err)
	}
	return nil
}

// SeedRoom seeds a new room's Redis state: seq counter and member set.
func (s *Service) SeedRoom(ctx context.Context, room uuid.UUID, members []uuid.UUID) error {
	vals := []any{memberSentinel}
	for _, m := range members {
		vals = append(vals, m.String())
	}
	if err := roomlog.SeedNew(ctx, s.rdb, room.String()); err != nil {
		return err
	}
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.SAdd(ctx, roomlog.MembersKey(room.String()), vals...)
		p.Expire(ctx, roomlog.MembersKey(room.String()), membersTTL)
		return nil
	})
	return err
}

// addCachedMembers adds members to a room's member set only if it is cached.
var addCachedMembers = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
return redis.call('SADD', KEYS[1], unpack(ARGV))`)

// MembersAdded updates the cached member set after members were added in
// Postgres. Only a cached set is touched: creating the key here would make
// it hold just the new members, locking everyone else out until it expires.
// A missing set is loaded whole from Postgres on the next send.
func (s *Service) MembersAdded(ctx context.Context, room uuid.UUID, added []uuid.UUID) error {
	if len(added) == 0 {
		return nil
	}
	vals := make([]any, len(added))
	for i, a := range added {
		vals[i] = a.String()
	}
	if err := addCachedMembers.Run(ctx, s.rdb, []string{roomlog.MembersKey(room.String())}, vals...).Err(); err != nil && err != redis.Nil {
		return err
	}
	return nil
}

// MemberRemoved updates the cached member set after a member left in Postgres.
func (s *Service) MemberRemoved(ctx context.Context, room, user uuid.UUID) error {
	return s.rdb.SRem(ctx, roomlog.MembersKey(room.String()), user.String()).Err()
}
