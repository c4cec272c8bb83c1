package realtime

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/chatflow/chatflow"
	"github.com/chatflow/chatflow/ratelimit"
)

// A send the gate refuses gets an error frame with the refusal's code and
// retry_after, and never reaches the message core (the test node has none:
// reaching it would panic).
func TestSendGateRefusesBeforeAccept(t *testing.T) {
	n := testNode()
	var asked uuid.UUID
	n.SetSendGate(func(_ context.Context, user uuid.UUID) error {
		asked = user
		return &chatflow.Error{Code: chatflow.ECodeRateLimited, Detail: "too many messages",
			Err: &ratelimit.Exceeded{Limit: ratelimit.WSSend, RetryAfter: 1500 * time.Millisecond}}
	})
	c := &Conn{node: n, uid: uuid.New(), rooms: map[string]*roomState{}}
	c.writing = true // frames stay in the queue: there is no socket
	c.handleSend(context.Background(), inFrame{Type: "send", RoomID: uuid.NewString(), ClientMsgID: "m1", Body: "hi"})
	if asked != c.uid {
		t.Fatalf("gate asked about %v, want the connection's user", asked)
	}
	if len(c.q) != 1 {
		t.Fatalf("queued %d frames, want one error frame", len(c.q))
	}
	var f errorFrame
	if err := json.Unmarshal(c.q[0], &f); err != nil || f.Type != "error" || f.Code != "rate_limited" || f.Ref != "m1" || f.RetryAfter != 2 {
		t.Fatalf("refusal frame %s (%v)", c.q[0], err)
	}
}
