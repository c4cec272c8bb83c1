package activities

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"
	"go.temporal.io/sdk/activity"

	"github.com/chatflow/chatflow"
	"github.com/chatflow/chatflow/chat"
	"github.com/chatflow/chatflow/db"
	"github.com/chatflow/chatflow/events"
	"github.com/chatflow/chatflow/roomlog"
)

// ReconcileResult reports one pass of the reconciler.
type ReconcileResult struct {
	Rooms      int   `json:"rooms"`      // rooms whose log was ahead of Postgres
	Persisted  int64 `json:"persisted"`  // messages it stored from the logs
	Tombstones int   `json:"tombstones"` // seqs written as gap tombstones
	Published  int   `json:"published"`  // messages it published to Kafka
	Pending    int   `json:"pending"`    // rooms left for the next pass
}

// Reconcile makes Postgres and Kafka catch up with the rooms' logs, whatever
// left them behind: an api node killed between accept and batch start, a
// batch Temporal could not take, a watermark Redis missed. Rooms whose
// oldest unpersisted message is younger than ReconcileAfter are left to
// their batch. A seq missing from both the log and Postgres for longer than
// HoleGrace (Redis lost it) becomes a gap tombstone.
func (a *Activities) Reconcile(ctx context.Context) (ReconcileResult, error) {
	var res ReconcileResult
	now := time.Now()
	err := roomlog.ScanRooms(ctx, a.Redis, func(rooms []string) error {
		heads, err := roomlog.Heads(ctx, a.Redis, rooms)
		if err != nil {
			return err
		}
		for _, h := range heads {
			if h.Backlog() <= 0 {
				continue
			}
			res.Rooms++
			if err := a.reconcileRoom(ctx, h, now, &res); err != nil {
				return fmt.Errorf("room %s: %w", h.Room, err)
			}
			activity.RecordHeartbeat(ctx, res)
		}
		return nil
	})
	if err != nil {
		return res, err
	}
	n, err := a.publishPending(ctx, nil)
	res.Published = n
	return res, err
}

func (a *Activities) reconcileRoom(ctx context.Context, h roomlog.Head, now time.Time, res *ReconcileResult) error {
	room, err := uuid.Parse(h.Room)
	if err != nil {
		return nil // not a room of ours
	}
	entries, err := roomlog.Range(ctx, a.Redis, h.Room, h.Persisted+1, h.Seq)
	if err != nil {
		return err
	}
	msgs := make([]chatflow.Message, 0, len(entries))
	for _, e := range entries {
		m, err := e.Message()
		if err != nil {
			return fmt.Errorf("seq %d: %w", e.Seq, err)
		}
		msgs = append(msgs, m)
	}
	if len(msgs) > 0 && msgs[0].Seq == h.Persisted+1 && now.Sub(msgs[0].SentAt) < a.Cfg.ReconcileAfter {
		res.Pending++
		return nil // its batch is on the way
	}
	n, err := a.store(ctx, msgs)
	if err != nil {
		return err
	}
	res.Persisted += n
	a.Metrics.Reconciled.Add(float64(n))
	marks, err := a.Queries.AdvancePersisted(ctx, []uuid.UUID{room})
	if err != nil || len(marks) == 0 {
		return err // a log without a room row: nothing to advance
	}
	persisted := marks[0].PersistedSeq
	if persisted < h.Seq {
		if persisted, err = a.fillHoles(ctx, room, persisted, h.Seq, now, res); err != nil {
			return err
		}
	}
	_, err = roomlog.Advance(ctx, a.Redis, h.Room, persisted, a.Cfg.HistoryCap, a.Cfg.RoomIdleTTL)
	return err
}

// fillHoles handles seqs above the watermark that are in neither the log nor
// Postgres. The first pass that sees a hole records it; once the same hole
// has stood for HoleGrace (time for a late batch that carries the message
// to land), its missing seqs up to the seq seen then become tombstones.
func (a *Activities) fillHoles(ctx context.Context, room uuid.UUID, persisted, seq int64, now time.Time, res *ReconcileResult) (int64, error) {
	key := roomlog.HoleKey(room.String())
	raw, err := a.Redis.Get(ctx, key).Result()
	if err != nil && err != redis.Nil {
		return persisted, err
	}
	seenAt, seenTop, ok := parseHole(raw, persisted)
	if !ok {
		return persisted, a.Redis.Set(ctx, key, fmt.Sprintf("%d:%d:%d", persisted, seq, now.UnixMilli()), 24*time.Hour).Err()
	}
	if now.Sub(seenAt) < a.Cfg.HoleGrace {
		res.Pending++
		return persisted, nil
	}
	stored, err := a.Queries.StoredSeqs(ctx, db.StoredSeqsParams{RoomID: room, Lo: persisted + 1, Hi: seenTop})
	if err != nil {
		return persisted, err
	}
	inLog, err := roomlog.Range(ctx, a.Redis, room.String(), persisted+1, seenTop)
	if err != nil {
		return persisted, err
	}
	have := map[int64]bool{}
	for _, s := range stored {
		have[s] = true
	}
	for _, e := range inLog {
		have[e.Seq] = true
	}
	var seqs []int64
	var ids []uuid.UUID
	for s := persisted + 1; s <= seenTop; s++ {
		if !have[s] {
			seqs, ids = append(seqs, s), append(ids, tombstoneID(room, s))
		}
	}
	if len(seqs) > 0 {
		n, err := a.Queries.InsertTombstones(ctx, db.InsertTombstonesParams{Ids: ids, RoomID: room, Seqs: seqs})
		if err != nil {
			return persisted, err
		}
		res.Tombstones += int(n)
		a.Metrics.Tombstones.Add(float64(n))
		activity.GetLogger(ctx).Warn("seqs lost from the log written as gap tombstones", "room", room, "count", n, "from", seqs[0], "to", seqs[len(seqs)-1])
	}
	a.Redis.Del(ctx, key)
	marks, err := a.Queries.AdvancePersisted(ctx, []uuid.UUID{room})
	if err != nil || len(marks) == 0 {
		return persisted, err
	}
	return marks[0].PersistedSeq, nil
}

