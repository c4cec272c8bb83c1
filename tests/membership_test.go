package tests

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chatflow/chatflow"
	"github.com/chatflow/chatflow/internal/testenv"
)

// Tests of issue 10's membership authority (SECURITY.md, part 3): a leave
// or an invite that races sends, while the room's cached member set keeps
// being dropped and rebuilt from Postgres, must never leave the cache stale.

// evictMembers drops the room's cached member set in a loop until stop is
// closed, so that sends keep rebuilding it from Postgres: the rebuilds then
// race every membership change. done is closed when it has stopped.
func evictMembers(env *testenv.Env, room string) (stop func()) {
	quit, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-quit:
				return
			default:
			}
			env.Redis.Del(context.Background(), "{r:"+room+"}:m")
			time.Sleep(time.Millisecond)
		}
	}()
	var once sync.Once
	return func() { once.Do(func() { close(quit); <-done }) }
}

// sendResult is one REST send of a racing sender.
type sendResult struct {
	start, end time.Time
	status     int
	code       string
	seq        int64
}

// sender sends as u to room through n from racingSenders goroutines in a
// loop until stop is called, which returns every result.
type sender struct {
	mu      sync.Mutex
	results []sendResult
	quit    chan struct{}
	done    chan struct{}
}

func startSender(n *testenv.Node, u testenv.User, room, prefix string) *sender {
	s := &sender{quit: make(chan struct{}), done: make(chan struct{})}
	var wg sync.WaitGroup
	for g := range racingSenders {
		wg.Add(1)
		go s.loop(&wg, n, u, room, fmt.Sprintf("%s-%d", prefix, g))
	}
	go func() { wg.Wait(); close(s.done) }()
	return s
}

// racingSenders is how many goroutines send at once: each send that finds
// the member set evicted starts a rebuild, so more of them are in flight
// when the membership changes.
const racingSenders = 3

func (s *sender) loop(wg *sync.WaitGroup, n *testenv.Node, u testenv.User, room, prefix string) {
	defer wg.Done()
	{
		for i := 0; ; i++ {
			select {
			case <-s.quit:
				return
			default:
			}
			r := sendResult{start: time.Now()}
			resp, err := acctDo(n, "POST", "/api/v1/rooms/"+room+"/messages", u.Access,
				map[string]string{"client_msg_id": fmt.Sprintf("%s-%d", prefix, i), "body": "racing " + prefix})
			r.end = time.Now()
			if err != nil {
				r.code = err.Error()
			} else {
				r.status = resp.Status
				var body struct {
					Seq  int64  `json:"seq"`
					Code string `json:"code"`
				}
				_ = json.Unmarshal(resp.Body, &body)
				r.seq, r.code = body.Seq, body.Code
			}
			s.mu.Lock()
			s.results = append(s.results, r)
			s.mu.Unlock()
		}
	}
}

func (s *sender) count(pred func(sendResult) bool) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, r := range s.results {
		if pred(r) {
			n++
		}
	}
	return n
}

func (s *sender) stop() []sendResult {
	close(s.quit)
	<-s.done
	return s.results
}

// waitFor polls cond for up to timeout.
func waitFor(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(5 * time.Millisecond)
	}
	return true
}

func roomEventFor(event, room, user string) func(testenv.Frame) bool {
	return func(f testenv.Frame) bool {
		return f.Type() == "room" && f.Str("event") == event && f.Str("room_id") == room && f.Str("user_id") == user
	}
}

