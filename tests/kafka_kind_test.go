package tests

import (
	"strings"
	"testing"
	"time"

	"github.com/chatflow/chatflow"
	"github.com/chatflow/chatflow/internal/testenv"
)

// TestKafkaRecordsCarryKind: the chat.messages outbox publishes a
// message's kind, so consumers can tell a system event from text.
func TestKafkaRecordsCarryKind(t *testing.T) {
	env := testenv.Open(t)
	env.Worker(t, nil)
	n := env.StartNode(t, testenv.NodeConfig{})
	broker := strings.Split(env.KafkaBrokers, ",")[0]
	from := lastOffsets(t, broker, chatflow.TopicChatMessages)
	a, b, c := n.SignUp(t, "kka"), n.SignUp(t, "kkb"), n.SignUp(t, "kkc")
	room := n.CreateRoom(t, a, b)
	n.Befriend(t, c, a)
	if st, _ := restSend(t, n, a, room, "kk-1", "hello"); st != 201 && st != 200 {
		t.Fatalf("send: %d", st)
	}
	if st := n.Call(t, "POST", "/api/v1/rooms/"+room+"/members", a.Access, map[string]any{"user_ids": []string{c.ID}}, nil); st != 200 {
		t.Fatalf("add c: %d", st)
	}
	kinds := map[string]int{}
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(300 * time.Millisecond) {
		kinds = map[string]int{}
		for _, r := range readRoom(t, broker, chatflow.TopicChatMessages, room, from, lastOffsets(t, broker, chatflow.TopicChatMessages)) {
			kinds[r.msg.Kind]++
		}
		if kinds[""] >= 1 && kinds[chatflow.KindSystem] >= 1 {
			return
		}
	}
	t.Fatalf("Kafka records of the room by kind: %v; want a text message (kind empty) and a system event", kinds)
}
