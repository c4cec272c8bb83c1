package chat

import (
	"context"
	"encoding/json"

	"github.com/google/uuid"

	"github.com/chatflow/chatflow"
	"github.com/chatflow/chatflow/db"
)

// overlay puts on frames (the room's messages lo..hi in order) the current
// state of edited and deleted messages and the current reactions of text
// and file messages, read in one statement. Frames of untouched messages
// are passed through as they are.
func (s *Service) overlay(ctx context.Context, room uuid.UUID, lo, hi int64, frames []json.RawMessage) ([]json.RawMessage, error) {
	if len(frames) == 0 {
		return frames, nil
	}
	ov, err := s.readOverlay(ctx, room, lo, hi)
	if err != nil {
		// Reads from the log must not need Postgres: without it, frames go
		// out as sent (rows read from Postgres carry their edit state
		// anyway), and the edit and reaction events themselves are still
		// in the range.
		s.log.Warn("edit states and reactions unreadable; serving messages as sent", "room", room, "error", err)
		return frames, nil
	}
	if len(ov.states) == 0 && len(ov.reactions) == 0 {
		return frames, nil
	}
	for i, f := range frames {
		seq, ok := FrameSeq(f)
		if !ok {
			continue
		}
		st, edited := ov.states[seq]
		ops, reacted := ov.reactions[seq]
		if !edited && !reacted {
			continue
		}
		var m MessageFrame
		if err := json.Unmarshal(f, &m); err != nil {
			return nil, err
		}
		changed := false
		if edited && m.Kind == "" { // only text messages are edited
			st.Apply(&m.Message)
			changed = true
		}
		if reacted && Reactable(m.Kind) && m.DeletedAt == nil {
			m.Reactions = chatflow.FoldReactions(ops)
			changed = true
		}
		if !changed {
			continue
		}
		b, err := json.Marshal(m)
		if err != nil {
			return nil, err
		}
		frames[i] = b
	}
	return frames, nil
}

// overlayState is what reads put on a range of a room's messages.
type overlayState struct {
	states    map[int64]chatflow.MessageState
	reactions map[int64][]chatflow.ReactionOp
}

func (s *Service) readOverlay(ctx context.Context, room uuid.UUID, lo, hi int64) (overlayState, error) {
	rows, err := s.store.MessageOverlay(ctx, db.MessageOverlayParams{RoomID: room, Lo: lo, Hi: hi})
	if err != nil {
		return overlayState{}, err
	}
	ov := overlayState{states: map[int64]chatflow.MessageState{}, reactions: map[int64][]chatflow.ReactionOp{}}
	for _, r := range rows {
		switch r.Src {
		case "edit":
			ov.states[r.TargetSeq] = chatflow.MessageState{Body: r.Body, EditedAt: timeOf(r.EditedAt), DeletedAt: timeOf(r.DeletedAt)}
		case "reaction":
			ov.reactions[r.TargetSeq] = append(ov.reactions[r.TargetSeq], chatflow.ReactionOp{
				EventSeq: r.EventSeq, UserID: r.UserID, Emoji: r.Emoji, Op: chatflow.ReactionAdd,
			})
		}
	}
	return ov, nil
}

// Reactable reports whether messages of a kind take reactions: text and
// files, not events (system, edit, delete, reaction, gap, transfer).
func Reactable(kind string) bool {
	return kind == "" || kind == chatflow.KindText || kind == chatflow.KindFile
}
