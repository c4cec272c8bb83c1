package tests

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/chatflow/chatflow/internal/testenv"
)

type memberJSON struct {
	UserID      string `json:"user_id"`
	Username    string `json:"username"`
	LastReadSeq int64  `json:"last_read_seq"`
}

type roomJSON struct {
	RoomID      string       `json:"room_id"`
	Name        string       `json:"name"`
	Members     []memberJSON `json:"members"`
	LastSeq     int64        `json:"last_seq"`
	UnreadCount int64        `json:"unread_count"`
	LastMessage *message     `json:"last_message"`
	CreatedAt   time.Time    `json:"created_at"`
}

func hasMember(r roomJSON, id string) bool {
	for _, m := range r.Members {
		if m.UserID == id {
			return true
		}
	}
	return false
}

func listRooms(t *testing.T, n *testenv.Node, u testenv.User) []roomJSON {
	t.Helper()
	var out []roomJSON
	if st := n.Call(t, "GET", "/api/v1/rooms", u.Access, nil, &out); st != 200 {
		t.Fatalf("GET /rooms: %d", st)
	}
	return out
}

func TestChatRoomsREST(t *testing.T) {
	env := testenv.Open(t)
	env.Worker(t, nil)
	n := env.StartNode(t, testenv.NodeConfig{})
	a, b, c, d := n.SignUp(t, "ra"), n.SignUp(t, "rb"), n.SignUp(t, "rc"), n.SignUp(t, "rd")

	// b and c consent to being added by a (they list a as a friend)
	n.Befriend(t, b, a)
	n.Befriend(t, c, a)

	// create: 201, creator is a member, members listed, last_seq 0
	var r1 roomJSON
	if st := n.Call(t, "POST", "/api/v1/rooms", a.Access, map[string]any{"name": "first", "member_ids": []string{b.ID}}, &r1); st != 201 {
		t.Fatalf("create room: %d", st)
	}
	if r1.RoomID == "" || r1.Name != "first" || r1.LastSeq != 0 || r1.CreatedAt.IsZero() {
		t.Fatalf("created room: %+v", r1)
	}
	if len(r1.Members) != 2 || !hasMember(r1, a.ID) || !hasMember(r1, b.ID) {
		t.Fatalf("members of created room: %+v", r1.Members)
	}
	var bad problem
	if st := n.Call(t, "POST", "/api/v1/rooms", a.Access, map[string]any{"name": "x", "member_ids": []string{uuid.NewString()}}, &bad); st != 422 {
		t.Fatalf("create room with unknown member: %d %+v", st, bad)
	}
	if st := n.Call(t, "POST", "/api/v1/rooms", a.Access, map[string]any{"name": "  ", "member_ids": []string{}}, &bad); st != 422 {
		t.Fatalf("create room without name: %d %+v", st, bad)
	}
	time.Sleep(5 * time.Millisecond)
	r2 := n.CreateRoom(t, a, b)
	time.Sleep(5 * time.Millisecond)
	r3 := n.CreateRoom(t, a, b)

	// GET room: member ok, non-member 403 not_member, unknown 404
	var got roomJSON
	if st := n.Call(t, "GET", "/api/v1/rooms/"+r1.RoomID, b.Access, nil, &got); st != 200 || got.RoomID != r1.RoomID || len(got.Members) != 2 {
		t.Fatalf("GET room as member: %d %+v", st, got)
	}
	var p problem
	if st := n.Call(t, "GET", "/api/v1/rooms/"+r1.RoomID, c.Access, nil, &p); st != 403 || p.Code != "not_member" {
		t.Fatalf("GET room as non-member: %d %+v", st, p)
	}
	p = problem{}
	if st := n.Call(t, "GET", "/api/v1/rooms/"+uuid.NewString(), a.Access, nil, &p); st != 404 || p.Code != "not_found" {
		t.Fatalf("GET unknown room: %d %+v", st, p)
	}
	if st := n.Call(t, "GET", "/api/v1/rooms/not-a-uuid", a.Access, nil, nil); st != 404 {
		t.Fatalf("GET room with a malformed id: %d", st)
	}
	if st := n.Call(t, "GET", "/api/v1/rooms/"+r1.RoomID, "", nil, nil); st != 401 {
		t.Fatalf("GET room without a token: %d", st)
	}

	// messages into r1 make it the newest activity; b has unread
	for i, body := range []string{"one", "two", "three"} {
		if st, m := restSend(t, n, a, r1.RoomID, "r1-"+body, body); st != 201 || m.Seq != int64(i+1) {
			t.Fatalf("send %s: %d %+v", body, st, m)
		}
	}
	rooms := listRooms(t, n, b)
	if len(rooms) != 3 {
		t.Fatalf("b's rooms: %+v", rooms)
	}
	if rooms[0].RoomID != r1.RoomID || rooms[1].RoomID != r3 || rooms[2].RoomID != r2 {
		t.Fatalf("rooms not newest activity first: %s %s %s, want %s %s %s", rooms[0].RoomID, rooms[1].RoomID, rooms[2].RoomID, r1.RoomID, r3, r2)
	}
	if rooms[0].LastSeq != 3 || rooms[0].UnreadCount != 3 || rooms[0].LastMessage == nil || rooms[0].LastMessage.Body != "three" || rooms[0].LastMessage.Seq != 3 {
		t.Fatalf("r1 in list: %+v (last %+v)", rooms[0], rooms[0].LastMessage)
	}
	if rooms[1].LastSeq != 0 || rooms[1].UnreadCount != 0 || rooms[1].LastMessage != nil {
		t.Fatalf("empty room in list: %+v", rooms[1])
	}
	// a message in r2 moves it to the top
	if st, _ := restSend(t, n, b, r2, "r2-1", "hi"); st != 201 {
		t.Fatalf("send r2: %d", st)
	}
	rooms = listRooms(t, n, b)
	if rooms[0].RoomID != r2 || rooms[1].RoomID != r1.RoomID || rooms[2].RoomID != r3 {
		t.Fatalf("after a message in r2, order: %s %s %s", rooms[0].RoomID, rooms[1].RoomID, rooms[2].RoomID)
	}

	// read marker: forward, never backwards, capped at last_seq
	readAt := func(u testenv.User, room string, seq int64) int64 {
		t.Helper()
		var out struct {
			LastReadSeq int64 `json:"last_read_seq"`
		}
		if st := n.Call(t, "POST", "/api/v1/rooms/"+room+"/read", u.Access, map[string]int64{"seq": seq}, &out); st != 200 {
			t.Fatalf("POST read %d: %d", seq, st)
		}
		return out.LastReadSeq
	}
	if got := readAt(b, r1.RoomID, 2); got != 2 {
		t.Fatalf("read 2 → %d", got)
	}
	if got := readAt(b, r1.RoomID, 1); got != 2 {
		t.Fatalf("read marker moved backwards: read 1 → %d", got)
	}
	for _, r := range listRooms(t, n, b) {
		if r.RoomID == r1.RoomID && (r.UnreadCount != 1 || r.LastSeq != 3) {
			t.Fatalf("after read 2: %+v", r)
		}
	}
	if got := readAt(b, r1.RoomID, 1000); got != 3 {
		t.Fatalf("read past the end → %d, want capped at 3", got)
	}
	if st := n.Call(t, "POST", "/api/v1/rooms/"+r1.RoomID+"/read", b.Access, map[string]int64{"seq": -1}, nil); st != 422 {
		t.Fatalf("read -1: %d", st)
	}
	if st := n.Call(t, "POST", "/api/v1/rooms/"+r1.RoomID+"/read", c.Access, map[string]int64{"seq": 1}, &p); st != 403 {
		t.Fatalf("read as non-member: %d", st)
	}
	var rv roomJSON
	n.Call(t, "GET", "/api/v1/rooms/"+r1.RoomID, b.Access, nil, &rv)
	if rv.UnreadCount != 0 || rv.LastSeq != 3 {
		t.Fatalf("GET room after reading all: %+v", rv)
	}

	// invite: members only
	p = problem{}
	if st := n.Call(t, "POST", "/api/v1/rooms/"+r1.RoomID+"/members", c.Access, map[string]any{"user_ids": []string{d.ID}}, &p); st != 403 || p.Code != "not_member" {
		t.Fatalf("invite by non-member: %d %+v", st, p)
	}
	wc := connect(t, n, c)
	if st := n.Call(t, "POST", "/api/v1/rooms/"+r1.RoomID+"/members", a.Access, map[string]any{"user_ids": []string{c.ID}}, &rv); st != 200 || !hasMember(rv, c.ID) {
		t.Fatalf("invite by member: %d %+v", st, rv)
	}
	wc.must(5*time.Second, func(f testenv.Frame) bool {
		return f.Type() == "room" && f.Str("event") == "invited" && f.Str("room_id") == r1.RoomID
	}, "invited event")
	// the invited user's open connection now gets the room's messages
	// seq 4 is the member_joined system event of the invite
	if st, m := restSend(t, n, a, r1.RoomID, "r1-after-invite", "welcome"); st != 201 || m.Seq != 5 {
		t.Fatalf("send after invite: %d %+v", st, m)
	}
	if f := wc.must(5*time.Second, func(f testenv.Frame) bool { return msgIn(r1.RoomID)(f) && f.Str("kind") == "" }, "message after invite"); f.Int("seq") != 5 {
		t.Fatalf("invited user got %v", f)
	}
	if st, m := restSend(t, n, c, r1.RoomID, "c-1", "thanks"); st != 201 || m.Seq != 6 {
		t.Fatalf("invited user sends: %d %+v", st, m)
	}

	// leave: then sends are refused with not_member, on REST and WS
	if st := n.Call(t, "DELETE", "/api/v1/rooms/"+r1.RoomID+"/members/me", c.Access, nil, nil); st != 204 {
		t.Fatalf("leave: %d", st)
	}
	wc.must(5*time.Second, func(f testenv.Frame) bool {
		return f.Type() == "room" && f.Str("event") == "left" && f.Str("room_id") == r1.RoomID
	}, "left event")
	p = problem{}
	if st := n.Call(t, "POST", "/api/v1/rooms/"+r1.RoomID+"/messages", c.Access, map[string]string{"client_msg_id": "c-2", "body": "still here?"}, &p); st != 403 || p.Code != "not_member" {
		t.Fatalf("send after leave: %d %+v", st, p)
	}
	wc.sendMsg(r1.RoomID, "c-3", "still here?")
	if f := wc.must(5*time.Second, ackFor("c-3"), "answer to send after leave"); f.Type() != "error" || f.Str("code") != "not_member" {
		t.Fatalf("WS send after leave: %v", f)
	}
	if st := n.Call(t, "GET", "/api/v1/rooms/"+r1.RoomID, c.Access, nil, &p); st != 403 {
		t.Fatalf("GET room after leave: %d", st)
	}
	if st := n.Call(t, "DELETE", "/api/v1/rooms/"+r1.RoomID+"/members/me", c.Access, nil, nil); st != 403 {
		t.Fatalf("leave twice: %d", st)
	}
	// the leaver's connection no longer gets the room's messages
	if st, _ := restSend(t, n, a, r1.RoomID, "r1-after-leave", "bye"); st != 201 {
		t.Fatalf("send after leave: %d", st)
	}
	for _, f := range append(wc.drain(300*time.Millisecond), wc.barrier(5*time.Second)...) {
		if f.Type() == "message" && f.Str("room_id") == r1.RoomID {
			t.Fatalf("user who left still gets messages: %v", f)
		}
	}
	for _, r := range listRooms(t, n, c) {
		if r.RoomID == r1.RoomID {
			t.Fatalf("left room still listed")
		}
	}
	n.Call(t, "GET", "/api/v1/rooms/"+r1.RoomID, a.Access, nil, &rv)
	if hasMember(rv, c.ID) || len(rv.Members) != 2 {
		t.Fatalf("members after leave: %+v", rv.Members)
	}
}

