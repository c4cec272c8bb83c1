package chat

import (
	"context"
	"encoding/json"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"
)

// Presence counts a user's connections across nodes and announces the
// transitions online/offline to the given rooms (the user's rooms).
func (s *Service) Presence(ctx context.Context, user string, rooms []string, online bool) {
	key := presenceKey(user)
	var n int64
	var err error
	if online {
		n, err = s.rdb.Incr(ctx, key).Result()
	} else {
		n, err = s.rdb.Decr(ctx, key).Result()
	}
	if err != nil || (online && n != 1) || (!online && n > 0) {
		return
	}
	if n < 0 {
		s.rdb.Set(ctx, key, 0, 0)
	}
	frame, _ := json.Marshal(map[string]any{"type": "presence", "user_id": user, "online": online})
	pipe := s.rdb.Pipeline()
	for _, room := range rooms {
		pipe.Publish(ctx, RoomChannel(room), frame)
	}
	_, _ = pipe.Exec(ctx)
}

// Online reports, for each user, whether it has a live connection on any
// node, in one pipelined round trip.
func (s *Service) Online(ctx context.Context, users []uuid.UUID) []bool {
	out := make([]bool, len(users))
	if len(users) == 0 {
		return out
	}
	pipe := s.rdb.Pipeline()
	cmds := make([]*redis.StringCmd, len(users))
	for i, u := range users {
		cmds[i] = pipe.Get(ctx, presenceKey(u.String()))
	}
	_, _ = pipe.Exec(ctx) // absent keys mean offline
	for i, c := range cmds {
		n, _ := c.Int64()
		out[i] = n > 0
	}
	return out
}

// Connections sums the connection counters of every user on every node.
func (s *Service) Connections(ctx context.Context) int64 {
	var total int64
	iter := s.rdb.Scan(ctx, 0, presenceKey("*"), 1000).Iterator()
	var keys []string
	for iter.Next(ctx) {
		keys = append(keys, iter.Val())
	}
	for _, k := range keys {
		n, _ := s.rdb.Get(ctx, k).Int64()
		total += max(n, 0)
	}
	return total
}
