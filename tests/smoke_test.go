package tests

import (
	"testing"
	"time"

	"github.com/chatflow/chatflow/api"
	"github.com/chatflow/chatflow/internal/testenv"
)

func TestSmokeChat(t *testing.T) {
	env := testenv.Open(t)
	env.Worker(t, nil)
	n := env.StartNode(t, api.Config{})
	a, b := n.SignUp(t, "alice"), n.SignUp(t, "bob")
	room := n.CreateRoom(t, a, b)
	wa, wb := n.Dial(t, a), n.Dial(t, b)
	time.Sleep(100 * time.Millisecond)
	wa.Send(map[string]any{"type": "send", "room_id": room, "client_msg_id": "m1", "body": "hello"})
	ack, err := wa.Next(5*time.Second, testenv.OfType("ack"))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("ack %v", ack)
	m, err := wb.Next(5*time.Second, testenv.OfType("message"))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("msg %v", m)
	var hist struct {
		Messages []map[string]any `json:"messages"`
		HasMore  bool             `json:"has_more"`
	}
	st := n.Call(t, "GET", "/api/v1/rooms/"+room+"/messages", b.Access, nil, &hist)
	t.Logf("history %d %+v", st, hist)
	var rooms map[string]any
	n.Call(t, "GET", "/api/v1/rooms", b.Access, nil, &rooms)
	t.Logf("rooms %+v", rooms)
}
