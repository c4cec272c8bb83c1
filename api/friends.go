package api

import (
	"context"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/chatflow/chatflow"
	"github.com/chatflow/chatflow/chat"
	"github.com/chatflow/chatflow/db"
)

// Mutual friendship. A friendship starts as a request (from → to) and
// becomes mutual when the other user accepts it; chat.friends then holds
// both directions, and only then may either add the other to a room
// directly (see consent in invitations.go). Every write to one pair's rows
// runs in a transaction that first takes the pair's lock (LockFriendPair),
// so concurrent calls on the same two users happen one after the other.
//
// A request to a user who already asked the caller accepts theirs: two
// users asking each other at the same moment end as friends, never as two
// pending requests. A block (either way) refuses requests with 403
// forbidden, like room invitations; blocking removes pending requests.
// Requests are charged to the sender's invite budget (RATE_INVITE).

// maxFriendRequestsListed bounds GET /friends/requests (newest first).
const maxFriendRequestsListed = 200

// friendRequestView is a pending request as one side sees it: user is the
// other side.
type friendRequestView struct {
	User      userView  `json:"user"`
	Direction string    `json:"direction"` // incoming, outgoing
	CreatedAt time.Time `json:"created_at"`
}

// friendAccepted answers a request that accepted the other user's.
type friendAccepted struct {
	Status string   `json:"status"` // accepted
	Friend userView `json:"friend"`
}

// friendEvent is the live frame of a friendship change on each side's user
// channel; user is the other side, direction is set for request events.
type friendEvent struct {
	Type      string   `json:"type"`  // friend
	Event     string   `json:"event"` // requested, accepted, declined, canceled, removed
	User      userView `json:"user"`
	Direction string   `json:"direction,omitempty"`
}

// tellPair tells both sides of a change, live, once it is committed
// (best effort: a failed lookup or publish does not undo it). direction is
// the caller's view of the request ("" for friendship events); the other
// side sees it reversed.
func (s *Server) tellPair(ctx context.Context, event string, meID uuid.UUID, other db.ChatProfile, direction string) {
	me, err := s.Queries.GetProfile(ctx, meID)
	if err != nil {
		return
	}
	back := ""
	switch direction {
	case "outgoing":
		back = "incoming"
	case "incoming":
		back = "outgoing"
	}
	_ = s.chat.Publish(ctx, chat.UserChannel(me.UserID.String()), friendEvent{Type: "friend", Event: event, User: profileView(other), Direction: direction})
	_ = s.chat.Publish(ctx, chat.UserChannel(other.UserID.String()), friendEvent{Type: "friend", Event: event, User: profileView(me), Direction: back})
}

// liveProfile returns a user's profile, or not_found for an unknown or
// deleted user.
func (s *Server) liveProfile(ctx context.Context, id uuid.UUID) (db.ChatProfile, error) {
	p, err := s.Queries.GetProfile(ctx, id)
	if isNotFound(err) || err == nil && p.DeletedAt != nil {
		return p, chatflow.Errorf(chatflow.ECodeNotFound, "user %s not found", id)
	}
	return p, err
}

// friendTarget resolves the body of a friend request: exactly one of
// user_id and username. A well-formed request costs one from the caller's
// invite budget (RATE_INVITE, shared with room invitations) before any
// lookup, so that neither asking nor probing for names is free.
func (s *Server) friendTarget(c *fiber.Ctx, me uuid.UUID) (db.ChatProfile, error) {
	var req struct {
		UserID   *string `json:"user_id"`
		Username *string `json:"username"`
	}
	if err := decode(c, &req); err != nil {
		return db.ChatProfile{}, err
	}
	var id uuid.UUID
	switch {
	case (req.UserID == nil) == (req.Username == nil):
		return db.ChatProfile{}, chatflow.Errorf(chatflow.ECodeValidation, "give exactly one of user_id and username")
	case req.UserID != nil:
		var err error
		if id, err = uuid.Parse(*req.UserID); err != nil {
			return db.ChatProfile{}, chatflow.Errorf(chatflow.ECodeValidation, "user_id is not a valid id")
		}
		if id == me {
			return db.ChatProfile{}, chatflow.Errorf(chatflow.ECodeCannotAddSelf, "you cannot befriend yourself")
		}
	case !chatflow.ValidUsername(*req.Username):
		return db.ChatProfile{}, chatflow.Errorf(chatflow.ECodeValidation, "username is not valid")
	}
	ctx := c.UserContext()
	if err := s.limits.Invite(ctx, me, 1); err != nil {
		return db.ChatProfile{}, err
	}
	if req.UserID != nil {
		return s.liveProfile(ctx, id)
	}
	p, err := s.Queries.GetProfileByUsername(ctx, *req.Username)
	if isNotFound(err) || err == nil && p.DeletedAt != nil {
		return p, chatflow.Errorf(chatflow.ECodeNotFound, "no user %q", *req.Username)
	}
	if err == nil && p.UserID == me {
		return p, chatflow.Errorf(chatflow.ECodeCannotAddSelf, "you cannot befriend yourself")
	}
	return p, err
}

