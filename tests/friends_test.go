package tests

import (
	"net/url"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/chatflow/chatflow"
	"github.com/chatflow/chatflow/internal/testenv"
	"github.com/chatflow/chatflow/ratelimit"
)

type friendUserJSON struct {
	UserID      string `json:"user_id"`
	Username    string `json:"username"`
	DisplayName string `json:"display_name"`
}

type friendRequestJSON struct {
	User      friendUserJSON `json:"user"`
	Direction string         `json:"direction"`
	CreatedAt time.Time      `json:"created_at"`
}

type friendAcceptedJSON struct {
	Status string         `json:"status"`
	Friend friendUserJSON `json:"friend"`
}

// friendRequestsOf lists u's pending requests in one direction, as user ids.
func friendRequestsOf(t *testing.T, n *testenv.Node, u testenv.User, dir string) []string {
	t.Helper()
	var out struct {
		Requests []friendRequestJSON `json:"requests"`
	}
	if r := acctCall(t, n, "GET", "/api/v1/friends/requests?direction="+url.QueryEscape(dir), u.Access, nil, &out); r.Status != 200 || out.Requests == nil {
		t.Fatalf("GET /friends/requests?direction=%s: %d %s", dir, r.Status, r.Body)
	}
	ids := make([]string, len(out.Requests))
	for i, q := range out.Requests {
		if q.Direction != dir || q.CreatedAt.IsZero() || q.User.Username == "" {
			t.Fatalf("request view %+v (direction %s)", q, dir)
		}
		ids[i] = q.User.UserID
	}
	return ids
}

// friendsOf lists u's friends, as user ids.
func friendsOf(t *testing.T, n *testenv.Node, u testenv.User) []string {
	t.Helper()
	var out []friendUserJSON
	if r := acctCall(t, n, "GET", "/api/v1/friends", u.Access, nil, &out); r.Status != 200 || out == nil {
		t.Fatalf("GET /friends: %d %s", r.Status, r.Body)
	}
	ids := make([]string, len(out))
	for i, f := range out {
		ids[i] = f.UserID
	}
	return ids
}

func sameIDs(got []string, want ...string) bool {
	if len(got) != len(want) {
		return false
	}
	for i := range got {
		if got[i] != want[i] {
			return false
		}
	}
	return true
}

// friendEv matches a friend frame about other (with the given direction, if any).
func friendEv(event, other, direction string) func(testenv.Frame) bool {
	return func(f testenv.Frame) bool {
		u, _ := f["user"].(map[string]any)
		id, _ := u["user_id"].(string)
		return f.Type() == "friend" && f.Str("event") == event && id == other && f.Str("direction") == direction
	}
}

