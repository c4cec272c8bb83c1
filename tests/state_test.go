package tests

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/chatflow/chatflow/internal/app"
	"github.com/chatflow/chatflow/internal/testenv"
)

// Tests of issue 10's bounds on shared state (SECURITY.md, part 3).

type onlineMember struct {
	UserID string `json:"user_id"`
	Online bool   `json:"online"`
}

func memberOnline(t *testing.T, n *testenv.Node, viewer testenv.User, room, user string) bool {
	t.Helper()
	var r struct {
		Members []onlineMember `json:"members"`
	}
	if st := n.Call(t, "GET", "/api/v1/rooms/"+room, viewer.Access, nil, &r); st != 200 {
		t.Fatalf("GET room: %d", st)
	}
	for _, m := range r.Members {
		if m.UserID == user {
			return m.Online
		}
	}
	t.Fatalf("%s is not a member of %s", user, room)
	return false
}

// TestPresenceKilledNodeGoesOffline: a node that dies without closing its
// sockets cleanly stops renewing its users' presence; they read offline
// once the TTL passes, and a surviving node's sweep tells their rooms.
func TestPresenceKilledNodeGoesOffline(t *testing.T) {
	env := testenv.Open(t)
	env.Worker(t, nil)
	cfg := testenv.NodeConfig{PresenceHeartbeat: 500 * time.Millisecond, PresenceTTL: 2 * time.Second}
	victim := env.StartNode(t, cfg)
	survivor := env.StartNode(t, cfg)
	a, b := survivor.SignUp(t, "pka"), survivor.SignUp(t, "pkb")
	room := survivor.CreateRoom(t, b, a)
	watcher := connect(t, survivor, b)
	connect(t, victim, a)
	watcher.must(5*time.Second, presence(a.ID, true), "a online")
	if !memberOnline(t, survivor, b, room, a.ID) {
		t.Fatal("a is not shown online while connected")
	}
	// A few heartbeats pass: presence outlives the TTL while renewed.
	time.Sleep(3 * time.Second)
	if !memberOnline(t, survivor, b, room, a.ID) {
		t.Fatal("a went offline while its node was alive")
	}

	victim.Kill()
	killed := time.Now()
	if !waitFor(10*time.Second, func() bool { return !memberOnline(t, survivor, b, room, a.ID) }) {
		t.Fatal("a still online 10s after its node died (TTL 2s)")
	}
	t.Logf("offline in GET /rooms after %v", time.Since(killed))
	watcher.must(10*time.Second, presence(a.ID, false), "presence offline frame from the sweep")
	if d := time.Since(killed); d > 8*time.Second {
		t.Fatalf("offline frame %v after the kill (TTL 2s, heartbeat 0.5s)", d)
	}
	t.Logf("offline frame after %v", time.Since(killed))

	// a reconnects elsewhere: online again.
	connect(t, survivor, a)
	watcher.must(5*time.Second, presence(a.ID, true), "a online again")
}

// TestRoomLogExpiresWhenIdle: once everything in a room's log is persisted
// its Redis keys get the idle TTL and expire; reads fall back to Postgres,
// the seq is re-seeded from Postgres and never reused, and the history is
// intact.
func TestRoomLogExpiresWhenIdle(t *testing.T) {
	env := testenv.Open(t)
	const idle = time.Second
	env.WorkerWith(t, nil, func(c *app.Config) { c.Activities.RoomIdleTTL = idle })
	n := env.StartNode(t, testenv.NodeConfig{RoomIdleTTL: idle})
	a, b := n.SignUp(t, "idla"), n.SignUp(t, "idlb")
	room := n.CreateRoom(t, a, b)
	ctx := context.Background()
	keys := []string{"{r:" + room + "}:seq", "{r:" + room + "}:h", "{r:" + room + "}:p"}
	gone := func() bool { k, _ := env.Redis.Exists(ctx, keys...).Result(); return k == 0 }

	for round := int64(1); round <= 3; round++ {
		st, m := restSend(t, n, a, room, fmt.Sprintf("idle-%d", round), "round")
		if st != 201 || m.Seq != round {
			t.Fatalf("round %d: send %d seq %d, want 201 seq %d", round, st, m.Seq, round)
		}
		// while Postgres lacks the message the log keys never expire
		if ttl, _ := env.Redis.PTTL(ctx, keys[0]).Result(); ttl != -1 {
			t.Fatalf("round %d: seq key has TTL %v right after a send", round, ttl)
		}
		waitPersisted(t, env, room, round, 15*time.Second)
		if !waitFor(15*time.Second, gone) {
			left, _ := env.Redis.Exists(ctx, keys...).Result()
			ttl, _ := env.Redis.PTTL(ctx, keys[0]).Result()
			t.Fatalf("round %d: %d log keys still in Redis (seq TTL %v)", round, left, ttl)
		}
		// reads fall back to Postgres; a read re-seeds the seq with the TTL
		var h history
		if st := n.Call(t, "GET", "/api/v1/rooms/"+room+"/messages", b.Access, nil, &h); st != 200 || len(h.Messages) != int(round) {
			t.Fatalf("round %d: history %d %v", round, st, seqsOf(h.Messages))
		}
		assertRun(t, "history", seqsOf(h.Messages), 1, round)
		if ttl, _ := env.Redis.PTTL(ctx, keys[0]).Result(); ttl <= 0 && ttl != -2 {
			t.Fatalf("round %d: a read re-seeded the seq key without a TTL (%v)", round, ttl)
		}
		if got := roomStatsSeq(t, n, b, room); got != round {
			t.Fatalf("round %d: room last_seq %d", round, got)
		}
	}
	// A client resending its last message after expiry gets the original
	// (the dedupe key outlives the log keys), not a new seq.
	st, m := restSend(t, n, a, room, "idle-3", "round")
	if st != 201 || m.Seq != 3 {
		t.Fatalf("resend after expiry: %d seq %d, want the original seq 3", st, m.Seq)
	}
}
