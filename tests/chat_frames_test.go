package tests

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/fasthttp/websocket"
	"github.com/google/uuid"

	"github.com/chatflow/chatflow/internal/testenv"
)

// alive checks the connection still answers a ping.
func (c *wsClient) alive(what string) {
	c.t.Helper()
	c.send(map[string]any{"type": "ping"})
	if _, err := c.next(5*time.Second, ofType("pong")); err != nil {
		c.t.Fatalf("connection did not survive %s: %v", what, err)
	}
}

func expectError(t *testing.T, c *wsClient, code, ref, what string) testenv.Frame {
	t.Helper()
	f, err := c.next(5*time.Second, ofType("error"))
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	if f.Str("code") != code || f.Str("detail") == "" {
		t.Fatalf("%s: error frame %v, want code %s", what, f, code)
	}
	if r, ok := f["ref"]; !ok || r != ref {
		t.Fatalf("%s: error frame %v, want ref %q", what, f, ref)
	}
	return f
}

// Bad frames get an error frame with a ref and never end the connection.
func TestChatBadFrames(t *testing.T) {
	env := testenv.Open(t)
	env.Worker(t, nil)
	n := env.StartNode(t, testenv.NodeConfig{})
	a, b, c := n.SignUp(t, "fa"), n.SignUp(t, "fb"), n.SignUp(t, "fc")
	room := n.CreateRoom(t, a, b)
	wa, wc := connect(t, n, a), connect(t, n, c)

	t.Run("non-member send", func(t *testing.T) {
		wc.sendMsg(room, "intruder-1", "let me in")
		expectError(t, wc, "not_member", "intruder-1", "non-member send")
		wc.send(map[string]any{"type": "typing", "room_id": room})
		expectError(t, wc, "not_member", room, "non-member typing")
		wc.send(map[string]any{"type": "read", "room_id": room, "seq": 1})
		expectError(t, wc, "not_member", room, "non-member read")
		wc.sendMsg(uuid.NewString(), "nowhere-1", "hello?")
		expectError(t, wc, "not_found", "nowhere-1", "send to an unknown room")
		wc.alive("refused sends")
	})
	t.Run("read without seq", func(t *testing.T) {
		// a missing seq is an error, not a read marker moved to 0
		wa.send(map[string]any{"type": "read", "room_id": room})
		expectError(t, wa, "validation_failed", room, "read without seq")
		wa.send(map[string]any{"type": "read", "room_id": room, "seq": nil})
		expectError(t, wa, "validation_failed", room, "read with a null seq")
		wa.alive("reads without seq")
	})
	t.Run("body limits", func(t *testing.T) {
		wa.sendMsg(room, "big-1", strings.Repeat("x", 4001))
		expectError(t, wa, "validation_failed", "big-1", "4001-char body")
		wa.sendMsg(room, "empty-1", "")
		expectError(t, wa, "validation_failed", "empty-1", "empty body")
		wa.sendMsg(room, "", "no id")
		expectError(t, wa, "validation_failed", "send", "empty client_msg_id")
		wa.sendMsg(room, strings.Repeat("k", 65), "long id")
		expectError(t, wa, "validation_failed", "send", "65-char client_msg_id")
		wa.sendMsg("not-a-uuid", "badroom-1", "x")
		expectError(t, wa, "validation_failed", "badroom-1", "malformed room id")
		// 4000 characters of 3-byte UTF-8 are fine
		wa.sendMsg(room, "max-1", strings.Repeat("€", 4000))
		if f := wa.must(5*time.Second, ackFor("max-1"), "ack"); f.Type() != "ack" || f.Int("seq") != 1 {
			t.Fatalf("4000-char body: %v", f)
		}
	})
	t.Run("frame over 64 KiB", func(t *testing.T) {
		wa.sendRaw(websocket.TextMessage, []byte(`{"type":"send","room_id":"`+room+`","client_msg_id":"huge","body":"`+strings.Repeat("y", 70<<10)+`"}`))
		expectError(t, wa, "too_large", "", "70 KiB frame")
		wa.alive("a 70 KiB frame")
	})
	t.Run("invalid UTF-8", func(t *testing.T) {
		wa.sendRaw(websocket.TextMessage, []byte("{\"type\":\"send\",\"room_id\":\""+room+"\",\"client_msg_id\":\"utf\",\"body\":\"\xff\xfe\"}"))
		expectError(t, wa, "bad_frame", "", "invalid UTF-8")
		wa.alive("invalid UTF-8")
	})
	t.Run("malformed JSON", func(t *testing.T) {
		wa.sendRaw(websocket.TextMessage, []byte(`{"type":"send",`))
		expectError(t, wa, "bad_frame", "", "truncated JSON")
		wa.sendRaw(websocket.TextMessage, []byte(`hello`))
		expectError(t, wa, "bad_frame", "", "not JSON")
		wa.alive("malformed JSON")
	})
	t.Run("binary frame", func(t *testing.T) {
		wa.sendRaw(websocket.BinaryMessage, []byte(`{"type":"ping"}`))
		expectError(t, wa, "bad_frame", "", "binary frame")
		wa.alive("a binary frame")
	})
	t.Run("unknown type", func(t *testing.T) {
		wa.send(map[string]any{"type": "dance"})
		expectError(t, wa, "bad_frame", "dance", "unknown type")
		wa.send(map[string]any{"type": "dance", "client_msg_id": "d-1"})
		expectError(t, wa, "bad_frame", "d-1", "unknown type with a client_msg_id")
		wa.send(map[string]any{"body": "no type"})
		expectError(t, wa, "bad_frame", "", "no type")
		wa.alive("unknown types")
	})
	t.Run("wrong field types", func(t *testing.T) {
		wa.send(map[string]any{"type": "send", "room_id": room, "client_msg_id": "wt-1", "body": 42})
		expectError(t, wa, "bad_frame", "wt-1", "numeric body")
		wa.send(map[string]any{"type": "send", "room_id": room, "client_msg_id": 7, "body": "x"})
		expectError(t, wa, "bad_frame", "send", "numeric client_msg_id")
		wa.send(map[string]any{"type": "read", "room_id": room, "seq": "three"})
		expectError(t, wa, "bad_frame", "read", "string seq")
		wa.send(map[string]any{"type": "sync", "rooms": []int{1}})
		expectError(t, wa, "bad_frame", "sync", "rooms as a list")
		wa.sendRaw(websocket.TextMessage, []byte(`[1,2,3]`))
		expectError(t, wa, "bad_frame", "", "a JSON list")
		wa.send(map[string]any{"type": "read", "room_id": room, "seq": -1})
		expectError(t, wa, "validation_failed", room, "negative read seq")
		wa.send(map[string]any{"type": "sync", "rooms": map[string]int{}})
		expectError(t, wa, "validation_failed", "sync", "empty sync")
		wa.alive("wrong field types")
	})
	t.Run("nothing refused was sent or persisted", func(t *testing.T) {
		wa.sendMsg(room, "last-1", "the last one")
		if f := wa.must(5*time.Second, ackFor("last-1"), "ack"); f.Type() != "ack" || f.Int("seq") != 2 {
			t.Fatalf("a good send after the bad frames: %v (refused sends must not take a seq)", f)
		}
		waitPersisted(t, env, room, 2, 30*time.Second)
		var intruder int
		env.Pool.QueryRow(context.Background(), `SELECT count(*) FROM chat.messages WHERE sender_id = $1`, c.ID).Scan(&intruder)
		if intruder != 0 {
			t.Fatalf("%d messages of a non-member persisted", intruder)
		}
	})
	t.Run("frame over the read limit closes", func(t *testing.T) {
		wb := connect(t, n, b)
		// The server may refuse the frame from its header and close before
		// the client has written all of it; the client's write then fails
		// ("close sent"). The connection closing is what is checked below.
		wb.wmu.Lock()
		_ = wb.conn.WriteMessage(websocket.TextMessage, []byte(strings.Repeat("z", 300<<10)))
		wb.wmu.Unlock()
		select {
		case <-wb.done:
		case <-time.After(5 * time.Second):
			t.Fatalf("a 300 KiB frame did not close the connection")
		}
		wa.alive("another connection's oversized frame")
	})
}

