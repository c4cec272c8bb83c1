package tests

import (
	"strconv"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/chatflow/chatflow/internal/testenv"
)

type pendingJSON struct {
	InvitationID string `json:"invitation_id"`
	UserID       string `json:"user_id"`
}

type roomWithInvites struct {
	roomJSON
	PendingInvitations []pendingJSON `json:"pending_invitations"`
}

type invitationJSON struct {
	InvitationID string `json:"invitation_id"`
	RoomID       string `json:"room_id"`
	RoomName     string `json:"room_name"`
	Inviter      struct {
		UserID   string `json:"user_id"`
		Username string `json:"username"`
	} `json:"inviter"`
	CreatedAt time.Time `json:"created_at"`
}

func invitations(t *testing.T, n *testenv.Node, u testenv.User) []invitationJSON {
	t.Helper()
	var out []invitationJSON
	if st := n.Call(t, "GET", "/api/v1/invitations", u.Access, nil, &out); st != 200 || out == nil {
		t.Fatalf("GET /invitations: %d %v", st, out)
	}
	return out
}

func invitationEv(event, room string) func(testenv.Frame) bool {
	return func(f testenv.Frame) bool {
		return f.Type() == "invitation" && f.Str("event") == event && f.Str("room_id") == room
	}
}

func isMemberOf(t *testing.T, n *testenv.Node, u testenv.User, room string) bool {
	t.Helper()
	st := n.Call(t, "GET", "/api/v1/rooms/"+room, u.Access, nil, nil)
	if st != 200 && st != 403 {
		t.Fatalf("GET room: %d", st)
	}
	return st == 200
}

