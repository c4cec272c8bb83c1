package tests

import (
	"sync"
	"testing"
	"time"

	"github.com/chatflow/chatflow/internal/testenv"
)

type adminRoomJSON struct {
	RoomID      string   `json:"room_id"`
	Name        string   `json:"name"`
	OwnerID     string   `json:"owner_id"`
	Role        string   `json:"role"`
	Kind        string   `json:"kind"`
	Muted       bool     `json:"muted"`
	MemberCount int64    `json:"member_count"`
	MemberNames []string `json:"member_names"`
}

type problemJSON struct {
	Code string `json:"code"`
}

func callCode(t *testing.T, n *testenv.Node, method, path string, u testenv.User, body any) (int, string) {
	t.Helper()
	var p problemJSON
	st := n.Call(t, method, path, u.Access, body, &p)
	return st, p.Code
}

func listedRoom(t *testing.T, n *testenv.Node, u testenv.User, room string) adminRoomJSON {
	t.Helper()
	var rs []adminRoomJSON
	if st := n.Call(t, "GET", "/api/v1/rooms", u.Access, nil, &rs); st != 200 {
		t.Fatalf("GET /rooms: %d", st)
	}
	for _, r := range rs {
		if r.RoomID == room {
			return r
		}
	}
	t.Fatalf("room %s not listed for %s", room, u.Username)
	return adminRoomJSON{}
}

// TestRoomAdminRules: only the owner renames and removes (403 forbidden
// otherwise), names are validated, the owner cannot remove themselves nor
// a non-member; a removed member can no longer send, read or receive the
// room live; the views carry owner, role, kind, member count and names.
func TestRoomAdminRules(t *testing.T) {
	env := testenv.Open(t)
	env.Worker(t, nil)
	n := env.StartNode(t, testenv.NodeConfig{})
	a, b, c, x := n.SignUp(t, "raa"), n.SignUp(t, "rab"), n.SignUp(t, "rac"), n.SignUp(t, "rax")
	room := n.CreateRoom(t, a, b, c)
	base := "/api/v1/rooms/" + room

	var va, vb adminRoomJSON
	n.Call(t, "GET", base, a.Access, nil, &va)
	n.Call(t, "GET", base, b.Access, nil, &vb)
	if va.OwnerID != a.ID || va.Role != "owner" || vb.OwnerID != a.ID || vb.Role != "member" || va.Kind != "group" || va.MemberCount != 3 || len(va.MemberNames) != 2 {
		t.Fatalf("views: owner %+v member %+v", va, vb)
	}
	la := listedRoom(t, n, a, room)
	if la.MemberCount != 3 || len(la.MemberNames) != 2 || la.Role != "owner" || la.Kind != "group" {
		t.Fatalf("listed: %+v", la)
	}
	for _, nm := range la.MemberNames {
		if nm == a.Username {
			t.Fatalf("member_names lists the caller: %v", la.MemberNames)
		}
	}

	if st, code := callCode(t, n, "PATCH", base, b, map[string]string{"name": "mine"}); st != 403 || code != "forbidden" {
		t.Fatalf("member renames: %d %s", st, code)
	}
	if st, code := callCode(t, n, "PATCH", base, x, map[string]string{"name": "mine"}); st != 403 || code != "not_member" {
		t.Fatalf("stranger renames: %d %s", st, code)
	}
	if st, code := callCode(t, n, "PATCH", base, a, map[string]string{"name": "  "}); st != 422 || code != "validation_failed" {
		t.Fatalf("empty name: %d %s", st, code)
	}
	if st, code := callCode(t, n, "DELETE", base+"/members/"+c.ID, b, nil); st != 403 || code != "forbidden" {
		t.Fatalf("member removes: %d %s", st, code)
	}
	if st, _ := callCode(t, n, "DELETE", base+"/members/"+a.ID, a, nil); st != 422 {
		t.Fatalf("owner removes self: %d", st)
	}
	if st, _ := callCode(t, n, "DELETE", base+"/members/"+x.ID, a, nil); st != 404 {
		t.Fatalf("remove non-member: %d", st)
	}
	if st, _ := callCode(t, n, "DELETE", base+"/members/not-a-uuid", a, nil); st != 404 { // path ids: 404 (api/request.go)
		t.Fatalf("remove bad id: %d", st)
	}

	wb := connect(t, n, b)
	if st, _ := callCode(t, n, "DELETE", base+"/members/"+b.ID, a, nil); st != 204 {
		t.Fatalf("remove b: %d", st)
	}
	wb.must(5*time.Second, func(f testenv.Frame) bool {
		return f.Type() == "room" && f.Str("event") == "left" && f.Str("user_id") == b.ID
	}, "b's left event")
	if st, _ := restSend(t, n, b, room, "after-removal", "still here?"); st != 403 {
		t.Fatalf("removed member sends: %d", st)
	}
	if st := n.Call(t, "GET", base+"/messages", b.Access, nil, nil); st != 403 {
		t.Fatalf("removed member reads: %d", st)
	}
	if st, _ := restSend(t, n, a, room, "after-b", "b must not see this"); st != 201 && st != 200 {
		t.Fatalf("a sends: %d", st)
	}
	for _, f := range wb.barrier(3 * time.Second) {
		if f.Type() == "message" && f.Str("room_id") == room {
			t.Fatalf("removed member still receives the room: %v", f)
		}
	}
	if got := listedRoom(t, n, a, room).MemberCount; got != 2 {
		t.Fatalf("member_count after removal: %d", got)
	}
}

