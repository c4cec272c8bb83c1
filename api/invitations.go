package api

import (
	"context"
	"log/slog"
	"net/netip"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/chatflow/chatflow"
	"github.com/chatflow/chatflow/chat"
	"github.com/chatflow/chatflow/db"
	"github.com/chatflow/chatflow/ratelimit"
)

// Consent-based membership. A user named in a room creation or an invite
// joins at once only if they are the caller's friend (friendship is
// mutual: they accepted the caller's request or the caller accepted
// theirs, see friends.go; a pending request is not consent); everyone
// else gets a pending invitation to accept or decline. A user
// who has blocked the caller cannot be named at all: the whole call is
// refused with 403 forbidden, nothing is created.

// maxMembersHard bounds member lists even with the per-call cap disabled.
const maxMembersHard = 1000

// clientIP is the rate-limit key of the request's client address.
func (s *Server) clientIP(c *fiber.Ctx) string {
	peer, _ := netip.AddrFromSlice(c.Context().RemoteIP())
	return s.limits.ClientIP(peer, c.Get(fiber.HeaderXForwardedFor))
}

// membersPerCall refuses member lists longer than the per-call cap.
// atCreation: the caller (always a member) is not counted.
func (s *Server) membersPerCall(field string, n int, atCreation bool) error {
	limit := s.limits.Config().MembersPerCall
	if limit <= 0 || limit > maxMembersHard {
		limit = maxMembersHard
	}
	if n > limit {
		s.limits.Refused(ratelimit.MembersPerCall)
		if atCreation {
			return chatflow.Errorf(chatflow.ECodeValidation, "%s may list at most %d users at creation", field, limit)
		}
		return chatflow.Errorf(chatflow.ECodeValidation, "%s must list 1-%d users", field, limit)
	}
	return nil
}

// roomsCap refuses a room creation past the creator's total. It runs in the
// creation's transaction, with the creator's row locked, so concurrent
// creations cannot overshoot.
func (s *Server) roomsCap(ctx context.Context, q *db.Queries, me uuid.UUID) error {
	limit := s.limits.Config().RoomsPerCreator
	if limit <= 0 {
		return nil
	}
	if err := q.LockCreator(ctx, me); err != nil {
		return err
	}
	n, err := q.CountRoomsCreatedBy(ctx, me)
	if err != nil {
		return err
	}
	if n >= int64(limit) {
		s.limits.Refused(ratelimit.RoomsPerCreator)
		return chatflow.Errorf(chatflow.ECodeValidation, "you have created %d rooms, the most one user may create", n)
	}
	return nil
}

func without(ids []uuid.UUID, me uuid.UUID) []uuid.UUID {
	out := make([]uuid.UUID, 0, len(ids))
	for _, id := range ids {
		if id != me {
			out = append(out, id)
		}
	}
	return out
}

// placement is how the users named by an inviter join a room.
type placement struct {
	direct []uuid.UUID // consented: members now
	invite []uuid.UUID // invited: members once they accept
}

// consent sorts the users named by inviter (never the inviter) into those
// added directly and those invited, refusing the call if any of them has
// blocked the inviter.
func consent(ctx context.Context, q *db.Queries, inviter uuid.UUID, ids []uuid.UUID) (placement, error) {
	var pl placement
	if len(ids) == 0 {
		return pl, nil
	}
	blockers, err := q.BlockersOf(ctx, db.BlockersOfParams{BlockedID: inviter, UserIds: ids})
	if err != nil {
		return pl, err
	}
	if len(blockers) > 0 {
		return pl, chatflow.Errorf(chatflow.ECodeForbidden, "%d of the users named do not accept invitations from you", len(blockers))
	}
	ok, err := q.ConsentingUsers(ctx, db.ConsentingUsersParams{InviterID: inviter, UserIds: ids})
	if err != nil {
		return pl, err
	}
	yes := make(map[uuid.UUID]bool, len(ok))
	for _, id := range ok {
		yes[id] = true
	}
	for _, id := range ids {
		if yes[id] {
			pl.direct = append(pl.direct, id)
		} else {
			pl.invite = append(pl.invite, id)
		}
	}
	return pl, nil
}

// pendingView is an invitation in the answer to a creation or an invite.
type pendingView struct {
	InvitationID string `json:"invitation_id"`
	UserID       string `json:"user_id"`
}

