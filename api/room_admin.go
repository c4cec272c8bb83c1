package api

import (
	"context"
	"strconv"
	"strings"

	"github.com/gofiber/fiber/v2"
	"github.com/google/uuid"

	"github.com/chatflow/chatflow"
	"github.com/chatflow/chatflow/db"
)

// Room administration. The creator of a room (chat.rooms.created_by) is
// its owner: only they rename it or remove members. Every member may mute
// the room for themselves.

// roomAdminView is the part of a room view about ownership, kind, the
// caller's mute flag and who is in it.
type roomAdminView struct {
	OwnerID string `json:"owner_id"`
	// Role is the caller's: "owner" or "member".
	Role string `json:"role"`
	// Kind is "group" or "dm".
	Kind        string   `json:"kind"`
	Muted       bool     `json:"muted"`
	MemberCount int64    `json:"member_count"`
	MemberNames []string `json:"member_names"`
}

func adminView(owner uuid.UUID, kind string, caller uuid.UUID, muted bool, count int64, names []string) roomAdminView {
	role := "member"
	if owner == caller {
		role = "owner"
	}
	if kind == "" {
		kind = chatflow.RoomKindGroup
	}
	return roomAdminView{OwnerID: owner.String(), Role: role, Kind: kind, Muted: muted, MemberCount: count, MemberNames: names}
}

// maxMemberNames is how many other members' names a room view lists.
const maxMemberNames = 3

func otherNames(rows []db.RoomMembersRow, caller uuid.UUID) []string {
	names := []string{}
	for _, r := range rows {
		if r.UserID != caller && len(names) < maxMemberNames {
			names = append(names, r.DisplayName)
		}
	}
	return names
}

// summarize fills the member counts, names and mute flags of a room list.
func (s *Server) summarize(ctx context.Context, me uuid.UUID, ids []uuid.UUID, out []roomView) error {
	rows, err := s.Queries.RoomSummaries(ctx, db.RoomSummariesParams{UserID: me, RoomIds: ids})
	if err != nil {
		return err
	}
	byRoom := make(map[string]db.RoomSummariesRow, len(rows))
	for _, r := range rows {
		byRoom[r.RoomID.String()] = r
	}
	for i := range out {
		if r, ok := byRoom[out[i].RoomID]; ok {
			out[i].Muted, out[i].MemberCount = r.Muted, r.MemberCount
			if r.MemberNames != nil {
				out[i].MemberNames = r.MemberNames
			}
		}
	}
	return nil
}

// ownedRoom loads the path's room for an owner-only change: 403 not_member
// for a non-member, 403 forbidden for a member who is not the owner.
func (s *Server) ownedRoom(c *fiber.Ctx) (db.ChatRoom, error) {
	room, err := s.callerRoom(c)
	if err != nil {
		return room, err
	}
	if room.CreatedBy != userID(c) {
		return room, chatflow.Errorf(chatflow.ECodeForbidden, "only the room's owner may do this")
	}
	return room, nil
}

func (s *Server) renameRoom(c *fiber.Ctx) error {
	var req struct {
		Name string `json:"name"`
	}
	if err := decode(c, &req); err != nil {
		return err
	}
	room, err := s.ownedRoom(c)
	if err != nil {
		return err
	}
	if room.Kind == chatflow.RoomKindDM {
		return chatflow.Errorf(chatflow.ECodeValidation, "a direct message room cannot be renamed")
	}
	name := strings.TrimSpace(req.Name)
	if err := chatflow.ValidRoomName(name); err != nil {
		return err
	}
	ctx, me := c.UserContext(), userID(c)
	renamed, err := s.Queries.RenameRoom(ctx, db.RenameRoomParams{ID: room.ID, Name: name})
	if err != nil {
		return err
	}
	if renamed.NameVersion != room.NameVersion {
		// only a change posts: a retry (same name) renames and posts
		// nothing. So a post that fails here is lost (the rename stands);
		// the client gets the error.
		ev := chatflow.SystemEvent{Event: chatflow.EventRoomRenamed, UserID: me.String(), Name: name}
		if err := s.postSystem(ctx, me, room.ID, "sys-ren-"+strconv.Itoa(int(renamed.NameVersion)), ev); err != nil {
			return err
		}
		s.publishRenamed(ctx, renamed, me)
	}
	v, err := s.roomView(ctx, renamed, me)
	if err != nil {
		return err
	}
	return c.JSON(v)
}

// removeMember is the owner removing someone: the same path as a leave
// (Postgres, then the cached member set with the "left" events, so the
// removed user's sends are refused and their sockets drop the room), with
// a member_removed event posted first, as the owner.
func (s *Server) removeMember(c *fiber.Ctx) error {
	target, err := parseUUIDParam(c, "user_id")
	if err != nil {
		return err
	}
	room, err := s.ownedRoom(c)
	if err != nil {
		return err
	}
	ctx, me := c.UserContext(), userID(c)
	if target == me {
		return chatflow.Errorf(chatflow.ECodeValidation, "to leave your own room use DELETE /rooms/%s/members/me", room.ID)
	}
	if room.Kind == chatflow.RoomKindDM {
		return chatflow.Errorf(chatflow.ECodeValidation, "members of a direct message room cannot be removed")
	}
	if err := s.postLeaving(ctx, room.ID, target, me); err != nil {
		if chatflow.ErrorCode(err) != chatflow.ECodeNotMember {
			return err
		}
		// not a member in Postgres: heal the cache (a retry after the
		// second step failed), then say so
		if err := s.chat.MemberRemoved(ctx, room.ID, target); err != nil {
			return err
		}
		return chatflow.Errorf(chatflow.ECodeNotFound, "user %s is not a member of room %s", target, room.ID)
	}
	if _, err := s.Queries.RemoveMember(ctx, db.RemoveMemberParams{RoomID: room.ID, UserID: target}); err != nil {
		return err
	}
	if _, err := s.chat.Leave(ctx, room.ID, target); err != nil {
		return err
	}
	return c.SendStatus(fiber.StatusNoContent)
}

func (s *Server) muteRoom(c *fiber.Ctx) error {
	var req struct {
		Muted *bool `json:"muted"`
	}
	if err := decode(c, &req); err != nil {
		return err
	}
	if req.Muted == nil {
		return chatflow.Errorf(chatflow.ECodeValidation, "muted must be true or false")
	}
	room, err := s.callerRoom(c)
	if err != nil {
		return err
	}
	ctx, me := c.UserContext(), userID(c)
	n, err := s.Queries.SetMuted(ctx, db.SetMutedParams{RoomID: room.ID, UserID: me, Muted: *req.Muted})
	if err != nil {
		return err
	}
	if n == 0 {
		return chatflow.Errorf(chatflow.ECodeNotMember, "you are not a member of room %s", room.ID)
	}
	v, err := s.roomView(ctx, room, me)
	if err != nil {
		return err
	}
	return c.JSON(v)
}
