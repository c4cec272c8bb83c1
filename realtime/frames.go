package realtime

import (
	"context"
	"encoding/json"
	"errors"
	"time"
	"unicode/utf8"

	"github.com/gofiber/contrib/websocket"
	"github.com/google/uuid"

	"github.com/chatflow/chatflow"
	"github.com/chatflow/chatflow/ratelimit"
)

// frameTimeout bounds the work one client frame starts.
const frameTimeout = 10 * time.Second

// inFrame is any client→server frame.
type inFrame struct {
	Type        string `json:"type"`
	RoomID      string `json:"room_id"`
	ClientMsgID string `json:"client_msg_id"`
	Body        string `json:"body"`
	// Seq is a pointer so a read frame without one is refused rather
	// than read as seq 0.
	Seq   *int64           `json:"seq"`
	Rooms map[string]int64 `json:"rooms"`
	// ReplyTo is a pointer so an explicit 0 is refused, not read as "none".
	ReplyTo *int64 `json:"reply_to"`
	// AccessToken is a fresh access token ("auth" frames); never echoed.
	AccessToken string `json:"access_token"`
}

type errorFrame struct {
	Type   string `json:"type"`
	Code   string `json:"code"`
	Detail string `json:"detail"`
	Ref    string `json:"ref"` // always present: the API lists it as part of the frame
	// RetryAfter is the wait in seconds of a rate_limited refusal.
	RetryAfter int `json:"retry_after,omitempty"`
}

// sessionEvent is a "session" frame: the socket's session "expired" or was
// "revoked" (the socket closes after it), or was "renewed" by an auth frame.
type sessionEvent struct {
	Type      string     `json:"type"`
	Event     string     `json:"event"`
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
}

func sessionFrame(event string) []byte {
	b, _ := json.Marshal(sessionEvent{Type: "session", Event: event})
	return b
}

type ackFrame struct {
	Type        string `json:"type"`
	ClientMsgID string `json:"client_msg_id"`
	MessageID   string `json:"message_id"`
	RoomID      string `json:"room_id"`
	Seq         int64  `json:"seq"`
	ReplyTo     int64  `json:"reply_to,omitempty"`
	Duplicate   bool   `json:"duplicate,omitempty"`
}

func (c *Conn) sendError(code, detail, ref string) {
	c.node.metrics.errors.WithLabelValues(code).Inc()
	c.sendJSON(errorFrame{Type: "error", Code: code, Detail: detail, Ref: ref})
}

// decodeFrame checks and decodes one client frame; a refused frame comes
// back with the error frame to answer it.
func decodeFrame(mt int, data []byte) (inFrame, *errorFrame) {
	var f inFrame
	refuse := func(code, detail, ref string) (inFrame, *errorFrame) {
		return f, &errorFrame{Type: "error", Code: code, Detail: detail, Ref: ref}
	}
	if mt != websocket.TextMessage {
		return refuse(chatflow.ECodeBadFrame, "only text frames carrying JSON are accepted", "")
	}
	if len(data) > maxFrame {
		return refuse(chatflow.ECodeTooLarge, "frame is larger than 64 KiB", "")
	}
	if !utf8.Valid(data) {
		return refuse(chatflow.ECodeBadFrame, "frame is not valid UTF-8", "")
	}
	if err := chatflow.ValidJSONText(data); err != nil {
		return refuse(chatflow.ErrorCode(err), chatflow.ErrorDetail(err), "")
	}
	if err := json.Unmarshal(data, &f); err != nil {
		// A field of the wrong type still leaves the others decoded, so the
		// client learns which of its frames was refused.
		var ute *json.UnmarshalTypeError
		ref := ""
		if errors.As(err, &ute) {
			ref = refOf(f)
		}
		return refuse(chatflow.ECodeBadFrame, "frame is not a valid JSON object of a known shape", ref)
	}
	return f, nil
}

// handleFrame answers every bad frame with an error frame; nothing a client
// sends ends the connection except frames over wsReadLimit.
func (c *Conn) handleFrame(mt int, data []byte) {
	f, bad := decodeFrame(mt, data)
	if bad != nil {
		c.sendError(bad.Code, bad.Detail, bad.Ref)
		return
	}
	if !c.allow() {
		c.sendError(chatflow.ECodeRateLimited, "too many frames; slow down", refOf(f))
		return
	}
	ctx, cancel := context.WithTimeout(c.ctx, frameTimeout)
	defer cancel()
	switch f.Type {
	case "send":
		c.handleSend(ctx, f)
	case "typing":
		c.handleTyping(ctx, f)
	case "read":
		c.handleRead(ctx, f)
	case "sync":
		c.handleSync(ctx, f)
	case "auth":
		c.handleAuth(ctx, f)
	case "ping":
		c.sendJSON(map[string]string{"type": "pong"})
	default:
		c.sendError(chatflow.ECodeBadFrame, "unknown frame type "+quoteShort(f.Type), refOf(f))
	}
}