// TestConsentNonFriendInviteIsPending: naming a user who is not the
// caller's friend creates a pending invitation, not a membership; the
// invitee learns of it live, cannot read or send until they accept, and
// joins (live, with the room told) when they do.
func TestConsentNonFriendInviteIsPending(t *testing.T) {
	env := testenv.Open(t)
	env.Worker(t, nil)
	n := env.StartNode(t, testenv.NodeConfig{})
	a, b, c := n.SignUp(t, "cpa"), n.SignUp(t, "cpb"), n.SignUp(t, "cpc")
	wa, wb := connect(t, n, a), connect(t, n, b)

	var r roomWithInvites
	if st := n.Call(t, "POST", "/api/v1/rooms", a.Access, map[string]any{"name": "pending", "member_ids": []string{b.ID}}, &r); st != 201 {
		t.Fatalf("create: %d", st)
	}
	if len(r.Members) != 1 || !hasMember(r.roomJSON, a.ID) || len(r.PendingInvitations) != 1 || r.PendingInvitations[0].UserID != b.ID {
		t.Fatalf("created room: members %+v pending %+v", r.Members, r.PendingInvitations)
	}
	inv := r.PendingInvitations[0].InvitationID
	f := wb.must(5*time.Second, invitationEv("received", r.RoomID), "invitation received")
	if f.Str("invitation_id") != inv || f.Str("inviter_id") != a.ID || f.Str("invitee_id") != b.ID || f.Str("room_name") != "pending" {
		t.Fatalf("invitation frame: %v", f)
	}

	// pending: b is not a member anywhere it matters
	if isMemberOf(t, n, b, r.RoomID) {
		t.Fatal("invitee is a member before accepting")
	}
	for _, room := range listRooms(t, n, b) {
		if room.RoomID == r.RoomID {
			t.Fatal("room listed for the invitee before accepting")
		}
	}
	var p problem
	if st := n.Call(t, "POST", "/api/v1/rooms/"+r.RoomID+"/messages", b.Access, map[string]string{"client_msg_id": "b0", "body": "x"}, &p); st != 403 || p.Code != "not_member" {
		t.Fatalf("invitee sends before accepting: %d %+v", st, p)
	}
	wb.sendMsg(r.RoomID, "b0ws", "x")
	if f := wb.must(5*time.Second, ackFor("b0ws"), "answer"); f.Str("code") != "not_member" {
		t.Fatalf("invitee WS send before accepting: %v", f)
	}
	if st, _ := restSend(t, n, a, r.RoomID, "a1", "before"); st != 201 {
		t.Fatalf("owner send: %d", st)
	}
	for _, f := range wb.barrier(5 * time.Second) {
		if f.Type() == "message" {
			t.Fatalf("invitee got a message before accepting: %v", f)
		}
	}
	got := invitations(t, n, b)
	if len(got) != 1 || got[0].InvitationID != inv || got[0].RoomID != r.RoomID || got[0].RoomName != "pending" || got[0].Inviter.UserID != a.ID || got[0].Inviter.Username != a.Username {
		t.Fatalf("b's invitations: %+v", got)
	}
	if len(invitations(t, n, a)) != 0 || len(invitations(t, n, c)) != 0 {
		t.Fatal("invitations listed for users who were not invited")
	}

	// inviting again is a no-op: still one pending invitation, no new event
	var again roomWithInvites
	if st := n.Call(t, "POST", "/api/v1/rooms/"+r.RoomID+"/members", a.Access, map[string]any{"user_ids": []string{b.ID}}, &again); st != 200 ||
		len(again.PendingInvitations) != 1 || again.PendingInvitations[0].InvitationID != inv || hasMember(again.roomJSON, b.ID) {
		t.Fatalf("invite again: %d %+v", st, again)
	}
	if len(invitations(t, n, b)) != 1 {
		t.Fatal("a second pending invitation for the same room")
	}

	// someone else cannot answer b's invitation
	if st := n.Call(t, "POST", "/api/v1/invitations/"+inv+"/accept", c.Access, nil, &p); st != 404 || p.Code != "not_found" {
		t.Fatalf("c accepts b's invitation: %d %+v", st, p)
	}
	if st := n.Call(t, "POST", "/api/v1/invitations/"+uuid.NewString()+"/accept", b.Access, nil, nil); st != 404 {
		t.Fatalf("accept unknown: %d", st)
	}
	if st := n.Call(t, "POST", "/api/v1/invitations/not-a-uuid/decline", b.Access, nil, nil); st != 404 {
		t.Fatalf("decline malformed id: %d", st)
	}
	if st := n.Call(t, "GET", "/api/v1/invitations", "", nil, nil); st != 401 {
		t.Fatalf("invitations without a token: %d", st)
	}

	// accept: b joins, live
	var joined roomJSON
	if st := n.Call(t, "POST", "/api/v1/invitations/"+inv+"/accept", b.Access, nil, &joined); st != 200 || joined.RoomID != r.RoomID || !hasMember(joined, b.ID) || len(joined.Members) != 2 {
		t.Fatalf("accept: %d %+v", st, joined)
	}
	wa.must(5*time.Second, func(f testenv.Frame) bool {
		return f.Type() == "room" && f.Str("event") == "joined" && f.Str("room_id") == r.RoomID && f.Str("user_id") == b.ID
	}, "joined event for the room's members")
	wa.must(5*time.Second, invitationEv("accepted", r.RoomID), "accepted event for the inviter")
	wb.must(5*time.Second, invitationEv("accepted", r.RoomID), "accepted event for the invitee")
	// seq 2 is the member_joined system event of the accept
	if st, m := restSend(t, n, a, r.RoomID, "a2", "welcome"); st != 201 || m.Seq != 3 {
		t.Fatalf("send after accept: %d %+v", st, m)
	}
	if f := wb.must(5*time.Second, func(f testenv.Frame) bool { return msgIn(r.RoomID)(f) && f.Str("kind") == "" }, "message after accepting"); f.Int("seq") != 3 {
		t.Fatalf("invitee's socket got %v", f)
	}
	wb.sendMsg(r.RoomID, "b1", "thanks")
	if f := wb.must(5*time.Second, ackFor("b1"), "ack"); f.Type() != "ack" || f.Int("seq") != 4 {
		t.Fatalf("invitee sends after accepting: %v", f)
	}
	if len(invitations(t, n, b)) != 0 {
		t.Fatal("accepted invitation still listed")
	}
	// answered once only
	for _, verb := range []string{"accept", "decline"} {
		p = problem{}
		if st := n.Call(t, "POST", "/api/v1/invitations/"+inv+"/"+verb, b.Access, nil, &p); st != 409 || p.Code != "conflict" {
			t.Fatalf("%s after accept: %d %+v", verb, st, p)
		}
	}
}

