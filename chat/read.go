package chat

import (
	"context"
	"encoding/json"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"

	"github.com/chatflow/chatflow"
	"github.com/chatflow/chatflow/db"
	"github.com/chatflow/chatflow/roomlog"
)

// CurrentSeq is the room's live seq (Redis), re-seeded from Postgres if lost.
func (s *Service) CurrentSeq(ctx context.Context, room uuid.UUID) (int64, error) {
	v, err := s.rdb.Get(ctx, roomlog.SeqKey(room.String())).Int64()
	if err == redis.Nil {
		if err := s.cacheSeq(ctx, room); err != nil {
			return 0, err
		}
		v, err = s.rdb.Get(ctx, roomlog.SeqKey(room.String())).Int64()
	}
	if err != nil {
		return 0, unavailable(err)
	}
	return v, nil
}

// FetchRange returns the room's message frames with lo <= seq <= hi in
// order: from the room's log where it holds them, from Postgres otherwise.
// The log keeps every message Postgres does not hold yet (it is trimmed
// only below the persisted watermark), so nothing accepted is missed and a
// read never waits; the log may have holes of its own (seqs it lost, which
// Postgres holds as gap tombstones), so any seq of the range the log lacks
// is read from Postgres. A seq in neither place reads as missing until the
// reconciler writes its tombstone.
func (s *Service) FetchRange(ctx context.Context, room uuid.UUID, lo, hi int64) ([]json.RawMessage, error) {
	if lo < 1 {
		lo = 1
	}
	if hi < lo {
		return nil, nil
	}
	entries, err := roomlog.Range(ctx, s.rdb, room.String(), lo, hi)
	if err != nil {
		return nil, unavailable(err)
	}
	if int64(len(entries)) == hi-lo+1 { // the log has the whole range
		out := make([]json.RawMessage, len(entries))
		for i, e := range entries {
			out[i] = e.Frame
		}
		return s.overlay(ctx, room, lo, hi, out)
	}
	rows, err := s.store.ListMessagesRange(ctx, db.ListMessagesRangeParams{RoomID: room, Lo: lo, Hi: hi})
	if err != nil {
		return nil, unavailable(err)
	}
	// merge by seq; a seq in both is the same message
	out := make([]json.RawMessage, 0, max(len(rows), len(entries)))
	i, j := 0, 0
	for i < len(rows) || j < len(entries) {
		switch {
		case j < len(entries) && (i == len(rows) || entries[j].Seq <= rows[i].Seq):
			if i < len(rows) && rows[i].Seq == entries[j].Seq {
				i++
			}
			out = append(out, entries[j].Frame)
			j++
		default:
			b, err := json.Marshal(MessageFrame{Type: "message", Message: FromRow(rows[i])})
			if err != nil {
				return nil, err
			}
			out = append(out, b)
			i++
		}
	}
	if int64(len(out)) < hi-lo+1 {
		s.metrics.readHoles.Inc()
		s.log.Warn("seqs in neither the log nor Postgres", "room", room, "lo", lo, "hi", hi, "found", len(out))
	}
	return s.overlay(ctx, room, lo, hi, out)
}

// Live is a room's current seq and newest message.
type Live struct {
	Seq  int64
	Last *chatflow.Message
}

// LiveState reads each room's current seq and newest message from Redis in
// one pipelined round trip, falling back to Postgres for the newest message.
func (s *Service) LiveState(ctx context.Context, rooms []uuid.UUID) (map[uuid.UUID]Live, error) {
	out := make(map[uuid.UUID]Live, len(rooms))
	if len(rooms) == 0 {
		return out, nil
	}
	pipe := s.rdb.Pipeline()
	seqs := make([]*redis.StringCmd, len(rooms))
	lasts := make([]*redis.XMessageSliceCmd, len(rooms))
	for i, r := range rooms {
		seqs[i] = pipe.Get(ctx, roomlog.SeqKey(r.String()))
		lasts[i] = pipe.XRevRangeN(ctx, roomlog.StreamKey(r.String()), "+", "-", 1)
	}
	_, _ = pipe.Exec(ctx) // missing keys are not errors here
	var missing []uuid.UUID
	for i, r := range rooms {
		lr := Live{}
		lr.Seq, _ = seqs[i].Int64()
		if xs, err := lasts[i].Result(); err == nil && len(xs) > 0 {
			if f, ok := xs[0].Values["f"].(string); ok {
				var m MessageFrame
				if json.Unmarshal([]byte(f), &m) == nil {
					lr.Last = &m.Message
				}
			}
		}
		if lr.Last == nil {
			missing = append(missing, r)
		}
		out[r] = lr
	}
	if len(missing) > 0 {
		rows, err := s.store.LastMessages(ctx, missing)
		if err != nil {
			return nil, err
		}
		for _, row := range rows {
			m := FromRow(row)
			lr := out[row.RoomID]
			lr.Last = &m
			lr.Seq = max(lr.Seq, m.Seq)
			out[row.RoomID] = lr
		}
	}
	return out, nil
}
