package api

import (
	"context"
	"log/slog"
	"time"

	"github.com/google/uuid"

	"github.com/chatflow/chatflow"
	"github.com/chatflow/chatflow/chat"
	"github.com/chatflow/chatflow/db"
)

// System events in a room's sequence.
//
// Membership changes and renames are recorded as kind-system messages,
// persisted and read like any other (history, sync), so a member who was
// offline sees them in seq order. Each is posted as the acting member with
// a client_msg_id derived from the change (membership version, invitation
// id, rename count): a retried request posts nothing twice. A leave or a
// removal posts before the membership goes (the poster must be a member,
// and a retry finds the same membership); a join posts after it is in.
// The live "room" events stay as they were: clients follow them.

// postSystem posts one system event into room as sender. A room whose
// cached state is being rebuilt by a concurrent membership change answers
// unavailable for a moment; the event is retried a few times (the cmid
// makes a retry safe) so that a leave racing sends does not fail on it.
func (s *Server) postSystem(ctx context.Context, sender, room uuid.UUID, cmid string, ev chatflow.SystemEvent) error {
	var err error
	for attempt := range 6 {
		if attempt > 0 {
			select {
			case <-ctx.Done():
				return err
			case <-time.After(time.Duration(10<<attempt) * time.Millisecond):
			}
		}
		if _, err = s.chat.AcceptKind(ctx, sender, room.String(), cmid, chatflow.KindSystem, ev.Body()); chatflow.ErrorCode(err) != chatflow.ECodeUnavailable {
			return err
		}
	}
	return err
}

// postJoined records users joining room, added by actor (the actor
// themselves for an accepted invitation). It runs after the change
// returned, so a failure is logged, not answered: the membership stands.
func (s *Server) postJoined(ctx context.Context, room, actor uuid.UUID, users []uuid.UUID) {
	if len(users) == 0 {
		return
	}
	rows, err := s.Queries.MembersJoinedAt(ctx, db.MembersJoinedAtParams{RoomID: room, UserIds: users})
	if err != nil {
		slog.WarnContext(ctx, "system event: read memberships", "room", room, "err", err)
		return
	}
	for _, r := range rows {
		ev := chatflow.SystemEvent{Event: chatflow.EventMemberJoined, UserID: r.UserID.String()}
		if r.UserID != actor {
			ev.ByUserID = actor.String()
		}
		cmid := "sys-join-" + r.UserID.String() + "-" + chatflow.MembershipVersion(r.JoinedAt)
		if err := s.postSystem(ctx, actor, room, cmid, ev); err != nil {
			slog.WarnContext(ctx, "system event: member_joined", "room", room, "user", r.UserID, "err", err)
		}
	}
}

// postInvited records the invitations actor sent to a room.
func (s *Server) postInvited(ctx context.Context, actor uuid.UUID, invs []db.ChatInvitation) {
	for _, inv := range invs {
		ev := chatflow.SystemEvent{Event: chatflow.EventMemberInvited, UserID: inv.InviteeID.String(), ByUserID: actor.String()}
		if err := s.postSystem(ctx, actor, inv.RoomID, "sys-inv-"+inv.ID.String(), ev); err != nil {
			slog.WarnContext(ctx, "system event: member_invited", "room", inv.RoomID, "err", err)
		}
	}
}

// postLeaving records, before the membership goes, that user leaves room
// (by is the owner removing them, or user itself). It answers not_member
// if user is not a member (any more).
func (s *Server) postLeaving(ctx context.Context, room, user, by uuid.UUID) error {
	rows, err := s.Queries.MembersJoinedAt(ctx, db.MembersJoinedAtParams{RoomID: room, UserIds: []uuid.UUID{user}})
	if err != nil {
		return err
	}
	if len(rows) == 0 {
		return chatflow.Errorf(chatflow.ECodeNotMember, "user %s is not a member of room %s", user, room)
	}
	ver := chatflow.MembershipVersion(rows[0].JoinedAt)
	if by == user {
		return s.postSystem(ctx, user, room, "sys-left-"+ver,
			chatflow.SystemEvent{Event: chatflow.EventMemberLeft, UserID: user.String()})
	}
	return s.postSystem(ctx, by, room, "sys-rm-"+user.String()+"-"+ver,
		chatflow.SystemEvent{Event: chatflow.EventMemberRemoved, UserID: user.String(), ByUserID: by.String()})
}

// renamedEvent is the live frame of a rename, on the room's channel.
type renamedEvent struct {
	Type   string `json:"type"`  // "room"
	Event  string `json:"event"` // "renamed"
	RoomID string `json:"room_id"`
	UserID string `json:"user_id"` // who renamed it
	Name   string `json:"name"`
}

func (s *Server) publishRenamed(ctx context.Context, room db.ChatRoom, by uuid.UUID) {
	_ = s.chat.Publish(ctx, chat.RoomChannel(room.ID.String()),
		renamedEvent{Type: "room", Event: "renamed", RoomID: room.ID.String(), UserID: by.String(), Name: room.Name})
}