// TestConsentDeclineLeavesNoMembership: a declined invitation makes no
// membership, tells the inviter, and cannot be accepted afterwards.
func TestConsentDeclineLeavesNoMembership(t *testing.T) {
	env := testenv.Open(t)
	env.Worker(t, nil)
	n := env.StartNode(t, testenv.NodeConfig{})
	a, b := n.SignUp(t, "cda"), n.SignUp(t, "cdb")
	room := n.CreateRoom(t, a)
	wa := connect(t, n, a)
	var r roomWithInvites
	if st := n.Call(t, "POST", "/api/v1/rooms/"+room+"/members", a.Access, map[string]any{"user_ids": []string{b.ID}}, &r); st != 200 || len(r.PendingInvitations) != 1 || hasMember(r.roomJSON, b.ID) {
		t.Fatalf("invite: %d %+v", st, r)
	}
	inv := r.PendingInvitations[0].InvitationID
	if st := n.Call(t, "POST", "/api/v1/invitations/"+inv+"/decline", b.Access, nil, nil); st != 204 {
		t.Fatalf("decline: %d", st)
	}
	wa.must(5*time.Second, invitationEv("declined", room), "declined event for the inviter")
	if isMemberOf(t, n, b, room) || len(invitations(t, n, b)) != 0 {
		t.Fatal("declined invitation left a membership or a listing")
	}
	var members int
	if err := env.Pool.QueryRow(t.Context(), `SELECT count(*) FROM chat.members WHERE room_id = $1 AND user_id = $2`, room, b.ID).Scan(&members); err != nil || members != 0 {
		t.Fatalf("membership rows after decline: %d %v", members, err)
	}
	var p problem
	if st := n.Call(t, "POST", "/api/v1/invitations/"+inv+"/accept", b.Access, nil, &p); st != 409 || p.Code != "conflict" {
		t.Fatalf("accept after decline: %d %+v", st, p)
	}
	if isMemberOf(t, n, b, room) {
		t.Fatal("accept after decline made a member")
	}
	// a new invitation may follow (the invite limit bounds how often)
	var r2 roomWithInvites
	if st := n.Call(t, "POST", "/api/v1/rooms/"+room+"/members", a.Access, map[string]any{"user_ids": []string{b.ID}}, &r2); st != 200 || len(r2.PendingInvitations) != 1 || r2.PendingInvitations[0].InvitationID == inv {
		t.Fatalf("invite after decline: %d %+v", st, r2)
	}
}

// TestConsentFriendAddedDirectly: a (mutual) friend of the caller is added
// at once (no invitation), on creation and on invite; the caller's own
// pending request to someone is not that user's consent.
func TestConsentFriendAddedDirectly(t *testing.T) {
	env := testenv.Open(t)
	env.Worker(t, nil)
	n := env.StartNode(t, testenv.NodeConfig{})
	a, b, c, d := n.SignUp(t, "cfa"), n.SignUp(t, "cfb"), n.SignUp(t, "cfc"), n.SignUp(t, "cfd")
	n.Befriend(t, b, a)
	n.Befriend(t, c, a)
	// a asks d: that is a's say, not d's consent
	if st := n.Call(t, "POST", "/api/v1/friends/requests", a.Access, map[string]string{"user_id": d.ID}, nil); st != 201 {
		t.Fatalf("a asks d: %d", st)
	}
	wc := connect(t, n, c)

	var r roomWithInvites
	if st := n.Call(t, "POST", "/api/v1/rooms", a.Access, map[string]any{"name": "friends", "member_ids": []string{b.ID, d.ID}}, &r); st != 201 {
		t.Fatalf("create: %d", st)
	}
	if len(r.Members) != 2 || !hasMember(r.roomJSON, b.ID) || len(r.PendingInvitations) != 1 || r.PendingInvitations[0].UserID != d.ID {
		t.Fatalf("friend not added directly, or non-consenting user added: members %+v pending %+v", r.Members, r.PendingInvitations)
	}
	if !isMemberOf(t, n, b, r.RoomID) || isMemberOf(t, n, d, r.RoomID) {
		t.Fatal("memberships do not follow consent")
	}
	if len(invitations(t, n, b)) != 0 || len(invitations(t, n, d)) != 1 {
		t.Fatal("invitations do not follow consent")
	}
	var inv roomWithInvites
	if st := n.Call(t, "POST", "/api/v1/rooms/"+r.RoomID+"/members", a.Access, map[string]any{"user_ids": []string{c.ID}}, &inv); st != 200 || !hasMember(inv.roomJSON, c.ID) || len(inv.PendingInvitations) != 0 {
		t.Fatalf("invite a friend: %d %+v", st, inv)
	}
	wc.must(5*time.Second, func(f testenv.Frame) bool {
		return f.Type() == "room" && f.Str("event") == "invited" && f.Str("room_id") == r.RoomID
	}, "room event for the directly added friend")
	// consent is per inviter: b (a member) naming d still only invites d
	var byB roomWithInvites
	if st := n.Call(t, "POST", "/api/v1/rooms/"+r.RoomID+"/members", b.Access, map[string]any{"user_ids": []string{d.ID}}, &byB); st != 200 || hasMember(byB.roomJSON, d.ID) || len(byB.PendingInvitations) != 1 {
		t.Fatalf("b invites d: %d %+v", st, byB)
	}
}

