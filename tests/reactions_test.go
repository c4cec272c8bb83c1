package tests

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"testing"
	"time"

	"github.com/chatflow/chatflow"
	"github.com/chatflow/chatflow/internal/testenv"
	"github.com/chatflow/chatflow/roomlog"
)

// reactedMsg is a message with the fields reactions add.
type reactedMsg struct {
	Seq       int64               `json:"seq"`
	SenderID  string              `json:"sender_id"`
	Body      string              `json:"body"`
	Kind      string              `json:"kind"`
	Reactions []chatflow.Reaction `json:"reactions"`
}

type reactionAnswer struct {
	TargetSeq int64               `json:"target_seq"`
	Reactions []chatflow.Reaction `json:"reactions"`
	Event     *reactedMsg         `json:"event"`
}

func reactionPath(room string, seq int64, emoji string) string {
	return fmt.Sprintf("/api/v1/rooms/%s/messages/%d/reactions/%s", room, seq, url.PathEscape(emoji))
}

// react calls PUT (add) or DELETE (remove) and fails the test unless 200.
func react(t testing.TB, n *testenv.Node, u testenv.User, method, room string, seq int64, emoji string) reactionAnswer {
	t.Helper()
	var a reactionAnswer
	if st := n.Call(t, method, reactionPath(room, seq, emoji), u.Access, nil, &a); st != 200 {
		t.Fatalf("%s reaction %s on %d by %s: %d", method, emoji, seq, u.Username, st)
	}
	return a
}

func pageOf(t testing.TB, n *testenv.Node, u testenv.User, room string) []reactedMsg {
	t.Helper()
	var h struct{ Messages []reactedMsg }
	if st := n.Call(t, "GET", "/api/v1/rooms/"+room+"/messages?limit=200", u.Access, nil, &h); st != 200 {
		t.Fatalf("history: %d", st)
	}
	return h.Messages
}

func reactionEvent(t testing.TB, body string) chatflow.ReactionEvent {
	t.Helper()
	var ev chatflow.ReactionEvent
	if err := json.Unmarshal([]byte(body), &ev); err != nil {
		t.Fatalf("reaction event body %q: %v", body, err)
	}
	return ev
}

