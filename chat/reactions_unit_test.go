package chat

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/chatflow/chatflow"
)

// A reply's frame carries reply_to; a message that is no reply has none.
func TestFramePiecesReplyTo(t *testing.T) {
	for _, reply := range []int64{0, 7} {
		prefix, suffix := framePieces(uuid.NewString(), uuid.NewString(), uuid.NewString(), "c1", "", `b "q"`, time.Now(), reply)
		frame := prefix + "9" + suffix
		var m MessageFrame
		if err := json.Unmarshal([]byte(frame), &m); err != nil {
			t.Fatalf("frame %s: %v", frame, err)
		}
		if m.Seq != 9 || m.ReplyTo != reply || m.Body != `b "q"` {
			t.Fatalf("frame %s decodes as %+v", frame, m.Message)
		}
		var raw map[string]any
		_ = json.Unmarshal([]byte(frame), &raw)
		if _, has := raw["reply_to"]; has != (reply > 0) {
			t.Fatalf("frame %s: reply_to present = %v", frame, has)
		}
	}
}

// ReactionRows keeps well-formed reaction events only.
func TestReactionRows(t *testing.T) {
	room, user := uuid.NewString(), uuid.NewString()
	ev := func(seq int64, body string) chatflow.Message {
		return chatflow.Message{RoomID: room, SenderID: user, Seq: seq, Kind: chatflow.KindReaction, Body: body, SentAt: time.Now()}
	}
	msgs := []chatflow.Message{
		ev(5, `{"target_seq":1,"emoji":"👍","op":"add"}`),
		ev(6, `{"target_seq":1,"emoji":"👍","op":"remove"}`),
		ev(7, `{"target_seq":7,"emoji":"👍","op":"add"}`),    // not below its own seq
		ev(8, `{"target_seq":1,"emoji":"a b","op":"add"}`),  // bad emoji
		ev(9, `{"target_seq":1,"emoji":"👍","op":"toggle"}`), // bad op
		ev(10, `not json`),
		{RoomID: room, SenderID: user, Seq: 11, Body: `{"target_seq":1,"emoji":"👍","op":"add"}`}, // text
	}
	p := ReactionRows(msgs)
	if len(p.EventSeqs) != 2 || p.EventSeqs[0] != 5 || p.Ops[1] != chatflow.ReactionRemove || p.UserIds[0].String() != user {
		t.Fatalf("rows: %+v", p)
	}
}