// Frames beyond the per-connection rate get rate_limited errors; the
// connection stays up and recovers.
func TestChatRateLimit(t *testing.T) {
	env := testenv.Open(t)
	env.Worker(t, nil)
	n := env.StartNode(t, testenv.NodeConfig{WSSendRate: 5, WSSendBurst: 5})
	a, b := n.SignUp(t, "la"), n.SignUp(t, "lb")
	room := n.CreateRoom(t, a, b)
	wa := connect(t, n, a)
	time.Sleep(time.Second) // refill the bucket after the connect ping
	const sends = 12
	for i := 0; i < sends; i++ {
		wa.sendMsg(room, fmt.Sprintf("r%d", i), "spam")
	}
	acked, limited := 0, 0
	for i := 0; i < sends; i++ {
		f := wa.must(10*time.Second, func(f testenv.Frame) bool { return f.Type() == "ack" || f.Type() == "error" }, "answer")
		switch {
		case f.Type() == "ack":
			acked++
		case f.Str("code") == "rate_limited" && strings.HasPrefix(f.Str("ref"), "r"):
			limited++
		default:
			t.Fatalf("unexpected %v", f)
		}
	}
	if acked < 5 || acked > 8 || limited != sends-acked {
		t.Fatalf("%d acked, %d rate limited of %d sends with burst 5", acked, limited, sends)
	}
	// pings count too, and the connection stays up
	for i := 0; i < 10; i++ {
		wa.send(map[string]any{"type": "ping"})
	}
	if _, err := wa.next(5*time.Second, errorFrame("rate_limited")); err != nil {
		t.Fatalf("burst of pings: %v", err)
	}
	time.Sleep(1200 * time.Millisecond)
	wa.alive("rate limiting")
	waitPersisted(t, env, room, int64(acked), 30*time.Second)
}

