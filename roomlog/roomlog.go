// Package roomlog is each room's write-ahead log in Redis: the seq counter,
// the stream of accepted messages, the dedupe keys and the persisted
// watermark. An accepted message stays in the stream until Postgres holds
// it; the stream is trimmed only below the room's persisted watermark.
// Api nodes append to the log (package chat); workers persist it and move
// the watermark (package activities).
package roomlog

import (
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/chatflow/chatflow"
)

// Every key of a room shares the {r:<id>} hash tag, so each script touches
// a single Redis Cluster slot.
func tag(room string) string          { return "{r:" + room + "}" }
func SeqKey(room string) string       { return tag(room) + ":seq" }
func MembersKey(room string) string   { return tag(room) + ":m" }
func StreamKey(room string) string    { return tag(room) + ":h" }
func PersistedKey(room string) string { return tag(room) + ":p" }
func aliveKey(room string) string     { return tag(room) + ":alive" }
func DedupeKey(room, sender, cmid string) string {
	return tag(room) + ":d:" + sender + ":" + cmid
}

// MembersVersionKey counts the changes of a room's membership; a member
// set read from Postgres is cached only if the count did not move meanwhile.
func MembersVersionKey(room string) string { return tag(room) + ":mv" }

// Results of the send script besides a seq.
const (
	NotMember      = -1 // the sender is not in the cached member set
	MembersMissing = -2 // the member set is not cached
	SeqMissing     = -3 // the seq counter or the watermark is not cached
	BacklogFull    = -4 // too many accepted messages wait for Postgres
	BadReply       = -5 // reply_to is not a seq the room has handed out
	Duplicate      = 0  // the dedupe key exists; the second value is the original's seq
)

// send appends one message: membership check, dedupe, fence after a Redis
// restart, backlog bound, next seq, stream entry and fan-out publish, in
// one round trip.
//
// The alive key names the Redis process that last marked the room (see
// aliveCheck): when it is missing or names another process, this room's
// state was loaded from disk or promoted from a replica, which may have
// lost the last writes, seqs already handed out among them. The counter
// then moves ARGV[7] past what Redis remembers so that no seq is ever
// handed out twice; the seqs skipped become gap tombstones in Postgres.
// The key is written without replication (REPL_NONE), but that alone does
// not keep it out of the files: an AOF rewrite or a replica's full sync
// copies the dataset, alive keys included, and a marker that only had to
// exist let a Redis that lost its last second after a rewrite hand seqs out
// again (the fault suite's redis-oscrash at 3,000 msg/s, RELIABILITY.md).
//
// A room whose log is wholly persisted has a TTL on its log keys (see
// Advance); a send takes it off again, since the log now holds a message
// Postgres does not.
//
// A reply (ARGV[8] > 0) must name a seq already handed out: the check
// costs nothing here, where the room's head is at hand.
//
// KEYS: seq, members, stream, dedupe, persisted, alive
// ARGV: sender, frame prefix, frame suffix, channel, max backlog, dedupe ttl, fence, reply_to (0: none)
var send, sendSharded = Scripts(aliveCheck + `
if redis.call('EXISTS', KEYS[2]) == 0 then return {-2} end
if redis.call('SISMEMBER', KEYS[2], ARGV[1]) == 0 then return {-1} end
local prev = redis.call('GET', KEYS[4])
if prev then return {0, prev} end
local cur = redis.call('GET', KEYS[1])
local p = redis.call('GET', KEYS[5])
if not cur or not p then return {-3} end
if not alive(KEYS[6]) then
  cur = redis.call('INCRBY', KEYS[1], ARGV[7])
  redis.set_repl(redis.REPL_NONE)
  redis.call('SET', KEYS[6], bootMark())
  redis.set_repl(redis.REPL_ALL)
end
if tonumber(ARGV[8]) > tonumber(cur) then return {-5} end
if tonumber(cur) - tonumber(p) >= tonumber(ARGV[5]) then return {-4} end
if redis.call('PTTL', KEYS[1]) >= 0 then
  redis.call('PERSIST', KEYS[1])
  redis.call('PERSIST', KEYS[3])
  redis.call('PERSIST', KEYS[5])
  redis.call('PERSIST', KEYS[6])
end
local seq = redis.call('INCR', KEYS[1])
local frame = ARGV[2] .. seq .. ARGV[3]
redis.call('SET', KEYS[4], seq, 'EX', ARGV[6])
redis.call('XADD', KEYS[3], seq .. '-0', 'f', frame)
redis.call('PUBLISH', ARGV[4], frame)
return {seq, frame}`)