func refOf(f inFrame) string {
	if f.ClientMsgID != "" && len(f.ClientMsgID) <= chatflow.MaxClientMsgID {
		return f.ClientMsgID
	}
	if len(f.Type) > 32 {
		return "" // never echo a large client string back
	}
	return f.Type
}

func quoteShort(s string) string {
	if len(s) > 32 {
		s = s[:32]
	}
	b, _ := json.Marshal(s)
	return string(b)
}

func (c *Conn) handleSend(ctx context.Context, f inFrame) {
	if gate := c.node.sendGate; gate != nil {
		if err := gate(ctx, c.uid); err != nil {
			code := chatflow.ErrorCode(err)
			c.node.metrics.errors.WithLabelValues(code).Inc()
			ef := errorFrame{Type: "error", Code: code, Detail: chatflow.ErrorDetail(err), Ref: refOf(f)}
			if wait, ok := ratelimit.RetryAfter(err); ok {
				ef.RetryAfter = ratelimit.Seconds(wait)
			}
			c.sendJSON(ef)
			return
		}
	}
	start := time.Now()
	var replyTo int64
	if f.ReplyTo != nil {
		if replyTo = *f.ReplyTo; replyTo < 1 {
			c.sendError(chatflow.ECodeInvalidReply, "reply_to must be the seq of an earlier message of the room", refOf(f))
			return
		}
	}
	a, err := c.node.chat.AcceptReply(ctx, c.uid, f.RoomID, f.ClientMsgID, f.Body, replyTo)
	if err != nil {
		c.sendError(chatflow.ErrorCode(err), chatflow.ErrorDetail(err), refOf(f))
		return
	}
	c.node.chat.Metrics().ObserveAck(time.Since(start))
	c.sendJSON(ackFrame{Type: "ack", ClientMsgID: a.Msg.ClientMsgID, MessageID: a.Msg.MessageID, RoomID: a.Msg.RoomID, Seq: a.Msg.Seq, ReplyTo: a.Msg.ReplyTo, Duplicate: a.Dup})
}

// handleTyping tells the room, if the user is a member: checked through
// the same cached member set as a send, in the script that publishes.
func (c *Conn) handleTyping(ctx context.Context, f inFrame) {
	// Rooms are keyed by the canonical id, as send, read and sync parse
	// it: an upper-case id must not read as "not a member".
	room, err := uuid.Parse(f.RoomID)
	if err != nil {
		c.sendError(chatflow.ECodeValidation, "room_id must be a UUID", refOf(f))
		return
	}
	if err := c.node.chat.Typing(ctx, c.uid, room); err != nil {
		c.sendError(chatflow.ErrorCode(err), chatflow.ErrorDetail(err), room.String())
	}
}

// handleAuth renews the socket's session with a fresh access token of the
// same user, verified exactly as the HTTP side verifies one. A bad token,
// or one of another user, gets an error frame and changes nothing.
func (c *Conn) handleAuth(ctx context.Context, f inFrame) {
	if c.node.auth == nil {
		c.sendError(chatflow.ECodeUnavailable, "this node cannot renew sessions", "auth")
		return
	}
	if f.AccessToken == "" {
		c.sendError(chatflow.ECodeValidation, "auth needs an access_token", "auth")
		return
	}
	s, err := c.node.auth.Authenticate(ctx, f.AccessToken)
	if err != nil {
		c.sendError(chatflow.ErrorCode(err), chatflow.ErrorDetail(err), "auth")
		return
	}
	if s.UserID != c.uid {
		c.sendError(chatflow.ECodeForbidden, "the access token belongs to another user", "auth")
		return
	}
	if !c.renew(s) {
		return // expired meanwhile: the socket is closing
	}
	// A revocation published between Authenticate's check and renew
	// compared the old family: check the new one again.
	if revoked, err := c.node.auth.Revoked(ctx, s); err == nil && revoked {
		c.node.metrics.sessionsEnded.WithLabelValues("revoked").Inc()
		c.closeWith(sessionFrame("revoked"), "session revoked")
		return
	}
	c.node.metrics.sessionsEnded.WithLabelValues("renewed").Inc()
	exp := s.Expires.UTC()
	c.sendJSON(sessionEvent{Type: "session", Event: "renewed", ExpiresAt: &exp})
}

func (c *Conn) handleRead(ctx context.Context, f inFrame) {
	room, err := uuid.Parse(f.RoomID)
	if err != nil || f.Seq == nil || *f.Seq < 0 {
		c.sendError(chatflow.ECodeValidation, "read needs a room_id and a seq >= 0", f.RoomID)
		return
	}
	if _, err := c.node.chat.MarkRead(ctx, c.uid, room, *f.Seq); err != nil {
		c.sendError(chatflow.ErrorCode(err), chatflow.ErrorDetail(err), f.RoomID)
	}
}
