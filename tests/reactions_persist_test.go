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
	"github.com/chatflow/chatflow/db"
	"github.com/chatflow/chatflow/internal/testenv"
)

// The persistence path records reaction events on its own (an api that
// died after sequencing the event but before recording it loses nothing):
// in any order of batches and with replays, the folded state is the one the
// newest event per user and emoji says; a reply's reply_to is stored.
func TestPersistRecordsReactions(t *testing.T) {
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
	room, u1, u2 := uuid.New(), uuid.New(), uuid.New()
	t0 := time.Now().UTC().Truncate(time.Microsecond)
	msg := func(seq int64, sender uuid.UUID, kind, body string) chatflow.Message {
		return chatflow.Message{MessageID: uuid.Must(uuid.NewV7()).String(), RoomID: room.String(), Seq: seq, Kind: kind,
			SenderID: sender.String(), ClientMsgID: uuid.NewString(), Body: body, SentAt: t0.Add(time.Duration(seq) * time.Second)}
	}
	event := func(seq int64, sender uuid.UUID, emoji, op string) chatflow.Message {
		b, _ := json.Marshal(chatflow.ReactionEvent{TargetSeq: 1, Emoji: emoji, Op: op})
		return msg(seq, sender, chatflow.KindReaction, string(b))
	}
	m1 := msg(1, u1, "", "one")
	m2 := msg(2, u2, "", "re one")
	m2.ReplyTo = 1
	e3, e4, e5 := event(3, u1, "👍", "add"), event(4, u2, "👍", "add"), event(5, u1, "👍", "remove")
	e6, e7 := event(6, u2, "🎉", "add"), event(7, u1, "👍", "add")

	persist(e7, e5)         // newest first, target not stored yet
	persist(m1, m2, e3, e6) // the target and older events later
	persist(e4)
	persist(e7, e5, e3) // replays
	persist(e6, e4)

	rows, err := db.New(env.Pool).MessageOverlay(context.Background(), db.MessageOverlayParams{RoomID: room, Lo: 1, Hi: 1})
	if err != nil {
		t.Fatal(err)
	}
	var ops []chatflow.ReactionOp
	for _, r := range rows {
		if r.Src == "reaction" {
			ops = append(ops, chatflow.ReactionOp{EventSeq: r.EventSeq, UserID: r.UserID, Emoji: r.Emoji, Op: chatflow.ReactionAdd})
		}
	}
	want := []chatflow.Reaction{
		{Emoji: "👍", Count: 2, UserIDs: []string{u2.String(), u1.String()}},
		{Emoji: "🎉", Count: 1, UserIDs: []string{u2.String()}},
	}
	if got := chatflow.FoldReactions(ops); !reactionsEqual(got, want) {
		t.Fatalf("reactions: %+v, want %+v", got, want)
	}
	var n int
	var reply *int64
	if err := env.Pool.QueryRow(context.Background(), `SELECT (SELECT count(*) FROM chat.message_reactions WHERE room_id = $1),
		(SELECT reply_to FROM chat.messages WHERE room_id = $1 AND seq = 2)`, room).Scan(&n, &reply); err != nil {
		t.Fatal(err)
	}
	if n != 5 || reply == nil || *reply != 1 {
		t.Fatalf("%d recorded events (want 5), reply_to %v (want 1)", n, reply)
	}
}