func pendingViews(invs []db.ChatInvitation) []pendingView {
	out := make([]pendingView, len(invs))
	for i, inv := range invs {
		out[i] = pendingView{InvitationID: inv.ID.String(), UserID: inv.InviteeID.String()}
	}
	return out
}

// invitationEvent is the live frame of an invitation, on the invitee's user
// channel (and, once answered, the inviter's).
type invitationEvent struct {
	Type         string `json:"type"`  // "invitation"
	Event        string `json:"event"` // received, accepted, declined
	InvitationID string `json:"invitation_id"`
	RoomID       string `json:"room_id"`
	RoomName     string `json:"room_name,omitempty"`
	InviterID    string `json:"inviter_id"`
	InviteeID    string `json:"invitee_id"`
}

func invitationFrame(event string, inv db.ChatInvitation, roomName string) invitationEvent {
	return invitationEvent{
		Type: "invitation", Event: event, InvitationID: inv.ID.String(), RoomID: inv.RoomID.String(),
		RoomName: roomName, InviterID: inv.InviterID.String(), InviteeID: inv.InviteeID.String(),
	}
}

// invitationsSent tells each invitee, live, about a new invitation.
func (s *Server) invitationsSent(ctx context.Context, room db.ChatRoom, invs []db.ChatInvitation) {
	for _, inv := range invs {
		_ = s.chat.Publish(ctx, chat.UserChannel(inv.InviteeID.String()), invitationFrame("received", inv, room.Name))
	}
}

type userRef struct {
	UserID      string `json:"user_id"`
	Username    string `json:"username"`
	DisplayName string `json:"display_name"`
}

type invitationView struct {
	InvitationID string    `json:"invitation_id"`
	RoomID       string    `json:"room_id"`
	RoomName     string    `json:"room_name"`
	Inviter      userRef   `json:"inviter"`
	CreatedAt    time.Time `json:"created_at"`
}

// maxInvitationsListed bounds GET /invitations (newest first).
const maxInvitationsListed = 200

func (s *Server) listInvitations(c *fiber.Ctx) error {
	rows, err := s.Queries.ListMyInvitations(c.UserContext(), db.ListMyInvitationsParams{InviteeID: userID(c), Lim: maxInvitationsListed})
	if err != nil {
		return err
	}
	out := make([]invitationView, len(rows))
	for i, r := range rows {
		out[i] = invitationView{
			InvitationID: r.ID.String(), RoomID: r.RoomID.String(), RoomName: r.RoomName,
			Inviter:   userRef{UserID: r.InviterID.String(), Username: r.InviterUsername, DisplayName: r.InviterDisplayName},
			CreatedAt: r.CreatedAt.UTC(),
		}
	}
	return c.JSON(out)
}

// respond answers one of the caller's pending invitations: 404 if it is
// not theirs, 409 conflict if it was answered already.
func (s *Server) respond(ctx context.Context, q db.Querier, id, me uuid.UUID, status string) (db.ChatInvitation, error) {
	inv, err := q.RespondInvitation(ctx, db.RespondInvitationParams{ID: id, InviteeID: me, Status: status})
	if !isNotFound(err) {
		return inv, err
	}
	prev, err := q.GetInvitation(ctx, db.GetInvitationParams{ID: id, InviteeID: me})
	if isNotFound(err) {
		return inv, chatflow.Errorf(chatflow.ECodeNotFound, "invitation %s not found", id)
	}
	if err != nil {
		return inv, err
	}
	return inv, chatflow.Errorf(chatflow.ECodeConflict, "invitation %s was already %s", id, prev.Status)
}

