package chat

import (
	"bytes"
	"encoding/json"
	"strconv"
	"time"

	"github.com/chatflow/chatflow"
	"github.com/chatflow/chatflow/db"
)

// MessageFrame is the server→client frame of one message.
type MessageFrame struct {
	Type string `json:"type"`
	chatflow.Message
}

// RoomEvent is a membership or session frame.
type RoomEvent struct {
	Type   string `json:"type"`
	Event  string `json:"event"`
	RoomID string `json:"room_id,omitempty"`
	UserID string `json:"user_id,omitempty"`
	// Family is the token family of a revoked session ("session" events).
	Family string `json:"family,omitempty"`
	// Seq is the room's seq at a membership change ("room" events sent
	// with the change): a leaver's messages all have seqs up to it.
	Seq int64 `json:"seq,omitempty"`
}

// framePieces renders the message frame around its seq, which only the
// script knows; Go does the JSON encoding so Lua never has to.
func framePieces(mid, room, sender, cmid, kind, body string, at time.Time, replyTo int64) (string, string) {
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
	b.WriteByte('"')
	if kind != "" {
		b.WriteString(`,"kind":`)
		writeJSONString(&b, kind)
	}
	if replyTo > 0 {
		b.WriteString(`,"reply_to":`)
		b.WriteString(strconv.FormatInt(replyTo, 10))
	}
	b.WriteString(`}`)
	return prefix, b.String()
}

func writeJSONString(b *bytes.Buffer, s string) {
	enc, _ := json.Marshal(s) // cannot fail for a string
	b.Write(enc)
}

// FrameSeq reads the seq of a message frame without a full decode; ok is
// false for frames that are not messages.
func FrameSeq(frame []byte) (int64, bool) {
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

// FromRow converts a stored message row.
func FromRow(r db.ChatMessage) chatflow.Message {
	return chatflow.Message{
		MessageID: r.ID.String(), RoomID: r.RoomID.String(), Seq: r.Seq, SenderID: r.SenderID.String(),
		ClientMsgID: r.ClientMsgID, Body: r.Body, SentAt: r.SentAt.UTC(), Kind: kindOf(r.Kind),
		EditedAt: utcPtr(r.EditedAt), DeletedAt: utcPtr(r.DeletedAt), ReplyTo: replyOf(r.ReplyTo),
	}
}

func replyOf(r *int64) int64 {
	if r == nil {
		return 0
	}
	return *r
}

func utcPtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}

func kindOf(k string) string {
	if k == chatflow.KindText {
		return ""
	}
	return k
}
