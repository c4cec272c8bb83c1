package tests

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"go.temporal.io/api/enums/v1"
	"go.temporal.io/api/workflowservice/v1"

	"github.com/chatflow/chatflow"
	"github.com/chatflow/chatflow/codec"

	"github.com/chatflow/chatflow/internal/testenv"
)

// Several users send concurrently over WebSocket into one room: every
// receiver gets every message exactly once, seq strictly increasing 1..total
// without gaps, every send is acked with its seq, and Postgres ends up with
// exactly total rows 1..total. Batching groups messages per workflow.
func TestChatConcurrentSendersOrdering(t *testing.T) {
	const senders, perSender = 4, 50
	const total = senders * perSender
	env := testenv.Open(t)
	env.Worker(t, nil)
	node := "order-" + testenv.Unique()
	n := env.StartNode(t, testenv.NodeConfig{NodeID: node})
	users := make([]testenv.User, senders)
	for i := range users {
		users[i] = n.SignUp(t, fmt.Sprintf("o%d", i))
	}
	listener := n.SignUp(t, "olisten")
	room := n.CreateRoom(t, users[0], append(users[1:], listener)...)
	clients := make([]*wsClient, senders)
	for i, u := range users {
		clients[i] = connect(t, n, u)
	}
	lc := connect(t, n, listener)

	// every sender sends at once; each reader collects its frames
	type result struct {
		seqs []int64          // message frames in arrival order
		acks map[string]int64 // client_msg_id → seq, own sends
		err  error
	}
	results := make([]result, senders+1)
	var wg sync.WaitGroup
	all := append(append([]*wsClient{}, clients...), lc)
	for i, c := range all {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := &results[i]
			r.acks = map[string]int64{}
			wantAcks := perSender
			if i == senders {
				wantAcks = 0
			}
			deadline := time.Now().Add(30 * time.Second)
			for len(r.seqs) < total || len(r.acks) < wantAcks {
				f, err := c.next(time.Until(deadline), nil)
				if err != nil {
					r.err = fmt.Errorf("%d messages, %d acks: %w", len(r.seqs), len(r.acks), err)
					return
				}
				switch f.Type() {
				case "message":
					if f.Str("room_id") == room {
						r.seqs = append(r.seqs, f.Int("seq"))
					}
				case "ack":
					if _, dup := r.acks[f.Str("client_msg_id")]; dup {
						r.err = fmt.Errorf("second ack for %s", f.Str("client_msg_id"))
						return
					}
					r.acks[f.Str("client_msg_id")] = f.Int("seq")
				case "error":
					r.err = fmt.Errorf("error frame %v", f)
					return
				}
			}
		}()
	}
	var sw sync.WaitGroup
	for i, c := range clients {
		sw.Add(1)
		go func() {
			defer sw.Done()
			for j := 0; j < perSender; j++ {
				c.sendMsg(room, fmt.Sprintf("s%d-%d", i, j), fmt.Sprintf("hello %d from %d", j, i))
			}
		}()
	}
	sw.Wait()
	wg.Wait()

	ackedSeqs := map[int64]string{}
	for i, r := range results {
		if r.err != nil {
			t.Fatalf("client %d: %v", i, r.err)
		}
		assertRun(t, fmt.Sprintf("client %d", i), r.seqs, 1, total)
		for cmid, seq := range r.acks {
			if other, ok := ackedSeqs[seq]; ok {
				t.Fatalf("seq %d acked for %s and %s", seq, other, cmid)
			}
			ackedSeqs[seq] = cmid
		}
	}
	if len(ackedSeqs) != total {
		t.Fatalf("%d distinct acked seqs, want %d", len(ackedSeqs), total)
	}
	// nothing extra arrives after the last message
	for _, c := range all {
		for _, f := range c.barrier(5 * time.Second) {
			if f.Type() == "message" || f.Type() == "ack" || f.Type() == "error" {
				t.Fatalf("%s: unexpected frame after all messages: %v", c.name, f)
			}
		}
	}

	waitPersisted(t, env, room, total, 30*time.Second)
	// each sender's messages are in Postgres in the order it sent them
	rows, err := env.Pool.Query(context.Background(), `SELECT seq, client_msg_id FROM chat.messages WHERE room_id = $1 ORDER BY seq`, room)
	if err != nil {
		t.Fatal(err)
	}
	lastIdx := map[string]int{}
	for rows.Next() {
		var seq int64
		var cmid string
		if err := rows.Scan(&seq, &cmid); err != nil {
			t.Fatal(err)
		}
		if ackedSeqs[seq] != cmid {
			t.Fatalf("Postgres seq %d is %s, acked as %s", seq, cmid, ackedSeqs[seq])
		}
		var s, j int
		fmt.Sscanf(cmid, "s%d-%d", &s, &j)
		key := fmt.Sprint(s)
		if prev, ok := lastIdx[key]; ok && j <= prev {
			t.Fatalf("sender %d: message %d persisted after message %d", s, j, prev)
		}
		lastIdx[key] = j
	}
	rows.Close()
	var apiRoom struct {
		LastSeq int64 `json:"last_seq"`
	}
	n.Call(t, "GET", "/api/v1/rooms/"+room, listener.Access, nil, &apiRoom)
	if apiRoom.LastSeq != total {
		t.Fatalf("room last_seq %d, want %d", apiRoom.LastSeq, total)
	}
	var pgLast int64
	if err := env.Pool.QueryRow(context.Background(), `SELECT last_seq FROM chat.rooms WHERE id = $1`, room).Scan(&pgLast); err != nil || pgLast != total {
		t.Fatalf("chat.rooms.last_seq = %d (%v), want %d", pgLast, err, total)
	}

	// group commit: fewer batch workflows than messages, each message in one
	assertBatched(t, env, n, node, room, total)
}

