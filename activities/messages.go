package activities

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"go.temporal.io/sdk/activity"

	"github.com/chatflow/chatflow"
	"github.com/chatflow/chatflow/chat"
	"github.com/chatflow/chatflow/db"
	"github.com/chatflow/chatflow/roomlog"
)

// PersistMessages stores a batch that an api node took from the rooms' logs,
// moves the rooms' persisted watermarks and lets the logs trim what they no
// longer need. Rows already present (a retry, a resend, the reconciler
// first) are skipped, so it returns the rows inserted. A row Postgres
// refuses goes to chat.dead_letters and its seq to a tombstone; the rest of
// the batch lands. Any other error is transient and the workflow retries.
func (a *Activities) PersistMessages(ctx context.Context, b chatflow.MessageBatch) (int64, error) {
	n, err := a.store(ctx, b.Messages)
	if err != nil {
		return 0, err
	}
	rooms := map[string]bool{}
	for _, m := range b.Messages {
		rooms[m.RoomID] = true
	}
	if err := a.advance(ctx, rooms); err != nil {
		return n, err
	}
	return n, nil
}

// rows is a batch in the column layout of the unnest statements.
type rows struct {
	ins  db.InsertMessagesParams
	bump db.BumpRoomSeqsParams
	// edits are the batch's edit/delete events (see chat/edits.go).
	edits db.InsertMessageEditsParams
	// reactions are the batch's reaction events (see chat/reactions.go).
	reactions db.InsertMessageReactionsParams
}

func toRows(msgs []chatflow.Message) (rows, error) {
	n := len(msgs)
	p := db.InsertMessagesParams{
		Ids: make([]uuid.UUID, n), RoomIds: make([]uuid.UUID, n), Seqs: make([]int64, n),
		SenderIds: make([]uuid.UUID, n), ClientMsgIds: make([]string, n), Bodies: make([]string, n),
		SentAts: make([]time.Time, n), Kinds: make([]string, n), ReplyTos: make([]int64, n),
	}
	type top struct {
		seq int64
		at  time.Time
	}
	tops := map[uuid.UUID]top{}
	for i, m := range msgs {
		var err error
		if p.Ids[i], err = uuid.Parse(m.MessageID); err != nil {
			return rows{}, fmt.Errorf("message %d: %w", i, err)
		}
		if p.RoomIds[i], err = uuid.Parse(m.RoomID); err != nil {
			return rows{}, fmt.Errorf("message %d: %w", i, err)
		}
		if p.SenderIds[i], err = uuid.Parse(m.SenderID); err != nil {
			return rows{}, fmt.Errorf("message %d: %w", i, err)
		}
		p.Seqs[i], p.ClientMsgIds[i], p.Bodies[i], p.SentAts[i] = m.Seq, m.ClientMsgID, m.Body, m.SentAt
		p.ReplyTos[i] = m.ReplyTo
		p.Kinds[i] = chatflow.KindText
		if m.Kind != "" {
			p.Kinds[i] = m.Kind
		}
		if t, ok := tops[p.RoomIds[i]]; !ok || m.Seq > t.seq {
			tops[p.RoomIds[i]] = top{m.Seq, m.SentAt}
		}
	}
	var bump db.BumpRoomSeqsParams
	for id, t := range tops {
		bump.RoomIds = append(bump.RoomIds, id)
		bump.Seqs = append(bump.Seqs, t.seq)
		bump.Ats = append(bump.Ats, t.at)
	}
	return rows{ins: p, bump: bump, edits: chat.EditRows(msgs), reactions: chat.ReactionRows(msgs)}, nil
}

// store inserts msgs in one transaction; if Postgres refuses the data (not
// a transient failure) it stores them one by one instead, so that one
// poison row cannot sink the others.
func (a *Activities) store(ctx context.Context, msgs []chatflow.Message) (int64, error) {
	if len(msgs) == 0 {
		return 0, nil
	}
	r, err := toRows(msgs)
	if err != nil {
		return 0, err
	}
	n, err := a.insert(ctx, r)
	if err == nil || !refused(err) {
		return n, err
	}
	activity.GetLogger(ctx).Warn("batch refused by Postgres; storing row by row", "messages", len(msgs), "error", err)
	n = 0
	for _, m := range msgs {
		one, err := toRows([]chatflow.Message{m})
		if err != nil {
			return n, err
		}
		k, err := a.insert(ctx, one)
		switch {
		case err == nil:
			n += k
		case refused(err):
			if err := a.deadLetter(ctx, m, err); err != nil {
				return n, err
			}
		default:
			return n, err
		}
	}
	return n, nil
}