// Reactions are events in the room's sequence: a member on another node
// gets them live, a member who syncs later replays them, history shows the
// current counts (from the log and from Postgres), a no-op change posts
// nothing, reaction events do not raise unread counts, and the checks on
// target, emoji and membership answer with their codes.
func TestReactionsLiveSyncHistory(t *testing.T) {
	env := testenv.Open(t)
	env.Worker(t, nil)
	na, nb := env.StartNode(t, testenv.NodeConfig{}), env.StartNode(t, testenv.NodeConfig{})
	a, b, c, d := na.SignUp(t, "xa"), na.SignUp(t, "xb"), na.SignUp(t, "xc"), na.SignUp(t, "xd")
	room := na.CreateRoom(t, a, b, c)
	otherRoom := na.CreateRoom(t, d)
	wb := connect(t, nb, b)
	if st, _ := restSend(t, na, a, room, "x1", "react to me"); st != 201 {
		t.Fatalf("send: %d", st)
	}
	wb.must(5*time.Second, msgIn(room), "message 1 on B")

	// a adds 👍 on node A: b on node B gets the event live
	r := react(t, na, a, "PUT", room, 1, "👍")
	if r.TargetSeq != 1 || len(r.Reactions) != 1 || r.Reactions[0].Count != 1 || r.Reactions[0].UserIDs[0] != a.ID || r.Event == nil || r.Event.Seq != 2 || r.Event.Kind != "reaction" {
		t.Fatalf("first reaction: %+v", r)
	}
	f := wb.must(5*time.Second, msgIn(room), "reaction event on B")
	if ev := reactionEvent(t, f.Str("body")); f.Int("seq") != 2 || f.Str("kind") != "reaction" || f.Str("sender_id") != a.ID ||
		ev != (chatflow.ReactionEvent{TargetSeq: 1, Emoji: "👍", Op: "add"}) {
		t.Fatalf("B got %v", f)
	}
	// b adds 👍 on node B (seq 3), then again: nothing posted
	if r = react(t, nb, b, "PUT", room, 1, "👍"); r.Event == nil || r.Event.Seq != 3 || len(r.Reactions) != 1 || r.Reactions[0].Count != 2 {
		t.Fatalf("second reaction: %+v", r)
	}
	if r = react(t, nb, b, "PUT", room, 1, "👍"); r.Event != nil || r.Reactions[0].Count != 2 || !slices.Equal(r.Reactions[0].UserIDs, []string{a.ID, b.ID}) {
		t.Fatalf("repeated add: %+v", r)
	}
	// removing a reaction that is not there posts nothing
	if r = react(t, na, a, "DELETE", room, 1, "❤️"); r.Event != nil || len(r.Reactions) != 1 {
		t.Fatalf("remove of a missing reaction: %+v", r)
	}
	// c adds 🎉 (seq 4), a removes 👍 (seq 5)
	react(t, na, c, "PUT", room, 1, "🎉")
	if r = react(t, na, a, "DELETE", room, 1, "👍"); r.Event == nil || r.Event.Seq != 5 {
		t.Fatalf("remove: %+v", r)
	}
	want := []chatflow.Reaction{{Emoji: "👍", Count: 1, UserIDs: []string{b.ID}}, {Emoji: "🎉", Count: 1, UserIDs: []string{c.ID}}}
	if !reactionsEqual(r.Reactions, want) {
		t.Fatalf("after remove: %+v, want %+v", r.Reactions, want)
	}
	var seqs []int64
	for range 3 {
		seqs = append(seqs, wb.must(5*time.Second, msgIn(room), "events on B").Int("seq"))
	}
	if !slices.Equal(seqs, []int64{3, 4, 5}) {
		t.Fatalf("B got events %v, want 3 4 5", seqs)
	}

	checkHistory := func(when string) {
		t.Helper()
		h := pageOf(t, nb, c, room)
		if len(h) != 5 || !reactionsEqual(h[0].Reactions, want) {
			t.Fatalf("history %s: %+v", when, h)
		}
		for _, m := range h[1:] {
			if m.Kind != "reaction" || m.Reactions != nil {
				t.Fatalf("history %s: event %+v", when, m)
			}
		}
	}
	checkHistory("from the log")

	// c syncs later on node B: message 1 with its reactions, then the events in order
	wc := connect(t, nb, c)
	wc.send(map[string]any{"type": "sync", "rooms": map[string]int64{room: 0}})
	var got []testenv.Frame
	for _, f := range wc.barrier(10 * time.Second) {
		if f.Type() == "message" {
			got = append(got, f)
		}
	}
	if len(got) != 5 || got[0].Int("seq") != 1 {
		t.Fatalf("sync: %v", got)
	}
	var first reactedMsg
	raw, _ := json.Marshal(got[0])
	if err := json.Unmarshal(raw, &first); err != nil || !reactionsEqual(first.Reactions, want) {
		t.Fatalf("sync message 1: %s", raw)
	}
	for i, f := range got[1:] {
		if f.Int("seq") != int64(i+2) || f.Str("kind") != "reaction" || reactionEvent(t, f.Str("body")).TargetSeq != 1 {
			t.Fatalf("sync event %d: %v", i, f)
		}
	}

	// once stored: rows recorded, unread counts only the text message, and
	// history read from Postgres shows the same counts
	waitPersisted(t, env, room, 5, 20*time.Second)
	var rows int
	if err := env.Pool.QueryRow(context.Background(), `SELECT count(*) FROM chat.message_reactions WHERE room_id = $1`, room).Scan(&rows); err != nil || rows != 4 {
		t.Fatalf("recorded reaction events: %d %v", rows, err)
	}
	var rv struct {
		UnreadCount int64 `json:"unread_count"`
		LastSeq     int64 `json:"last_seq"`
	}
	if st := na.Call(t, "GET", "/api/v1/rooms/"+room, c.Access, nil, &rv); st != 200 || rv.LastSeq != 5 || rv.UnreadCount != 1 {
		t.Fatalf("c's room view: %d %+v, want unread 1 (reaction events are not unread)", st, rv)
	}
	if err := env.Redis.Del(context.Background(), roomlog.StreamKey(room)).Err(); err != nil {
		t.Fatal(err)
	}
	checkHistory("from Postgres")

	// refusals
	var p problem
	for _, bad := range []string{" ", "a b", "123456789", "\t", "👍\u200b\u00a0", "🎉🎉🎉🎉🎉🎉🎉🎉🎉"} {
		if st := na.Call(t, "PUT", reactionPath(room, 1, bad), a.Access, nil, &p); st != 422 || p.Code != chatflow.ECodeValidation {
			t.Fatalf("emoji %q: %d %+v", bad, st, p)
		}
	}
	if st := na.Call(t, "PUT", fmt.Sprintf("/api/v1/rooms/%s/messages/1/reactions/%%FF", room), a.Access, nil, &p); st != 422 {
		t.Fatalf("emoji not UTF-8: %d %+v", st, p)
	}
	if st := na.Call(t, "PUT", reactionPath(room, 2, "👍"), a.Access, nil, &p); st != 422 {
		t.Fatalf("reaction to a reaction event: %d %+v", st, p)
	}
	if st := na.Call(t, "PUT", reactionPath(room, 99, "👍"), a.Access, nil, &p); st != 404 || p.Code != chatflow.ECodeNotFound {
		t.Fatalf("reaction past the end: %d %+v", st, p)
	}
	if st := na.Call(t, "PUT", reactionPath(room, 0, "👍"), a.Access, nil, &p); st != 422 {
		t.Fatalf("reaction to seq 0: %d %+v", st, p)
	}
	if st := na.Call(t, "PUT", reactionPath(room, 1, "👍"), d.Access, nil, &p); st != 403 || p.Code != chatflow.ECodeNotMember {
		t.Fatalf("non-member: %d %+v", st, p)
	}
	if st := na.Call(t, "DELETE", reactionPath(room, 1, "👍"), d.Access, nil, &p); st != 403 || p.Code != chatflow.ECodeNotMember {
		t.Fatalf("non-member remove: %d %+v", st, p)
	}
	if st := na.Call(t, "PUT", reactionPath(otherRoom[:len(otherRoom)-4]+"0000", 1, "👍"), d.Access, nil, &p); st != 404 {
		t.Fatalf("unknown room: %d %+v", st, p)
	}
	// a deleted message takes no reaction changes
	restSend(t, na, a, room, "x-del", "to delete")
	if st := na.Call(t, "DELETE", editPath(room, 6), a.Access, nil, nil); st != 200 {
		t.Fatalf("delete: %d", st)
	}
	for _, m := range []string{"PUT", "DELETE"} {
		if st := nb.Call(t, m, reactionPath(room, 6, "👍"), b.Access, nil, &p); st != 409 || p.Code != chatflow.ECodeMessageDeleted {
			t.Fatalf("%s on a deleted message: %d %+v", m, st, p)
		}
	}
	if h := pageOf(t, na, a, room); len(h) != 7 {
		t.Fatalf("refused changes posted events: %d messages, want 7", len(h))
	}
}

