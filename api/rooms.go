package api

import (
	"context"
	"slices"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/chatflow/chatflow"
	"github.com/chatflow/chatflow/chat"
	"github.com/chatflow/chatflow/db"
)

type memberView struct {
	UserID      string `json:"user_id"`
	Username    string `json:"username"`
	DisplayName string `json:"display_name"`
	LastReadSeq int64  `json:"last_read_seq"`
	AvatarURL   string `json:"avatar_url,omitempty"`
	Online      bool   `json:"online"`
	// LastSeenAt is when an offline member's last socket closed (null
	// while online or never seen).
	LastSeenAt *time.Time `json:"last_seen_at"`
}

type roomView struct {
	RoomID      string            `json:"room_id"`
	Name        string            `json:"name"`
	Members     []memberView      `json:"members,omitempty"`
	LastSeq     int64             `json:"last_seq"`
	UnreadCount int64             `json:"unread_count"`
	LastMessage *chatflow.Message `json:"last_message"`
	CreatedAt   time.Time         `json:"created_at"`
	LastReadSeq int64             `json:"last_read_seq"`
	// PendingInvitations lists, in the answer to a creation or an invite,
	// the named users who were invited rather than added (no consent yet).
	PendingInvitations []pendingView `json:"pending_invitations,omitempty"`
	roomAdminView
}

func (s *Server) createRoom(c *fiber.Ctx) error {
	var req struct {
		Name      string   `json:"name"`
		MemberIDs []string `json:"member_ids"`
	}
	if err := decode(c, &req); err != nil {
		return err
	}
	req.Name = strings.TrimSpace(req.Name)
	if err := chatflow.ValidRoomName(req.Name); err != nil {
		return err
	}
	if err := s.membersPerCall("member_ids", len(req.MemberIDs), true); err != nil {
		return err
	}
	me := userID(c)
	ids, err := parseIDs(append(req.MemberIDs, me.String()))
	if err != nil {
		return err
	}
	others := without(ids, me)
	ctx := c.UserContext()
	if err := s.limits.CreateRoom(ctx, me); err != nil {
		return err
	}
	if err := s.limits.Invite(ctx, me, len(others)); err != nil {
		return err
	}
	if n, err := s.Queries.ProfilesExist(ctx, ids); err != nil {
		return err
	} else if int(n) != len(ids) {
		return chatflow.Errorf(chatflow.ECodeValidation, "member_ids contains unknown users")
	}
	var (
		room    db.ChatRoom
		members []uuid.UUID
		invs    []db.ChatInvitation
	)
	err = pgx.BeginFunc(ctx, s.Pool, func(tx pgx.Tx) error {
		q := db.New(tx)
		if err := s.roomsCap(ctx, q, me); err != nil {
			return err
		}
		pl, err := consent(ctx, q, me, others)
		if err != nil {
			return err
		}
		members = append([]uuid.UUID{me}, pl.direct...)
		if room, err = q.CreateRoom(ctx, db.CreateRoomParams{ID: uuid.New(), Name: req.Name, CreatedBy: me}); err != nil {
			return err
		}
		if _, err = q.AddMembers(ctx, db.AddMembersParams{RoomID: room.ID, UserIds: members}); err != nil {
			return err
		}
		invs, err = q.CreateInvitations(ctx, db.CreateInvitationsParams{RoomID: room.ID, InviterID: me, UserIds: pl.invite})
		return err
	})
	if err != nil {
		return err
	}
	if err := s.chat.SeedRoom(ctx, room.ID, members); err != nil {
		return err
	}
	for _, id := range members {
		ev := "invited"
		if id == me {
			ev = "joined"
		}
		s.roomEvent(ctx, chat.UserChannel(id.String()), ev, room.ID, id)
	}
	s.invitationsSent(ctx, room, invs)
	v, err := s.roomView(ctx, room, me)
	if err != nil {
		return err
	}
	v.PendingInvitations = pendingViews(invs)
	return c.Status(fiber.StatusCreated).JSON(v)
}

