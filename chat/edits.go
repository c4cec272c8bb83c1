package chat

import (
	"context"
	"encoding/json"
	"time"

	"github.com/google/uuid"

	"github.com/chatflow/chatflow"
	"github.com/chatflow/chatflow/db"
)

// Edits and deletes. Each is an event message in the room's sequence (kind
// edit/delete, body a chatflow.EditEvent), so it reaches live members on
// every node and syncing clients like any message. Its effect on the target
// is recorded in chat.message_edits keyed by the event's seq: here, right
// after the event is sequenced, and again by the persistence path when the
// event message is stored (so an event whose caller died before recording
// still takes effect). The record does not need the target row, which may
// still be only in the Redis log; the current state is recomputed from all
// of a target's events (a delete wins, the newest edit gives the body), so
// applying twice or out of order gives the same result. Reads overlay that
// state on the frames of the log and of Postgres alike.

// EditResult is the outcome of an edit or delete.
type EditResult struct {
	// Event is the edit/delete message in the room's sequence.
	Event chatflow.Message
	// Dup is set when the client_msg_id was seen before.
	Dup bool
	// Target is the message as it now is.
	Target chatflow.Message
}

// Target reads the message at seq as it now is (edits applied).
func (s *Service) Target(ctx context.Context, room uuid.UUID, seq int64) (chatflow.Message, error) {
	cur, err := s.CurrentSeq(ctx, room)
	if err != nil {
		return chatflow.Message{}, err
	}
	if seq < 1 || seq > cur {
		return chatflow.Message{}, chatflow.Errorf(chatflow.ECodeNotFound, "no message %d in room %s", seq, room)
	}
	frames, err := s.FetchRange(ctx, room, seq, seq)
	if err != nil {
		return chatflow.Message{}, err
	}
	if len(frames) != 1 {
		return chatflow.Message{}, chatflow.Errorf(chatflow.ECodeUnavailable, "message %d not readable yet; retry", seq)
	}
	var m MessageFrame
	if err := json.Unmarshal(frames[0], &m); err != nil {
		return chatflow.Message{}, err
	}
	return m.Message, nil
}

// Change posts an edit (kind chatflow.KindEdit, body the new text) or a
// delete (chatflow.KindDelete, body "") of the message at target. The
// caller checks who may do it; Change checks that the target is a text
// message not deleted yet. A retry with the same cmid returns the same
// event and records nothing twice.
func (s *Service) Change(ctx context.Context, user, room uuid.UUID, target int64, cmid, kind, body string) (EditResult, error) {
	ev, err := json.Marshal(chatflow.EditEvent{TargetSeq: target, Body: body})
	if err != nil {
		return EditResult{}, err
	}
	if chatflow.ValidBody(string(ev)) != nil {
		return EditResult{}, chatflow.Errorf(chatflow.ECodeValidation, "body is too long to edit into")
	}
	a, err := s.AcceptKind(ctx, user, room.String(), cmid, kind, string(ev))
	if err != nil {
		return EditResult{}, err
	}
	var got chatflow.EditEvent
	if a.Msg.Kind != kind || json.Unmarshal([]byte(a.Msg.Body), &got) != nil || got.TargetSeq != target {
		return EditResult{}, chatflow.Errorf(chatflow.ECodeConflict, "client_msg_id %q was used for another message", cmid)
	}
	if err := s.RecordEdits(ctx, []chatflow.Message{a.Msg}); err != nil {
		return EditResult{}, unavailable(err)
	}
	t, err := s.Target(ctx, room, target)
	if err != nil {
		return EditResult{}, err
	}
	return EditResult{Event: a.Msg, Dup: a.Dup, Target: t}, nil
}

// RecordEdits records the edit/delete events among msgs and applies them to
// their targets' rows where these exist; other messages are ignored.
func (s *Service) RecordEdits(ctx context.Context, msgs []chatflow.Message) error {
	p := EditRows(msgs)
	if len(p.EventSeqs) == 0 {
		return nil
	}
	if err := s.store.InsertMessageEdits(ctx, p); err != nil {
		return err
	}
	if err := s.store.ClearEditedBodies(ctx, db.ClearEditedBodiesParams{RoomIds: p.RoomIds, Seqs: p.TargetSeqs}); err != nil {
		return err
	}
	return s.store.ApplyMessageEdits(ctx, db.ApplyMessageEditsParams{RoomIds: p.RoomIds, Seqs: p.TargetSeqs})
}

// EditRows picks the edit/delete events out of msgs in the layout of
// InsertMessageEdits; events that do not decode are skipped.
func EditRows(msgs []chatflow.Message) db.InsertMessageEditsParams {
	var p db.InsertMessageEditsParams
	for _, m := range msgs {
		if m.Kind != chatflow.KindEdit && m.Kind != chatflow.KindDelete {
			continue
		}
		room, err := uuid.Parse(m.RoomID)
		if err != nil {
			continue
		}
		var ev chatflow.EditEvent
		if json.Unmarshal([]byte(m.Body), &ev) != nil || ev.TargetSeq < 1 || ev.TargetSeq >= m.Seq {
			continue
		}
		if m.Kind == chatflow.KindDelete {
			ev.Body = ""
		}
		p.RoomIds = append(p.RoomIds, room)
		p.EventSeqs = append(p.EventSeqs, m.Seq)
		p.TargetSeqs = append(p.TargetSeqs, ev.TargetSeq)
		p.Kinds = append(p.Kinds, m.Kind)
		p.Bodies = append(p.Bodies, ev.Body)
		p.Ats = append(p.Ats, m.SentAt)
	}
	return p
}

func timeOf(v any) *time.Time {
	t, ok := v.(time.Time)
	if !ok {
		return nil
	}
	t = t.UTC()
	return &t
}