// TestRoomMute: mute is per member, round-trips and shows in both views.
func TestRoomMute(t *testing.T) {
	env := testenv.Open(t)
	env.Worker(t, nil)
	n := env.StartNode(t, testenv.NodeConfig{})
	a, b, x := n.SignUp(t, "rma"), n.SignUp(t, "rmb"), n.SignUp(t, "rmx")
	room := n.CreateRoom(t, a, b)
	path := "/api/v1/rooms/" + room + "/mute"
	var v adminRoomJSON
	if st := n.Call(t, "PUT", path, b.Access, map[string]bool{"muted": true}, &v); st != 200 || !v.Muted {
		t.Fatalf("mute: %d %+v", st, v)
	}
	if !listedRoom(t, n, b, room).Muted || listedRoom(t, n, a, room).Muted {
		t.Fatal("mute is not per member")
	}
	n.Call(t, "GET", "/api/v1/rooms/"+room, b.Access, nil, &v)
	if !v.Muted {
		t.Fatal("room view not muted")
	}
	if st := n.Call(t, "PUT", path, b.Access, map[string]bool{"muted": false}, &v); st != 200 || v.Muted {
		t.Fatalf("unmute: %d %+v", st, v)
	}
	if listedRoom(t, n, b, room).Muted {
		t.Fatal("still muted")
	}
	if st, _ := callCode(t, n, "PUT", path, b, map[string]any{}); st != 422 {
		t.Fatalf("mute without muted: %d", st)
	}
	if st, code := callCode(t, n, "PUT", path, x, map[string]bool{"muted": true}); st != 403 || code != "not_member" {
		t.Fatalf("stranger mutes: %d %s", st, code)
	}
}

// TestDirectMessages: ten concurrent opens from both sides of a friendship
// give one DM room (one 201, the rest 200); a DM cannot be renamed or get
// members; non-friends and blocked pairs are refused.
func TestDirectMessages(t *testing.T) {
	env := testenv.Open(t)
	env.Worker(t, nil)
	n := env.StartNode(t, testenv.NodeConfig{})
	a, b, c, d := n.SignUp(t, "dma"), n.SignUp(t, "dmb"), n.SignUp(t, "dmc"), n.SignUp(t, "dmd")
	n.Befriend(t, a, b)

	type res struct {
		st int
		v  adminRoomJSON
	}
	out := make([]res, 10)
	var wg sync.WaitGroup
	for i := range out {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			me, other := a, b
			if i%2 == 1 {
				me, other = b, a
			}
			out[i].st = n.Call(t, "POST", "/api/v1/dms", me.Access, map[string]string{"user_id": other.ID}, &out[i].v)
		}(i)
	}
	wg.Wait()
	created := 0
	for i, r := range out {
		switch r.st {
		case 201:
			created++
		case 200:
		default:
			t.Fatalf("open %d: %d", i, r.st)
		}
		if r.v.RoomID != out[0].v.RoomID || r.v.Kind != "dm" || r.v.MemberCount != 2 {
			t.Fatalf("open %d: %+v, first %+v", i, r.v, out[0].v)
		}
	}
	if created != 1 {
		t.Fatalf("%d opens created a room", created)
	}
	room := out[0].v.RoomID
	var rooms int
	if err := env.Pool.QueryRow(t.Context(), "SELECT count(*) FROM chat.rooms WHERE kind = 'dm' AND id IN (SELECT room_id FROM chat.members WHERE user_id = $1)", a.ID).Scan(&rooms); err != nil {
		t.Fatal(err)
	}
	if rooms != 1 {
		t.Fatalf("%d DM rooms for the pair", rooms)
	}
	if st, _ := restSend(t, n, b, room, "dm-1", "hi"); st != 201 && st != 200 {
		t.Fatalf("send in DM: %d", st)
	}
	owner := a
	if out[0].v.OwnerID == b.ID {
		owner = b
	}
	if st, _ := callCode(t, n, "PATCH", "/api/v1/rooms/"+room, owner, map[string]string{"name": "x"}); st != 422 {
		t.Fatalf("rename DM: %d", st)
	}
	n.Befriend(t, c, a)
	if st, _ := callCode(t, n, "POST", "/api/v1/rooms/"+room+"/members", a, map[string]any{"user_ids": []string{c.ID}}); st != 422 {
		t.Fatalf("add to DM: %d", st)
	}
	if st, code := callCode(t, n, "POST", "/api/v1/dms", a, map[string]string{"user_id": d.ID}); st != 403 || code != "forbidden" {
		t.Fatalf("DM a non-friend: %d %s", st, code)
	}
	if st, _ := callCode(t, n, "POST", "/api/v1/dms", a, map[string]string{"user_id": a.ID}); st != 422 {
		t.Fatalf("DM self: %d", st)
	}
	if st := n.Call(t, "POST", "/api/v1/users/"+a.ID+"/block", c.Access, nil, nil); st != 204 {
		t.Fatalf("block: %d", st)
	}
	if st, code := callCode(t, n, "POST", "/api/v1/dms", a, map[string]string{"user_id": c.ID}); st != 403 || code != "forbidden" {
		t.Fatalf("DM a blocker: %d %s", st, code)
	}
}