// roomView renders a room as the caller sees it: unread and read marker are
// the caller's own.
func (s *Server) roomView(ctx context.Context, room db.ChatRoom, caller uuid.UUID) (roomView, error) {
	rows, err := s.Queries.RoomMembers(ctx, room.ID)
	if err != nil {
		return roomView{}, err
	}
	var lastRead int64
	ids := make([]uuid.UUID, len(rows))
	for i, r := range rows {
		ids[i] = r.UserID
		if r.UserID == caller {
			lastRead = r.LastReadSeq
		}
	}
	v := roomView{RoomID: room.ID.String(), Name: room.Name, CreatedAt: room.CreatedAt.UTC(), LastReadSeq: lastRead}
	online := s.chat.Online(ctx, ids)
	seen, err := s.lastSeen(ctx, ids, online)
	if err != nil {
		return roomView{}, err
	}
	for i, r := range rows {
		v.Members = append(v.Members, memberView{
			UserID: r.UserID.String(), Username: r.Username, DisplayName: r.DisplayName,
			LastReadSeq: r.LastReadSeq, Online: online[i], LastSeenAt: seen[i],
			AvatarURL: avatarURL(r.UserID, r.AvatarKey, r.AvatarVersion),
		})
	}
	live, err := s.chat.LiveState(ctx, []uuid.UUID{room.ID})
	if err != nil {
		return roomView{}, err
	}
	st := live[room.ID]
	v.LastSeq = max(st.Seq, room.LastSeq)
	v.LastMessage = st.Last
	own, err := s.ownUnread(ctx, caller, []uuid.UUID{room.ID})
	if err != nil {
		return roomView{}, err
	}
	v.UnreadCount = max(v.LastSeq-lastRead-own[room.ID], 0)
	muted, err := s.Queries.MemberMuted(ctx, db.MemberMutedParams{RoomID: room.ID, UserID: caller})
	if err != nil && !isNotFound(err) {
		return roomView{}, err
	}
	v.roomAdminView = adminView(room.CreatedBy, room.Kind, caller, muted, int64(len(rows)), otherNames(rows, caller))
	return v, nil
}

// ownUnread counts the caller's own messages after their read marker in
// each room, which unread_count leaves out. It reads Postgres, so an own
// message the batcher has not written yet still counts for a moment.
func (s *Server) ownUnread(ctx context.Context, caller uuid.UUID, rooms []uuid.UUID) (map[uuid.UUID]int64, error) {
	rows, err := s.Queries.OwnUnread(ctx, db.OwnUnreadParams{UserID: caller, RoomIds: rooms})
	if err != nil {
		return nil, err
	}
	out := make(map[uuid.UUID]int64, len(rows))
	for _, r := range rows {
		out[r.RoomID] = r.N
	}
	return out, nil
}

func (s *Server) listRooms(c *fiber.Ctx) error {
	ctx := c.UserContext()
	rows, err := s.Queries.ListRooms(ctx, db.ListRoomsParams{UserID: userID(c), Lim: 500})
	if err != nil {
		return err
	}
	ids := make([]uuid.UUID, len(rows))
	for i, r := range rows {
		ids[i] = r.ID
	}
	live, err := s.chat.LiveState(ctx, ids)
	if err != nil {
		return err
	}
	own, err := s.ownUnread(ctx, userID(c), ids)
	if err != nil {
		return err
	}
	out := make([]roomView, len(rows))
	for i, r := range rows {
		st := live[r.ID]
		last := max(st.Seq, r.LastSeq)
		out[i] = roomView{
			RoomID: r.ID.String(), Name: r.Name, CreatedAt: r.CreatedAt.UTC(), LastSeq: last,
			UnreadCount: max(last-r.LastReadSeq-own[r.ID], 0), LastMessage: st.Last, LastReadSeq: r.LastReadSeq,
		}
		out[i].roomAdminView = adminView(r.CreatedBy, r.Kind, userID(c), false, 0, []string{})
	}
	if err := s.summarize(ctx, userID(c), ids, out); err != nil {
		return err
	}
	// newest activity first, by live data (Postgres lags by one batch)
	sortRooms(out)
	return c.JSON(out) // the contract lists the rooms themselves
}

func activity(v roomView) time.Time {
	if v.LastMessage != nil {
		return v.LastMessage.SentAt
	}
	return v.CreatedAt
}

func sortRooms(rs []roomView) {
	slices.SortStableFunc(rs, func(a, b roomView) int { return activity(b).Compare(activity(a)) })
}

// membership loads a room and checks the caller belongs to it: 404 if the
// room does not exist, 403 not_member otherwise.
func (s *Server) membership(ctx context.Context, room, user uuid.UUID) (db.ChatRoom, error) {
	r, err := s.Queries.GetRoom(ctx, room)
	if isNotFound(err) {
		return r, chatflow.Errorf(chatflow.ECodeNotFound, "room %s not found", room)
	}
	if err != nil {
		return r, err
	}
	ok, err := s.Queries.IsMember(ctx, db.IsMemberParams{RoomID: room, UserID: user})
	if err != nil {
		return r, err
	}
	if !ok {
		return r, chatflow.Errorf(chatflow.ECodeNotMember, "you are not a member of room %s", room)
	}
	return r, nil
}

// callerRoom loads the room of the path's :room_id, checking the caller
// belongs to it.
func (s *Server) callerRoom(c *fiber.Ctx) (db.ChatRoom, error) {
	id, err := parseUUIDParam(c, "room_id")
	if err != nil {
		return db.ChatRoom{}, err
	}
	return s.membership(c.UserContext(), id, userID(c))
}