// TestBlockedUserCannotInviteOrAdd: once b blocks a, a cannot add b (even
// though they were friends), cannot invite b, cannot send b a friend
// request; a's pending invitation to b is withdrawn, quietly.
func TestBlockedUserCannotInviteOrAdd(t *testing.T) {
	env := testenv.Open(t)
	env.Worker(t, nil)
	n := env.StartNode(t, testenv.NodeConfig{})
	a, b, c := n.SignUp(t, "cba"), n.SignUp(t, "cbb"), n.SignUp(t, "cbc")
	mine := n.CreateRoom(t, a)
	var pend roomWithInvites
	if st := n.Call(t, "POST", "/api/v1/rooms/"+mine+"/members", a.Access, map[string]any{"user_ids": []string{b.ID}}, &pend); st != 200 || len(pend.PendingInvitations) != 1 {
		t.Fatalf("invite before the block: %d %+v", st, pend)
	}
	n.Befriend(t, b, a)

	var p problem
	if st := n.Call(t, "POST", "/api/v1/users/"+a.ID+"/block", b.Access, nil, &p); st != 204 {
		t.Fatalf("block: %d %+v", st, p)
	}
	if st := n.Call(t, "POST", "/api/v1/users/"+a.ID+"/block", b.Access, nil, nil); st != 204 {
		t.Fatalf("block twice: %d", st)
	}
	if len(invitations(t, n, b)) != 0 {
		t.Fatal("a blocked user's pending invitation is still listed")
	}
	if st := n.Call(t, "POST", "/api/v1/invitations/"+pend.PendingInvitations[0].InvitationID+"/accept", b.Access, nil, nil); st != 409 {
		t.Fatalf("accept a blocked user's invitation: %d", st)
	}
	var fr []map[string]any
	n.Call(t, "GET", "/api/v1/friends", b.Access, nil, &fr)
	if len(fr) != 0 {
		t.Fatalf("friend rows survive the block: %v", fr)
	}
	n.Call(t, "GET", "/api/v1/friends", a.Access, nil, &fr)
	if len(fr) != 0 {
		t.Fatalf("the blocked user's friend row naming the blocker survives: %v", fr)
	}

	before := len(listRooms(t, n, a))
	// creation naming b: refused whole, nothing created, c not invited
	p = problem{}
	if st := n.Call(t, "POST", "/api/v1/rooms", a.Access, map[string]any{"name": "nope", "member_ids": []string{c.ID, b.ID}}, &p); st != 403 || p.Code != "forbidden" {
		t.Fatalf("create naming a blocker: %d %+v", st, p)
	}
	if len(listRooms(t, n, a)) != before || len(invitations(t, n, c)) != 0 {
		t.Fatal("a refused creation left a room or an invitation")
	}
	// invite to an existing room: refused
	p = problem{}
	if st := n.Call(t, "POST", "/api/v1/rooms/"+mine+"/members", a.Access, map[string]any{"user_ids": []string{b.ID}}, &p); st != 403 || p.Code != "forbidden" {
		t.Fatalf("invite a blocker: %d %+v", st, p)
	}
	// even with friend rows between them again (friendship is consent, the
	// block wins; they cannot befriend through the API while blocked)
	if _, err := env.Pool.Exec(t.Context(), `INSERT INTO chat.friends (user_id, friend_id) VALUES ($1, $2), ($2, $1)`, a.ID, b.ID); err != nil {
		t.Fatal(err)
	}
	if st := n.Call(t, "POST", "/api/v1/rooms/"+mine+"/members", a.Access, map[string]any{"user_ids": []string{b.ID}}, &p); st != 403 || isMemberOf(t, n, b, mine) {
		t.Fatalf("add a blocker who lists the blocked user: %d", st)
	}
	// friend request: refused
	p = problem{}
	if st := n.Call(t, "POST", "/api/v1/friends", a.Access, map[string]string{"username": b.Username}, &p); st != 403 || p.Code != "forbidden" {
		t.Fatalf("friend request to a blocker: %d %+v", st, p)
	}
	// others still can invite b
	if st := n.Call(t, "POST", "/api/v1/rooms", c.Access, map[string]any{"name": "other", "member_ids": []string{b.ID}}, nil); st != 201 {
		t.Fatalf("someone else invites b: %d", st)
	}

	// block/unblock validation
	if st := n.Call(t, "POST", "/api/v1/users/"+b.ID+"/block", b.Access, nil, &p); st != 422 {
		t.Fatalf("block self: %d", st)
	}
	if st := n.Call(t, "POST", "/api/v1/users/"+uuid.NewString()+"/block", b.Access, nil, nil); st != 404 {
		t.Fatalf("block unknown: %d", st)
	}
	if st := n.Call(t, "POST", "/api/v1/users/not-a-uuid/block", b.Access, nil, nil); st != 404 {
		t.Fatalf("block malformed: %d", st)
	}
	if st := n.Call(t, "DELETE", "/api/v1/users/"+c.ID+"/block", b.Access, nil, nil); st != 404 {
		t.Fatalf("unblock someone not blocked: %d", st)
	}
	if st := n.Call(t, "POST", "/api/v1/users/"+a.ID+"/block", "", nil, nil); st != 401 {
		t.Fatalf("block without a token: %d", st)
	}
	// unblock: a may invite b again (still friends: added directly)
	if st := n.Call(t, "DELETE", "/api/v1/users/"+a.ID+"/block", b.Access, nil, nil); st != 204 {
		t.Fatalf("unblock: %d", st)
	}
	if st := n.Call(t, "POST", "/api/v1/rooms/"+mine+"/members", a.Access, map[string]any{"user_ids": []string{b.ID}}, nil); st != 200 || !isMemberOf(t, n, b, mine) {
		t.Fatalf("add after unblock: %d", st)
	}
}

