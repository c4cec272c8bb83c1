package activities

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"go.temporal.io/sdk/activity"

	"github.com/chatflow/chatflow"
	"github.com/chatflow/chatflow/db"
	"github.com/chatflow/chatflow/events"
)

// MessageBatch is one group commit of accepted messages from an api node.
type MessageBatch struct {
	Node     string             `json:"node"`
	Messages []chatflow.Message `json:"messages"`
}

// PersistMessages writes the batch in one statement and advances each
// room's persisted last_seq, in one transaction. Rows already present (a
// retry, or a client resend) are skipped, so it returns the rows inserted.
func (a *Activities) PersistMessages(ctx context.Context, b MessageBatch) (int64, error) {
	n := len(b.Messages)
	p := db.InsertMessagesParams{
		Ids: make([]uuid.UUID, n), RoomIds: make([]uuid.UUID, n), Seqs: make([]int64, n),
		SenderIds: make([]uuid.UUID, n), ClientMsgIds: make([]string, n), Bodies: make([]string, n),
		SentAts: make([]time.Time, n),
	}
	type top struct {
		seq int64
		at  time.Time
	}
	rooms := map[uuid.UUID]top{}
	for i, m := range b.Messages {
		var err error
		if p.Ids[i], err = uuid.Parse(m.MessageID); err != nil {
			return 0, fmt.Errorf("message %d: %w", i, err)
		}
		if p.RoomIds[i], err = uuid.Parse(m.RoomID); err != nil {
			return 0, fmt.Errorf("message %d: %w", i, err)
		}
		if p.SenderIds[i], err = uuid.Parse(m.SenderID); err != nil {
			return 0, fmt.Errorf("message %d: %w", i, err)
		}
		p.Seqs[i], p.ClientMsgIds[i], p.Bodies[i], p.SentAts[i] = m.Seq, m.ClientMsgID, m.Body, m.SentAt
		if t, ok := rooms[p.RoomIds[i]]; !ok || m.Seq > t.seq {
			rooms[p.RoomIds[i]] = top{m.Seq, m.SentAt}
		}
	}
	bump := db.BumpRoomSeqsParams{}
	for id, t := range rooms {
		bump.RoomIds = append(bump.RoomIds, id)
		bump.Seqs = append(bump.Seqs, t.seq)
		bump.Ats = append(bump.Ats, t.at)
	}
	var inserted int64
	err := pgx.BeginFunc(ctx, a.Pool, func(tx pgx.Tx) error {
		q := a.Queries.WithTx(tx)
		var err error
		if inserted, err = q.InsertMessages(ctx, p); err != nil {
			return err
		}
		return q.BumpRoomSeqs(ctx, bump)
	})
	if err == nil && a.Metrics != nil {
		a.Metrics.MessagesPersisted.Add(float64(inserted))
		a.Metrics.BatchRows.Observe(float64(n))
	}
	if err == nil && inserted < int64(n) {
		// Skipped rows are normally replays; make sure none is a seq that
		// went to two different messages, which would be an acked message lost.
		c, cerr := a.Queries.CountSeqCollisions(ctx, db.CountSeqCollisionsParams{Ids: p.Ids, RoomIds: p.RoomIds, Seqs: p.Seqs})
		if cerr == nil && c > 0 {
			activity.GetLogger(ctx).Error("seq collision: messages dropped because their seq belongs to another message",
				"count", c, "node", b.Node)
			if a.Metrics != nil {
				a.Metrics.SeqCollisions.Add(float64(c))
			}
		}
	}
	return inserted, err
}

// PublishMessages publishes the batch to chat.messages, keyed by room so
// each room's messages stay ordered within a partition.
func (a *Activities) PublishMessages(ctx context.Context, b MessageBatch) error {
	recs := make([]events.Record, len(b.Messages))
	for i, m := range b.Messages {
		v, err := json.Marshal(m)
		if err != nil {
			return err
		}
		recs[i] = events.Record{Topic: chatflow.TopicChatMessages, Key: []byte(m.RoomID), Value: v}
	}
	if err := a.Events.Publish(ctx, recs...); err != nil {
		return err
	}
	if a.Metrics != nil {
		a.Metrics.MessagesPublished.Add(float64(len(recs)))
	}
	return nil
}