// An invite while the room's member set is not cached in Redis (evicted,
// Redis restarted) must not make the member set hold only the new members.
func TestChatInviteWithoutCachedMembers(t *testing.T) {
	env := testenv.Open(t)
	env.Worker(t, nil)
	n := env.StartNode(t, testenv.NodeConfig{})
	a, b, c := n.SignUp(t, "ia"), n.SignUp(t, "ib"), n.SignUp(t, "ic")
	room := n.CreateRoom(t, a, b)
	n.Befriend(t, c, a)
	if err := env.Redis.Del(context.Background(), "{r:"+room+"}:m").Err(); err != nil {
		t.Fatal(err)
	}
	if st := n.Call(t, "POST", "/api/v1/rooms/"+room+"/members", a.Access, map[string]any{"user_ids": []string{c.ID}}, nil); st != 200 {
		t.Fatalf("invite: %d", st)
	}
	for i, u := range []testenv.User{a, b, c} {
		var p problem
		st, m := restSend(t, n, u, room, "m", "hello from "+u.Username)
		if st != 201 || m.Seq != int64(i+2) { // seq 1: the invite's member_joined event
			n.Call(t, "POST", "/api/v1/rooms/"+room+"/messages", u.Access, map[string]string{"client_msg_id": "m", "body": "x"}, &p)
			t.Fatalf("member %s cannot send after the invite: %d %+v", u.Username, st, p)
		}
	}
}