// parseHole reads a hole record "watermark:top:unixms"; ok only when it
// describes the hole above the current watermark.
func parseHole(raw string, persisted int64) (seenAt time.Time, top int64, ok bool) {
	parts := strings.Split(raw, ":")
	if len(parts) != 3 {
		return time.Time{}, 0, false
	}
	p, err1 := strconv.ParseInt(parts[0], 10, 64)
	t, err2 := strconv.ParseInt(parts[1], 10, 64)
	ms, err3 := strconv.ParseInt(parts[2], 10, 64)
	if err1 != nil || err2 != nil || err3 != nil || p != persisted || t <= p {
		return time.Time{}, 0, false
	}
	return time.UnixMilli(ms), t, true
}

// PublishRooms publishes the given rooms' persisted messages that Kafka does
// not have yet (the outbox), in seq order per room. Batches call it right
// after storing; the reconciler publishes whatever they could not.
func (a *Activities) PublishRooms(ctx context.Context, rooms []string) error {
	if time.Now().UnixNano() < a.kafkaDownUntil.Load() {
		return nil // Kafka failed a moment ago: leave it to the reconciler
	}
	ids := make([]uuid.UUID, 0, len(rooms))
	for _, r := range rooms {
		if id, err := uuid.Parse(r); err == nil {
			ids = append(ids, id)
		}
	}
	if len(ids) == 0 {
		return nil
	}
	_, err := a.publishPending(ctx, ids)
	return err
}

// kafkaDownFor is how long batches skip Kafka after a failed write, so an
// outage costs each batch nothing and never holds up Postgres writes.
const kafkaDownFor = 10 * time.Second

// publishPending publishes the outbox of rooms (nil: every room behind).
func (a *Activities) publishPending(ctx context.Context, rooms []uuid.UUID) (int, error) {
	if rooms != nil {
		return a.publishRooms(ctx, rooms)
	}
	pending, err := a.Queries.RoomsToPublish(ctx, db.RoomsToPublishParams{RoomIds: []uuid.UUID{}, Lim: 1000})
	if err != nil {
		return 0, err
	}
	total := 0
	for i := 0; i < len(pending); i += publishChunk {
		ids := make([]uuid.UUID, 0, publishChunk)
		for _, p := range pending[i:min(i+publishChunk, len(pending))] {
			ids = append(ids, p.ID)
		}
		n, err := a.publishRooms(ctx, ids)
		total += n
		if err != nil {
			return total, err
		}
	}
	return total, nil
}

// maxPublish caps the messages of one room per pass; publishChunk the
// rooms of one Kafka write.
const (
	maxPublish   = 2000
	publishChunk = 200
)

// publishRooms publishes the rooms' outboxes up to their watermarks in one
// Kafka write, in seq order per room. Their cursor rows are locked for the
// write, so two workers never publish the same range at once; rooms another
// worker holds are skipped. A crash after Kafka's ack and before the cursors
// move publishes a range again: consumers dedupe on message_id
// (at-least-once).
func (a *Activities) publishRooms(ctx context.Context, rooms []uuid.UUID) (int, error) {
	if len(rooms) == 0 {
		return 0, nil
	}
	if err := a.Queries.EnsurePublishCursors(ctx, rooms); err != nil {
		return 0, err
	}
	n := 0
	err := pgx.BeginFunc(ctx, a.Pool, func(tx pgx.Tx) error {
		q := a.Queries.WithTx(tx)
		cursors, err := q.LockPublishCursors(ctx, rooms)
		if err != nil || len(cursors) == 0 {
			return err
		}
		rng := db.MessagesInRangesParams{}
		set := db.SetPublishedManyParams{}
		for _, c := range cursors {
			hi := min(c.PersistedSeq, c.PublishedSeq+maxPublish)
			rng.RoomIds, rng.Los, rng.His = append(rng.RoomIds, c.RoomID), append(rng.Los, c.PublishedSeq+1), append(rng.His, hi)
			set.RoomIds, set.Seqs = append(set.RoomIds, c.RoomID), append(set.Seqs, hi)
		}
		msgs, err := q.MessagesInRanges(ctx, rng)
		if err != nil {
			return err
		}
		recs := make([]events.Record, 0, len(msgs))
		for _, r := range msgs {
			if r.Kind == chatflow.KindGap {
				continue
			}
			m := chat.FromRow(r) // with its kind: consumers tell edits, transfers and system events from text
			v, err := json.Marshal(m)
			if err != nil {
				return err
			}
			recs = append(recs, events.Record{Topic: chatflow.TopicChatMessages, Key: []byte(m.RoomID), Value: v})
		}
		pctx, cancel := context.WithTimeout(ctx, a.Cfg.PublishTimeout)
		defer cancel()
		if err := a.Events.Publish(pctx, recs...); err != nil {
			return err
		}
		n = len(recs)
		return q.SetPublishedMany(ctx, set)
	})
	if err != nil {
		a.kafkaDownUntil.Store(time.Now().Add(kafkaDownFor).UnixNano())
		return 0, err
	}
	a.kafkaDownUntil.Store(0)
	a.Metrics.MessagesPublished.Add(float64(n))
	return n, nil
}