// History by cursor, ascending seq, default 50, max 200, has_more.
func TestChatHistoryAPI(t *testing.T) {
	const total = 120
	env := testenv.Open(t)
	env.Worker(t, nil)
	n := env.StartNode(t, testenv.NodeConfig{WSSendRate: 10000, WSSendBurst: 10000})
	a, b, c := n.SignUp(t, "ha"), n.SignUp(t, "hb"), n.SignUp(t, "hc")
	room := n.CreateRoom(t, a, b)
	wa := connect(t, n, a)
	for i := 1; i <= total; i++ {
		wa.sendMsg(room, fmt.Sprintf("h%d", i), fmt.Sprintf("history %d", i))
	}
	assertRun(t, "sender", wa.collectSeqs(room, total, 10*time.Second), 1, total)

	page := func(query string) history {
		t.Helper()
		var h history
		if st := n.Call(t, "GET", "/api/v1/rooms/"+room+"/messages"+query, b.Access, nil, &h); st != 200 {
			t.Fatalf("history %s: %d", query, st)
		}
		return h
	}
	check := func(query string, from, to int64, more bool) {
		t.Helper()
		h := page(query)
		if to >= from {
			assertRun(t, "history "+query, seqsOf(h.Messages), from, to)
		} else if len(h.Messages) != 0 {
			t.Fatalf("history %s: %v, want none", query, seqsOf(h.Messages))
		}
		if h.HasMore != more {
			t.Fatalf("history %s: has_more %v, want %v", query, h.HasMore, more)
		}
	}
	// straight from the Redis tail, then again once everything is in Postgres
	// with the stream gone
	for _, phase := range []string{"redis", "postgres"} {
		if phase == "postgres" {
			waitPersisted(t, env, room, total, 30*time.Second)
			env.Redis.Del(context.Background(), "{r:"+room+"}:h")
		}
		t.Run(phase, func(t *testing.T) {
			check("", total-49, total, true)
			check("?before_seq=71", 21, 70, true)
			check("?before_seq=21", 1, 20, false)
			check("?before_seq=1", 1, 0, false)
			check("?before_seq=999&limit=10", total-9, total, true)
			check("?after_seq=0&limit=200", 1, total, false)
			check("?after_seq=100&limit=10", 101, 110, true)
			check("?after_seq=110&limit=10", 111, 120, false)
			check("?after_seq=120", 1, 0, false)
			check("?limit=1", total, total, true)
			h := page("?after_seq=0&limit=3")
			for i, m := range h.Messages {
				if m.MessageID == "" || m.RoomID != room || m.SenderID != a.ID || m.ClientMsgID != fmt.Sprintf("h%d", i+1) ||
					m.Body != fmt.Sprintf("history %d", i+1) || m.SentAt.IsZero() {
					t.Fatalf("history message %+v", m)
				}
			}
		})
	}
	for _, q := range []string{"?limit=201", "?limit=0", "?limit=abc", "?before_seq=-1", "?after_seq=x", "?before_seq=5&after_seq=1"} {
		var p problem
		if st := n.Call(t, "GET", "/api/v1/rooms/"+room+"/messages"+q, b.Access, nil, &p); st != 422 || p.Code != "validation_failed" {
			t.Fatalf("history %s: %d %+v, want 422", q, st, p)
		}
	}
	if h := page("?limit=200&after_seq=0"); len(h.Messages) != total {
		t.Fatalf("limit=200: %d messages", len(h.Messages))
	}
	var p problem
	if st := n.Call(t, "GET", "/api/v1/rooms/"+room+"/messages", c.Access, nil, &p); st != 403 || p.Code != "not_member" {
		t.Fatalf("history as non-member: %d %+v", st, p)
	}
	if st := n.Call(t, "GET", "/api/v1/rooms/"+uuid.NewString()+"/messages", c.Access, nil, &p); st != 404 {
		t.Fatalf("history of an unknown room: %d", st)
	}
}

