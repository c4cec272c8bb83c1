package tests

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/chatflow/chatflow/internal/testenv"
)

// editedMsg is a message with the fields edits and deletes add.
type editedMsg struct {
	Seq       int64      `json:"seq"`
	SenderID  string     `json:"sender_id"`
	Body      string     `json:"body"`
	Kind      string     `json:"kind"`
	EditedAt  *time.Time `json:"edited_at"`
	DeletedAt *time.Time `json:"deleted_at"`
}

type editAnswer struct {
	Event   editedMsg `json:"event"`
	Message editedMsg `json:"message"`
}

func editPath(room string, seq int64) string {
	return fmt.Sprintf("/api/v1/rooms/%s/messages/%d", room, seq)
}

// target reads the target_seq and body of an edit/delete event.
func eventOf(t testing.TB, body string) (int64, string) {
	t.Helper()
	var ev struct {
		TargetSeq int64  `json:"target_seq"`
		Body      string `json:"body"`
	}
	if err := json.Unmarshal([]byte(body), &ev); err != nil {
		t.Fatalf("event body %q: %v", body, err)
	}
	return ev.TargetSeq, ev.Body
}

// Edits and deletes are events in the room's sequence: a member on another
// node gets them live, a member who syncs later replays them, and history
// shows every message as it now is, before and after Postgres has the
// messages. The batch worker starts only after the edits, so the targets
// reach Postgres after their events were recorded and must still end up
// edited there.
func TestMessageEditDelete(t *testing.T) {
	env := testenv.Open(t)
	stop := env.Worker(t, nil) // sign-ups need it; stopped before the sends
	na, nb := env.StartNode(t, testenv.NodeConfig{}), env.StartNode(t, testenv.NodeConfig{})
	owner, b, c := na.SignUp(t, "eo"), na.SignUp(t, "eb"), na.SignUp(t, "ec")
	room := na.CreateRoom(t, owner, b, c)
	stop()
	wb := connect(t, nb, b)

	if st, _ := restSend(t, na, owner, room, "m1", "hello"); st != 201 {
		t.Fatalf("send: %d", st)
	}
	if st, _ := restSend(t, nb, b, room, "m2", "from b"); st != 201 {
		t.Fatalf("send: %d", st)
	}
	assertRun(t, "b live", wb.collectSeqs(room, 2, 10*time.Second), 1, 2)

	// owner edits its message 1 on node A; b on node B gets the event
	var ea editAnswer
	if st := na.Call(t, "PATCH", editPath(room, 1), owner.Access, map[string]string{"client_msg_id": "e1", "body": "hello edited"}, &ea); st != 200 {
		t.Fatalf("edit: %d %+v", st, ea)
	}
	if ea.Event.Seq != 3 || ea.Event.Kind != "edit" || ea.Message.Body != "hello edited" || ea.Message.EditedAt == nil {
		t.Fatalf("edit answer: %+v", ea)
	}
	f := wb.must(5*time.Second, msgIn(room), "edit event on B")
	if f.Int("seq") != 3 || f.Str("kind") != "edit" {
		t.Fatalf("B got %v", f)
	}
	if ts, body := eventOf(t, f.Str("body")); ts != 1 || body != "hello edited" {
		t.Fatalf("edit event body %q", f.Str("body"))
	}
	// a retry with the same client_msg_id is the same event
	var again editAnswer
	if st := na.Call(t, "PATCH", editPath(room, 1), owner.Access, map[string]string{"client_msg_id": "e1", "body": "hello edited"}, &again); st != 200 || again.Event.Seq != 3 {
		t.Fatalf("edit retry: %d %+v", st, again)
	}

	var p problem
	if st := nb.Call(t, "PATCH", editPath(room, 1), b.Access, map[string]string{"body": "not mine"}, &p); st != 403 || p.Code != "forbidden" {
		t.Fatalf("edit by non-sender: %d %+v", st, p)
	}
	if st := na.Call(t, "PATCH", editPath(room, 2), owner.Access, map[string]string{"body": "owner cannot edit"}, &p); st != 403 {
		t.Fatalf("owner editing b's message: %d %+v", st, p)
	}
	if st := na.Call(t, "DELETE", editPath(room, 1), c.Access, nil, &p); st != 403 {
		t.Fatalf("delete by a member neither sender nor owner: %d %+v", st, p)
	}
	if st := na.Call(t, "PATCH", editPath(room, 1), owner.Access, map[string]string{"body": ""}, &p); st != 422 {
		t.Fatalf("empty edit: %d %+v", st, p)
	}
	if st := na.Call(t, "PATCH", editPath(room, 99), owner.Access, map[string]string{"body": "x"}, &p); st != 404 {
		t.Fatalf("edit past the end: %d %+v", st, p)
	}
	if st := na.Call(t, "PATCH", editPath(room, 3), owner.Access, map[string]string{"body": "x"}, &p); st != 422 {
		t.Fatalf("edit of an edit event: %d %+v", st, p)
	}

	// the owner deletes b's message 2
	var da editAnswer
	if st := na.Call(t, "DELETE", editPath(room, 2)+"?client_msg_id=d1", owner.Access, nil, &da); st != 200 {
		t.Fatalf("owner delete: %d %+v", st, da)
	}
	if da.Event.Seq != 4 || da.Event.Kind != "delete" || da.Message.Body != "" || da.Message.DeletedAt == nil {
		t.Fatalf("delete answer: %+v", da)
	}
	f = wb.must(5*time.Second, msgIn(room), "delete event on B")
	if ts, _ := eventOf(t, f.Str("body")); f.Int("seq") != 4 || f.Str("kind") != "delete" || ts != 2 {
		t.Fatalf("B got %v", f)
	}
	if st := nb.Call(t, "PATCH", editPath(room, 2), b.Access, map[string]string{"body": "too late"}, &p); st != 409 || p.Code != "message_deleted" {
		t.Fatalf("edit of a deleted message: %d %+v", st, p)
	}
	if st := nb.Call(t, "DELETE", editPath(room, 2), b.Access, nil, &p); st != 409 {
		t.Fatalf("second delete: %d %+v", st, p)
	}

	checkHistory := func(when string) {
		t.Helper()
		var h struct{ Messages []editedMsg }
		if st := nb.Call(t, "GET", "/api/v1/rooms/"+room+"/messages", c.Access, nil, &h); st != 200 {
			t.Fatalf("history %s: %d", when, st)
		}
		if len(h.Messages) != 4 {
			t.Fatalf("history %s: %d messages, want 4 (retries add none): %+v", when, len(h.Messages), h.Messages)
		}
		m1, m2 := h.Messages[0], h.Messages[1]
		if m1.Body != "hello edited" || m1.EditedAt == nil || m1.DeletedAt != nil {
			t.Fatalf("history %s: message 1 %+v", when, m1)
		}
		if m2.Body != "" || m2.DeletedAt == nil {
			t.Fatalf("history %s: message 2 %+v", when, m2)
		}
		if h.Messages[2].Kind != "edit" || h.Messages[3].Kind != "delete" {
			t.Fatalf("history %s: events %+v", when, h.Messages[2:])
		}
	}
	checkHistory("before persistence")

	// c syncs later (on node B) and replays the current state and the events
	wc := connect(t, nb, c)
	wc.send(map[string]any{"type": "sync", "rooms": map[string]int64{room: 0}})
	var got []testenv.Frame
	for _, f := range wc.barrier(10 * time.Second) {
		if f.Type() == "message" {
			got = append(got, f)
		}
	}
	if len(got) != 4 || got[0].Str("body") != "hello edited" || got[0].Str("edited_at") == "" ||
		got[1].Str("body") != "" || got[1].Str("deleted_at") == "" || got[2].Str("kind") != "edit" || got[3].Str("kind") != "delete" {
		t.Fatalf("sync replay: %v", got)
	}

	// now persist: the targets land after their events and are updated
	if s := roomStats(t, env, room); s.rows != 0 {
		t.Fatalf("messages persisted before the worker started: %+v", s)
	}
	env.Worker(t, nil)
	waitPersisted(t, env, room, 4, 20*time.Second)
	var body1, body2 string
	var edited1, deleted2 bool
	if err := env.Pool.QueryRow(context.Background(), `
		SELECT a.body, a.edited_at IS NOT NULL, b.body, b.deleted_at IS NOT NULL
		FROM chat.messages a, chat.messages b
		WHERE a.room_id = $1 AND a.seq = 1 AND b.room_id = $1 AND b.seq = 2`, room).Scan(&body1, &edited1, &body2, &deleted2); err != nil {
		t.Fatal(err)
	}
	if body1 != "hello edited" || !edited1 || body2 != "" || !deleted2 {
		t.Fatalf("rows in Postgres: %q edited=%v, %q deleted=%v", body1, edited1, body2, deleted2)
	}
	var events int
	if err := env.Pool.QueryRow(context.Background(), `SELECT count(*) FROM chat.message_edits WHERE room_id = $1`, room).Scan(&events); err != nil || events != 2 {
		t.Fatalf("recorded events: %d %v", events, err)
	}
	checkHistory("after persistence")
}

