package tests

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chatflow/chatflow/internal/testenv"
)

// Under load, the worker pool is stopped mid-way and a new one started:
// every acked message still ends up in Postgres exactly once.
func TestChatDurabilityWorkerRestart(t *testing.T) {
	const senders, perSender = 2, 300
	env := testenv.Open(t)
	stop := env.Worker(t, nil)
	node := "durable-" + testenv.Unique()
	n := env.StartNode(t, testenv.NodeConfig{NodeID: node, WSSendRate: 100000, WSSendBurst: 100000})
	users := []testenv.User{n.SignUp(t, "wa"), n.SignUp(t, "wb")}
	room := n.CreateRoom(t, users[0], users[1])
	clients := []*wsClient{connect(t, n, users[0]), connect(t, n, users[1])}

	var mu sync.Mutex
	acked := map[int64]string{} // seq → client_msg_id
	var ackCount atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, senders)
	for i, c := range clients {
		wg.Add(2)
		go func() { // reader: collect acks
			defer wg.Done()
			for got := 0; got < perSender; {
				f, err := c.next(60*time.Second, func(f testenv.Frame) bool { return f.Type() == "ack" || f.Type() == "error" })
				if err != nil {
					errs <- fmt.Errorf("sender %d after %d acks: %w", i, got, err)
					return
				}
				if f.Type() == "error" {
					errs <- fmt.Errorf("sender %d: %v", i, f)
					return
				}
				got++
				ackCount.Add(1)
				mu.Lock()
				if prev, ok := acked[f.Int("seq")]; ok {
					mu.Unlock()
					errs <- fmt.Errorf("seq %d acked twice (%s, %s)", f.Int("seq"), prev, f.Str("client_msg_id"))
					return
				}
				acked[f.Int("seq")] = f.Str("client_msg_id")
				mu.Unlock()
			}
		}()
		go func() { // writer, paced a little so the restart lands mid-load
			defer wg.Done()
			for j := 0; j < perSender; j++ {
				c.sendMsg(room, fmt.Sprintf("d%d-%d", i, j), fmt.Sprintf("durable %d/%d", i, j))
				if j%20 == 19 {
					time.Sleep(10 * time.Millisecond)
				}
			}
		}()
	}
	// stop the worker pool once a share of the load is acked, start another
	deadline := time.Now().Add(30 * time.Second)
	for ackCount.Load() < senders*perSender/5 {
		if time.Now().After(deadline) {
			t.Fatalf("only %d acks before the restart", ackCount.Load())
		}
		time.Sleep(2 * time.Millisecond)
	}
	stop()
	atStop := ackCount.Load()
	time.Sleep(300 * time.Millisecond)
	env.Worker(t, nil)
	t.Logf("worker pool stopped after %d acks, restarted 300ms later", atStop)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if atStop >= senders*perSender {
		t.Fatalf("the worker was restarted after the load finished; the test proves nothing")
	}
	if len(acked) != senders*perSender {
		t.Fatalf("%d acked messages, want %d", len(acked), senders*perSender)
	}
	restarted := time.Now()
	waitPersisted(t, env, room, senders*perSender, 60*time.Second)
	t.Logf("all persisted %v after the load ended", time.Since(restarted).Round(100*time.Millisecond))
	rows, err := env.Pool.Query(context.Background(), `SELECT seq, client_msg_id FROM chat.messages WHERE room_id = $1`, room)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var seq int64
		var cmid string
		if err := rows.Scan(&seq, &cmid); err != nil {
			t.Fatal(err)
		}
		if acked[seq] != cmid {
			t.Fatalf("Postgres has %s at seq %d, acked as %q", cmid, seq, acked[seq])
		}
	}
	assertBatched(t, env, n, node, room, senders*perSender)
}

