package api

import (
	"context"
	"net/url"
	"strconv"

	"github.com/gofiber/fiber/v2"

	"github.com/chatflow/chatflow"
	"github.com/chatflow/chatflow/chat"
)

// Reactions: PUT adds the caller's reaction with an emoji to a message,
// DELETE removes it. An effective change posts a reaction event into the
// room's sequence (see chat/reactions.go); a change that is already in
// effect posts nothing. Both answer the target's reactions as they now are.

func (s *Server) putReaction(c *fiber.Ctx) error {
	return s.react(c, chatflow.ReactionAdd)
}

func (s *Server) deleteReaction(c *fiber.Ctx) error {
	return s.react(c, chatflow.ReactionRemove)
}

// reactionAnswer is the body of both routes.
type reactionAnswer struct {
	TargetSeq int64               `json:"target_seq"`
	Reactions []chatflow.Reaction `json:"reactions"`
	// Event is the reaction event posted, absent when nothing changed.
	Event *chatflow.Message `json:"event,omitempty"`
}

func (s *Server) react(c *fiber.Ctx, op string) error {
	room, err := parseUUIDParam(c, "room_id")
	if err != nil {
		return err
	}
	seq, err := strconv.ParseInt(c.Params("seq"), 10, 64)
	if err != nil || seq < 1 {
		return chatflow.Errorf(chatflow.ECodeValidation, "seq must be a positive integer")
	}
	emoji, err := url.PathUnescape(c.Params("emoji"))
	if err != nil {
		return chatflow.Errorf(chatflow.ECodeValidation, "emoji must be path-escaped UTF-8")
	}
	if err := chatflow.ValidEmoji(emoji); err != nil {
		return err
	}
	cmid := c.Query("client_msg_id")
	if cmid == "" {
		// unique per request (or per X-Request-ID): a later toggle of the
		// same emoji must not be taken for a retry of this one
		cmid = derivedCmid(chatflow.KindReaction, c)
	}
	if err := chatflow.ValidClientMsgID(cmid); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(c.UserContext(), restSendTimeout)
	defer cancel()
	user := userID(c)
	if _, err := s.membership(ctx, room, user); err != nil {
		return err
	}
	if err := s.limits.RESTSend(ctx, user); err != nil {
		return err
	}
	target, err := s.chat.Target(ctx, room, seq)
	if err != nil {
		return err
	}
	switch {
	case !chat.Reactable(target.Kind):
		return chatflow.Errorf(chatflow.ECodeValidation, "only text and file messages take reactions")
	case target.DeletedAt != nil:
		return chatflow.Errorf(chatflow.ECodeMessageDeleted, "message %d was deleted", seq)
	}
	cur, err := s.chat.Reactions(ctx, room, seq)
	if err != nil {
		return err
	}
	if chatflow.Reacted(cur, user.String(), emoji) == (op == chatflow.ReactionAdd) {
		return c.JSON(reactionAnswer{TargetSeq: seq, Reactions: nonNil(cur)})
	}
	res, err := s.chat.React(ctx, user, room, seq, emoji, op, cmid)
	if err != nil {
		return err
	}
	if res.Dup {
		c.Set("Idempotent-Replayed", "true")
	}
	return c.JSON(reactionAnswer{TargetSeq: seq, Reactions: nonNil(res.Reactions), Event: &res.Event})
}

func nonNil(rs []chatflow.Reaction) []chatflow.Reaction {
	if rs == nil {
		return []chatflow.Reaction{}
	}
	return rs
}
