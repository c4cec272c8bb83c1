package tests

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/google/uuid"
	"go.temporal.io/sdk/testsuite"

	"github.com/chatflow/chatflow"
	"github.com/chatflow/chatflow/activities"
	"github.com/chatflow/chatflow/internal/testenv"
)

// The persistence path applies edit/delete events on its own (an api that
// died after sequencing the event but before recording it loses nothing):
// in any order of batches, a target stored after its events gets them, the
// newest edit by seq wins, a delete wins over every edit, and replayed
// batches change nothing.
func TestPersistAppliesEdits(t *testing.T) {
	env := testenv.Open(t)
	acts := activities.New(env.Pool, nil)
	var suite testsuite.WorkflowTestSuite
	aenv := suite.NewTestActivityEnvironment()
	aenv.RegisterActivity(acts)
	persist := func(msgs ...chatflow.Message) {
		t.Helper()
		if _, err := aenv.ExecuteActivity(acts.PersistMessages, chatflow.MessageBatch{Node: "t", Messages: msgs}); err != nil {
			t.Fatalf("persist: %v", err)
		}
	}
	room, sender := uuid.New(), uuid.New()
	t0 := time.Now().UTC().Truncate(time.Microsecond)
	msg := func(seq int64, kind, body string) chatflow.Message {
		return chatflow.Message{MessageID: uuid.Must(uuid.NewV7()).String(), RoomID: room.String(), Seq: seq, Kind: kind,
			SenderID: sender.String(), ClientMsgID: uuid.NewString(), Body: body, SentAt: t0.Add(time.Duration(seq) * time.Second)}
	}
	event := func(seq int64, kind string, target int64, body string) chatflow.Message {
		b, _ := json.Marshal(chatflow.EditEvent{TargetSeq: target, Body: body})
		return msg(seq, kind, string(b))
	}
	m1, m2, m3 := msg(1, "", "one"), msg(2, "", "two"), msg(3, "", "three")
	e4, e5 := event(4, chatflow.KindEdit, 1, "one v1"), event(5, chatflow.KindEdit, 2, "two v1")
	e6, e7 := event(6, chatflow.KindDelete, 2, ""), event(7, chatflow.KindEdit, 1, "one v2")
	e8 := event(8, chatflow.KindEdit, 3, "three v1")

	persist(e7, e6)     // events first, targets not stored yet
	persist(m1, m2, e4) // targets and an older edit of 1 arrive later
	persist(e5)         // an older edit of a deleted message: the delete wins
	persist(m3, e8)     // target and its edit in one batch
	persist(e7, e6)     // replays
	persist(m1, m2, e4)

	type state struct {
		body            string
		edited, deleted *time.Time
	}
	got := map[int64]state{}
	rows, err := env.Pool.Query(context.Background(), `SELECT seq, body, edited_at, deleted_at FROM chat.messages WHERE room_id = $1 AND seq <= 3`, room)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var seq int64
		var s state
		if err := rows.Scan(&seq, &s.body, &s.edited, &s.deleted); err != nil {
			t.Fatal(err)
		}
		got[seq] = s
	}
	if s := got[1]; s.body != "one v2" || s.edited == nil || !s.edited.Equal(e7.SentAt) || s.deleted != nil {
		t.Fatalf("message 1: %+v, want the newest edit (seq 7)", s)
	}
	if s := got[2]; s.body != "" || s.deleted == nil || !s.deleted.Equal(e6.SentAt) {
		t.Fatalf("message 2: %+v, want deleted", s)
	}
	if s := got[3]; s.body != "three v1" || s.edited == nil {
		t.Fatalf("message 3: %+v", s)
	}
	var n, kept int
	if err := env.Pool.QueryRow(context.Background(), `SELECT count(*), count(*) FILTER (WHERE body <> '') FROM chat.message_edits WHERE room_id = $1 AND target_seq = 2`, room).Scan(&n, &kept); err != nil {
		t.Fatal(err)
	}
	if n != 2 || kept != 0 {
		t.Fatalf("events of the deleted message: %d recorded, %d still holding text", n, kept)
	}
}