func (s *Server) getRoom(c *fiber.Ctx) error {
	room, err := s.callerRoom(c)
	if err != nil {
		return err
	}
	v, err := s.roomView(c.UserContext(), room, userID(c))
	if err != nil {
		return err
	}
	return c.JSON(v)
}

func (s *Server) invite(c *fiber.Ctx) error {
	id, err := parseUUIDParam(c, "room_id")
	if err != nil {
		return err
	}
	var req struct {
		UserIDs []string `json:"user_ids"`
	}
	if err := decode(c, &req); err != nil {
		return err
	}
	if len(req.UserIDs) == 0 {
		return chatflow.Errorf(chatflow.ECodeValidation, "user_ids must list at least one user")
	}
	if err := s.membersPerCall("user_ids", len(req.UserIDs), false); err != nil {
		return err
	}
	ids, err := parseIDs(req.UserIDs)
	if err != nil {
		return err
	}
	ctx, me := c.UserContext(), userID(c)
	room, err := s.membership(ctx, id, me)
	if err != nil {
		return err
	}
	if room.Kind == chatflow.RoomKindDM {
		return chatflow.Errorf(chatflow.ECodeValidation, "a direct message room cannot get more members")
	}
	if n, err := s.Queries.ProfilesExist(ctx, ids); err != nil {
		return err
	} else if int(n) != len(ids) {
		return chatflow.Errorf(chatflow.ECodeValidation, "user_ids contains unknown users")
	}
	others := without(ids, me)
	if err := s.limits.Invite(ctx, me, len(others)); err != nil {
		return err
	}
	var (
		added   []uuid.UUID
		invs    []db.ChatInvitation
		pending []db.ChatInvitation
	)
	err = pgx.BeginFunc(ctx, s.Pool, func(tx pgx.Tx) error {
		q := db.New(tx)
		pl, err := consent(ctx, q, me, others)
		if err != nil {
			return err
		}
		if added, err = q.AddMembers(ctx, db.AddMembersParams{RoomID: id, UserIds: pl.direct}); err != nil {
			return err
		}
		if invs, err = q.CreateInvitations(ctx, db.CreateInvitationsParams{RoomID: id, InviterID: me, UserIds: pl.invite}); err != nil {
			return err
		}
		pending, err = q.PendingInvitationsFor(ctx, db.PendingInvitationsForParams{RoomID: id, UserIds: pl.invite})
		return err
	})
	if err != nil {
		return err
	}
	if err := s.chat.MembersAdded(ctx, id, added); err != nil {
		return err
	}
	for _, a := range added {
		s.roomEvent(ctx, chat.UserChannel(a.String()), "invited", id, a)
		s.roomEvent(ctx, chat.RoomChannel(id.String()), "joined", id, a)
	}
	s.invitationsSent(ctx, room, invs)
	s.postJoined(ctx, id, me, added)
	s.postInvited(ctx, me, invs)
	v, err := s.roomView(ctx, room, me)
	if err != nil {
		return err
	}
	v.PendingInvitations = pendingViews(pending)
	return c.JSON(v)
}

// leave removes the caller from a room: Postgres first, then the cached
// member set with the "left" events, atomically (chat.Leave). Once it
// returns, the caller's sends are refused and its sockets no longer get the
// room. A repeated leave (say, a retry after the second step failed) redoes
// the second step before answering not_member.
func (s *Server) leave(c *fiber.Ctx) error {
	id, err := parseUUIDParam(c, "room_id")
	if err != nil {
		return err
	}
	ctx, me := c.UserContext(), userID(c)
	if _, err := s.Queries.GetRoom(ctx, id); isNotFound(err) {
		return chatflow.Errorf(chatflow.ECodeNotFound, "room %s not found", id)
	} else if err != nil {
		return err
	}
	// the member_left event goes first: only a member may post it
	if err := s.postLeaving(ctx, id, me, me); err != nil && chatflow.ErrorCode(err) != chatflow.ECodeNotMember {
		return err
	}
	n, err := s.Queries.RemoveMember(ctx, db.RemoveMemberParams{RoomID: id, UserID: me})
	if err != nil {
		return err
	}
	if n == 0 {
		if err := s.chat.MemberRemoved(ctx, id, me); err != nil {
			return err
		}
		return chatflow.Errorf(chatflow.ECodeNotMember, "you are not a member of room %s", id)
	}
	if _, err := s.chat.Leave(ctx, id, me); err != nil {
		return err
	}
	return c.SendStatus(fiber.StatusNoContent)
}

// roomEvent tells the connections of a room or of a user, on every node,
// that user's membership of room changed (realtime's hub follows these to
// join and leave room channels). Delivery is best effort, as fan-out is.
func (s *Server) roomEvent(ctx context.Context, channel, event string, room, user uuid.UUID) {
	_ = s.chat.Publish(ctx, channel, chat.RoomEvent{Type: "room", Event: event, RoomID: room.String(), UserID: user.String()})
}
