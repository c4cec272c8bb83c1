package api

import (
	"context"
	"encoding/json"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/chatflow/chatflow"
	"github.com/chatflow/chatflow/db"
)

type memberView struct {
	UserID      string `json:"user_id"`
	Username    string `json:"username"`
	DisplayName string `json:"display_name"`
	LastReadSeq int64  `json:"last_read_seq"`
	Online      bool   `json:"online"`
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
}

func parseUUIDParam(c *fiber.Ctx, name string) (uuid.UUID, error) {
	id, err := uuid.Parse(c.Params(name))
	if err != nil {
		return uuid.Nil, chatflow.Errorf(chatflow.ECodeNotFound, "%s %q is not a known id", name, c.Params(name))
	}
	return id, nil
}

func parseIDs(raw []string) ([]uuid.UUID, error) {
	seen := map[uuid.UUID]bool{}
	var ids []uuid.UUID
	for _, s := range raw {
		id, err := uuid.Parse(s)
		if err != nil {
			return nil, chatflow.Errorf(chatflow.ECodeValidation, "%q is not a user id", s)
		}
		if !seen[id] {
			seen[id] = true
			ids = append(ids, id)
		}
	}
	return ids, nil
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
	if len(req.MemberIDs) > 1000 {
		return chatflow.Errorf(chatflow.ECodeValidation, "at most 1000 members at creation")
	}
	me := userID(c)
	ids, err := parseIDs(append(req.MemberIDs, me.String()))
	if err != nil {
		return err
	}
	ctx := c.UserContext()
	if n, err := s.Queries.ProfilesExist(ctx, ids); err != nil {
		return err
	} else if int(n) != len(ids) {
		return chatflow.Errorf(chatflow.ECodeValidation, "member_ids contains unknown users")
	}
	var room db.ChatRoom
	err = pgx.BeginFunc(ctx, s.Pool, func(tx pgx.Tx) error {
		q := s.Queries.WithTx(tx)
		var err error
		if room, err = q.CreateRoom(ctx, db.CreateRoomParams{ID: uuid.New(), Name: req.Name, CreatedBy: me}); err != nil {
			return err
		}
		_, err = q.AddMembers(ctx, db.AddMembersParams{RoomID: room.ID, UserIds: ids})
		return err
	})
	if err != nil {
		return err
	}
	if err := s.chat.SeedRoom(ctx, room.ID, ids); err != nil {
		return err
	}
	for _, id := range ids {
		ev := "invited"
		if id == me {
			ev = "joined"
		}
		_ = s.publish(ctx, userChannel(id.String()), roomEvent{Type: "room", Event: ev, RoomID: room.ID.String(), UserID: id.String()})
	}
	v, err := s.roomView(ctx, room, me)
	if err != nil {
		return err
	}
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
	for i, r := range rows {
		v.Members = append(v.Members, memberView{
			UserID: r.UserID.String(), Username: r.Username, DisplayName: r.DisplayName,
			LastReadSeq: r.LastReadSeq, Online: online[i],
		})
	}
	live, err := s.chat.LiveState(ctx, []uuid.UUID{room.ID})
	if err != nil {
		return roomView{}, err
	}
	st := live[room.ID]
	v.LastSeq = max(st.Seq, room.LastSeq)
	v.LastMessage = st.Last
	v.UnreadCount = max(v.LastSeq-lastRead, 0)
	return v, nil
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
	out := make([]roomView, len(rows))
	for i, r := range rows {
		st := live[r.ID]
		last := max(st.Seq, r.LastSeq)
		out[i] = roomView{
			RoomID: r.ID.String(), Name: r.Name, CreatedAt: r.CreatedAt.UTC(), LastSeq: last,
			UnreadCount: max(last-r.LastReadSeq, 0), LastMessage: st.Last, LastReadSeq: r.LastReadSeq,
		}
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

func (s *Server) getRoom(c *fiber.Ctx) error {
	id, err := parseUUIDParam(c, "room_id")
	if err != nil {
		return err
	}
	ctx, me := c.UserContext(), userID(c)
	room, err := s.membership(ctx, id, me)
	if err != nil {
		return err
	}
	v, err := s.roomView(ctx, room, me)
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
	if len(req.UserIDs) == 0 || len(req.UserIDs) > 1000 {
		return chatflow.Errorf(chatflow.ECodeValidation, "user_ids must list 1-1000 users")
	}
	ids, err := parseIDs(req.UserIDs)
	if err != nil {
		return err
	}
	ctx := c.UserContext()
	room, err := s.membership(ctx, id, userID(c))
	if err != nil {
		return err
	}
	if n, err := s.Queries.ProfilesExist(ctx, ids); err != nil {
		return err
	} else if int(n) != len(ids) {
		return chatflow.Errorf(chatflow.ECodeValidation, "user_ids contains unknown users")
	}
	added, err := s.Queries.AddMembers(ctx, db.AddMembersParams{RoomID: id, UserIds: ids})
	if err != nil {
		return err
	}
	if err := s.chat.MembersAdded(ctx, id, added); err != nil {
		return err
	}
	for _, a := range added {
		_ = s.publish(ctx, userChannel(a.String()), roomEvent{Type: "room", Event: "invited", RoomID: id.String(), UserID: a.String()})
		_ = s.publish(ctx, roomChannel(id.String()), roomEvent{Type: "room", Event: "joined", RoomID: id.String(), UserID: a.String()})
	}
	v, err := s.roomView(ctx, room, userID(c))
	if err != nil {
		return err
	}
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

func queryInt(c *fiber.Ctx, name string) (int64, bool, error) {
	raw := c.Query(name)
	if raw == "" {
		return 0, false, nil
	}
	n, err := strconv.ParseInt(raw, 10, 64)
	if err != nil || n < 0 {
		return 0, false, chatflow.Errorf(chatflow.ECodeValidation, "%s must be a non-negative integer", name)
	}
	return n, true, nil
}

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
	limit, hasLimit, err := queryInt(c, "limit")
	if err != nil {
		return err
	}
	if !hasLimit {
		limit = chatflow.DefaultHistLimit
	}
	if limit < 1 || limit > chatflow.MaxHistoryLimit {
		return chatflow.Errorf(chatflow.ECodeValidation, "limit must be 1-%d", chatflow.MaxHistoryLimit)
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
	return c.JSON(fiber.Map{"messages": msgs, "has_more": more})
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
	}
	if err := decode(c, &req); err != nil {
		return err
	}
	// A send waits for Redis (and, on a cold room, Postgres): bound it like
	// a WebSocket frame, answering 503 so the client retries with the same
	// client_msg_id and gets the original message.
	ctx, cancel := context.WithTimeout(c.UserContext(), restSendTimeout)
	defer cancel()
	start := time.Now()
	a, err := s.chat.Accept(ctx, userID(c), id.String(), req.ClientMsgID, req.Body)
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