// TestFriendRequestLifecycle: request, list, accept, decline, cancel,
// remove; every refusal with its code; both sides told live.
func TestFriendRequestLifecycle(t *testing.T) {
	env := testenv.Open(t)
	env.Worker(t, nil)
	n := env.StartNode(t, testenv.NodeConfig{})
	a, b, c := n.SignUp(t, "fla"), n.SignUp(t, "flb"), n.SignUp(t, "flc")
	wa, wb, wc := connect(t, n, a), connect(t, n, b), connect(t, n, c)
	const W = 5 * time.Second

	// a asks b (by username): pending, both told
	var req friendRequestJSON
	if r := acctCall(t, n, "POST", "/api/v1/friends/requests", a.Access, map[string]string{"username": b.Username}, &req); r.Status != 201 ||
		req.User.UserID != b.ID || req.User.Username != b.Username || req.Direction != "outgoing" || req.CreatedAt.IsZero() {
		t.Fatalf("request: %d %s", r.Status, r.Body)
	}
	wa.must(W, friendEv("requested", b.ID, "outgoing"), "requested event for the sender")
	f := wb.must(W, friendEv("requested", a.ID, "incoming"), "requested event for the recipient")
	if u := f["user"].(map[string]any); u["username"] != a.Username {
		t.Fatalf("requested frame: %v", f)
	}
	// not friends yet, and a pending request is listed on both sides
	if !sameIDs(friendsOf(t, n, a)) || !sameIDs(friendsOf(t, n, b)) {
		t.Fatal("a pending request made a friendship")
	}
	wantProblem(t, "request twice", acctCall(t, n, "POST", "/api/v1/friends/requests", a.Access, map[string]string{"user_id": b.ID}, nil), 409, chatflow.ECodeRequestPending)
	// a also asks c: lists are newest first
	if r := acctCall(t, n, "POST", "/api/v1/friends/requests", a.Access, map[string]string{"user_id": c.ID}, nil); r.Status != 201 {
		t.Fatalf("request c: %d %s", r.Status, r.Body)
	}
	if got := friendRequestsOf(t, n, a, "outgoing"); !sameIDs(got, c.ID, b.ID) {
		t.Fatalf("a's outgoing = %v, want [c b]", got)
	}
	if got := friendRequestsOf(t, n, b, "incoming"); !sameIDs(got, a.ID) {
		t.Fatalf("b's incoming = %v", got)
	}
	var def struct {
		Requests []friendRequestJSON `json:"requests"`
	}
	if acctCall(t, n, "GET", "/api/v1/friends/requests", b.Access, nil, &def); len(def.Requests) != 1 || def.Requests[0].Direction != "incoming" {
		t.Fatalf("default direction is not incoming: %+v", def)
	}
	if got := friendRequestsOf(t, n, a, "incoming"); len(got) != 0 {
		t.Fatalf("a's incoming = %v", got)
	}

	// refusals
	wantProblem(t, "request self by id", acctCall(t, n, "POST", "/api/v1/friends/requests", a.Access, map[string]string{"user_id": a.ID}, nil), 422, chatflow.ECodeCannotAddSelf)
	wantProblem(t, "request self by name", acctCall(t, n, "POST", "/api/v1/friends/requests", a.Access, map[string]string{"username": a.Username}, nil), 422, chatflow.ECodeCannotAddSelf)
	wantProblem(t, "request unknown id", acctCall(t, n, "POST", "/api/v1/friends/requests", a.Access, map[string]string{"user_id": uuid.NewString()}, nil), 404, chatflow.ECodeNotFound)
	wantProblem(t, "request unknown name", acctCall(t, n, "POST", "/api/v1/friends/requests", a.Access, map[string]string{"username": "nobody_" + testenv.Unique()}, nil), 404, chatflow.ECodeNotFound)
	wantProblem(t, "accept a request never sent", acctCall(t, n, "POST", "/api/v1/friends/requests/"+b.ID+"/accept", a.Access, nil, nil), 404, chatflow.ECodeNotFound)

	// b accepts: friends both ways, both told
	var fv friendUserJSON
	if r := acctCall(t, n, "POST", "/api/v1/friends/requests/"+a.ID+"/accept", b.Access, nil, &fv); r.Status != 200 || fv.UserID != a.ID {
		t.Fatalf("accept: %d %s", r.Status, r.Body)
	}
	wa.must(W, friendEv("accepted", b.ID, ""), "accepted event for the sender")
	wb.must(W, friendEv("accepted", a.ID, ""), "accepted event for the acceptor")
	if !sameIDs(friendsOf(t, n, a), b.ID) || !sameIDs(friendsOf(t, n, b), a.ID) {
		t.Fatalf("after accept: a's friends %v, b's %v", friendsOf(t, n, a), friendsOf(t, n, b))
	}
	if len(friendRequestsOf(t, n, b, "incoming")) != 0 || !sameIDs(friendRequestsOf(t, n, a, "outgoing"), c.ID) {
		t.Fatal("the accepted request is still listed")
	}
	wantProblem(t, "accept twice", acctCall(t, n, "POST", "/api/v1/friends/requests/"+a.ID+"/accept", b.Access, nil, nil), 404, chatflow.ECodeNotFound)
	wantProblem(t, "request a friend", acctCall(t, n, "POST", "/api/v1/friends/requests", a.Access, map[string]string{"user_id": b.ID}, nil), 409, chatflow.ECodeAlreadyFriends)
	wantProblem(t, "request a friend back", acctCall(t, n, "POST", "/api/v1/friends/requests", b.Access, map[string]string{"username": a.Username}, nil), 409, chatflow.ECodeAlreadyFriends)

	// c asks a back while a's request to c is pending: that accepts it
	var acc friendAcceptedJSON
	if r := acctCall(t, n, "POST", "/api/v1/friends/requests", c.Access, map[string]string{"user_id": a.ID}, &acc); r.Status != 200 || acc.Status != "accepted" || acc.Friend.UserID != a.ID {
		t.Fatalf("request back: %d %s", r.Status, r.Body)
	}
	wa.must(W, friendEv("accepted", c.ID, ""), "accepted event (request back) for a")
	wc.must(W, friendEv("accepted", a.ID, ""), "accepted event (request back) for c")
	if !sameIDs(friendsOf(t, n, c), a.ID) || len(friendRequestsOf(t, n, a, "outgoing")) != 0 || len(friendRequestsOf(t, n, c, "incoming")) != 0 {
		t.Fatal("a request back did not make a friendship")
	}

	// remove: both directions go, both told
	if r := acctCall(t, n, "DELETE", "/api/v1/friends/"+a.ID, c.Access, nil, nil); r.Status != 204 {
		t.Fatalf("remove: %d %s", r.Status, r.Body)
	}
	wa.must(W, friendEv("removed", c.ID, ""), "removed event for the removed friend")
	wc.must(W, friendEv("removed", a.ID, ""), "removed event for the remover")
	if len(friendsOf(t, n, c)) != 0 || !sameIDs(friendsOf(t, n, a), b.ID) {
		t.Fatal("removal left a direction")
	}
	wantProblem(t, "remove twice", acctCall(t, n, "DELETE", "/api/v1/friends/"+c.ID, a.Access, nil, nil), 404, chatflow.ECodeNotFound)

	// decline: c asks a, a declines; both told, nothing left
	if r := acctCall(t, n, "POST", "/api/v1/friends/requests", c.Access, map[string]string{"user_id": a.ID}, nil); r.Status != 201 {
		t.Fatalf("request after removal: %d %s", r.Status, r.Body)
	}
	if r := acctCall(t, n, "POST", "/api/v1/friends/requests/"+c.ID+"/decline", a.Access, nil, nil); r.Status != 204 {
		t.Fatalf("decline: %d %s", r.Status, r.Body)
	}
	wa.must(W, friendEv("declined", c.ID, "incoming"), "declined event for the decliner")
	wc.must(W, friendEv("declined", a.ID, "outgoing"), "declined event for the requester")
	if len(friendRequestsOf(t, n, c, "outgoing")) != 0 || len(friendsOf(t, n, c)) != 0 {
		t.Fatal("a declined request left something")
	}
	wantProblem(t, "decline twice", acctCall(t, n, "POST", "/api/v1/friends/requests/"+c.ID+"/decline", a.Access, nil, nil), 404, chatflow.ECodeNotFound)

	// cancel: a asks c, then withdraws; only the sender can
	if r := acctCall(t, n, "POST", "/api/v1/friends/requests", a.Access, map[string]string{"user_id": c.ID}, nil); r.Status != 201 {
		t.Fatalf("request: %d %s", r.Status, r.Body)
	}
	wantProblem(t, "recipient cancels", acctCall(t, n, "DELETE", "/api/v1/friends/requests/"+a.ID, c.Access, nil, nil), 404, chatflow.ECodeNotFound)
	wantProblem(t, "sender declines own", acctCall(t, n, "POST", "/api/v1/friends/requests/"+c.ID+"/decline", a.Access, nil, nil), 404, chatflow.ECodeNotFound)
	if r := acctCall(t, n, "DELETE", "/api/v1/friends/requests/"+c.ID, a.Access, nil, nil); r.Status != 204 {
		t.Fatalf("cancel: %d %s", r.Status, r.Body)
	}
	wa.must(W, friendEv("canceled", c.ID, "outgoing"), "canceled event for the sender")
	wc.must(W, friendEv("canceled", a.ID, "incoming"), "canceled event for the recipient")
	if len(friendRequestsOf(t, n, c, "incoming")) != 0 {
		t.Fatal("a canceled request is still listed")
	}
	wantProblem(t, "cancel twice", acctCall(t, n, "DELETE", "/api/v1/friends/requests/"+c.ID, a.Access, nil, nil), 404, chatflow.ECodeNotFound)

	// the deprecated POST /friends is the same call
	if r := acctCall(t, n, "POST", "/api/v1/friends", b.Access, map[string]string{"username": c.Username}, &req); r.Status != 201 || req.User.UserID != c.ID || req.Direction != "outgoing" {
		t.Fatalf("POST /friends: %d %s", r.Status, r.Body)
	}
	if r := acctCall(t, n, "POST", "/api/v1/friends", c.Access, map[string]string{"user_id": b.ID}, &acc); r.Status != 200 || acc.Status != "accepted" || acc.Friend.UserID != b.ID {
		t.Fatalf("POST /friends back: %d %s", r.Status, r.Body)
	}
	wantProblem(t, "POST /friends to a friend", acctCall(t, n, "POST", "/api/v1/friends", c.Access, map[string]string{"username": b.Username}, nil), 409, chatflow.ECodeAlreadyFriends)
	friendInvariants(t, env, a, b, c)
}

