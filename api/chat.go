package api

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"

	"github.com/chatflow/chatflow"
	"github.com/chatflow/chatflow/db"
)

// Redis keys of a room share the {r:<id>} hash tag, so the send script
// touches a single Redis Cluster slot.
func roomTag(room string) string     { return "{r:" + room + "}" }
func seqKey(room string) string      { return roomTag(room) + ":seq" }
func membersKey(room string) string  { return roomTag(room) + ":m" }
func historyKey(room string) string  { return roomTag(room) + ":h" }
func roomChannel(room string) string { return roomTag(room) }
func userChannel(user string) string { return "{u:" + user + "}" }
func dedupeKey(room, sender, cmid string) string {
	return roomTag(room) + ":d:" + sender + ":" + cmid
}

// memberSentinel keeps a room's member set present in Redis even when empty,
// so that "missing" always means "not cached" rather than "no members".
const memberSentinel = "-"

// membersTTL bounds how long a room's cached member set lives: Postgres is
// the truth, and a set rebuilt while a member was leaving heals by expiring.
const membersTTL = time.Hour

// dedupeTTL is how long a (sender, client_msg_id) is remembered in Redis;
// Postgres keeps the key for good.
const dedupeTTL = time.Hour

// sendScript is the whole accept path in one round trip: membership check,
// dedupe, next seq, capped recent history and fan-out publish.
// Returns {-1} not a member, {-2} member set not cached, {-3} seq counter
// not cached, {0, original seq} a duplicate, {seq, frame} accepted.
var sendScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[2]) == 0 then return {-2} end
if redis.call('SISMEMBER', KEYS[2], ARGV[1]) == 0 then return {-1} end
local prev = redis.call('GET', KEYS[4])
if prev then return {0, prev} end
if redis.call('EXISTS', KEYS[1]) == 0 then return {-3} end
local seq = redis.call('INCR', KEYS[1])
local frame = ARGV[2] .. seq .. ARGV[3]
redis.call('SET', KEYS[4], seq, 'EX', ARGV[6])
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[5], seq .. '-0', 'f', frame)
redis.call('PUBLISH', ARGV[4], frame)
return {seq, frame}`)

// accepted is the outcome of a send.
type accepted struct {
	msg   chatflow.Message
	frame []byte
	dup   bool
}

// messageFrame is the server→client frame of one message.
type messageFrame struct {
	Type string `json:"type"`
	chatflow.Message
}

// accept validates and sequences one message. It does not wait for durability.
func (s *Server) accept(ctx context.Context, sender uuid.UUID, roomID, cmid, body string) (accepted, error) {
	room, err := uuid.Parse(roomID)
	if err != nil {
		return accepted{}, chatflow.Errorf(chatflow.ECodeValidation, "room_id must be a UUID")
	}
	if err := chatflow.ValidClientMsgID(cmid); err != nil {
		return accepted{}, err
	}
	if err := chatflow.ValidBody(body); err != nil {
		return accepted{}, err
	}
	if s.batcher.overloaded() {
		// refuse before sequencing: once a message has a seq it must be persisted
		return accepted{}, chatflow.Errorf(chatflow.ECodeUnavailable, "node is overloaded; retry shortly with the same client_msg_id")
	}
	roomID = room.String()
	mid, err := uuid.NewV7()
	if err != nil {
		return accepted{}, err
	}
	now := time.Now().UTC().Truncate(time.Microsecond)
	prefix, suffix := framePieces(mid.String(), roomID, sender.String(), cmid, body, now)
	keys := []string{seqKey(roomID), membersKey(roomID), historyKey(roomID), dedupeKey(roomID, sender.String(), cmid)}
	args := []any{sender.String(), prefix, suffix, roomChannel(roomID), s.Cfg.HistoryCap, int(dedupeTTL.Seconds())}
	for attempt := 0; attempt < 3; attempt++ {
		res, err := s.pipe.call(ctx, keys, args)
		if err != nil {
			return accepted{}, fmt.Errorf("send script: %w", err)
		}
		code, _ := res[0].(int64)
		switch {
		case code == -1:
			return accepted{}, chatflow.Errorf(chatflow.ECodeNotMember, "you are not a member of room %s", roomID)
		case code == -2:
			if err := s.cacheMembers(ctx, room); err != nil {
				return accepted{}, err
			}
			continue
		case code == -3:
			if err := s.cacheSeq(ctx, room); err != nil {
				return accepted{}, err
			}
			continue
		}
		frame := []byte(res[1].(string))
		if code > 0 { // new: every field is already known here, skip decoding
			return accepted{msg: chatflow.Message{
				MessageID: mid.String(), RoomID: roomID, Seq: code, SenderID: sender.String(),
				ClientMsgID: cmid, Body: body, SentAt: now,
			}, frame: frame}, nil
		}
		// A duplicate: the dedupe key holds only the original's seq (a few
		// bytes per message instead of a copy); the original comes from the
		// room's history.
		if len(frame) > 0 && frame[0] == '{' { // an entry from before keys held seqs
			var m messageFrame
			if err := json.Unmarshal(frame, &m); err != nil {
				return accepted{}, fmt.Errorf("decode dedupe frame: %w", err)
			}
			return accepted{msg: m.Message, frame: frame, dup: true}, nil
		}
		orig, err := strconv.ParseInt(string(frame), 10, 64)
		if err != nil {
			return accepted{}, fmt.Errorf("dedupe entry %q: %w", frame, err)
		}
		frames, err := s.fetchRange(ctx, room, orig, orig)
		if err != nil {
			return accepted{}, err
		}
		if len(frames) != 1 {
			return accepted{}, chatflow.Errorf(chatflow.ECodeUnavailable, "original of client_msg_id %q not readable yet; retry", cmid)
		}
		var m messageFrame
		if err := json.Unmarshal(frames[0], &m); err != nil {
			return accepted{}, fmt.Errorf("decode original frame: %w", err)
		}
		return accepted{msg: m.Message, frame: frames[0], dup: true}, nil
	}
	return accepted{}, chatflow.Errorf(chatflow.ECodeNotFound, "room %s not found", roomID)
}

// framePieces renders the message frame around its seq, which only the
// script knows; Go does the JSON encoding so Lua never has to.
func framePieces(mid, room, sender, cmid, body string, at time.Time) (string, string) {
	var b bytes.Buffer
	b.WriteString(`{"type":"message","message_id":"`)
	b.WriteString(mid)
	b.WriteString(`","room_id":"`)
	b.WriteString(room)
	b.WriteString(`","seq":`)
	prefix := b.String()
	b.Reset()
	b.WriteString(`,"sender_id":"`)
	b.WriteString(sender)
	b.WriteString(`","client_msg_id":`)
	writeJSONString(&b, cmid)
	b.WriteString(`,"body":`)
	writeJSONString(&b, body)
	b.WriteString(`,"sent_at":"`)
	b.WriteString(at.Format(time.RFC3339Nano))
	b.WriteString(`"}`)
	return prefix, b.String()
}

