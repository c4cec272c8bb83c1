package api

import (
	"bytes"
	"errors"

	"github.com/gofiber/fiber/v2"
	"github.com/google/uuid"

	"github.com/chatflow/chatflow"
	"github.com/chatflow/chatflow/chat"
	"github.com/chatflow/chatflow/db"
)

// Direct messages. Each pair of users has at most one DM room (kind "dm"),
// recorded in chat.dms under the ordered pair. Opening one runs under the
// pair's friendship lock (the one friend requests, unfriending and blocks
// take), so concurrent openers from both sides serialise: the first
// creates the room, the others find it; and the consent check (mutual
// friends, no block either way) cannot race a change of the friendship.
// The primary key on the pair backs this up. A DM room has exactly its
// pair: it cannot be renamed or get more members.

// dmRoomName is the stored name of DM rooms; clients show the other
// member (member_names) instead.
const dmRoomName = "direct message"

func (s *Server) openDM(c *fiber.Ctx) error {
	var req struct {
		UserID string `json:"user_id"`
	}
	if err := decode(c, &req); err != nil {
		return err
	}
	other, err := uuid.Parse(req.UserID)
	if err != nil {
		return chatflow.Errorf(chatflow.ECodeValidation, "user_id must be a UUID")
	}
	ctx, me := c.UserContext(), userID(c)
	if other == me {
		return chatflow.Errorf(chatflow.ECodeCannotAddSelf, "you cannot open a direct message with yourself")
	}
	if n, err := s.Queries.ProfilesExist(ctx, []uuid.UUID{other}); err != nil {
		return err
	} else if n == 0 {
		return chatflow.Errorf(chatflow.ECodeNotFound, "user %s not found", other)
	}
	lo, hi := me, other
	if bytes.Compare(lo[:], hi[:]) > 0 {
		lo, hi = hi, lo
	}
	var (
		room    db.ChatRoom
		created bool
		added   []uuid.UUID
	)
	err = s.inPair(ctx, me, other, func(q *db.Queries) error {
		st, err := q.FriendPairState(ctx, db.FriendPairStateParams{Me: me, Other: other})
		switch {
		case err != nil:
			return err
		case st.BlockedMe || st.IBlocked:
			return chatflow.Errorf(chatflow.ECodeForbidden, "there is a block between you and this user")
		case !st.Friends:
			return chatflow.Errorf(chatflow.ECodeForbidden, "you can open a direct message only with a friend; send a friend request first")
		}
		id, err := q.GetDM(ctx, db.GetDMParams{UserLo: lo, UserHi: hi})
		if err == nil {
			if room, err = q.GetRoom(ctx, id); err != nil {
				return err
			}
			// the caller may have left it: opening it again rejoins
			added, err = q.AddMembers(ctx, db.AddMembersParams{RoomID: id, UserIds: []uuid.UUID{me}})
			return err
		}
		if !isNotFound(err) {
			return err
		}
		room, err = q.CreateRoomKind(ctx, db.CreateRoomKindParams{ID: uuid.New(), Name: dmRoomName, CreatedBy: me, Kind: chatflow.RoomKindDM})
		if err != nil {
			return err
		}
		if _, err := q.AddMembers(ctx, db.AddMembersParams{RoomID: room.ID, UserIds: []uuid.UUID{me, other}}); err != nil {
			return err
		}
		n, err := q.CreateDM(ctx, db.CreateDMParams{UserLo: lo, UserHi: hi, RoomID: room.ID})
		if err != nil {
			return err
		}
		if n == 0 { // cannot happen under the lock; never make a second room
			return errors.New("dm pair already has a room")
		}
		created = true
		return nil
	})
	if err != nil {
		return err
	}
	status := fiber.StatusOK
	switch {
	case created:
		if err := s.chat.SeedRoom(ctx, room.ID, []uuid.UUID{me, other}); err != nil {
			return err
		}
		s.roomEvent(ctx, chat.UserChannel(me.String()), "joined", room.ID, me)
		s.roomEvent(ctx, chat.UserChannel(other.String()), "invited", room.ID, other)
		status = fiber.StatusCreated
	case len(added) > 0:
		if err := s.chat.MembersAdded(ctx, room.ID, added); err != nil {
			return err
		}
		s.roomEvent(ctx, chat.UserChannel(me.String()), "joined", room.ID, me)
		s.roomEvent(ctx, chat.RoomChannel(room.ID.String()), "joined", room.ID, me)
		s.postJoined(ctx, room.ID, me, added)
	}
	v, err := s.roomView(ctx, room, me)
	if err != nil {
		return err
	}
	return c.Status(status).JSON(v)
}