// TestFriendRequestBlocksAndDeletedUsers: a block either way refuses
// requests and drops pending ones and the friendship; a deleted user
// cannot be asked, and their requests are neither listed nor acceptable.
func TestFriendRequestBlocksAndDeletedUsers(t *testing.T) {
	env := testenv.Open(t)
	env.Worker(t, nil)
	n := env.StartNode(t, testenv.NodeConfig{})
	a, b, c, d := n.SignUp(t, "fba"), n.SignUp(t, "fbb"), n.SignUp(t, "fbc"), n.SignUp(t, "fbd")

	// b blocks a while a's request to b is pending
	if r := acctCall(t, n, "POST", "/api/v1/friends/requests", a.Access, map[string]string{"user_id": b.ID}, nil); r.Status != 201 {
		t.Fatalf("request: %d", r.Status)
	}
	if r := acctCall(t, n, "POST", "/api/v1/users/"+a.ID+"/block", b.Access, nil, nil); r.Status != 204 {
		t.Fatalf("block: %d", r.Status)
	}
	if len(friendRequestsOf(t, n, a, "outgoing")) != 0 || len(friendRequestsOf(t, n, b, "incoming")) != 0 {
		t.Fatal("a blocked user's pending request survives the block")
	}
	wantProblem(t, "blocked user asks", acctCall(t, n, "POST", "/api/v1/friends/requests", a.Access, map[string]string{"user_id": b.ID}, nil), 403, chatflow.ECodeForbidden)
	wantProblem(t, "blocked user asks by name", acctCall(t, n, "POST", "/api/v1/friends/requests", a.Access, map[string]string{"username": b.Username}, nil), 403, chatflow.ECodeForbidden)
	wantProblem(t, "blocker asks", acctCall(t, n, "POST", "/api/v1/friends/requests", b.Access, map[string]string{"user_id": a.ID}, nil), 403, chatflow.ECodeForbidden)
	wantProblem(t, "accept after the block", acctCall(t, n, "POST", "/api/v1/friends/requests/"+a.ID+"/accept", b.Access, nil, nil), 404, chatflow.ECodeNotFound)
	// unblocked: asking works again
	if r := acctCall(t, n, "DELETE", "/api/v1/users/"+a.ID+"/block", b.Access, nil, nil); r.Status != 204 {
		t.Fatalf("unblock: %d", r.Status)
	}
	if r := acctCall(t, n, "POST", "/api/v1/friends/requests", a.Access, map[string]string{"user_id": b.ID}, nil); r.Status != 201 {
		t.Fatalf("request after unblock: %d %s", r.Status, r.Body)
	}

	// friends, then one blocks the other: the friendship goes both ways
	n.Befriend(t, b, c)
	if r := acctCall(t, n, "POST", "/api/v1/users/"+b.ID+"/block", c.Access, nil, nil); r.Status != 204 {
		t.Fatalf("block: %d", r.Status)
	}
	if len(friendsOf(t, n, b)) != 0 || len(friendsOf(t, n, c)) != 0 {
		t.Fatal("a friendship survives a block")
	}

	// a deleted user: not found, and their request is gone from view
	if r := acctCall(t, n, "POST", "/api/v1/friends/requests", d.Access, map[string]string{"user_id": c.ID}, nil); r.Status != 201 {
		t.Fatalf("request: %d", r.Status)
	}
	if _, err := env.Pool.Exec(t.Context(), `UPDATE chat.profiles SET deleted_at = now() WHERE user_id = $1`, d.ID); err != nil {
		t.Fatal(err)
	}
	wantProblem(t, "ask a deleted user", acctCall(t, n, "POST", "/api/v1/friends/requests", c.Access, map[string]string{"user_id": d.ID}, nil), 404, chatflow.ECodeNotFound)
	wantProblem(t, "ask a deleted user by name", acctCall(t, n, "POST", "/api/v1/friends/requests", c.Access, map[string]string{"username": d.Username}, nil), 404, chatflow.ECodeNotFound)
	if len(friendRequestsOf(t, n, c, "incoming")) != 0 {
		t.Fatal("a deleted user's request is listed")
	}
	wantProblem(t, "accept a deleted user's request", acctCall(t, n, "POST", "/api/v1/friends/requests/"+d.ID+"/accept", c.Access, nil, nil), 404, chatflow.ECodeNotFound)
	friendInvariants(t, env, a, b, c, d)
}