// TestMembershipLeaveRacesSend: a member sends in a loop (through one node)
// while leaving (through another) and while the cached member set keeps
// being rebuilt. After the leave returns no send of theirs is accepted, and
// every accepted message of theirs has a seq at or below the leave's point
// (the room's seq at the removal, carried by the "left" event). Their socket
// gets nothing of the room afterwards, and typing and sync are refused.
func TestMembershipLeaveRacesSend(t *testing.T) {
	env := testenv.Open(t)
	env.Worker(t, nil)
	n1 := env.StartNode(t, testenv.NodeConfig{})
	n2 := env.StartNode(t, testenv.NodeConfig{})
	a, b := n1.SignUp(t, "mla"), n1.SignUp(t, "mlb")
	observer := connect(t, n1, a)
	leaverWS := connect(t, n2, b)

	const iterations = 25
	for it := range iterations {
		room := n1.CreateRoom(t, a, b)
		observer.must(5*time.Second, roomEventFor("joined", room, a.ID), "observer in the room")
		leaverWS.must(5*time.Second, roomEventFor("invited", room, b.ID), "leaver's socket in the room")
		stopEvict := evictMembers(env, room)
		s := startSender(n2, b, room, fmt.Sprintf("it%d", it))
		if !waitFor(10*time.Second, func() bool { return s.count(func(r sendResult) bool { return r.status == 201 }) >= 3 }) {
			stopEvict()
			t.Fatalf("iteration %d: the member's sends are not accepted before the leave: %+v", it, s.stop())
		}
		resp, err := acctDo(n1, "DELETE", "/api/v1/rooms/"+room+"/members/me", b.Access, nil)
		left := time.Now()
		if err != nil || resp.Status != 204 {
			stopEvict()
			t.Fatalf("iteration %d: leave: %v %d %s", it, err, resp.Status, resp.Body)
		}
		// From here the cache must stay right on its own: a stale set
		// installed by a rebuild that raced the leave would now stay.
		stopEvict()
		waitFor(5*time.Second, func() bool { return s.count(func(r sendResult) bool { return r.start.After(left) }) >= 10 })
		results := s.stop()
		point := observer.must(5*time.Second, roomEventFor("left", room, b.ID), "left event").Int("seq")

		accepted, refused := 0, 0
		for _, r := range results {
			switch {
			case r.status == 201:
				accepted++
				if r.start.After(left) {
					t.Fatalf("iteration %d: a send started %v after the leave returned was accepted (seq %d)", it, r.start.Sub(left), r.seq)
				}
				if r.seq > point {
					t.Fatalf("iteration %d: accepted seq %d is after the leave's point %d", it, r.seq, point)
				}
			case r.start.After(left) && r.status == 403 && r.code == chatflow.ECodeNotMember:
				refused++
			}
			// other answers (503 while the set was being evicted) accept nothing
		}
		if refused < 5 {
			t.Fatalf("iteration %d: only %d sends after the leave were refused as not_member: %+v", it, refused, results)
		}
		// The log agrees: the leaver's messages are exactly those accepted,
		// all at or below the point.
		var h history
		if st := n1.Call(t, "GET", "/api/v1/rooms/"+room+"/messages?limit=200", a.Access, nil, &h); st != 200 {
			t.Fatalf("history: %d", st)
		}
		// the leave's own member_left system event (one, posted before the
		// membership went) is not one of the sends
		texts := 0
		for _, m := range h.Messages {
			if strings.HasPrefix(m.ClientMsgID, "sys-left-") {
				continue
			}
			texts++
			if m.SenderID == b.ID && m.Seq > point {
				t.Fatalf("iteration %d: the log holds the leaver's seq %d after the point %d", it, m.Seq, point)
			}
		}
		if len(h.Messages) != accepted+1 || texts != accepted {
			t.Fatalf("iteration %d: %d messages in the log, %d accepted", it, len(h.Messages), accepted)
		}
		if it == iterations-1 {
			// The leaver's socket: no message of the room after the leave,
			// and typing and sync are refused.
			leaverWS.must(5*time.Second, roomEventFor("left", room, b.ID), "leaver's left event")
			if st, _ := restSend(t, n1, a, room, "after-leave", "not for the leaver"); st != 201 {
				t.Fatalf("owner's send after the leave: %d", st)
			}
			observer.must(5*time.Second, func(f testenv.Frame) bool { return msgIn(room)(f) && f.Str("client_msg_id") == "after-leave" }, "owner's message")
			leaverWS.send(map[string]any{"type": "typing", "room_id": room})
			leaverWS.send(map[string]any{"type": "sync", "rooms": map[string]int64{room: 0}})
			var refused int
			for _, f := range leaverWS.barrier(10 * time.Second) {
				switch {
				case f.Type() == "message" && f.Str("room_id") == room && f.Int("seq") > point:
					t.Fatalf("the leaver's socket got a message after the leave: %v", f)
				case f.Type() == "error" && f.Str("code") == chatflow.ECodeNotMember && f.Str("ref") == room:
					refused++
				}
			}
			if refused != 2 {
				t.Fatalf("typing and sync of the leaver: %d refused, want 2", refused)
			}
		}
	}
}

// TestMembershipInviteRacesSend: a room's cached member set keeps being
// rebuilt by a member's sends while another user is invited; as soon as the
// invite returns the invitee can send.
func TestMembershipInviteRacesSend(t *testing.T) {
	env := testenv.Open(t)
	env.Worker(t, nil)
	n1 := env.StartNode(t, testenv.NodeConfig{})
	n2 := env.StartNode(t, testenv.NodeConfig{})
	a, c := n1.SignUp(t, "mia"), n1.SignUp(t, "mic")
	n1.Befriend(t, c, a) // c consents to being added by a

	const iterations = 25
	for it := range iterations {
		room := n1.CreateRoom(t, a)
		stopEvict := evictMembers(env, room)
		s := startSender(n2, a, room, fmt.Sprintf("it%d", it))
		waitFor(5*time.Second, func() bool { return s.count(func(r sendResult) bool { return r.status == 201 }) >= 3 })
		resp, err := acctDo(n1, "POST", "/api/v1/rooms/"+room+"/members", a.Access, map[string]any{"user_ids": []string{c.ID}})
		stopEvict()
		if err != nil || resp.Status != 200 {
			s.stop()
			t.Fatalf("iteration %d: invite: %v %d %s", it, err, resp.Status, resp.Body)
		}
		for i := range 3 {
			r, err := acctDo(n2, "POST", "/api/v1/rooms/"+room+"/messages", c.Access, map[string]string{"client_msg_id": fmt.Sprintf("inv-%d", i), "body": "invited"})
			if err != nil || r.Status != 201 {
				s.stop()
				t.Fatalf("iteration %d: the invitee's send %d right after the invite: %v %d %s", it, i, err, r.Status, r.Body)
			}
		}
		for _, r := range s.stop() {
			if r.status == 403 { // 503s may happen while the set is evicted that fast
				t.Fatalf("iteration %d: the member's send during the invite refused: %q", it, r.code)
			}
		}
	}
}
