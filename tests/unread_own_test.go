package tests

import (
	"strconv"
	"testing"
	"time"

	"github.com/chatflow/chatflow/internal/testenv"
)

// A sender's own messages never count toward its unread_count, in the room
// list and in GET /rooms/{id}; the others' do, and their edits and deletes
// (events about earlier messages) do not.
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
	// b edits its first message and deletes its second: events that change
	// earlier messages, not new ones, so nobody's unread count moves
	if st := n.Call(t, "PATCH", "/api/v1/rooms/"+room+"/messages/"+strconv.FormatInt(base.LastSeq+2, 10), b.Access, map[string]string{"body": "edited"}, nil); st != 200 {
		t.Fatalf("edit: %d", st)
	}
	if st := n.Call(t, "DELETE", "/api/v1/rooms/"+room+"/messages/"+strconv.FormatInt(base.LastSeq+5, 10), b.Access, nil, nil); st != 200 && st != 204 {
		t.Fatalf("delete: %d", st)
	}
	waitPersisted(t, env, room, base.LastSeq+7, 10*time.Second)
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

// A history page names its senders: senders maps each sender_id on the
// page to its display name.
func TestHistorySenders(t *testing.T) {
	env := testenv.Open(t)
	env.Worker(t, nil)
	n := env.StartNode(t, testenv.NodeConfig{})
	a, b := n.SignUp(t, "hsa"), n.SignUp(t, "hsb")
	room := n.CreateRoom(t, a, b)
	if st := n.Call(t, "PATCH", "/api/v1/me", b.Access, map[string]string{"display_name": "Bee 비"}, nil); st != 200 {
		t.Fatalf("rename b: %d", st)
	}
	restSend(t, n, a, room, "h1", "from a")
	restSend(t, n, b, room, "h2", "from b")
	var page struct {
		Messages []message         `json:"messages"`
		Senders  map[string]string `json:"senders"`
	}
	if st := n.Call(t, "GET", "/api/v1/rooms/"+room+"/messages", a.Access, nil, &page); st != 200 {
		t.Fatalf("history: %d", st)
	}
	var me struct {
		DisplayName string `json:"display_name"`
	}
	n.Call(t, "GET", "/api/v1/me", a.Access, nil, &me)
	for _, m := range page.Messages {
		if _, ok := page.Senders[m.SenderID]; !ok {
			t.Fatalf("sender %s of seq %d not in senders %v", m.SenderID, m.Seq, page.Senders)
		}
	}
	if page.Senders[b.ID] != "Bee 비" || page.Senders[a.ID] != me.DisplayName || me.DisplayName == "" {
		t.Fatalf("senders: %v (a is %q)", page.Senders, me.DisplayName)
	}
}
