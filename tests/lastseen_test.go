package tests

import (
	"context"
	"testing"
	"time"

	"github.com/chatflow/chatflow/internal/testenv"
)

// Tests of issue 11's last login and last seen times.

type seenJSON struct {
	UserID     string     `json:"user_id"`
	Online     bool       `json:"online"`
	LastSeenAt *time.Time `json:"last_seen_at"`
}

// friendSeen is user as the viewer's GET /friends shows it.
func friendSeen(t *testing.T, n *testenv.Node, viewer testenv.User, user string) seenJSON {
	t.Helper()
	var fs []seenJSON
	if r := acctCall(t, n, "GET", "/api/v1/friends", viewer.Access, nil, &fs); r.Status != 200 {
		t.Fatalf("GET friends: %d %s", r.Status, r.Body)
	}
	for _, f := range fs {
		if f.UserID == user {
			return f
		}
	}
	t.Fatalf("%s is not among the friends of %s", user, viewer.Username)
	return seenJSON{}
}

// memberSeen is user as the viewer's GET /rooms/{room} members list shows it.
func memberSeen(t *testing.T, n *testenv.Node, viewer testenv.User, room, user string) seenJSON {
	t.Helper()
	var r struct {
		Members []seenJSON `json:"members"`
	}
	if st := n.Call(t, "GET", "/api/v1/rooms/"+room, viewer.Access, nil, &r); st != 200 {
		t.Fatalf("GET room: %d", st)
	}
	for _, m := range r.Members {
		if m.UserID == user {
			return m
		}
	}
	t.Fatalf("%s is not a member of %s", user, room)
	return seenJSON{}
}

func storedLastSeen(t *testing.T, env *testenv.Env, user string) *time.Time {
	t.Helper()
	var at *time.Time
	if err := env.Pool.QueryRow(context.Background(), `SELECT last_seen_at FROM auth.users WHERE id = $1`, user).Scan(&at); err != nil {
		t.Fatal(err)
	}
	return at
}

// TestLastLoginAndLastSeen: a login sets last_login_at (GET /me shows it).
// last_seen_at is set when the user's last socket on any node closes, not
// before: with sockets on two nodes, closing one leaves it unset. Friends
// (GET /friends) and room members (GET /rooms/{id}) show it while the user
// is offline and null while online or never seen.
func TestLastLoginAndLastSeen(t *testing.T) {
	env := testenv.Open(t)
	env.Worker(t, nil)
	n1 := env.StartNode(t, testenv.NodeConfig{})
	n2 := env.StartNode(t, testenv.NodeConfig{})
	a, b := n1.SignUp(t, "lsa"), n1.SignUp(t, "lsb")
	room := n1.CreateRoom(t, b, a) // a consents to b
	n1.Befriend(t, b, a)           // a is among b's friends

	var me struct {
		LastLoginAt *time.Time `json:"last_login_at"`
	}
	loginAt := time.Now()
	n2.Login(t, &a)
	if r := acctCall(t, n1, "GET", "/api/v1/me", a.Access, nil, &me); r.Status != 200 || me.LastLoginAt == nil ||
		me.LastLoginAt.Before(loginAt.Add(-time.Second)) || me.LastLoginAt.After(time.Now().Add(time.Second)) {
		t.Fatalf("me after login at %v: %d %s", loginAt, r.Status, r.Body)
	}

	if f := friendSeen(t, n1, b, a.ID); f.Online || f.LastSeenAt != nil {
		t.Fatalf("never connected, as a friend: %+v", f)
	}
	if m := memberSeen(t, n1, b, room, a.ID); m.Online || m.LastSeenAt != nil {
		t.Fatalf("never connected, as a member: %+v", m)
	}

	watcher := connect(t, n1, b)
	s1, s2 := connect(t, n1, a), connect(t, n2, a)
	watcher.must(5*time.Second, presence(a.ID, true), "a online")
	if f := friendSeen(t, n1, b, a.ID); !f.Online || f.LastSeenAt != nil {
		t.Fatalf("online, as a friend: %+v", f)
	}
	s1.conn.Close()
	s1.closedWithin(5 * time.Second)
	time.Sleep(500 * time.Millisecond) // the node handles the close
	if at := storedLastSeen(t, env, a.ID); at != nil {
		t.Fatalf("last_seen_at set to %v while a socket on another node is open", at)
	}
	if f := friendSeen(t, n1, b, a.ID); !f.Online || f.LastSeenAt != nil {
		t.Fatalf("one socket left, as a friend: %+v", f)
	}

	closedAt := time.Now()
	s2.conn.Close()
	watcher.must(5*time.Second, presence(a.ID, false), "a offline")
	var f seenJSON
	if !waitFor(5*time.Second, func() bool { f = friendSeen(t, n1, b, a.ID); return f.LastSeenAt != nil }) {
		t.Fatalf("no last_seen_at after the last socket closed: %+v", f)
	}
	if f.Online || f.LastSeenAt.Before(closedAt.Add(-time.Second)) || f.LastSeenAt.After(time.Now().Add(time.Second)) {
		t.Fatalf("offline, as a friend: %+v (closed at %v)", f, closedAt)
	}
	if m := memberSeen(t, n2, b, room, a.ID); m.Online || m.LastSeenAt == nil || !m.LastSeenAt.Equal(*f.LastSeenAt) {
		t.Fatalf("offline, as a member: %+v, friend view %v", m, f.LastSeenAt)
	}

	// Back online: null again in both views (the stored time stays).
	connect(t, n2, a)
	watcher.must(5*time.Second, presence(a.ID, true), "a online again")
	if f := friendSeen(t, n1, b, a.ID); !f.Online || f.LastSeenAt != nil {
		t.Fatalf("online again, as a friend: %+v", f)
	}
	if m := memberSeen(t, n1, b, room, a.ID); !m.Online || m.LastSeenAt != nil {
		t.Fatalf("online again, as a member: %+v", m)
	}
}

// TestLastSeenWhenNodeDies: a node that dies without closing its sockets
// does not record anything; the surviving node's presence sweep, which ends
// the dead node's users' presence, records their last_seen_at.
func TestLastSeenWhenNodeDies(t *testing.T) {
	env := testenv.Open(t)
	env.Worker(t, nil)
	cfg := testenv.NodeConfig{PresenceHeartbeat: 500 * time.Millisecond, PresenceTTL: 2 * time.Second}
	victim := env.StartNode(t, cfg)
	survivor := env.StartNode(t, cfg)
	a, b := survivor.SignUp(t, "lsda"), survivor.SignUp(t, "lsdb")
	survivor.CreateRoom(t, b, a) // b watches a's presence through the room
	survivor.Befriend(t, b, a)
	watcher := connect(t, survivor, b)
	connect(t, victim, a)
	watcher.must(5*time.Second, presence(a.ID, true), "a online")

	victim.Kill()
	if at := storedLastSeen(t, env, a.ID); at != nil {
		t.Fatalf("the killed node recorded last_seen_at %v", at)
	}
	watcher.must(10*time.Second, presence(a.ID, false), "a offline after the sweep")
	var f seenJSON
	if !waitFor(5*time.Second, func() bool { f = friendSeen(t, survivor, b, a.ID); return f.LastSeenAt != nil }) {
		t.Fatalf("no last_seen_at after the sweep: %+v", f)
	}
	if f.Online {
		t.Fatalf("swept user shown online: %+v", f)
	}
}