// inPair runs fn in a transaction holding the lock of the pair (a, b).
func (s *Server) inPair(ctx context.Context, a, b uuid.UUID, fn func(q *db.Queries) error) error {
	return pgx.BeginFunc(ctx, s.Pool, func(tx pgx.Tx) error {
		q := db.New(tx)
		if err := q.LockFriendPair(ctx, db.LockFriendPairParams{A: a, B: b}); err != nil {
			return err
		}
		return fn(q)
	})
}

// sendFriendRequest is POST /friends/requests (and the deprecated POST
// /friends): 201 with the new request, or 200 when it accepted the other
// user's pending request to the caller.
func (s *Server) sendFriendRequest(c *fiber.Ctx) error {
	ctx, me := c.UserContext(), userID(c)
	other, err := s.friendTarget(c, me)
	if err != nil {
		return err
	}
	var (
		req      db.ChatFriendRequest
		accepted bool
	)
	err = s.inPair(ctx, me, other.UserID, func(q *db.Queries) error {
		st, err := q.FriendPairState(ctx, db.FriendPairStateParams{Me: me, Other: other.UserID})
		switch {
		case err != nil:
			return err
		case st.BlockedMe:
			return chatflow.Errorf(chatflow.ECodeForbidden, "%s does not accept friend requests from you", other.Username)
		case st.IBlocked:
			return chatflow.Errorf(chatflow.ECodeForbidden, "you have blocked %s; unblock them first", other.Username)
		case st.Friends:
			return chatflow.Errorf(chatflow.ECodeAlreadyFriends, "%s is already your friend", other.Username)
		case st.Outgoing:
			return chatflow.Errorf(chatflow.ECodeRequestPending, "your request to %s is pending", other.Username)
		case st.Incoming:
			// they asked first: asking back is accepting
			if _, err := q.AcceptFriendRequest(ctx, db.AcceptFriendRequestParams{FromID: other.UserID, ToID: me}); isNotFound(err) {
				// only a deletion of their account (which drops requests) gets here
				return chatflow.Errorf(chatflow.ECodeNotFound, "user %s not found", other.UserID)
			} else if err != nil {
				return err
			}
			accepted = true
			return nil
		}
		req, err = q.CreateFriendRequest(ctx, db.CreateFriendRequestParams{FromID: me, ToID: other.UserID})
		return err
	})
	if err != nil {
		return err
	}
	// committed: the events are best effort, the answer is not
	if accepted {
		s.tellPair(ctx, "accepted", me, other, "")
		return c.JSON(friendAccepted{Status: "accepted", Friend: profileView(other)})
	}
	s.tellPair(ctx, "requested", me, other, "outgoing")
	return c.Status(fiber.StatusCreated).JSON(friendRequestView{User: profileView(other), Direction: "outgoing", CreatedAt: req.CreatedAt.UTC()})
}

