package tests

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chatflow/chatflow"
	"github.com/chatflow/chatflow/internal/testenv"
	"github.com/chatflow/chatflow/roomlog"
)

// replyMsg is a message with reply_to.
type replyMsg struct {
	Seq     int64  `json:"seq"`
	Body    string `json:"body"`
	Kind    string `json:"kind"`
	ReplyTo int64  `json:"reply_to"`
}

// A reply's reply_to goes everywhere the message goes: the sender's ack and
// the live frame on another node, the REST answer, a later sync, history
// from the log and from Postgres, the Postgres row and the Kafka record.
// Replying to a deleted message is allowed.
func TestReplyToRoundTrip(t *testing.T) {
	env := testenv.Open(t)
	env.Worker(t, nil)
	broker := strings.Split(env.KafkaBrokers, ",")[0]
	from := lastOffsets(t, broker, chatflow.TopicChatMessages)
	na, nb := env.StartNode(t, testenv.NodeConfig{}), env.StartNode(t, testenv.NodeConfig{})
	a, b := na.SignUp(t, "rpa"), na.SignUp(t, "rpb")
	room := na.CreateRoom(t, a, b)
	wa, wb := connect(t, na, a), connect(t, nb, b)

	for i := 1; i <= 2; i++ {
		if st, _ := restSend(t, na, a, room, fmt.Sprintf("rp-%d", i), fmt.Sprintf("m%d", i)); st != 201 {
			t.Fatalf("send %d: %d", i, st)
		}
	}
	// seq 3: a reply over the WebSocket on node A; b on node B gets it live
	wa.send(map[string]any{"type": "send", "room_id": room, "client_msg_id": "rp-ws", "body": "re m1", "reply_to": 1})
	ack := wa.must(5*time.Second, ackFor("rp-ws"), "ack of the reply")
	if ack.Type() != "ack" || ack.Int("seq") != 3 || ack.Int("reply_to") != 1 {
		t.Fatalf("ack: %v", ack)
	}
	var live testenv.Frame
	for live == nil || live.Int("seq") != 3 {
		live = wb.must(5*time.Second, msgIn(room), "reply on B")
	}
	if live.Int("reply_to") != 1 || live.Str("body") != "re m1" {
		t.Fatalf("live reply on B: %v", live)
	}
	// seq 4: over REST
	var m replyMsg
	if st := na.Call(t, "POST", "/api/v1/rooms/"+room+"/messages", a.Access, map[string]any{"client_msg_id": "rp-rest", "body": "re m2", "reply_to": 2}, &m); st != 201 || m.Seq != 4 || m.ReplyTo != 2 {
		t.Fatalf("REST reply: %d %+v", st, m)
	}
	// a retry is the original, reply_to included
	if st := na.Call(t, "POST", "/api/v1/rooms/"+room+"/messages", a.Access, map[string]any{"client_msg_id": "rp-rest", "body": "re m2", "reply_to": 2}, &m); st != 201 || m.Seq != 4 || m.ReplyTo != 2 {
		t.Fatalf("REST reply retry: %d %+v", st, m)
	}
	// seq 5 deletes message 2; seq 6 replies to it all the same
	if st := na.Call(t, "DELETE", editPath(room, 2), a.Access, nil, nil); st != 200 {
		t.Fatalf("delete: %d", st)
	}
	if st := nb.Call(t, "POST", "/api/v1/rooms/"+room+"/messages", b.Access, map[string]any{"client_msg_id": "rp-del", "body": "re deleted", "reply_to": 2}, &m); st != 201 || m.Seq != 6 || m.ReplyTo != 2 {
		t.Fatalf("reply to a deleted message: %d %+v", st, m)
	}
	want := map[int64]int64{1: 0, 2: 0, 3: 1, 4: 2, 5: 0, 6: 2}
	check := func(when string, got []replyMsg) {
		t.Helper()
		if len(got) != len(want) {
			t.Fatalf("%s: %d messages, want %d: %+v", when, len(got), len(want), got)
		}
		for _, g := range got {
			if g.ReplyTo != want[g.Seq] {
				t.Fatalf("%s: message %d has reply_to %d, want %d (%+v)", when, g.Seq, g.ReplyTo, want[g.Seq], got)
			}
		}
	}
	historyOf := func(when string) {
		t.Helper()
		var h struct{ Messages []replyMsg }
		if st := nb.Call(t, "GET", "/api/v1/rooms/"+room+"/messages", b.Access, nil, &h); st != 200 {
			t.Fatalf("history %s: %d", when, st)
		}
		check("history "+when, h.Messages)
	}
	historyOf("from the log")

	// b syncs later on node A
	wb2 := connect(t, na, b)
	wb2.send(map[string]any{"type": "sync", "rooms": map[string]int64{room: 0}})
	var synced []replyMsg
	for _, f := range wb2.barrier(10 * time.Second) {
		if f.Type() == "message" {
			synced = append(synced, replyMsg{Seq: f.Int("seq"), ReplyTo: f.Int("reply_to")})
		}
	}
	check("sync", synced)

	waitPersisted(t, env, room, 6, 20*time.Second)
	rows, err := env.Pool.Query(context.Background(), `SELECT seq, coalesce(reply_to, 0) FROM chat.messages WHERE room_id = $1 ORDER BY seq`, room)
	if err != nil {
		t.Fatal(err)
	}
	var stored []replyMsg
	for rows.Next() {
		var r replyMsg
		if err := rows.Scan(&r.Seq, &r.ReplyTo); err != nil {
			t.Fatal(err)
		}
		stored = append(stored, r)
	}
	check("Postgres rows", stored)
	// history served from Postgres once the log is gone
	if err := env.Redis.Del(context.Background(), roomlog.StreamKey(room)).Err(); err != nil {
		t.Fatal(err)
	}
	historyOf("from Postgres")

	var recs []replyMsg
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(300 * time.Millisecond) {
		recs = recs[:0]
		for _, r := range readRoom(t, broker, chatflow.TopicChatMessages, room, from, lastOffsets(t, broker, chatflow.TopicChatMessages)) {
			recs = append(recs, replyMsg{Seq: r.msg.Seq, ReplyTo: r.msg.ReplyTo})
		}
		if len(recs) >= len(want) {
			break
		}
	}
	seen := map[int64]bool{}
	var uniq []replyMsg
	for _, r := range recs { // at-least-once: repeats are allowed
		if !seen[r.Seq] {
			seen[r.Seq] = true
			uniq = append(uniq, r)
		}
	}
	check("Kafka records", uniq)
}

