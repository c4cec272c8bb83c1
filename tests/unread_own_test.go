package tests

import (
	"testing"
	"time"

	"github.com/chatflow/chatflow/internal/testenv"
)

// A sender's own messages never count toward its unread_count, in the room
// list and in GET /rooms/{id}; the others' do.
func TestUnreadExcludesOwnMessages(t *testing.T) {
	env := testenv.Open(t)
	env.Worker(t, nil)
	n := env.StartNode(t, testenv.NodeConfig{})
	a, b := n.SignUp(t, "uoa"), n.SignUp(t, "uob")
	room := n.CreateRoom(t, a, b)
	var base roomJSON
	n.Call(t, "GET", "/api/v1/rooms/"+room, a.Access, nil, &base)
	for _, u := range []testenv.User{a, b, a, a, b} {
		if st, _ := restSend(t, n, u, room, "c"+testenv.Unique(), "hi from "+u.Username); st != 201 {
			t.Fatalf("send: %d", st)
		}
	}
	waitPersisted(t, env, room, base.LastSeq+5, 10*time.Second)
	unread := func(u testenv.User) (list, one int64) {
		for _, r := range listRooms(t, n, u) {
			if r.RoomID == room {
				list = r.UnreadCount
			}
		}
		var rv roomJSON
		if st := n.Call(t, "GET", "/api/v1/rooms/"+room, u.Access, nil, &rv); st != 200 {
			t.Fatalf("GET room: %d", st)
		}
		return list, rv.UnreadCount
	}
	// base.LastSeq counts the room's earlier (server) messages for both
	if l, o := unread(a); l != base.LastSeq+2 || o != base.LastSeq+2 {
		t.Fatalf("a's unread: list %d, room %d, want %d (b's 2 messages)", l, o, base.LastSeq+2)
	}
	if l, o := unread(b); l != base.LastSeq+3 || o != base.LastSeq+3 {
		t.Fatalf("b's unread: list %d, room %d, want %d (a's 3 messages)", l, o, base.LastSeq+3)
	}
}
