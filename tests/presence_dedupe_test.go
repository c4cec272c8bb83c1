package tests

import (
	"testing"
	"time"

	"github.com/chatflow/chatflow/internal/testenv"
)

// A user sharing several rooms with you comes online or goes offline: you
// get one presence frame per change, not one per shared room.
func TestPresenceOneFramePerChange(t *testing.T) {
	env := testenv.Open(t)
	env.Worker(t, nil)
	n := env.StartNode(t, testenv.NodeConfig{})
	a, b := n.SignUp(t, "pda"), n.SignUp(t, "pdb")
	n.CreateRoom(t, a, b) // befriends b and a
	for i := 0; i < 2; i++ {
		var rm struct {
			RoomID string `json:"room_id"`
		}
		if st := n.Call(t, "POST", "/api/v1/rooms", a.Access, map[string]any{"name": "shared " + testenv.Unique(), "member_ids": []string{b.ID}}, &rm); st != 201 {
			t.Fatalf("create room %d: %d", i, st)
		}
	}
	wa := connect(t, n, a)
	wa.drain(300 * time.Millisecond)

	count := func(online bool) int {
		k := 0
		for _, f := range wa.drain(time.Second) {
			if o, _ := f["online"].(bool); f.Type() == "presence" && f.Str("user_id") == b.ID && o == online {
				k++
			}
		}
		return k
	}
	wb := connect(t, n, b)
	if k := count(true); k != 1 {
		t.Fatalf("b online, 3 shared rooms: %d presence frames, want 1", k)
	}
	wb.conn.Close()
	if k := count(false); k != 1 {
		t.Fatalf("b offline, 3 shared rooms: %d presence frames, want 1", k)
	}
	// a second change is a new event, delivered again
	connect(t, n, b)
	if k := count(true); k != 1 {
		t.Fatalf("b online again: %d presence frames, want 1", k)
	}
}