// A reply_to that is not an earlier seq of the room (0, negative, the
// room's next seq or beyond, a seq only another room has) is refused with
// invalid_reply over REST and WebSocket, and nothing is sequenced.
func TestReplyToInvalid(t *testing.T) {
	env := testenv.Open(t)
	env.Worker(t, nil)
	n := env.StartNode(t, testenv.NodeConfig{})
	a, b := n.SignUp(t, "ria"), n.SignUp(t, "rib")
	room, other := n.CreateRoom(t, a, b), n.CreateRoom(t, a, b)
	for i := 1; i <= 2; i++ {
		restSend(t, n, a, room, fmt.Sprintf("ri-%d", i), "x")
	}
	for i := 1; i <= 6; i++ {
		restSend(t, n, a, other, fmt.Sprintf("ro-%d", i), "y")
	}
	w := connect(t, n, a)
	for i, bad := range []any{0, -1, 3, 5, 99, int64(1) << 62} { // 3: the new message's own seq; 5: only in the other room
		var p problem
		cmid := fmt.Sprintf("bad-%d", i)
		if st := n.Call(t, "POST", "/api/v1/rooms/"+room+"/messages", a.Access, map[string]any{"client_msg_id": cmid, "body": "z", "reply_to": bad}, &p); st != 422 || p.Code != chatflow.ECodeInvalidReply {
			t.Fatalf("REST reply_to %v: %d %+v", bad, st, p)
		}
		w.send(map[string]any{"type": "send", "room_id": room, "client_msg_id": cmid + "-ws", "body": "z", "reply_to": bad})
		if f := w.must(5*time.Second, ackFor(cmid+"-ws"), "answer"); f.Type() != "error" || f.Str("code") != chatflow.ECodeInvalidReply {
			t.Fatalf("WS reply_to %v: %v", bad, f)
		}
	}
	// not a number at all
	var p problem
	if st := n.Call(t, "POST", "/api/v1/rooms/"+room+"/messages", a.Access, map[string]any{"client_msg_id": "bad-s", "body": "z", "reply_to": "1"}, &p); st != 422 {
		t.Fatalf("REST reply_to \"1\": %d %+v", st, p)
	}
	var h struct{ Messages []replyMsg }
	if st := n.Call(t, "GET", "/api/v1/rooms/"+room+"/messages", a.Access, nil, &h); st != 200 || len(h.Messages) != 2 {
		t.Fatalf("history after refused replies: %d %+v (want 2 messages)", st, h.Messages)
	}
	// a refused client_msg_id is free: the same one sends once the reply is right
	var m replyMsg
	if st := n.Call(t, "POST", "/api/v1/rooms/"+room+"/messages", a.Access, map[string]any{"client_msg_id": "bad-2", "body": "z", "reply_to": 2}, &m); st != 201 || m.Seq != 3 || m.ReplyTo != 2 {
		t.Fatalf("valid reply after refusals: %d %+v", st, m)
	}
}
