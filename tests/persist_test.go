package tests

import (
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.temporal.io/sdk/testsuite"

	"github.com/chatflow/chatflow"
	"github.com/chatflow/chatflow/activities"
	"github.com/chatflow/chatflow/internal/testenv"
)

// TestPersistBatchReplayAndCollision runs the persistence activity against
// Postgres: a replayed batch inserts nothing and is not a collision; a batch
// whose (room, seq) belongs to another message is counted as a collision.
func TestPersistBatchReplayAndCollision(t *testing.T) {
	env := testenv.Open(t)
	acts := activities.New(env.Pool, nil)
	var suite testsuite.WorkflowTestSuite
	aenv := suite.NewTestActivityEnvironment()
	aenv.RegisterActivity(acts)
	persist := func(b chatflow.MessageBatch) (int64, error) {
		v, err := aenv.ExecuteActivity(acts.PersistMessages, b)
		if err != nil {
			return 0, err
		}
		var n int64
		return n, v.Get(&n)
	}
	room, sender := uuid.New(), uuid.New()
	msg := func(seq int64, cmid string) chatflow.Message {
		return chatflow.Message{MessageID: uuid.Must(uuid.NewV7()).String(), RoomID: room.String(), Seq: seq,
			SenderID: sender.String(), ClientMsgID: cmid, Body: "b", SentAt: time.Now().UTC()}
	}
	first := chatflow.MessageBatch{Node: "t", Messages: []chatflow.Message{msg(1, "a"), msg(2, "b")}}
	if n, err := persist(first); err != nil || n != 2 {
		t.Fatalf("first batch: %d rows, %v", n, err)
	}
	if n, err := persist(first); err != nil || n != 0 {
		t.Fatalf("replayed batch: %d rows, %v", n, err)
	}
	if c := testutil.ToFloat64(acts.Metrics.SeqCollisions); c != 0 {
		t.Fatalf("a replay counted as %v collisions", c)
	}
	clash := chatflow.MessageBatch{Node: "t", Messages: []chatflow.Message{msg(2, "c"), msg(3, "d")}}
	if n, err := persist(clash); err != nil || n != 1 {
		t.Fatalf("clashing batch: %d rows, %v", n, err)
	}
	if c := testutil.ToFloat64(acts.Metrics.SeqCollisions); c != 1 {
		t.Fatalf("collisions = %v, want 1", c)
	}
}