// A client that never reads is disconnected once its queue fills, and the
// node keeps serving everyone else.
func TestChatSlowReaderDisconnected(t *testing.T) {
	env := testenv.Open(t)
	env.Worker(t, nil)
	n := env.StartNode(t, testenv.NodeConfig{WSQueue: 8})
	sender, fast, slow := n.SignUp(t, "ss"), n.SignUp(t, "sf"), n.SignUp(t, "sl")
	room := n.CreateRoom(t, sender, fast, slow)
	wf := connect(t, n, fast)
	sc := newClientPaused(t, dialSlow(t, n, slow))
	wf.must(5*time.Second, presence(slow.ID, true), "slow reader online")

	// the fast reader counts messages and notices when the slow one goes
	var mu sync.Mutex
	var fastSeqs []int64
	var fastErr error
	slowGone := make(chan struct{})
	go func() {
		gone := false
		for f := range wf.frames {
			mu.Lock()
			switch {
			case f.Type() == "message" && f.Str("room_id") == room:
				fastSeqs = append(fastSeqs, f.Int("seq"))
			case f.Type() == "pong":
				fastSeqs = append(fastSeqs, -1) // marks a ping answered
			case presence(slow.ID, false)(f) && !gone:
				gone = true
				close(slowGone)
			}
			mu.Unlock()
		}
		mu.Lock()
		fastErr = fmt.Errorf("fast reader disconnected: %v", wf.err)
		mu.Unlock()
	}()
	fastState := func() ([]int64, error) {
		mu.Lock()
		defer mu.Unlock()
		return append([]int64(nil), fastSeqs...), fastErr
	}
	waitFast := func(n int, what string) []int64 {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			seqs, err := fastState()
			if err != nil {
				t.Fatal(err)
			}
			if len(seqs) >= n {
				return seqs
			}
			if time.Now().After(deadline) {
				t.Fatalf("fast reader: %d frames, waiting for %d (%s)", len(seqs), n, what)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}

	// The sender posts over REST from one goroutine, so fan-out bursts stay
	// far under the queue of 8, which a reader that keeps up drains as they
	// come. (With four concurrent senders, a CPU-starved test process let the
	// fast reader's own queue fill: the node rightly dropped it too, and the
	// test then waited in vain for it to report the slow reader's exit.)
	body := strings.Repeat("s", 4000)
	var next atomic.Int64
	var wg sync.WaitGroup
	for g := 0; g < 1; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-slowGone:
					return
				default:
				}
				i := next.Add(1)
				if i > 3000 {
					return
				}
				if st, _ := restSend(t, n, sender, room, fmt.Sprintf("slow-%d", i), body); st != 201 {
					t.Errorf("REST send %d: %d", i, st)
					return
				}
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	select {
	case <-slowGone:
	case <-time.After(20 * time.Second):
		if _, err := fastState(); err != nil {
			t.Fatalf("the fast reader was dropped before the slow one (%v) after %d messages", err, next.Load())
		}
		t.Fatalf("slow reader still online after %d messages of 4000 chars", next.Load())
	}
	sent := roomStatsSeq(t, n, sender, room)
	t.Logf("slow reader dropped; %d messages of 4000 chars sent", sent)
	// the fast reader got everything, exactly once, in order
	assertRun(t, "fast reader", waitFast(int(sent), "all messages"), 1, sent)

	// the slow reader, reading at last, finds its connection ended short
	sc.start()
	select {
	case <-sc.done:
	case <-time.After(30 * time.Second):
		t.Fatalf("slow reader's connection was not closed")
	}
	var got int64
	for f := range sc.frames {
		if f.Type() == "message" {
			got++
		}
	}
	if got >= sent {
		t.Fatalf("slow reader got all %d messages; it should have been cut off", got)
	}
	t.Logf("slow reader got %d of %d messages before the cut (%v)", got, sent, sc.err)
	if m, ok := metrics(t, n); ok && m["chatflow_ws_slow_disconnects_total"] < 1 {
		t.Fatalf("slow disconnect not counted")
	}

	// the node keeps serving: pings, live traffic and new connections
	wf.send(map[string]any{"type": "ping"})
	if seqs := waitFast(int(sent)+1, "pong"); seqs[sent] != -1 {
		t.Fatalf("fast reader after the disconnect: %v", seqs[sent:])
	}
	if st, _ := restSend(t, n, sender, room, "after-slow", "still here"); st != 201 {
		t.Fatalf("send after the disconnect: %d", st)
	}
	if seqs := waitFast(int(sent)+2, "message after the disconnect"); seqs[sent+1] != sent+1 {
		t.Fatalf("fast reader after the disconnect: %v", seqs[sent:])
	}
	again := connect(t, n, slow)
	again.send(map[string]any{"type": "sync", "rooms": map[string]int64{room: sent}})
	if f := again.must(10*time.Second, msgIn(room), "sync after reconnect"); f.Int("seq") != sent+1 {
		t.Fatalf("reconnected slow reader: %v", f)
	}
}

func presence(user string, online bool) func(testenv.Frame) bool {
	return func(f testenv.Frame) bool {
		o, _ := f["online"].(bool)
		return f.Type() == "presence" && f.Str("user_id") == user && o == online
	}
}

// roomStatsSeq is the room's last_seq as the API reports it.
func roomStatsSeq(t *testing.T, n *testenv.Node, u testenv.User, room string) int64 {
	t.Helper()
	var r roomJSON
	if st := n.Call(t, "GET", "/api/v1/rooms/"+room, u.Access, nil, &r); st != 200 {
		t.Fatalf("GET room: %d", st)
	}
	return r.LastSeq
}
