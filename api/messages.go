package api

import (
	"context"
	"encoding/json"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/google/uuid"

	"github.com/chatflow/chatflow"
)

// A room's messages over REST: history pages, sends and read markers. The
// message core (chat) does the work; /ws is the other way in.

func (s *Server) history(c *fiber.Ctx) error {
	id, err := parseUUIDParam(c, "room_id")
	if err != nil {
		return err
	}
	before, hasBefore, err := queryInt(c, "before_seq")
	if err != nil {
		return err
	}
	after, hasAfter, err := queryInt(c, "after_seq")
	if err != nil {
		return err
	}
	limit, err := pageLimit(c, chatflow.DefaultHistLimit, chatflow.MaxHistoryLimit)
	if err != nil {
		return err
	}
	if hasBefore && hasAfter {
		return chatflow.Errorf(chatflow.ECodeValidation, "use before_seq or after_seq, not both")
	}
	ctx := c.UserContext()
	if _, err := s.membership(ctx, id, userID(c)); err != nil {
		return err
	}
	cur, err := s.chat.CurrentSeq(ctx, id)
	if err != nil {
		return err
	}
	// seqs are gap-free, so a page is a seq range.
	var lo, hi int64
	var more bool
	switch {
	case hasAfter:
		after = min(after, cur) // a cursor past the end is the end (and cannot overflow)
		lo, hi = after+1, min(after+limit, cur)
		more = hi < cur
	default:
		if !hasBefore || before > cur+1 {
			before = cur + 1
		}
		lo, hi = max(before-limit, 1), before-1
		more = lo > 1
	}
	frames, err := s.chat.FetchRange(ctx, id, lo, hi)
	if err != nil {
		return err
	}
	msgs := make([]json.RawMessage, len(frames))
	copy(msgs, frames)
	senders, err := s.senderNames(ctx, frames)
	if err != nil {
		return err
	}
	return c.JSON(fiber.Map{"messages": msgs, "has_more": more, "senders": senders})
}

// senderNames maps the senders of the frames to their display names, so a
// client shows a page without looking each sender up. The names ride on the
// page, not in each message frame: live frames stay as they are.
func (s *Server) senderNames(ctx context.Context, frames []json.RawMessage) (map[string]string, error) {
	seen := map[uuid.UUID]bool{}
	var ids []uuid.UUID
	for _, f := range frames {
		var m struct {
			SenderID string `json:"sender_id"`
		}
		if json.Unmarshal(f, &m) != nil {
			continue
		}
		if id, err := uuid.Parse(m.SenderID); err == nil && !seen[id] {
			seen[id] = true
			ids = append(ids, id)
		}
	}
	out := make(map[string]string, len(ids))
	if len(ids) == 0 {
		return out, nil
	}
	rows, err := s.Queries.DisplayNames(ctx, ids)
	if err != nil {
		return nil, err
	}
	for _, r := range rows {
		out[r.UserID.String()] = r.DisplayName
	}
	return out, nil
}

// restSendTimeout bounds a REST send, as handleFrame bounds a WebSocket one.
const restSendTimeout = 10 * time.Second

func (s *Server) postMessage(c *fiber.Ctx) error {
	id, err := parseUUIDParam(c, "room_id")
	if err != nil {
		return err
	}
	var req struct {
		ClientMsgID string `json:"client_msg_id"`
		Body        string `json:"body"`
		// ReplyTo is a pointer so an explicit 0 is refused, not read as "none".
		ReplyTo *int64 `json:"reply_to"`
	}
	if err := decode(c, &req); err != nil {
		return err
	}
	var replyTo int64
	if req.ReplyTo != nil {
		if replyTo = *req.ReplyTo; replyTo < 1 {
			return chatflow.Errorf(chatflow.ECodeInvalidReply, "reply_to must be the seq of an earlier message of the room")
		}
	}
	// A send waits for Redis (and, on a cold room, Postgres): bound it like
	// a WebSocket frame, answering 503 so the client retries with the same
	// client_msg_id and gets the original message.
	ctx, cancel := context.WithTimeout(c.UserContext(), restSendTimeout)
	defer cancel()
	if err := s.limits.RESTSend(ctx, userID(c)); err != nil {
		return err
	}
	start := time.Now()
	a, err := s.chat.AcceptReply(ctx, userID(c), id.String(), req.ClientMsgID, req.Body, replyTo)
	if err != nil {
		return err
	}
	s.chat.Metrics().ObserveAck(time.Since(start))
	if a.Dup {
		c.Set("Idempotent-Replayed", "true")
	}
	return c.Status(fiber.StatusCreated).JSON(a.Msg)
}

// postRead moves the caller's read marker forward (never back).
func (s *Server) postRead(c *fiber.Ctx) error {
	id, err := parseUUIDParam(c, "room_id")
	if err != nil {
		return err
	}
	var req struct {
		Seq *int64 `json:"seq"`
	}
	if err := decode(c, &req); err != nil {
		return err
	}
	if req.Seq == nil || *req.Seq < 0 {
		return chatflow.Errorf(chatflow.ECodeValidation, "seq must be a non-negative integer")
	}
	seq, err := s.chat.MarkRead(c.UserContext(), userID(c), id, *req.Seq)
	if err != nil {
		return err
	}
	return c.JSON(fiber.Map{"room_id": id.String(), "last_read_seq": seq})
}