// Concurrent edits of one message end in the body of the edit with the
// highest seq, in history (log and Postgres alike) and in the stored row;
// an edit racing a delete never brings the text back.
func TestMessageEditRace(t *testing.T) {
	env := testenv.Open(t)
	env.Worker(t, nil)
	na, nb := env.StartNode(t, testenv.NodeConfig{}), env.StartNode(t, testenv.NodeConfig{})
	a, b := na.SignUp(t, "ra"), na.SignUp(t, "rb")
	room := na.CreateRoom(t, a, b)
	restSend(t, na, a, room, "r1", "first")
	restSend(t, na, a, room, "r2", "second")
	const n = 8
	type res struct {
		st  int
		ans editAnswer
	}
	out := make(chan res, n+1)
	for i := 0; i < n; i++ {
		node := na
		if i%2 == 1 {
			node = nb
		}
		go func(i int) {
			var ans editAnswer
			st := node.Call(t, "PATCH", editPath(room, 1), a.Access, map[string]string{"body": fmt.Sprintf("v%d", i)}, &ans)
			out <- res{st, ans}
		}(i)
	}
	top, want := int64(0), ""
	for i := 0; i < n; i++ {
		r := <-out
		if r.st != 200 {
			t.Fatalf("concurrent edit: %d", r.st)
		}
		if r.ans.Event.Seq > top {
			top = r.ans.Event.Seq
		}
	}
	var h struct{ Messages []editedMsg }
	nb.Call(t, "GET", "/api/v1/rooms/"+room+"/messages", b.Access, nil, &h)
	for _, m := range h.Messages {
		if m.Seq == top {
			_, want = eventOf(t, m.Body)
		}
	}
	if len(h.Messages) != 2+n || h.Messages[0].Body != want || want == "" {
		t.Fatalf("after concurrent edits: %d messages, message 1 %q, want %q (edit at seq %d)", len(h.Messages), h.Messages[0].Body, want, top)
	}

	// edits racing a delete of message 2
	for i := 0; i < n; i++ {
		go func(i int) {
			var ans editAnswer
			st := na.Call(t, "PATCH", editPath(room, 2), a.Access, map[string]string{"body": fmt.Sprintf("w%d", i)}, &ans)
			out <- res{st, ans}
		}(i)
	}
	go func() {
		var ans editAnswer
		st := nb.Call(t, "DELETE", editPath(room, 2), a.Access, nil, &ans)
		out <- res{st, ans}
	}()
	for i := 0; i <= n; i++ {
		if r := <-out; r.st != 200 && r.st != 409 {
			t.Fatalf("edit/delete race: %d", r.st)
		}
	}
	var total int64
	nb.Call(t, "GET", "/api/v1/rooms/"+room+"/messages", b.Access, nil, &h)
	total = h.Messages[len(h.Messages)-1].Seq
	if h.Messages[1].Body != "" || h.Messages[1].DeletedAt == nil {
		t.Fatalf("message 2 after the race: %+v", h.Messages[1])
	}
	waitPersisted(t, env, room, total, 20*time.Second)
	var body1, body2 string
	if err := env.Pool.QueryRow(context.Background(), `SELECT (SELECT body FROM chat.messages WHERE room_id = $1 AND seq = 1), (SELECT body FROM chat.messages WHERE room_id = $1 AND seq = 2)`, room).Scan(&body1, &body2); err != nil {
		t.Fatal(err)
	}
	if body1 != want || body2 != "" {
		t.Fatalf("rows: %q %q, want %q and deleted", body1, body2, want)
	}
}
