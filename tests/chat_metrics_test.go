package tests

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chatflow/chatflow/internal/testenv"
)

// /metrics keeps working after mixed chat traffic, and its request labels
// are real methods and routes (the batch size metric is read from here).
func TestChatMetricsScrape(t *testing.T) {
	env := testenv.Open(t)
	env.Worker(t, nil)
	n := env.StartNode(t, testenv.NodeConfig{})
	a, b := n.SignUp(t, "ma"), n.SignUp(t, "mb")
	room := n.CreateRoom(t, a, b)
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 15; i++ {
				restSend(t, n, a, room, fmt.Sprintf("m%d-%d", g, i), "metrics")
				n.Call(t, "GET", "/api/v1/rooms/"+room+"/messages?limit=5", b.Access, nil, nil)
				n.Call(t, "POST", "/api/v1/rooms/"+room+"/read", b.Access, map[string]int{"seq": i}, nil)
				n.Call(t, "GET", "/healthz", "", nil, nil)
			}
		}()
	}
	wg.Wait()
	m, ok := metrics(t, n)
	if !ok {
		t.Fatalf("GET /metrics fails after mixed traffic")
	}
	for k := range m {
		if !strings.HasPrefix(k, "chatflow_http_requests_total{") {
			continue
		}
		if !strings.Contains(k, `method="GET"`) && !strings.Contains(k, `method="POST"`) {
			t.Fatalf("request metric with a corrupted method label: %s", k)
		}
	}
	// acks come from the log; the batches follow within a linger
	for deadline := time.Now().Add(10 * time.Second); m["chatflow_batch_messages_sum"] < 60 && time.Now().Before(deadline); {
		time.Sleep(50 * time.Millisecond)
		m, _ = metrics(t, n)
	}
	if m["chatflow_batch_messages_sum"] != 60 || m["chatflow_batch_messages_count"] < 1 {
		t.Fatalf("batch metric: %v messages in %v batches, want 60", m["chatflow_batch_messages_sum"], m["chatflow_batch_messages_count"])
	}
}