func reactionsEqual(a, b []chatflow.Reaction) bool {
	return slices.EqualFunc(a, b, func(x, y chatflow.Reaction) bool {
		return x.Emoji == y.Emoji && x.Count == y.Count && slices.Equal(x.UserIDs, y.UserIDs)
	})
}

// Twenty members adding the same emoji at once (on two nodes) count twenty;
// ten of them removing it at once leave ten. One user's concurrent adds and
// removes end, in history from the log and from Postgres, in the state the
// last of their events says.
func TestReactionsConcurrent(t *testing.T) {
	env := testenv.Open(t)
	env.Worker(t, nil)
	na, nb := env.StartNode(t, testenv.NodeConfig{}), env.StartNode(t, testenv.NodeConfig{})
	owner := na.SignUp(t, "xco")
	const n = 20
	users := make([]testenv.User, n)
	for i := range users {
		users[i] = na.SignUp(t, fmt.Sprintf("xc%d", i))
	}
	room := na.CreateRoom(t, owner, users...)
	restSend(t, na, owner, room, "xc-1", "popular")

	type res struct {
		st  int
		ans reactionAnswer
	}
	out := make(chan res, n)
	burst := func(method string, who []testenv.User) {
		for i, u := range who {
			node := na
			if i%2 == 1 {
				node = nb
			}
			go func() {
				var a reactionAnswer
				st := node.Call(t, method, reactionPath(room, 1, "👍"), u.Access, nil, &a)
				out <- res{st, a}
			}()
		}
		for range who {
			if r := <-out; r.st != 200 || r.ans.Event == nil {
				t.Fatalf("concurrent %s: %d %+v", method, r.st, r.ans)
			}
		}
	}
	countOf := func(rs []chatflow.Reaction) (int, []string) {
		for _, r := range rs {
			if r.Emoji == "👍" {
				return r.Count, r.UserIDs
			}
		}
		return 0, nil
	}
	burst("PUT", users)
	if c, ids := countOf(pageOf(t, nb, owner, room)[0].Reactions); c != n || len(ids) != n {
		t.Fatalf("after %d concurrent adds: count %d, %d users", n, c, len(ids))
	}
	burst("DELETE", users[:n/2])
	c, ids := countOf(pageOf(t, na, owner, room)[0].Reactions)
	if c != n/2 {
		t.Fatalf("after %d concurrent removes: count %d", n/2, c)
	}
	for _, u := range users[n/2:] {
		if !slices.Contains(ids, u.ID) {
			t.Fatalf("%s's reaction is gone: %v", u.Username, ids)
		}
	}

	// one user's add/remove race on 🔥
	me := users[0]
	const k = 16
	done := make(chan int, k)
	for i := range k {
		node, method := na, "PUT"
		if i%2 == 1 {
			node, method = nb, "DELETE"
		}
		go func() { done <- node.Call(t, method, reactionPath(room, 1, "🔥"), me.Access, nil, nil) }()
	}
	for range k {
		if st := <-done; st != 200 {
			t.Fatalf("add/remove race: %d", st)
		}
	}
	// the state must be what the last 🔥 event of me says
	h := pageOf(t, nb, owner, room)
	var lastOp string
	for _, m := range h {
		if m.Kind == "reaction" && m.SenderID == me.ID {
			if ev := reactionEvent(t, m.Body); ev.Emoji == "🔥" && ev.TargetSeq == 1 {
				lastOp = ev.Op
			}
		}
	}
	if lastOp == "" {
		t.Fatal("no 🔥 event posted")
	}
	check := func(when string) {
		t.Helper()
		msgs := pageOf(t, nb, owner, room)
		has := chatflow.Reacted(msgs[0].Reactions, me.ID, "🔥")
		if has != (lastOp == "add") {
			t.Fatalf("%s: %s in 🔥 = %v, but the last event is %q (%+v)", when, me.Username, has, lastOp, msgs[0].Reactions)
		}
		if c, _ := countOf(msgs[0].Reactions); c != n/2 {
			t.Fatalf("%s: 👍 count %d, want %d", when, c, n/2)
		}
	}
	check("from the log")
	total := h[len(h)-1].Seq
	waitPersisted(t, env, room, total, 30*time.Second)
	if err := env.Redis.Del(context.Background(), roomlog.StreamKey(room)).Err(); err != nil {
		t.Fatal(err)
	}
	check("from Postgres")
	t.Logf("%d events for %d + %d + %d requests; 🔥 ends %q", total-1, n, n/2, k, lastOp)
}
