package api

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/requestid"

	"github.com/chatflow/chatflow"
	"github.com/chatflow/chatflow/chat"
)

// Edits and deletes of messages: each posts an event message into the
// room's sequence (see chat/edits.go) and answers the event and the target
// as it now is.

// patchMessage edits a message; only its sender may.
func (s *Server) patchMessage(c *fiber.Ctx) error {
	var req struct {
		ClientMsgID string `json:"client_msg_id"`
		Body        string `json:"body"`
	}
	if err := decode(c, &req); err != nil {
		return err
	}
	if err := chatflow.ValidBody(req.Body); err != nil {
		return err
	}
	return s.changeMessage(c, chatflow.KindEdit, req.ClientMsgID, req.Body)
}

// deleteMessage deletes a message; its sender or the room's owner may. A
// client_msg_id for retries goes in the query (or a JSON body).
func (s *Server) deleteMessage(c *fiber.Ctx) error {
	var req struct {
		ClientMsgID string `json:"client_msg_id"`
	}
	if len(c.Body()) > 0 {
		if err := decode(c, &req); err != nil {
			return err
		}
	}
	if req.ClientMsgID == "" {
		req.ClientMsgID = c.Query("client_msg_id")
	}
	return s.changeMessage(c, chatflow.KindDelete, req.ClientMsgID, "")
}

func (s *Server) changeMessage(c *fiber.Ctx, kind, cmid, body string) error {
	room, err := parseUUIDParam(c, "room_id")
	if err != nil {
		return err
	}
	seq, err := strconv.ParseInt(c.Params("seq"), 10, 64)
	if err != nil || seq < 1 {
		return chatflow.Errorf(chatflow.ECodeValidation, "seq must be a positive integer")
	}
	if cmid == "" {
		cmid = derivedCmid(kind, c)
	}
	if err := chatflow.ValidClientMsgID(cmid); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(c.UserContext(), restSendTimeout)
	defer cancel()
	user := userID(c)
	r, err := s.membership(ctx, room, user)
	if err != nil {
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
	case target.Kind != "":
		return chatflow.Errorf(chatflow.ECodeValidation, "only text messages can be edited or deleted")
	case target.DeletedAt != nil:
		return chatflow.Errorf(chatflow.ECodeMessageDeleted, "message %d was deleted", seq)
	case kind == chatflow.KindEdit && target.SenderID != user.String():
		return chatflow.Errorf(chatflow.ECodeForbidden, "only the sender can edit a message")
	case kind == chatflow.KindDelete && target.SenderID != user.String() && r.CreatedBy != user:
		return chatflow.Errorf(chatflow.ECodeForbidden, "only the sender or the room's owner can delete a message")
	}
	res, err := s.chat.Change(ctx, user, room, seq, cmid, kind, body)
	if err != nil {
		return err
	}
	if res.Dup {
		c.Set("Idempotent-Replayed", "true")
	}
	return c.JSON(editResponse(res))
}

func editResponse(r chat.EditResult) fiber.Map {
	return fiber.Map{"event": r.Event, "message": r.Target}
}

// derivedCmid names the event of a request that brought no client_msg_id
// after its request id (X-Request-ID when the client sends one, so a
// client can retry under the same one).
func derivedCmid(kind string, c *fiber.Ctx) string {
	rid := fmt.Sprint(c.Locals(requestid.ConfigDefault.ContextKey))
	sum := sha256.Sum256([]byte(rid))
	return kind + ":" + hex.EncodeToString(sum[:16])
}