func writeJSONString(b *bytes.Buffer, s string) {
	enc, _ := json.Marshal(s) // cannot fail for a string
	b.Write(enc)
}

// cacheMembers loads a room's members from Postgres into Redis.
func (s *Server) cacheMembers(ctx context.Context, room uuid.UUID) error {
	if _, err := s.Queries.GetRoom(ctx, room); err != nil {
		if isNotFound(err) {
			return chatflow.Errorf(chatflow.ECodeNotFound, "room %s not found", room)
		}
		return err
	}
	ids, err := s.Queries.RoomMemberIDs(ctx, room)
	if err != nil {
		return err
	}
	members := []any{memberSentinel}
	for _, id := range ids {
		members = append(members, id.String())
	}
	_, err = s.Redis.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.SAdd(ctx, membersKey(room.String()), members...)
		p.Expire(ctx, membersKey(room.String()), membersTTL)
		return nil
	})
	return err
}

// cacheSeq re-seeds a lost seq counter from Postgres (SET NX: a live counter wins).
func (s *Server) cacheSeq(ctx context.Context, room uuid.UUID) error {
	last, err := s.Queries.RoomLastSeq(ctx, room)
	if isNotFound(err) {
		return chatflow.Errorf(chatflow.ECodeNotFound, "room %s not found", room)
	}
	if err != nil {
		return err
	}
	return s.Redis.SetNX(ctx, seqKey(room.String()), last, 0).Err()
}

// send accepts a message and waits until it is durable (its batch workflow started).
func (s *Server) send(ctx context.Context, sender uuid.UUID, roomID, cmid, body string) (accepted, error) {
	a, err := s.accept(ctx, sender, roomID, cmid, body)
	if err != nil {
		return a, err
	}
	done := make(chan error, 1)
	if err := s.batcher.add(a.msg, func(err error) { done <- err }); err != nil {
		return a, err
	}
	select {
	case err := <-done:
		return a, err
	case <-ctx.Done():
		return a, chatflow.Errorf(chatflow.ECodeUnavailable, "message accepted but not yet durable; retry with the same client_msg_id")
	}
}