// POST /rooms/{id}/messages: 201 with the message, same rules as WS.
func TestChatRESTSend(t *testing.T) {
	env := testenv.Open(t)
	env.Worker(t, nil)
	n := env.StartNode(t, testenv.NodeConfig{})
	a, b, c := n.SignUp(t, "pa"), n.SignUp(t, "pb"), n.SignUp(t, "pc")
	room := n.CreateRoom(t, a, b)
	wb := connect(t, n, b)
	st, m := restSend(t, n, a, room, "rest-1", "hello over REST")
	if st != 201 || m.Seq != 1 || m.MessageID == "" || m.RoomID != room || m.SenderID != a.ID || m.ClientMsgID != "rest-1" || m.Body != "hello over REST" || m.SentAt.IsZero() {
		t.Fatalf("REST send: %d %+v", st, m)
	}
	if _, err := uuid.Parse(m.MessageID); err != nil {
		t.Fatalf("message_id %q: %v", m.MessageID, err)
	}
	if v := uuid.MustParse(m.MessageID).Version(); v != 7 {
		t.Fatalf("message_id is UUID v%d, want v7", v)
	}
	f := wb.must(5*time.Second, msgIn(room), "REST message over WS")
	if f.Str("message_id") != m.MessageID || f.Int("seq") != 1 || f.Str("body") != m.Body {
		t.Fatalf("WS frame %v for REST message %+v", f, m)
	}
	for _, tc := range []struct {
		who    testenv.User
		room   string
		body   any
		status int
		code   string
	}{
		{a, room, map[string]string{"client_msg_id": "r2", "body": strings.Repeat("x", 4001)}, 422, "validation_failed"},
		{a, room, map[string]string{"client_msg_id": "r3", "body": ""}, 422, "validation_failed"},
		{a, room, map[string]string{"client_msg_id": "", "body": "x"}, 422, "validation_failed"},
		{a, room, map[string]any{"client_msg_id": "r4", "body": 5}, 422, "validation_failed"},
		{a, room, `{"client_msg_id":`, 422, "validation_failed"},
		{c, room, map[string]string{"client_msg_id": "r5", "body": "intruder"}, 403, "not_member"},
		{a, uuid.NewString(), map[string]string{"client_msg_id": "r6", "body": "nowhere"}, 404, "not_found"},
	} {
		var p problem
		if st := n.Call(t, "POST", "/api/v1/rooms/"+tc.room+"/messages", tc.who.Access, tc.body, &p); st != tc.status || p.Code != tc.code {
			t.Fatalf("REST send %v: %d %+v, want %d %s", tc.body, st, p, tc.status, tc.code)
		}
	}
	if st, m := restSend(t, n, b, room, "rest-2", strings.Repeat("ü", 4000)); st != 201 || m.Seq != 2 {
		t.Fatalf("4000-char REST send: %d seq %d", st, m.Seq)
	}
	waitPersisted(t, env, room, 2, 30*time.Second)
	for _, f := range wb.barrier(5 * time.Second) {
		if f.Type() == "message" && f.Int("seq") != 2 {
			t.Fatalf("refused REST send reached a client: %v", f)
		}
	}
}