// TestRoomCaps: members per call and rooms per creator are capped.
func TestRoomCaps(t *testing.T) {
	env := testenv.Open(t)
	env.Worker(t, nil)
	cfg := testenv.RateLimitConfig().Unlimited()
	cfg.RoomsPerCreator, cfg.MembersPerCall = 2, 3
	n := env.StartNode(t, testenv.NodeConfig{RateLimit: &cfg})
	a := n.SignUp(t, "cap")
	four := []string{uuid.NewString(), uuid.NewString(), uuid.NewString(), uuid.NewString()}
	var p problem
	if st := n.Call(t, "POST", "/api/v1/rooms", a.Access, map[string]any{"name": "big", "member_ids": four}, &p); st != 422 || p.Code != "validation_failed" {
		t.Fatalf("4 members at creation: %d %+v", st, p)
	}
	room := n.CreateRoom(t, a)
	p = problem{}
	if st := n.Call(t, "POST", "/api/v1/rooms/"+room+"/members", a.Access, map[string]any{"user_ids": four}, &p); st != 422 || p.Code != "validation_failed" {
		t.Fatalf("4 users in one invite: %d %+v", st, p)
	}
	n.CreateRoom(t, a)
	p = problem{}
	if st := n.Call(t, "POST", "/api/v1/rooms", a.Access, map[string]any{"name": "third", "member_ids": []string{}}, &p); st != 422 || p.Code != "validation_failed" {
		t.Fatalf("3rd room past the cap of 2: %d %+v", st, p)
	}
	m, ok := metrics(t, n)
	if !ok || m[`chatflow_rate_limited_total{limit="rooms_per_creator"}`] != 1 || m[`chatflow_rate_limited_total{limit="members_per_call"}`] != 2 {
		t.Fatalf("cap refusals not counted: %v %v", m[`chatflow_rate_limited_total{limit="rooms_per_creator"}`], m[`chatflow_rate_limited_total{limit="members_per_call"}`])
	}
	// the cap is per creator: concurrent creations by one user never overshoot it
	b := n.SignUp(t, "cap")
	results := make(chan int, 6)
	for i := range 6 {
		go func() {
			results <- n.Call(t, "POST", "/api/v1/rooms", b.Access, map[string]any{"name": "race " + strconv.Itoa(i)}, nil)
		}()
	}
	created := 0
	for range 6 {
		if <-results == 201 {
			created++
		}
	}
	if created != 2 {
		t.Fatalf("concurrent creations: %d rooms created, cap 2", created)
	}
}
