package tests

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chatflow/chatflow/internal/testenv"
)

// A client on node A and one on node B in the same room get each other's
// messages, typing and read events through Redis pub/sub.
func TestChatCrossNode(t *testing.T) {
	env := testenv.Open(t)
	env.Worker(t, nil)
	na, nb := env.StartNode(t, testenv.NodeConfig{}), env.StartNode(t, testenv.NodeConfig{})
	a, b := na.SignUp(t, "xa"), nb.SignUp(t, "xb")
	room := na.CreateRoom(t, a, b)
	wa, wb := connect(t, na, a), connect(t, nb, b)
	channel := "{r:" + room + "}"
	numSub := func() int64 { return env.NumSub(context.Background(), channel) }
	for deadline := time.Now().Add(2 * time.Second); numSub() != 2; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("room channel has %d subscribers, want one per node (2)", numSub())
		}
	}

	wa.sendMsg(room, "a1", "hello from A")
	if f := wa.must(5*time.Second, ackFor("a1"), "ack"); f.Type() != "ack" || f.Int("seq") != 1 {
		t.Fatalf("ack on A: %v", f)
	}
	if f := wb.must(5*time.Second, msgIn(room), "message on B"); f.Int("seq") != 1 || f.Str("body") != "hello from A" || f.Str("sender_id") != a.ID {
		t.Fatalf("B got %v", f)
	}
	wb.sendMsg(room, "b1", "hello from B")
	// A's own message may reach it before or after its ack: skip it
	if f := wa.must(5*time.Second, func(f testenv.Frame) bool { return msgIn(room)(f) && f.Int("seq") != 1 }, "message on A"); f.Int("seq") != 2 || f.Str("body") != "hello from B" || f.Str("sender_id") != b.ID {
		t.Fatalf("A got %v", f)
	}
	// REST send on node B reaches the client on node A
	if st, _ := restSend(t, nb, b, room, "b2", "over REST on B"); st != 201 {
		t.Fatalf("REST send: %d", st)
	}
	if f := wa.must(5*time.Second, msgIn(room), "REST message on A"); f.Int("seq") != 3 {
		t.Fatalf("A got %v", f)
	}

	wa.send(map[string]any{"type": "typing", "room_id": room})
	if f := wb.must(5*time.Second, eventFrom("typing", a.ID), "typing on B"); f.Str("room_id") != room || f.Str("user_id") != a.ID {
		t.Fatalf("typing on B: %v", f)
	}
	wb.send(map[string]any{"type": "typing", "room_id": room})
	if f := wa.must(5*time.Second, eventFrom("typing", b.ID), "typing on A"); f.Str("user_id") != b.ID {
		t.Fatalf("typing on A: %v", f)
	}
	wb.send(map[string]any{"type": "read", "room_id": room, "seq": 2})
	if f := wa.must(5*time.Second, eventFrom("read", b.ID), "read on A"); f.Str("room_id") != room || f.Str("user_id") != b.ID || f.Int("seq") != 2 {
		t.Fatalf("read on A: %v", f)
	}
	wa.send(map[string]any{"type": "read", "room_id": room, "seq": 3})
	if f := wb.must(5*time.Second, eventFrom("read", a.ID), "read on B"); f.Str("user_id") != a.ID || f.Int("seq") != 3 {
		t.Fatalf("read on B: %v", f)
	}
	// seq 3 is b's own: it does not count once persisted
	waitPersisted(t, env, room, 3, 10*time.Second)
	var rv roomJSON
	na.Call(t, "GET", "/api/v1/rooms/"+room, b.Access, nil, &rv)
	if rv.UnreadCount != 0 {
		t.Fatalf("b's unread after WS read 2 of 3 (the third b's own): %+v", rv)
	}

	// node B drops the room channel when its last local member leaves
	wb.conn.Close()
	for deadline := time.Now().Add(5 * time.Second); numSub() != 1; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("room channel still has %d subscribers after B's only client left", numSub())
		}
	}
}

// eventFrom matches a typing/read frame caused by another user (a
// connection also sees its own events).
func eventFrom(typ, user string) func(testenv.Frame) bool {
	return func(f testenv.Frame) bool { return f.Type() == typ && f.Str("user_id") == user }
}