// Scripts makes a script and its sharded twin, whose PUBLISH calls are
// SPUBLISH (sharded pub/sub, for a Redis Cluster; sendSharded is send's).
// Every channel the twin publishes to must hash to the slot of its keys:
// the room's channel carries the room's hash tag.
func Scripts(src string) (plain, sharded *redis.Script) {
	return redis.NewScript(src), redis.NewScript(strings.ReplaceAll(src, "'PUBLISH'", "'SPUBLISH'"))
}

// Append is one send script call, ready for a pipeline.
type Append struct {
	Room, Sender, ClientMsgID string
	// Prefix and Suffix are the message frame around its seq.
	Prefix, Suffix string
	Channel        string
	MaxBacklog     int64
	DedupeTTL      time.Duration
	Fence          int64
	// ReplyTo is the seq the message replies to (0: none); the script
	// refuses one past the room's head with BadReply.
	ReplyTo int64
	// Sharded publishes with SPUBLISH (Redis Cluster).
	Sharded bool
}

func (a Append) script() *redis.Script {
	if a.Sharded {
		return sendSharded
	}
	return send
}

func (a Append) keys() []string {
	return []string{SeqKey(a.Room), MembersKey(a.Room), StreamKey(a.Room), DedupeKey(a.Room, a.Sender, a.ClientMsgID),
		PersistedKey(a.Room), aliveKey(a.Room)}
}

func (a Append) args() []any {
	return []any{a.Sender, a.Prefix, a.Suffix, a.Channel, a.MaxBacklog, int(a.DedupeTTL.Seconds()), a.Fence, a.ReplyTo}
}

// Queue adds the call to a pipeline.
func (a Append) Queue(ctx context.Context, pipe redis.Pipeliner) *redis.Cmd {
	return a.script().EvalSha(ctx, pipe, a.keys(), a.args()...)
}

// Run runs the call on its own, loading the script if Redis lost it.
func (a Append) Run(ctx context.Context, rdb redis.Scripter) *redis.Cmd {
	return a.script().Run(ctx, rdb, a.keys(), a.args()...)
}

// seed sets a room's counter and watermark when they are missing. ARGV[3]
// '1' marks the room alive: only for a room that is new, whose log cannot
// have lost anything; a room re-seeded from Postgres stays as it was (alive
// only if its marker outlived its idle keys, see advance). A room whose log
// is then wholly persisted gets the idle TTL (ARGV[4] s, 0: none), so that
// reading an idle room does not pin its keys for good.
var seed = redis.NewScript(aliveCheck + `
redis.call('SET', KEYS[1], ARGV[1], 'NX')
redis.call('SET', KEYS[2], ARGV[2], 'NX')
if ARGV[3] == '1' then
  redis.set_repl(redis.REPL_NONE)
  redis.call('SET', KEYS[3], bootMark())
  redis.set_repl(redis.REPL_ALL)
end
local ttl = tonumber(ARGV[4])
if ttl > 0 and tonumber(redis.call('GET', KEYS[2])) >= tonumber(redis.call('GET', KEYS[1])) then
  redis.call('EXPIRE', KEYS[1], ttl)
  redis.call('EXPIRE', KEYS[2], ttl)
  redis.call('EXPIRE', KEYS[4], ttl)
  redis.set_repl(redis.REPL_NONE)
  redis.call('EXPIRE', KEYS[3], ttl * 7)
  redis.set_repl(redis.REPL_ALL)
end
return 1`)

// indexKey is the set of rooms that have a log, so the reconciler finds
// them without scanning the keyspace (which holds a dedupe key per message
// and would block Redis for milliseconds per SCAN call).
const indexKey = "log:rooms"

// indexBuiltKey marks that indexKey holds every room that had a log before
// the index existed.
const indexBuiltKey = "log:rooms:built"

// track adds a room to the index.
func track(ctx context.Context, rdb redis.Cmdable, room string) error {
	return rdb.SAdd(ctx, indexKey, room).Err()
}

// Seed sets a room's seq counter and persisted watermark from Postgres where
// Redis has none (a live value wins). The room is not marked alive: a
// counter that went missing may have handed out seqs Postgres does not hold
// yet (acked, their batch in flight), so the next send fences past them —
// unless the room's alive marker outlived its keys, which then expired only
// because the room was idle and wholly persisted. idle is the TTL of a
// wholly persisted room's log keys (0: they never expire).
func Seed(ctx context.Context, rdb redis.UniversalClient, room string, seq, persisted int64, idle time.Duration) error {
	if err := seed.Run(ctx, rdb, []string{SeqKey(room), PersistedKey(room), aliveKey(room), StreamKey(room)}, seq, persisted, "0", ttlSeconds(idle)).Err(); err != nil {
		return err
	}
	return track(ctx, rdb, room)
}