// currentSeq is the room's live seq (Redis), re-seeded from Postgres if lost.
func (s *Server) currentSeq(ctx context.Context, room uuid.UUID) (int64, error) {
	v, err := s.Redis.Get(ctx, seqKey(room.String())).Int64()
	if err == redis.Nil {
		if err := s.cacheSeq(ctx, room); err != nil {
			return 0, err
		}
		v, err = s.Redis.Get(ctx, seqKey(room.String())).Int64()
	}
	return v, err
}

// fetchRange returns the room's messages with lo <= seq <= hi in order: the
// recent tail from the Redis stream, anything older from Postgres. Messages
// still in flight to Postgres are in the stream, so nothing accepted is missed.
func (s *Server) fetchRange(ctx context.Context, room uuid.UUID, lo, hi int64) ([]json.RawMessage, error) {
	if lo < 1 {
		lo = 1
	}
	if hi < lo {
		return nil, nil
	}
	entries, err := s.Redis.XRange(ctx, historyKey(room.String()), strconv.FormatInt(lo, 10)+"-0", strconv.FormatInt(hi, 10)+"-0").Result()
	if err != nil {
		return nil, err
	}
	streamFrom := hi + 1
	if len(entries) > 0 {
		streamFrom = streamSeq(entries[0].ID)
	}
	var out []json.RawMessage
	if streamFrom > lo {
		rows, err := s.persistedRange(ctx, room, lo, streamFrom-1)
		if err != nil {
			return nil, err
		}
		for _, r := range rows {
			b, err := json.Marshal(messageFrame{Type: "message", Message: fromRow(r)})
			if err != nil {
				return nil, err
			}
			out = append(out, b)
		}
	}
	for _, e := range entries {
		if f, ok := e.Values["f"].(string); ok {
			out = append(out, json.RawMessage(f))
		}
	}
	return out, nil
}

// inFlightWait bounds how long a read waits for accepted messages that have
// left the Redis stream but whose batch has not reached Postgres yet.
const inFlightWait = 5 * time.Second

// persistedRange reads seqs lo..hi from Postgres. Every seq up to the room
// counter was accepted and seqs have no gaps, so a short answer means some
// of them were trimmed from the capped stream while their batch was still in
// flight (a busy room, workers restarting): wait for them instead of
// handing out a gap that a sync would then skip for good. A hole that stays
// (a batch that never started) is logged and served around.
func (s *Server) persistedRange(ctx context.Context, room uuid.UUID, lo, hi int64) ([]db.ChatMessage, error) {
	deadline := time.Now().Add(inFlightWait)
	for {
		rows, err := s.Queries.ListMessagesRange(ctx, db.ListMessagesRangeParams{RoomID: room, Lo: lo, Hi: hi})
		if err != nil || int64(len(rows)) >= hi-lo+1 {
			return rows, err
		}
		if time.Now().After(deadline) {
			s.Log.Error("messages missing from both the Redis stream and Postgres", "room", room, "lo", lo, "hi", hi, "found", len(rows))
			return rows, nil
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// streamSeq reads the seq of a history stream entry id ("<seq>-0"). An id
// without the dash reads as 0 rather than panicking on a -1 index.
func streamSeq(id string) int64 {
	ms, _, _ := strings.Cut(id, "-")
	n, _ := strconv.ParseInt(ms, 10, 64)
	return n
}

func fromRow(r db.ChatMessage) chatflow.Message {
	return chatflow.Message{
		MessageID: r.ID.String(), RoomID: r.RoomID.String(), Seq: r.Seq, SenderID: r.SenderID.String(),
		ClientMsgID: r.ClientMsgID, Body: r.Body, SentAt: r.SentAt.UTC(),
	}
}

// frameSeq reads the seq of a message frame without a full decode; ok is
// false for frames that are not messages.
func frameSeq(frame []byte) (int64, bool) {
	if !bytes.HasPrefix(frame, []byte(`{"type":"message"`)) {
		return 0, false
	}
	i := bytes.Index(frame, []byte(`"seq":`))
	if i < 0 {
		return 0, false
	}
	var n int64
	for j := i + 6; j < len(frame) && frame[j] >= '0' && frame[j] <= '9'; j++ {
		n = n*10 + int64(frame[j]-'0')
	}
	return n, true
}

// publish sends a frame to a Redis channel for every node.
func (s *Server) publish(ctx context.Context, channel string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return s.Redis.Publish(ctx, channel, b).Err()
}