// A client that saw up to seq k reconnects to another node and syncs: it
// gets exactly k+1..k+M in order, then live messages, without duplicates.
func TestChatReconnectSync(t *testing.T) {
	const k, m = 5, 20
	env := testenv.Open(t)
	env.Worker(t, nil)
	na, nb := env.StartNode(t, testenv.NodeConfig{}), env.StartNode(t, testenv.NodeConfig{})
	a, b := na.SignUp(t, "sa"), na.SignUp(t, "sb")
	room := na.CreateRoom(t, a, b)
	wa := connect(t, na, a)
	wb := connect(t, na, b)
	for i := 1; i <= k; i++ {
		wb.sendMsg(room, fmt.Sprintf("pre-%d", i), fmt.Sprintf("pre %d", i))
	}
	assertRun(t, "a before disconnect", wa.collectSeqs(room, k, 10*time.Second), 1, k)
	for i := 1; i <= k; i++ {
		wb.must(10*time.Second, ackFor(fmt.Sprintf("pre-%d", i)), "ack")
	}
	wa.conn.Close()
	<-wa.done

	for i := 1; i <= m; i++ {
		wb.sendMsg(room, fmt.Sprintf("gap-%d", i), fmt.Sprintf("gap %d", i))
	}
	for i := 1; i <= m; i++ {
		if f := wb.must(10*time.Second, ofType("ack"), "ack"); f.Int("seq") > k+m {
			t.Fatalf("ack %v", f)
		}
	}

	wa2 := connect(t, nb, a)
	wa2.send(map[string]any{"type": "sync", "rooms": map[string]int64{room: k}})
	got := wa2.collectSeqs(room, m, 10*time.Second)
	assertRun(t, "a after sync", got, k+1, k+m)
	for _, f := range wa2.barrier(5 * time.Second) {
		if f.Type() == "message" || f.Type() == "error" {
			t.Fatalf("extra frame after the replay: %v", f)
		}
	}
	// live messages continue, with no duplicate
	for i := 1; i <= 3; i++ {
		wb.sendMsg(room, fmt.Sprintf("live-%d", i), fmt.Sprintf("live %d", i))
	}
	assertRun(t, "a live after sync", wa2.collectSeqs(room, 3, 10*time.Second), k+m+1, k+m+3)
	for _, f := range wa2.barrier(5 * time.Second) {
		if f.Type() == "message" {
			t.Fatalf("extra message after live ones: %v", f)
		}
	}
	// a sync covering what was already sent live replays the older part
	// and skips what this connection already has
	wa2.send(map[string]any{"type": "sync", "rooms": map[string]int64{room: k + m - 2}})
	var again []int64
	for _, f := range wa2.barrier(10 * time.Second) {
		if f.Type() == "message" {
			again = append(again, f.Int("seq"))
		}
	}
	assertRun(t, "second sync", again, k+m-1, k+m)

	// sync with bad input answers errors and keeps the connection
	wa2.send(map[string]any{"type": "sync", "rooms": map[string]any{"not-a-room": 1}})
	if f := wa2.must(5*time.Second, ofType("error"), "sync error"); f.Str("code") != "validation_failed" {
		t.Fatalf("bad sync: %v", f)
	}
	other := na.CreateRoom(t, b)
	wa2.send(map[string]any{"type": "sync", "rooms": map[string]any{other: 0}})
	if f := wa2.must(5*time.Second, ofType("error"), "sync error"); f.Str("code") != "not_member" {
		t.Fatalf("sync of a foreign room: %v", f)
	}
	wa2.barrier(5 * time.Second)
}

// A sync (and the history API) that reaches back past the Redis recent
// history stream gets the older messages from Postgres, in order, no gap.
func TestChatSyncFromPostgres(t *testing.T) {
	const total = 30
	env := testenv.Open(t)
	env.Worker(t, nil)
	n := env.StartNode(t, testenv.NodeConfig{})
	a, b := n.SignUp(t, "pa"), n.SignUp(t, "pb")
	room := n.CreateRoom(t, a, b)
	wb := connect(t, n, b)
	for i := 1; i <= total; i++ {
		wb.sendMsg(room, fmt.Sprintf("m%d", i), fmt.Sprintf("message %d", i))
	}
	assertRun(t, "sender", wb.collectSeqs(room, total, 10*time.Second), 1, total)
	waitPersisted(t, env, room, total, 30*time.Second)
	key := "{r:" + room + "}:h"
	if err := env.Redis.XTrimMaxLen(context.Background(), key, 5).Err(); err != nil {
		t.Fatal(err)
	}
	if l := env.Redis.XLen(context.Background(), key).Val(); l != 5 {
		t.Fatalf("stream length %d after XTRIM", l)
	}

	wa := connect(t, n, a)
	wa.send(map[string]any{"type": "sync", "rooms": map[string]int64{room: 2}})
	var frames []testenv.Frame
	var seqs []int64
	for len(seqs) < total-2 {
		f := wa.must(10*time.Second, msgIn(room), "replayed message")
		frames = append(frames, f)
		seqs = append(seqs, f.Int("seq"))
	}
	assertRun(t, "sync across Postgres and Redis", seqs, 3, total)
	for _, f := range frames {
		if f.Str("body") != fmt.Sprintf("message %d", f.Int("seq")) || f.Str("sender_id") != b.ID || f.Str("message_id") == "" || f.Str("sent_at") == "" {
			t.Fatalf("replayed frame %v", f)
		}
	}
	// Postgres and Redis render the same message identically
	var h history
	n.Call(t, "GET", fmt.Sprintf("/api/v1/rooms/%s/messages?after_seq=0&limit=200", room), a.Access, nil, &h)
	assertRun(t, "history across Postgres and Redis", seqsOf(h.Messages), 1, total)
	if h.HasMore {
		t.Fatalf("has_more with everything returned")
	}
	for _, f := range frames {
		hm := h.Messages[f.Int("seq")-1]
		if hm.MessageID != f.Str("message_id") || hm.ClientMsgID != f.Str("client_msg_id") || hm.Body != f.Str("body") {
			t.Fatalf("history %+v differs from sync frame %v", hm, f)
		}
	}
	for _, f := range wa.barrier(5 * time.Second) {
		if f.Type() == "message" {
			t.Fatalf("duplicate after replay: %v", f)
		}
	}
}