// SeedNew sets up the log of a room just created.
func SeedNew(ctx context.Context, rdb redis.UniversalClient, room string, idle time.Duration) error {
	if err := seed.Run(ctx, rdb, []string{SeqKey(room), PersistedKey(room), aliveKey(room), StreamKey(room)}, 0, 0, "1", ttlSeconds(idle)).Err(); err != nil {
		return err
	}
	return track(ctx, rdb, room)
}

// ttlSeconds rounds a TTL up to whole seconds (0 stays 0: no TTL).
func ttlSeconds(d time.Duration) int64 {
	if d <= 0 {
		return 0
	}
	return int64((d + time.Second - 1) / time.Second)
}

// advance moves the watermark forward (never back) and trims the stream
// below it, keeping the newest ARGV[2] entries for fast reads. Once the
// watermark has caught up with the seq (Postgres holds everything) the
// room's log keys get the idle TTL ARGV[3]: an idle room's keys expire, and
// the next send or read re-seeds them from Postgres (Seed), so a seq is
// never handed out twice. The next send takes the TTL off again.
//
// KEYS: persisted, seq, stream, alive
var advance = redis.NewScript(`
local p = tonumber(ARGV[1])
local cur = tonumber(redis.call('GET', KEYS[1]) or '0')
if p > cur then redis.call('SET', KEYS[1], p) else p = cur end
local s = tonumber(redis.call('GET', KEYS[2]) or '0')
local minid = math.min(p + 1, s - tonumber(ARGV[2]) + 1)
if minid > 1 then redis.call('XTRIM', KEYS[3], 'MINID', minid .. '-0') end
local ttl = tonumber(ARGV[3])
if ttl > 0 and p >= s then
  redis.call('EXPIRE', KEYS[1], ttl)
  redis.call('EXPIRE', KEYS[2], ttl)
  redis.call('EXPIRE', KEYS[3], ttl)
  -- the alive marker outlives the keys, so that re-seeding an idle room
  -- from Postgres (which then holds everything) needs no seq fence
  redis.set_repl(redis.REPL_NONE)
  redis.call('EXPIRE', KEYS[4], ttl * 7)
  redis.set_repl(redis.REPL_ALL)
end
return p`)

// Advance records that Postgres holds every seq up to persisted and trims
// what the stream no longer needs; it returns the watermark now in Redis.
// idle is the TTL the room's log keys get once everything is persisted (0:
// they never expire).
func Advance(ctx context.Context, rdb redis.Scripter, room string, persisted int64, keep int, idle time.Duration) (int64, error) {
	return advance.Run(ctx, rdb, []string{PersistedKey(room), SeqKey(room), StreamKey(room), aliveKey(room)}, persisted, keep, ttlSeconds(idle)).Int64()
}

// Mark is a room's new persisted watermark.
type Mark struct {
	Room      string
	Persisted int64
}

// AdvanceAll is Advance for many rooms in one pipelined round trip.
func AdvanceAll(ctx context.Context, rdb redis.UniversalClient, marks []Mark, keep int, idle time.Duration) error {
	if len(marks) == 0 {
		return nil
	}
	// load the script once so the pipeline can use EVALSHA
	if err := advance.Load(ctx, rdb).Err(); err != nil {
		return err
	}
	pipe := rdb.Pipeline()
	for _, m := range marks {
		advance.EvalSha(ctx, pipe, []string{PersistedKey(m.Room), SeqKey(m.Room), StreamKey(m.Room), aliveKey(m.Room)}, m.Persisted, keep, ttlSeconds(idle))
	}
	_, err := pipe.Exec(ctx)
	return err
}

// DefaultIdleTTL is how long a wholly persisted room's log keys stay in
// Redis after its last message.
const DefaultIdleTTL = 24 * time.Hour

// Entry is one message in a room's stream.
type Entry struct {
	Seq   int64
	Frame []byte
}

// Message decodes the entry's frame.
func (e Entry) Message() (chatflow.Message, error) {
	var m chatflow.Message
	err := json.Unmarshal(e.Frame, &m)
	return m, err
}

