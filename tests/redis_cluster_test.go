package tests

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/chatflow/chatflow/chat"
	"github.com/chatflow/chatflow/internal/testenv"
)

// On a Redis Cluster (make test-cluster), a node subscribed to rooms whose
// channels lie on every master gets every room's messages, sent through
// another node; and after Redis drops the subscriber connections of one
// master, the node subscribes those channels again and gets the next
// messages of every room too.
func TestRedisClusterShardedFanout(t *testing.T) {
	env := testenv.Open(t)
	cc, ok := env.Redis.(*redis.ClusterClient)
	if !ok {
		t.Skip("needs REDIS_CLUSTER_ADDRS (make test-cluster)")
	}
	ctx := context.Background()
	env.Worker(t, nil)
	na, nb := env.StartNode(t, testenv.NodeConfig{}), env.StartNode(t, testenv.NodeConfig{})
	a, b := na.SignUp(t, "sha"), nb.SignUp(t, "shb")
	const rooms = 50
	var ids []string
	masters := map[string][]string{} // master address → its rooms
	for range rooms {
		room := na.CreateRoom(t, a, b)
		ids = append(ids, room)
		node, err := cc.MasterForKey(ctx, chat.RoomChannel(room))
		if err != nil {
			t.Fatal(err)
		}
		addr := node.Options().Addr
		masters[addr] = append(masters[addr], room)
	}
	if len(masters) < 3 {
		t.Fatalf("the %d rooms' channels lie on %d masters, want all 3", rooms, len(masters))
	}
	wb := connect(t, nb, b) // subscribes the 50 rooms on node B

	// every message arrives exactly once, in every room
	round := func(r int) {
		t.Helper()
		for i, room := range ids {
			if st, _ := restSend(t, na, a, room, fmt.Sprintf("sh-%d-%d", r, i), "hello"); st != 201 {
				t.Fatalf("round %d: send to room %d: %d", r, i, st)
			}
		}
		got := map[string]int{}
		for deadline := time.Now().Add(15 * time.Second); len(got) < rooms; {
			f, err := wb.next(time.Until(deadline), ofType("message"))
			if err != nil {
				t.Fatalf("round %d: %d of %d rooms' messages arrived: %v", r, len(got), rooms, err)
			}
			if f.Int("seq") != int64(r) {
				t.Fatalf("round %d: message with seq %d in room %s", r, f.Int("seq"), f.Str("room_id"))
			}
			got[f.Str("room_id")]++
		}
		if extra := wb.drain(300 * time.Millisecond); len(extra) > 0 {
			for _, f := range extra {
				if f.Type() == "message" {
					t.Fatalf("round %d: a second copy: %v", r, f)
				}
			}
		}
	}
	round(1)

	// Redis drops every sharded subscriber of one master (as on a network
	// cut or a restart of that master); node B must subscribe again.
	var victim string
	for addr := range masters {
		victim = addr
		break
	}
	node := redis.NewClient(&redis.Options{Addr: victim})
	defer node.Close()
	if n, err := node.ClientKillByFilter(ctx, "TYPE", "pubsub").Result(); err != nil || n == 0 {
		t.Fatalf("CLIENT KILL TYPE pubsub on %s: %d, %v", victim, n, err)
	}
	for _, room := range masters[victim] {
		ch := chat.RoomChannel(room)
		for deadline := time.Now().Add(10 * time.Second); env.NumSub(ctx, ch) < 1; time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("room %s on %s was not subscribed again after its connection dropped", room, victim)
			}
		}
	}
	round(2)
}
