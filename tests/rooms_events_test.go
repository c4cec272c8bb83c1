package tests

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/chatflow/chatflow/internal/testenv"
)

// sysMessage is a message with its kind, for system events.
type sysMessage struct {
	Seq      int64  `json:"seq"`
	Kind     string `json:"kind"`
	SenderID string `json:"sender_id"`
	Body     string `json:"body"`
}

type sysBody struct {
	Event    string `json:"event"`
	UserID   string `json:"user_id"`
	ByUserID string `json:"by_user_id"`
	Name     string `json:"name"`
}

// eventLine renders a message as "event user by name" (or "text body").
func eventLine(t *testing.T, m sysMessage) string {
	t.Helper()
	if m.Kind != "system" {
		return "text " + m.Body
	}
	var b sysBody
	if err := json.Unmarshal([]byte(m.Body), &b); err != nil {
		t.Fatalf("system body %q: %v", m.Body, err)
	}
	return fmt.Sprintf("%s %s %s %s", b.Event, b.UserID, b.ByUserID, b.Name)
}

func readHistory(t *testing.T, n *testenv.Node, u testenv.User, room string) []sysMessage {
	t.Helper()
	var h struct {
		Messages []sysMessage `json:"messages"`
	}
	if st := n.Call(t, "GET", "/api/v1/rooms/"+room+"/messages?after_seq=0&limit=200", u.Access, nil, &h); st != 200 {
		t.Fatalf("history: %d", st)
	}
	return h.Messages
}

// TestRoomSystemEventsInSequence: joins (direct add and accepted
// invitation), an invitation, a rename, a removal and a leave are recorded
// in the room's sequence; a member who was offline through all of it sees
// them, in seq order, through sync and through history; retried requests
// post nothing twice.
func TestRoomSystemEventsInSequence(t *testing.T) {
	env := testenv.Open(t)
	env.Worker(t, nil)
	n := env.StartNode(t, testenv.NodeConfig{})
	a, b, c, d := n.SignUp(t, "sea"), n.SignUp(t, "seb"), n.SignUp(t, "sec"), n.SignUp(t, "sed")
	room := n.CreateRoom(t, a, b)
	n.Befriend(t, c, a)

	if st, _ := restSend(t, n, a, room, "hello-1", "hello"); st != 201 && st != 200 {
		t.Fatalf("send: %d", st)
	}
	invite := func(u testenv.User) roomWithInvites {
		var r roomWithInvites
		if st := n.Call(t, "POST", "/api/v1/rooms/"+room+"/members", a.Access, map[string]any{"user_ids": []string{u.ID}}, &r); st != 200 {
			t.Fatalf("invite %s: %d", u.Username, st)
		}
		return r
	}
	invite(c) // a friend: joins at once
	r := invite(d)
	if len(r.PendingInvitations) != 1 {
		t.Fatalf("d not invited: %+v", r.PendingInvitations)
	}
	if st := n.Call(t, "POST", "/api/v1/invitations/"+r.PendingInvitations[0].InvitationID+"/accept", d.Access, nil, nil); st != 200 {
		t.Fatalf("accept: %d", st)
	}
	wa := connect(t, n, a)
	for i := 0; i < 2; i++ { // the retry renames and posts nothing
		if st := n.Call(t, "PATCH", "/api/v1/rooms/"+room, a.Access, map[string]string{"name": " renamed "}, nil); st != 200 {
			t.Fatalf("rename %d: %d", i, st)
		}
	}
	wa.must(5*time.Second, func(f testenv.Frame) bool {
		return f.Type() == "room" && f.Str("event") == "renamed" && f.Str("room_id") == room && f.Str("name") == "renamed"
	}, "live renamed event")
	if st := n.Call(t, "DELETE", "/api/v1/rooms/"+room+"/members/"+c.ID, a.Access, nil, nil); st != 204 {
		t.Fatalf("remove c: %d", st)
	}
	if st := n.Call(t, "DELETE", "/api/v1/rooms/"+room+"/members/"+c.ID, a.Access, nil, nil); st != 404 {
		t.Fatalf("remove c again: %d, want 404", st)
	}
	if st := n.Call(t, "DELETE", "/api/v1/rooms/"+room+"/members/me", d.Access, nil, nil); st != 204 {
		t.Fatalf("d leaves: %d", st)
	}
	if st := n.Call(t, "DELETE", "/api/v1/rooms/"+room+"/members/me", d.Access, nil, nil); st != 403 {
		t.Fatalf("d leaves again: %d, want 403", st)
	}

	want := []string{
		"text hello",
		"member_joined " + c.ID + " " + a.ID + " ",
		"member_invited " + d.ID + " " + a.ID + " ",
		"member_joined " + d.ID + "  ",
		"room_renamed " + a.ID + "  renamed",
		"member_removed " + c.ID + " " + a.ID + " ",
		"member_left " + d.ID + "  ",
	}
	check := func(how string, ms []sysMessage) {
		t.Helper()
		if len(ms) != len(want) {
			t.Fatalf("%s: %d messages, want %d: %+v", how, len(ms), len(want), ms)
		}
		for i, m := range ms {
			if m.Seq != int64(i+1) {
				t.Fatalf("%s: message %d has seq %d", how, i, m.Seq)
			}
			if got := eventLine(t, m); got != want[i] {
				t.Fatalf("%s: seq %d is %q, want %q", how, m.Seq, got, want[i])
			}
		}
	}

	// b was offline all along: sync from 0 replays every event in order
	wb := connect(t, n, b)
	wb.send(map[string]any{"type": "sync", "rooms": map[string]int64{room: 0}})
	var synced []sysMessage
	for range want {
		f := wb.must(10*time.Second, msgIn(room), "synced message")
		raw, _ := json.Marshal(f)
		var m sysMessage
		if err := json.Unmarshal(raw, &m); err != nil {
			t.Fatal(err)
		}
		synced = append(synced, m)
	}
	check("sync", synced)

	// and they are persisted: history from Postgres once the batch landed
	waitPersisted(t, env, room, int64(len(want)), 15*time.Second)
	check("history", readHistory(t, n, b, room))
	var v struct {
		Name string `json:"name"`
	}
	n.Call(t, "GET", "/api/v1/rooms/"+room, b.Access, nil, &v)
	if v.Name != "renamed" {
		t.Fatalf("room name %q", v.Name)
	}
}