// Range reads the stream entries with lo <= seq <= hi.
func Range(ctx context.Context, rdb redis.Cmdable, room string, lo, hi int64) ([]Entry, error) {
	xs, err := rdb.XRange(ctx, StreamKey(room), strconv.FormatInt(lo, 10)+"-0", strconv.FormatInt(hi, 10)+"-0").Result()
	if err != nil {
		return nil, err
	}
	out := make([]Entry, 0, len(xs))
	for _, x := range xs {
		if f, ok := x.Values["f"].(string); ok {
			out = append(out, Entry{Seq: StreamSeq(x.ID), Frame: []byte(f)})
		}
	}
	return out, nil
}

// StreamSeq reads the seq of a stream entry id ("<seq>-0"). An id without
// the dash reads as 0 rather than panicking.
func StreamSeq(id string) int64 {
	ms, _, _ := strings.Cut(id, "-")
	n, _ := strconv.ParseInt(ms, 10, 64)
	return n
}

// Head is where a room's log stands.
type Head struct {
	Room      string
	Seq       int64 // last seq handed out
	Persisted int64 // every seq up to this one is in Postgres
}

// Backlog is how many accepted messages wait for Postgres.
func (h Head) Backlog() int64 { return h.Seq - h.Persisted }

// Heads reads the heads of rooms in one round trip; rooms Redis knows
// nothing about are left out.
func Heads(ctx context.Context, rdb redis.Cmdable, rooms []string) ([]Head, error) {
	pipe := rdb.Pipeline()
	seqs := make([]*redis.StringCmd, len(rooms))
	ps := make([]*redis.StringCmd, len(rooms))
	for i, r := range rooms {
		seqs[i] = pipe.Get(ctx, SeqKey(r))
		ps[i] = pipe.Get(ctx, PersistedKey(r))
	}
	if _, err := pipe.Exec(ctx); err != nil && err != redis.Nil {
		return nil, err
	}
	out := make([]Head, 0, len(rooms))
	for i, r := range rooms {
		s, err := seqs[i].Int64()
		if err != nil {
			continue
		}
		p, _ := ps[i].Int64()
		out = append(out, Head{Room: r, Seq: s, Persisted: p})
	}
	return out, nil
}

// ScanRooms calls fn with batches of the rooms that have a log, from the
// index. The first call on a Redis without a built index fills it once
// from a keyspace scan (logs made before the index existed).
func ScanRooms(ctx context.Context, rdb redis.Cmdable, fn func(rooms []string) error) error {
	built, err := rdb.Exists(ctx, indexBuiltKey).Result()
	if err != nil {
		return err
	}
	if built == 0 {
		if err := buildIndex(ctx, rdb); err != nil {
			return err
		}
	}
	var cursor uint64
	for {
		rooms, next, err := rdb.SScan(ctx, indexKey, cursor, "", 1000).Result()
		if err != nil {
			return err
		}
		if len(rooms) > 0 {
			if err := fn(rooms); err != nil {
				return err
			}
		}
		if cursor = next; cursor == 0 {
			return nil
		}
	}
}

// buildIndex adds every room with a seq counter to the index. A Redis
// Cluster client scans one node per SCAN: there, every master is scanned.
func buildIndex(ctx context.Context, rdb redis.Cmdable) error {
	if cc, ok := rdb.(*redis.ClusterClient); ok {
		if err := cc.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error {
			return indexNode(ctx, c, cc)
		}); err != nil {
			return err
		}
		return rdb.Set(ctx, indexBuiltKey, "1", 0).Err()
	}
	if err := indexNode(ctx, rdb, rdb); err != nil {
		return err
	}
	return rdb.Set(ctx, indexBuiltKey, "1", 0).Err()
}

// indexNode adds the rooms of the seq counters node holds to the index (on rdb).
func indexNode(ctx context.Context, node, rdb redis.Cmdable) error {
	var cursor uint64
	for {
		keys, next, err := node.Scan(ctx, cursor, "{r:*}:seq", 1000).Result()
		if err != nil {
			return err
		}
		var rooms []any
		for _, k := range keys {
			if room, ok := strings.CutPrefix(k, "{r:"); ok {
				if room, ok = strings.CutSuffix(room, "}:seq"); ok {
					rooms = append(rooms, room)
				}
			}
		}
		if len(rooms) > 0 {
			if err := rdb.SAdd(ctx, indexKey, rooms...).Err(); err != nil {
				return err
			}
		}
		if cursor = next; cursor == 0 {
			return nil
		}
	}
}

// HoleKey records a hole the reconciler has seen in a room's log.
func HoleKey(room string) string { return tag(room) + ":hole" }
