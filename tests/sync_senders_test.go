package tests

import (
	"testing"
	"time"

	"github.com/chatflow/chatflow/internal/testenv"
)

// A sync's replayed message frames name their senders ("senders":
// {sender_id: display_name}), former members included; live frames are
// unchanged.
func TestSyncCarriesSenderNames(t *testing.T) {
	env := testenv.Open(t)
	env.Worker(t, nil)
	n, nb := env.StartNode(t, testenv.NodeConfig{}), env.StartNode(t, testenv.NodeConfig{})
	a, b, c := n.SignUp(t, "sna"), n.SignUp(t, "snb"), n.SignUp(t, "snc")
	room := n.CreateRoom(t, a, b, c)
	if st := n.Call(t, "PATCH", "/api/v1/me", c.Access, map[string]string{"display_name": "Carol Gone"}, nil); st != 200 {
		t.Fatalf("rename c: %d", st)
	}
	for _, u := range []testenv.User{a, b, c} {
		if st, _ := restSend(t, n, u, room, "m-"+u.ID, "from "+u.Username); st != 201 {
			t.Fatalf("send as %s: %d", u.Username, st)
		}
	}
	if st := n.Call(t, "DELETE", "/api/v1/rooms/"+room+"/members/me", c.Access, nil, nil); st/100 != 2 {
		t.Fatalf("c leaves: %d", st)
	}
	want := map[string]string{a.ID: "SNA", b.ID: "SNB", c.ID: "Carol Gone"}

	wa := connect(t, nb, a) // another node than the sends
	wa.send(map[string]any{"type": "sync", "rooms": map[string]int64{room: 0}})
	named := map[string]bool{}
	msgs := 0
	for _, f := range wa.barrier(10 * time.Second) {
		if f.Type() != "message" || f.Str("room_id") != room {
			continue
		}
		msgs++
		sender := f.Str("sender_id")
		senders, ok := f["senders"].(map[string]any)
		if !ok || len(senders) != 1 || senders[sender] != want[sender] {
			t.Fatalf("replayed seq %d (kind %s) of %s: senders %v, want {%s: %q}", f.Int("seq"), f.Str("kind"), sender, f["senders"], sender, want[sender])
		}
		named[sender] = true
	}
	if msgs < 4 || !named[a.ID] || !named[b.ID] || !named[c.ID] {
		t.Fatalf("sync replayed %d messages naming %v; want a, b and c (who left) named", msgs, named)
	}

	// live frames go out as they were sent: no names
	if st, _ := restSend(t, n, b, room, "live-"+b.ID, "live one"); st != 201 {
		t.Fatalf("live send: %d", st)
	}
	f := wa.must(10*time.Second, func(f testenv.Frame) bool { return f.Type() == "message" && f.Str("body") == "live one" }, "live message")
	if _, has := f["senders"]; has {
		t.Fatalf("a live frame carries senders: %v", f)
	}
}