// TestConsentFollowsMutualFriendship: only a mutual friend adds a user to a
// room directly; a pending request (either way) or an ended friendship
// gives a pending invitation.
func TestConsentFollowsMutualFriendship(t *testing.T) {
	env := testenv.Open(t)
	env.Worker(t, nil)
	n := env.StartNode(t, testenv.NodeConfig{})
	a, b, c := n.SignUp(t, "fca"), n.SignUp(t, "fcb"), n.SignUp(t, "fcc")
	added := func(what string, u testenv.User, want bool) {
		t.Helper()
		var r roomWithInvites
		if st := n.Call(t, "POST", "/api/v1/rooms", a.Access, map[string]any{"name": what, "member_ids": []string{u.ID}}, &r); st != 201 {
			t.Fatalf("%s: create: %d", what, st)
		}
		if got := hasMember(r.roomJSON, u.ID); got != want || got == (len(r.PendingInvitations) == 1) {
			t.Fatalf("%s: added directly %v (want %v), pending %+v", what, got, want, r.PendingInvitations)
		}
	}
	if r := acctCall(t, n, "POST", "/api/v1/friends/requests", a.Access, map[string]string{"user_id": b.ID}, nil); r.Status != 201 {
		t.Fatalf("request: %d", r.Status)
	}
	added("a asked b, pending", b, false)
	if r := acctCall(t, n, "POST", "/api/v1/friends/requests", c.Access, map[string]string{"user_id": a.ID}, nil); r.Status != 201 {
		t.Fatalf("request: %d", r.Status)
	}
	added("c asked a, pending", c, false)
	if r := acctCall(t, n, "POST", "/api/v1/friends/requests/"+a.ID+"/accept", b.Access, nil, nil); r.Status != 200 {
		t.Fatalf("accept: %d", r.Status)
	}
	added("b accepted", b, true)
	if r := acctCall(t, n, "DELETE", "/api/v1/friends/"+a.ID, b.Access, nil, nil); r.Status != 204 {
		t.Fatalf("remove: %d", r.Status)
	}
	added("b removed a", b, false)
}