// listFriendRequests is GET /friends/requests?direction=incoming|outgoing.
func (s *Server) listFriendRequests(c *fiber.Ctx) error {
	ctx, me := c.UserContext(), userID(c)
	dir := c.Query("direction", "incoming")
	var rows []db.ListIncomingFriendRequestsRow
	var err error
	switch dir {
	case "incoming":
		rows, err = s.Queries.ListIncomingFriendRequests(ctx, db.ListIncomingFriendRequestsParams{Me: me, Lim: maxFriendRequestsListed})
	case "outgoing":
		var out []db.ListOutgoingFriendRequestsRow
		out, err = s.Queries.ListOutgoingFriendRequests(ctx, db.ListOutgoingFriendRequestsParams{Me: me, Lim: maxFriendRequestsListed})
		for _, r := range out {
			rows = append(rows, db.ListIncomingFriendRequestsRow(r))
		}
	default:
		return chatflow.Errorf(chatflow.ECodeValidation, "direction must be incoming or outgoing")
	}
	if err != nil {
		return err
	}
	views := make([]friendRequestView, len(rows))
	for i, r := range rows {
		views[i] = friendRequestView{User: profileView(r.ChatProfile), Direction: dir, CreatedAt: r.RequestedAt.UTC()}
	}
	return c.JSON(fiber.Map{"requests": views})
}

// acceptFriendRequest is POST /friends/requests/{user_id}/accept: the
// request from user_id to the caller becomes a friendship.
func (s *Server) acceptFriendRequest(c *fiber.Ctx) error {
	other, err := parseUUIDParam(c, "user_id")
	if err != nil {
		return err
	}
	ctx, me := c.UserContext(), userID(c)
	p, err := s.liveProfile(ctx, other)
	if err != nil {
		return err
	}
	err = s.inPair(ctx, me, other, func(q *db.Queries) error {
		_, err := q.AcceptFriendRequest(ctx, db.AcceptFriendRequestParams{FromID: other, ToID: me})
		if isNotFound(err) {
			return chatflow.Errorf(chatflow.ECodeNotFound, "no friend request from %s", other)
		}
		return err
	})
	if err != nil {
		return err
	}
	s.tellPair(ctx, "accepted", me, p, "")
	return c.JSON(profileView(p))
}

// dropFriendRequest removes the request from → to: declined by to or
// canceled by from. Both sides are told.
func (s *Server) dropFriendRequest(c *fiber.Ctx, incoming bool) error {
	other, err := parseUUIDParam(c, "user_id")
	if err != nil {
		return err
	}
	ctx, me := c.UserContext(), userID(c)
	arg, event, dir := db.DeleteFriendRequestParams{FromID: me, ToID: other}, "canceled", "outgoing"
	if incoming {
		arg, event, dir = db.DeleteFriendRequestParams{FromID: other, ToID: me}, "declined", "incoming"
	}
	err = s.inPair(ctx, me, other, func(q *db.Queries) error {
		_, err := q.DeleteFriendRequest(ctx, arg)
		if isNotFound(err) {
			return chatflow.Errorf(chatflow.ECodeNotFound, "no %s friend request with %s", dir, other)
		}
		return err
	})
	if err != nil {
		return err
	}
	if p, err := s.Queries.GetProfile(ctx, other); err == nil {
		s.tellPair(ctx, event, me, p, dir)
	}
	return c.SendStatus(fiber.StatusNoContent)
}

// declineFriendRequest is POST /friends/requests/{user_id}/decline.
func (s *Server) declineFriendRequest(c *fiber.Ctx) error { return s.dropFriendRequest(c, true) }

// cancelFriendRequest is DELETE /friends/requests/{user_id}.
func (s *Server) cancelFriendRequest(c *fiber.Ctx) error { return s.dropFriendRequest(c, false) }

// removeFriend is DELETE /friends/{user_id}: the friendship ends for both.
func (s *Server) removeFriend(c *fiber.Ctx) error {
	other, err := parseUUIDParam(c, "user_id")
	if err != nil {
		return err
	}
	ctx, me := c.UserContext(), userID(c)
	err = s.inPair(ctx, me, other, func(q *db.Queries) error {
		n, err := q.Unfriend(ctx, db.UnfriendParams{A: me, B: other})
		if err == nil && n == 0 {
			return chatflow.Errorf(chatflow.ECodeNotFound, "%s is not your friend", other)
		}
		return err
	})
	if err != nil {
		return err
	}
	if p, err := s.Queries.GetProfile(ctx, other); err == nil {
		s.tellPair(ctx, "removed", me, p, "")
	}
	return c.SendStatus(fiber.StatusNoContent)
}
