package tests

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/fasthttp/websocket"

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

// Sockets of one user that open and close at once, twenty at a time, leave
// the user offline: no socket's offline step overtakes its online step, and
// the node's count of the user's sockets ends at zero.
func TestPresenceConnectCloseStorm(t *testing.T) {
	env := testenv.Open(t)
	env.Worker(t, nil)
	n := env.StartNode(t, testenv.NodeConfig{})
	a, b := n.SignUp(t, "pst"), n.SignUp(t, "psu")
	n.CreateRoom(t, a, b) // befriends them: a's friend list shows b's presence
	online := func() bool {
		t.Helper()
		var fs []struct {
			UserID string `json:"user_id"`
			Online bool   `json:"online"`
		}
		if st := n.Call(t, "GET", "/api/v1/friends", a.Access, nil, &fs); st != 200 {
			t.Fatalf("friends: %d", st)
		}
		for _, f := range fs {
			if f.UserID == b.ID {
				return f.Online
			}
		}
		t.Fatalf("b is not in a's friends: %+v", fs)
		return false
	}
	settles := func(want bool, what string) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for online() != want {
			if time.Now().After(deadline) {
				t.Fatalf("%s: b's presence did not become %v", what, want)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	url := "ws://" + n.Addr + "/ws?access_token=" + b.Access
	for round := range 3 {
		var wg sync.WaitGroup
		errs := make(chan error, 20)
		for range 20 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				c, _, err := websocket.DefaultDialer.Dial(url, nil)
				if err != nil {
					errs <- err
					return
				}
				c.Close()
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatalf("round %d: dial: %v", round, err)
		}
		settles(false, fmt.Sprintf("round %d, every socket closed", round))
	}
	time.Sleep(time.Second) // nothing late turns b online again
	settles(false, "a second after the storms")
	wb := connect(t, n, b)
	settles(true, "one socket open")
	wb.conn.Close()
	settles(false, "that socket closed")
}