// assertBatched checks that the node persisted the room's want messages in
// PersistBatch workflows holding several messages each: it lists the node's
// workflows (ids msgbatch-<node>-…) and reads each one's input, or, where
// the visibility store cannot list, reads the node's batch size metric.
func assertBatched(t *testing.T, env *testenv.Env, n *testenv.Node, node, room string, want int) {
	t.Helper()
	query := fmt.Sprintf("WorkflowType = 'PersistBatch' AND WorkflowId STARTS_WITH 'msgbatch-%s-'", node)
	ctx := context.Background()
	deadline := time.Now().Add(15 * time.Second)
	seen := map[string]int{} // workflow id → messages of the room
	for {
		resp, err := env.Temporal.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{Query: query, PageSize: 1000})
		if err != nil {
			t.Logf("listing workflows is not supported here (%v); using the batch metric", err)
			m, ok := metrics(t, n)
			if !ok {
				t.Fatalf("neither Temporal visibility nor /metrics can show the batches")
			}
			batches, inBatches := m["chatflow_batch_messages_count"], m["chatflow_batch_messages_sum"]
			if inBatches != float64(want) || batches < 1 || batches >= float64(want)/2 {
				t.Fatalf("batching: %v messages in %v workflows; want %d messages in fewer than %d workflows", inBatches, batches, want, want/2)
			}
			return
		}
		for _, ex := range resp.Executions {
			id := ex.Execution.GetWorkflowId()
			if _, ok := seen[id]; ok {
				continue
			}
			iter := env.Temporal.GetWorkflowHistory(ctx, id, ex.Execution.GetRunId(), false, enums.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
			ev, err := iter.Next()
			if err != nil {
				t.Fatalf("history of %s: %v", id, err)
			}
			var batch chatflow.MessageBatch
			if err := codec.DataConverter(0).FromPayloads(ev.GetWorkflowExecutionStartedEventAttributes().GetInput(), &batch); err != nil {
				t.Fatalf("input of %s: %v", id, err)
			}
			if batch.Node != node || len(batch.Messages) == 0 {
				t.Fatalf("workflow %s: node %q, %d messages", id, batch.Node, len(batch.Messages))
			}
			for _, m := range batch.Messages {
				if m.RoomID == room {
					seen[id]++
				}
			}
		}
		sum := 0
		for _, c := range seen {
			sum += c
		}
		if sum > want {
			t.Fatalf("%d messages of the room in batch workflows, want %d: a message was batched twice", sum, want)
		}
		if sum == want {
			t.Logf("%d messages in %d PersistBatch workflows of node %s", want, len(seen), node)
			if len(seen) >= want/2 {
				t.Fatalf("no group commit: %d workflows for %d messages", len(seen), want)
			}
			if m, ok := metrics(t, n); ok && m["chatflow_batch_messages_sum"] < float64(want) {
				t.Fatalf("batch metric counts %v messages, want at least %d", m["chatflow_batch_messages_sum"], want)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("only %d of %d messages found in %d batch workflows", sum, want, len(seen))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// Resending a client_msg_id (WS or REST) returns the original message and
// seq, fans out nothing and persists one row.
func TestChatDedupe(t *testing.T) {
	env := testenv.Open(t)
	env.Worker(t, nil)
	n := env.StartNode(t, testenv.NodeConfig{})
	a, b := n.SignUp(t, "da"), n.SignUp(t, "db")
	room := n.CreateRoom(t, a, b)
	wa, wb := connect(t, n, a), connect(t, n, b)

	wa.sendMsg(room, "dup-ws", "first")
	ack1 := wa.must(5*time.Second, ackFor("dup-ws"), "first ack")
	if ack1.Type() != "ack" || ack1.Int("seq") != 1 || ack1.Str("message_id") == "" {
		t.Fatalf("first ack: %v", ack1)
	}
	wa.sendMsg(room, "dup-ws", "first, resent with another body")
	ack2 := wa.must(5*time.Second, ackFor("dup-ws"), "second ack")
	if ack2.Type() != "ack" || ack2.Int("seq") != 1 || ack2.Str("message_id") != ack1.Str("message_id") {
		t.Fatalf("resend ack %v, want the original %v", ack2, ack1)
	}

	// REST: the same key, twice, and the WS key over REST
	st1, m1 := restSend(t, n, a, room, "dup-rest", "second")
	st2, m2 := restSend(t, n, a, room, "dup-rest", "second again")
	if st1 != 201 || st2 != 201 || m1.Seq != 2 || m2.MessageID != m1.MessageID || m2.Seq != 2 || m2.Body != "second" {
		t.Fatalf("REST resend: %d %+v / %d %+v", st1, m1, st2, m2)
	}
	st3, m3 := restSend(t, n, a, room, "dup-ws", "over REST")
	if st3 != 201 || m3.MessageID != ack1.Str("message_id") || m3.Seq != 1 || m3.Body != "first" {
		t.Fatalf("WS key resent over REST: %d %+v", st3, m3)
	}
	// WS resend of the REST key
	wa.sendMsg(room, "dup-rest", "over WS")
	if f := wa.must(5*time.Second, ackFor("dup-rest"), "ack"); f.Type() != "ack" || f.Str("message_id") != m1.MessageID || f.Int("seq") != 2 {
		t.Fatalf("REST key resent over WS: %v", f)
	}
	// the same client_msg_id from ANOTHER sender is a different message
	st4, m4 := restSend(t, n, b, room, "dup-ws", "b's own")
	if st4 != 201 || m4.Seq != 3 || m4.MessageID == ack1.Str("message_id") {
		t.Fatalf("another sender's equal client_msg_id: %d %+v", st4, m4)
	}
	// a marker after everything: b saw seq 1, 2, 3, 4 once each
	wa.sendMsg(room, "marker", "end")
	wa.must(5*time.Second, ackFor("marker"), "marker ack")
	var seqs []int64
	for {
		f := wb.must(5*time.Second, msgIn(room), "message")
		seqs = append(seqs, f.Int("seq"))
		if f.Str("client_msg_id") == "marker" && f.Str("sender_id") == a.ID {
			break
		}
	}
	for _, f := range wb.barrier(5 * time.Second) {
		if f.Type() == "message" {
			seqs = append(seqs, f.Int("seq"))
		}
	}
	assertRun(t, "receiver", seqs, 1, 4)

	waitPersisted(t, env, room, 4, 30*time.Second)
	var n1, nr int
	env.Pool.QueryRow(context.Background(), `SELECT count(*) FROM chat.messages WHERE room_id=$1 AND sender_id=$2 AND client_msg_id='dup-ws'`, room, a.ID).Scan(&n1)
	env.Pool.QueryRow(context.Background(), `SELECT count(*) FROM chat.messages WHERE room_id=$1 AND client_msg_id='dup-rest'`, room).Scan(&nr)
	if n1 != 1 || nr != 1 {
		t.Fatalf("rows for dup-ws %d, dup-rest %d; want one each", n1, nr)
	}
	var body string
	env.Pool.QueryRow(context.Background(), `SELECT body FROM chat.messages WHERE room_id=$1 AND seq=1`, room).Scan(&body)
	if body != "first" {
		t.Fatalf("persisted body %q, want the original", body)
	}
}