// A sync that needs messages trimmed from the Redis stream before their
// batch reached Postgres must wait for them rather than skip them.
func TestChatSyncWaitsForInFlightMessages(t *testing.T) {
	const total = 30
	env := testenv.Open(t)
	stop := env.Worker(t, nil)
	n := env.StartNode(t, testenv.NodeConfig{})
	a, b := n.SignUp(t, "fa"), n.SignUp(t, "fb")
	room := n.CreateRoom(t, a, b)
	wb := connect(t, n, b)
	stop() // messages are acked (in the log) but not persisted yet
	for i := 1; i <= total; i++ {
		wb.sendMsg(room, fmt.Sprintf("m%d", i), fmt.Sprintf("message %d", i))
	}
	for i := 0; i < total; i++ {
		wb.must(10*time.Second, ofType("ack"), "ack")
	}
	// the log keeps every message Postgres does not hold yet
	if l := env.Redis.XLen(context.Background(), "{r:"+room+"}:h").Val(); l != total {
		t.Fatalf("log holds %d entries while %d are unpersisted", l, total)
	}
	wa := connect(t, n, a)
	wa.send(map[string]any{"type": "sync", "rooms": map[string]int64{room: 0}})
	time.Sleep(500 * time.Millisecond)
	env.Worker(t, nil)
	var seqs []int64
	for _, f := range wa.barrier(30 * time.Second) {
		if f.Type() == "message" {
			seqs = append(seqs, f.Int("seq"))
		}
		if f.Type() == "error" {
			t.Logf("error frame %v", f)
		}
	}
	assertRun(t, "sync while the batches were in flight", seqs, 1, total)
	waitPersisted(t, env, room, total, 30*time.Second)
}

// A big sync replay while the room is busy (typing events, new messages)
// delivers everything in order and does not get the syncing client
// disconnected as a slow reader.
func TestChatSyncUnderLiveTraffic(t *testing.T) {
	const before, during = 600, 100
	env := testenv.Open(t)
	env.Worker(t, nil)
	n := env.StartNode(t, testenv.NodeConfig{WSQueue: 32, WSSendRate: 100000, WSSendBurst: 100000})
	a, b, c := n.SignUp(t, "ya"), n.SignUp(t, "yb"), n.SignUp(t, "yc")
	room := n.CreateRoom(t, a, b, c)
	wb, wc := connect(t, n, b), connect(t, n, c)
	for i := 1; i <= before; i++ {
		wb.sendMsg(room, fmt.Sprintf("b%d", i), strings.Repeat("b", 1000))
		if i%20 == 0 { // keep b's own echo within its queue of 32
			wb.must(10*time.Second, ackFor(fmt.Sprintf("b%d", i)), "ack")
		}
	}
	assertRun(t, "c before", wc.collectSeqs(room, before, 20*time.Second), 1, before)

	// a reads steadily, through a small socket buffer (a slow link): the
	// replay outruns it, but it is not a reader that stopped
	wa := newClient(t, "ya", dialSlow(t, n, a))
	wa.barrier(10 * time.Second)
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() { // c types all the time; b keeps talking
		defer close(done)
		for i := 1; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			// not wsClient.send: no t.Fatal off the test goroutine
			wc.wmu.Lock()
			err := wc.conn.WriteJSON(map[string]any{"type": "typing", "room_id": room})
			wc.wmu.Unlock()
			if err == nil && i <= during {
				wb.wmu.Lock()
				err = wb.conn.WriteJSON(map[string]any{"type": "send", "room_id": room, "client_msg_id": fmt.Sprintf("live%d", i), "body": "live"})
				wb.wmu.Unlock()
			}
			if err != nil {
				return
			}
			time.Sleep(time.Millisecond)
		}
	}()
	wa.send(map[string]any{"type": "sync", "rooms": map[string]int64{room: 0}})
	seqs := wa.collectSeqs(room, before+during, 30*time.Second)
	close(stop)
	<-done
	// live messages may arrive before the sync frame is handled; then they
	// come first, and the replay fills in the rest: no gap, no duplicate
	seen := map[int64]bool{}
	for _, s := range seqs {
		if seen[s] {
			t.Fatalf("seq %d twice", s)
		}
		seen[s] = true
	}
	for s := int64(1); s <= before+during; s++ {
		if !seen[s] {
			t.Fatalf("seq %d missing", s)
		}
	}
	// the replayed part (1..before) came in order
	prev := int64(0)
	for _, s := range seqs {
		if s <= before {
			if s != prev+1 {
				t.Fatalf("replay out of order: %d after %d", s, prev)
			}
			prev = s
		}
	}
	for _, f := range wa.barrier(10 * time.Second) {
		if f.Type() == "message" {
			t.Fatalf("extra message %v", f)
		}
	}
}
