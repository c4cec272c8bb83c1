package chat

import (
	"context"
	"encoding/json"

	"github.com/google/uuid"

	"github.com/chatflow/chatflow"
	"github.com/chatflow/chatflow/db"
)

// Reactions. Each effective change is an event message in the room's
// sequence (kind reaction, body a chatflow.ReactionEvent), so it reaches
// live members on every node and syncing clients like any message. Like an
// edit (see edits.go), its effect is recorded in chat.message_reactions
// keyed by the event's seq: here, right after the event is sequenced, and
// again by the persistence path when the event message is stored. The
// current reactions are folded from all of a target's rows (the highest
// event seq per user and emoji wins), so recording twice or out of order
// gives the same result; reads put them on the frames (overlay.go).

// ReactResult is the outcome of a reaction change.
type ReactResult struct {
	// Event is the reaction message in the room's sequence.
	Event chatflow.Message
	// Dup is set when the client_msg_id was seen before.
	Dup bool
	// Reactions are the target's reactions once the event is recorded.
	Reactions []chatflow.Reaction
}

// React posts a reaction event by user (op chatflow.ReactionAdd or
// ReactionRemove of emoji on the message at target) and records it. The
// caller checks the target may take reactions and that the change is not a
// no-op; React checks nothing of the target.
func (s *Service) React(ctx context.Context, user, room uuid.UUID, target int64, emoji, op, cmid string) (ReactResult, error) {
	ev, err := json.Marshal(chatflow.ReactionEvent{TargetSeq: target, Emoji: emoji, Op: op})
	if err != nil {
		return ReactResult{}, err
	}
	a, err := s.AcceptKind(ctx, user, room.String(), cmid, chatflow.KindReaction, string(ev))
	if err != nil {
		return ReactResult{}, err
	}
	var got chatflow.ReactionEvent
	if a.Msg.Kind != chatflow.KindReaction || json.Unmarshal([]byte(a.Msg.Body), &got) != nil ||
		got.TargetSeq != target || got.Emoji != emoji || got.Op != op {
		return ReactResult{}, chatflow.Errorf(chatflow.ECodeConflict, "client_msg_id %q was used for another message", cmid)
	}
	if err := s.RecordReactions(ctx, []chatflow.Message{a.Msg}); err != nil {
		return ReactResult{}, unavailable(err)
	}
	rs, err := s.Reactions(ctx, room, target)
	if err != nil {
		return ReactResult{}, err
	}
	return ReactResult{Event: a.Msg, Dup: a.Dup, Reactions: rs}, nil
}

// Reactions reads the current reactions of the message at seq; unlike a
// history read it fails when Postgres cannot answer.
func (s *Service) Reactions(ctx context.Context, room uuid.UUID, seq int64) ([]chatflow.Reaction, error) {
	ov, err := s.readOverlay(ctx, room, seq, seq)
	if err != nil {
		return nil, unavailable(err)
	}
	return chatflow.FoldReactions(ov.reactions[seq]), nil
}

// RecordReactions records the reaction events among msgs; other messages
// are ignored and a replay changes nothing.
func (s *Service) RecordReactions(ctx context.Context, msgs []chatflow.Message) error {
	p := ReactionRows(msgs)
	if len(p.EventSeqs) == 0 {
		return nil
	}
	return s.store.InsertMessageReactions(ctx, p)
}

// ReactionRows picks the reaction events out of msgs in the layout of
// InsertMessageReactions; events that do not decode are skipped.
func ReactionRows(msgs []chatflow.Message) db.InsertMessageReactionsParams {
	var p db.InsertMessageReactionsParams
	for _, m := range msgs {
		if m.Kind != chatflow.KindReaction {
			continue
		}
		room, err := uuid.Parse(m.RoomID)
		if err != nil {
			continue
		}
		user, err := uuid.Parse(m.SenderID)
		if err != nil {
			continue
		}
		var ev chatflow.ReactionEvent
		if json.Unmarshal([]byte(m.Body), &ev) != nil || ev.TargetSeq < 1 || ev.TargetSeq >= m.Seq ||
			chatflow.ValidEmoji(ev.Emoji) != nil || (ev.Op != chatflow.ReactionAdd && ev.Op != chatflow.ReactionRemove) {
			continue
		}
		p.RoomIds = append(p.RoomIds, room)
		p.EventSeqs = append(p.EventSeqs, m.Seq)
		p.TargetSeqs = append(p.TargetSeqs, ev.TargetSeq)
		p.UserIds = append(p.UserIds, user)
		p.Emojis = append(p.Emojis, ev.Emoji)
		p.Ops = append(p.Ops, ev.Op)
		p.Ats = append(p.Ats, m.SentAt)
	}
	return p
}