// TestChatReadMarkerEvents: moving a read marker tells the room once; a read
// that does not move it (same seq, or an older one) tells nobody.
func TestChatReadMarkerEvents(t *testing.T) {
	env := testenv.Open(t)
	env.Worker(t, nil)
	n := env.StartNode(t, testenv.NodeConfig{})
	a, b := n.SignUp(t, "rmea"), n.SignUp(t, "rmeb")
	room := n.CreateRoom(t, a, b)
	for i := 1; i <= 3; i++ {
		if st := n.Call(t, "POST", "/api/v1/rooms/"+room+"/messages", a.Access, map[string]string{"client_msg_id": fmt.Sprintf("rm%d", i), "body": "x"}, nil); st != 201 {
			t.Fatalf("send: %d", st)
		}
	}
	wa := n.Dial(t, a)
	wa.Send(map[string]any{"type": "ping"})
	if _, err := wa.Next(5*time.Second, testenv.OfType("pong")); err != nil {
		t.Fatal(err)
	}
	for _, seq := range []int{2, 2, 1, 3} {
		if st := n.Call(t, "POST", "/api/v1/rooms/"+room+"/read", b.Access, map[string]int{"seq": seq}, nil); st != 200 {
			t.Fatalf("read %d: %d", seq, st)
		}
	}
	var got []int64
	for {
		f, err := wa.Next(1500*time.Millisecond, testenv.OfType("read"))
		if err != nil {
			break
		}
		got = append(got, f.Int("seq"))
	}
	if len(got) != 2 || got[0] != 2 || got[1] != 3 {
		t.Fatalf("read events %v, want [2 3]", got)
	}
}

// TestChatHistoryCursorPastEnd: a cursor beyond the last seq is an empty,
// final page, even at the largest int64 (no overflow into "has_more").
func TestChatHistoryCursorPastEnd(t *testing.T) {
	env := testenv.Open(t)
	env.Worker(t, nil)
	n := env.StartNode(t, testenv.NodeConfig{})
	a := n.SignUp(t, "hcpe")
	room := n.CreateRoom(t, a)
	if st := n.Call(t, "POST", "/api/v1/rooms/"+room+"/messages", a.Access, map[string]string{"client_msg_id": "m1", "body": "x"}, nil); st != 201 {
		t.Fatalf("send: %d", st)
	}
	for _, after := range []string{"1", "5", "9223372036854775807"} {
		var page struct {
			Messages []map[string]any `json:"messages"`
			HasMore  bool             `json:"has_more"`
		}
		if st := n.Call(t, "GET", "/api/v1/rooms/"+room+"/messages?after_seq="+after, a.Access, nil, &page); st != 200 || len(page.Messages) != 0 || page.HasMore {
			t.Fatalf("after_seq=%s: %d %+v", after, st, page)
		}
	}
}