func (s *Server) acceptInvitation(c *fiber.Ctx) error {
	id, err := parseUUIDParam(c, "invitation_id")
	if err != nil {
		return err
	}
	ctx, me := c.UserContext(), userID(c)
	var (
		inv   db.ChatInvitation
		added []uuid.UUID
	)
	err = pgx.BeginFunc(ctx, s.Pool, func(tx pgx.Tx) error {
		q := db.New(tx)
		var err error
		if inv, err = s.respond(ctx, q, id, me, "accepted"); err != nil {
			return err
		}
		added, err = q.AddMembers(ctx, db.AddMembersParams{RoomID: inv.RoomID, UserIds: []uuid.UUID{me}})
		return err
	})
	if err != nil {
		return err
	}
	room, err := s.Queries.GetRoom(ctx, inv.RoomID)
	if err != nil {
		return err
	}
	if err := s.chat.MembersAdded(ctx, inv.RoomID, added); err != nil {
		return err
	}
	if len(added) > 0 {
		// the invitee's sockets join the room; its members see them join
		s.roomEvent(ctx, chat.UserChannel(me.String()), "joined", inv.RoomID, me)
		s.roomEvent(ctx, chat.RoomChannel(inv.RoomID.String()), "joined", inv.RoomID, me)
		ev := chatflow.SystemEvent{Event: chatflow.EventMemberJoined, UserID: me.String()}
		if err := s.postSystem(ctx, me, inv.RoomID, "sys-join-"+inv.ID.String(), ev); err != nil {
			slog.WarnContext(ctx, "system event: member_joined", "room", inv.RoomID, "err", err)
		}
	}
	frame := invitationFrame("accepted", inv, room.Name)
	_ = s.chat.Publish(ctx, chat.UserChannel(me.String()), frame)
	_ = s.chat.Publish(ctx, chat.UserChannel(inv.InviterID.String()), frame)
	v, err := s.roomView(ctx, room, me)
	if err != nil {
		return err
	}
	return c.JSON(v)
}

func (s *Server) declineInvitation(c *fiber.Ctx) error {
	id, err := parseUUIDParam(c, "invitation_id")
	if err != nil {
		return err
	}
	ctx, me := c.UserContext(), userID(c)
	inv, err := s.respond(ctx, s.Queries, id, me, "declined")
	if err != nil {
		return err
	}
	frame := invitationFrame("declined", inv, "")
	_ = s.chat.Publish(ctx, chat.UserChannel(me.String()), frame)
	_ = s.chat.Publish(ctx, chat.UserChannel(inv.InviterID.String()), frame)
	return c.SendStatus(fiber.StatusNoContent)
}

// blockUser stops a user's invitations, direct adds and friend requests to
// the caller: their pending invitations are declined (silently: the
// blocked user is not told), and the friendship and pending friend
// requests between the two go (under the pair's friendship lock, so a
// concurrent accept cannot leave a friendship next to the block).
func (s *Server) blockUser(c *fiber.Ctx) error {
	target, err := parseUUIDParam(c, "user_id")
	if err != nil {
		return err
	}
	ctx, me := c.UserContext(), userID(c)
	if target == me {
		return chatflow.Errorf(chatflow.ECodeValidation, "you cannot block yourself")
	}
	if n, err := s.Queries.ProfilesExist(ctx, []uuid.UUID{target}); err != nil {
		return err
	} else if n == 0 {
		return chatflow.Errorf(chatflow.ECodeNotFound, "user %s not found", target)
	}
	var declined []db.ChatInvitation
	err = pgx.BeginFunc(ctx, s.Pool, func(tx pgx.Tx) error {
		q := db.New(tx)
		if err := q.LockFriendPair(ctx, db.LockFriendPairParams{A: me, B: target}); err != nil {
			return err
		}
		if err := q.BlockUser(ctx, db.BlockUserParams{UserID: me, BlockedID: target}); err != nil {
			return err
		}
		if err := q.DeleteFriendRequestsBetween(ctx, db.DeleteFriendRequestsBetweenParams{A: me, B: target}); err != nil {
			return err
		}
		if err := q.RemoveFriendship(ctx, db.RemoveFriendshipParams{A: me, B: target}); err != nil {
			return err
		}
		var err error
		declined, err = q.DeclineInvitationsFrom(ctx, db.DeclineInvitationsFromParams{InviteeID: me, InviterID: target})
		return err
	})
	if err != nil {
		return err
	}
	for _, inv := range declined { // the caller's other tabs drop them
		_ = s.chat.Publish(ctx, chat.UserChannel(me.String()), invitationFrame("declined", inv, ""))
	}
	return c.SendStatus(fiber.StatusNoContent)
}

func (s *Server) unblockUser(c *fiber.Ctx) error {
	target, err := parseUUIDParam(c, "user_id")
	if err != nil {
		return err
	}
	n, err := s.Queries.UnblockUser(c.UserContext(), db.UnblockUserParams{UserID: userID(c), BlockedID: target})
	if err != nil {
		return err
	}
	if n == 0 {
		return chatflow.Errorf(chatflow.ECodeNotFound, "user %s is not blocked", target)
	}
	return c.SendStatus(fiber.StatusNoContent)
}