// TestFriendRequestRateLimited: friend requests share the sender's invite
// budget; refusals before it (bad input, yourself) cost nothing, a request
// to an unknown user does (no free probing), accepting is free.
func TestFriendRequestRateLimited(t *testing.T) {
	env := testenv.Open(t)
	env.Worker(t, nil)
	cfg := testenv.RateLimitConfig()
	cfg.Invite = ratelimit.Per(2, time.Hour)
	n := env.StartNode(t, testenv.NodeConfig{RateLimit: &cfg})
	a, b, c := n.SignUp(t, "frl"), n.SignUp(t, "frl"), n.SignUp(t, "frl")
	wantProblem(t, "self", acctCall(t, n, "POST", "/api/v1/friends/requests", a.Access, map[string]string{"user_id": a.ID}, nil), 422, chatflow.ECodeCannotAddSelf)
	wantProblem(t, "bad name", acctCall(t, n, "POST", "/api/v1/friends/requests", a.Access, map[string]string{"username": "A!"}, nil), 422, chatflow.ECodeValidation)
	if r := acctCall(t, n, "POST", "/api/v1/friends/requests", a.Access, map[string]string{"user_id": b.ID}, nil); r.Status != 201 {
		t.Fatalf("1st request: %d %s", r.Status, r.Body)
	}
	wantProblem(t, "unknown user", acctCall(t, n, "POST", "/api/v1/friends/requests", a.Access, map[string]string{"username": "nobody_" + testenv.Unique()}, nil), 404, chatflow.ECodeNotFound)
	st, h, p := callH(t, n, "POST", "/api/v1/friends/requests", a.Access, map[string]string{"user_id": c.ID}, nil)
	assertLimited(t, "3rd friend request of 2", st, h, p, time.Hour)
	if r := acctCall(t, n, "POST", "/api/v1/friends/requests/"+a.ID+"/accept", b.Access, nil, nil); r.Status != 200 {
		t.Fatalf("accept: %d %s", r.Status, r.Body)
	}
	if r := acctCall(t, n, "POST", "/api/v1/friends/requests", c.Access, map[string]string{"user_id": a.ID}, nil); r.Status != 201 {
		t.Fatalf("another user's budget is their own: %d %s", r.Status, r.Body)
	}
}