func (a *Activities) insert(ctx context.Context, r rows) (int64, error) {
	var inserted int64
	err := pgx.BeginFunc(ctx, a.Pool, func(tx pgx.Tx) error {
		q := a.Queries.WithTx(tx)
		if _, err := q.ReplaceTombstones(ctx, db.ReplaceTombstonesParams(r.ins)); err != nil {
			return err
		}
		var err error
		if inserted, err = q.InsertMessages(ctx, r.ins); err != nil {
			return err
		}
		if inserted < int64(len(r.ins.Ids)) {
			tids := make([]uuid.UUID, len(r.ins.Ids))
			for i := range tids {
				tids[i] = tombstoneID(r.ins.RoomIds[i], r.ins.Seqs[i])
			}
			if _, err := q.TombstoneResends(ctx, db.TombstoneResendsParams{
				Tids: tids, RoomIds: r.ins.RoomIds, Seqs: r.ins.Seqs, SenderIds: r.ins.SenderIds, ClientMsgIds: r.ins.ClientMsgIds,
			}); err != nil {
				return err
			}
		}
		if err := applyEdits(ctx, q, r); err != nil {
			return err
		}
		if len(r.reactions.EventSeqs) > 0 {
			// recorded again here (the api recorded it when sequenced), so
			// an event whose api caller died before recording still counts
			if err := q.InsertMessageReactions(ctx, r.reactions); err != nil {
				return err
			}
		}
		return q.BumpRoomSeqs(ctx, r.bump)
	})
	if err != nil {
		return 0, err
	}
	a.Metrics.MessagesPersisted.Add(float64(inserted))
	a.Metrics.BatchRows.Observe(float64(len(r.ins.Ids)))
	if inserted < int64(len(r.ins.Ids)) {
		// Skipped rows are normally replays; make sure none is a seq that
		// went to two different messages, which would be an acked message lost.
		c, cerr := a.Queries.CountSeqCollisions(ctx, db.CountSeqCollisionsParams{Ids: r.ins.Ids, RoomIds: r.ins.RoomIds, Seqs: r.ins.Seqs})
		if cerr == nil && c > 0 {
			activity.GetLogger(ctx).Error("seq collision: messages dropped because their seq belongs to another message", "count", c)
			a.Metrics.SeqCollisions.Add(float64(c))
		}
	}
	return inserted, nil
}

// applyEdits records the batch's edit/delete events and brings up to date
// the rows they target and the batch's own rows (a target stored after its
// event gets the event's effect here). The state is recomputed from every
// recorded event, so a replayed batch changes nothing.
func applyEdits(ctx context.Context, q *db.Queries, r rows) error {
	e := r.edits
	if len(e.EventSeqs) > 0 {
		if err := q.InsertMessageEdits(ctx, e); err != nil {
			return err
		}
		if err := q.ClearEditedBodies(ctx, db.ClearEditedBodiesParams{RoomIds: e.RoomIds, Seqs: e.TargetSeqs}); err != nil {
			return err
		}
	}
	return q.ApplyMessageEdits(ctx, db.ApplyMessageEditsParams{
		RoomIds: append(slices.Clip(r.ins.RoomIds), e.RoomIds...),
		Seqs:    append(slices.Clip(r.ins.Seqs), e.TargetSeqs...),
	})
}

// refused tells a row Postgres will never take (bad data, a constraint, a
// size limit) from a failure worth retrying (connection, lock, shutdown).
func refused(err error) bool {
	var pg *pgconn.PgError
	if !errors.As(err, &pg) || len(pg.Code) < 2 {
		return false
	}
	switch pg.Code[:2] {
	case "22", "23", "54": // data exception, integrity constraint, program limit
		return true
	}
	return false
}

// deadLetter keeps a refused message with the reason and puts a tombstone
// at its seq, so the room has no hole.
func (a *Activities) deadLetter(ctx context.Context, m chatflow.Message, cause error) error {
	room, err := uuid.Parse(m.RoomID)
	if err != nil {
		return err
	}
	id, _ := uuid.Parse(m.MessageID)
	payload, _ := json.Marshal(m)
	activity.GetLogger(ctx).Error("message refused by Postgres; dead-lettered", "room", m.RoomID, "seq", m.Seq, "error", cause)
	var n int64
	err = pgx.BeginFunc(ctx, a.Pool, func(tx pgx.Tx) error {
		q := a.Queries.WithTx(tx)
		var err error
		if n, err = q.InsertDeadLetter(ctx, db.InsertDeadLetterParams{RoomID: room, Seq: m.Seq, MessageID: id, Payload: payload, Reason: cause.Error()}); err != nil {
			return err
		}
		_, err = q.InsertTombstones(ctx, db.InsertTombstonesParams{Ids: []uuid.UUID{tombstoneID(room, m.Seq)}, RoomID: room, Seqs: []int64{m.Seq}})
		return err
	})
	if err == nil {
		a.Metrics.DeadLetters.Add(float64(n)) // a replayed batch finds its letter already kept
	}
	return err
}

// tombstoneID is the id of the tombstone of (room, seq), the same every time.
func tombstoneID(room uuid.UUID, seq int64) uuid.UUID {
	return uuid.NewSHA1(room, fmt.Appendf(nil, "gap:%d", seq))
}

// advance moves the rooms' watermarks in Postgres, then in their Redis logs,
// which trims what the logs no longer need. Redis being down only delays
// the trim (the reconciler repeats it), so it does not fail the batch.
func (a *Activities) advance(ctx context.Context, rooms map[string]bool) error {
	ids := make([]uuid.UUID, 0, len(rooms))
	for r := range rooms {
		id, err := uuid.Parse(r)
		if err != nil {
			return err
		}
		ids = append(ids, id)
	}
	slices.SortFunc(ids, func(x, y uuid.UUID) int { return slices.Compare(x[:], y[:]) })
	marks, err := a.Queries.AdvancePersisted(ctx, ids)
	if err != nil {
		return err
	}
	if a.Redis == nil {
		return nil
	}
	ms := make([]roomlog.Mark, len(marks))
	for i, m := range marks {
		ms[i] = roomlog.Mark{Room: m.ID.String(), Persisted: m.PersistedSeq}
	}
	if err := roomlog.AdvanceAll(ctx, a.Redis, ms, a.Cfg.HistoryCap, a.Cfg.RoomIdleTTL); err != nil {
		activity.GetLogger(ctx).Warn("log watermarks not moved; the reconciler retries", "rooms", len(ms), "error", err)
	}
	return nil
}
