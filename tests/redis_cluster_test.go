package tests

import (
	"context"
	"fmt"
	"strings"
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

// A room's slot moves to another master (a resharding, keys and all): Redis
// drops the node's subscription of the room's channel on the old master,
// and the node subscribes it again on the new one; messages keep arriving.
func TestRedisClusterSlotMove(t *testing.T) {
	env := testenv.Open(t)
	cc, ok := env.Redis.(*redis.ClusterClient)
	if !ok {
		t.Skip("needs REDIS_CLUSTER_ADDRS (make test-cluster)")
	}
	ctx := context.Background()
	env.Worker(t, nil)
	na, nb := env.StartNode(t, testenv.NodeConfig{}), env.StartNode(t, testenv.NodeConfig{})
	a, b := na.SignUp(t, "mva"), nb.SignUp(t, "mvb")
	room := na.CreateRoom(t, a, b)
	wb := connect(t, nb, b)
	if st, _ := restSend(t, na, a, room, "mv-1", "before the move"); st != 201 {
		t.Fatalf("send: %d", st)
	}
	wb.must(5*time.Second, msgIn(room), "message before the move")

	ch := chat.RoomChannel(room)
	slot := int(cc.ClusterKeySlot(ctx, ch).Val())
	src, err := cc.MasterForKey(ctx, ch)
	if err != nil {
		t.Fatal(err)
	}
	var dst *redis.Client
	var all []*redis.Client
	_ = cc.ForEachMaster(ctx, func(_ context.Context, c *redis.Client) error {
		all = append(all, redis.NewClient(&redis.Options{Addr: c.Options().Addr}))
		return nil
	})
	for _, c := range all {
		t.Cleanup(func() { c.Close() }) // after the move back
		if c.Options().Addr != src.Options().Addr && dst == nil {
			dst = c
		}
	}
	from := redis.NewClient(&redis.Options{Addr: src.Options().Addr})
	t.Cleanup(func() { from.Close() })
	moveSlot(t, slot, from, dst, all)
	t.Cleanup(func() { moveSlot(t, slot, dst, from, all) })

	for deadline := time.Now().Add(10 * time.Second); dst.PubSubShardNumSub(ctx, ch).Val()[ch] < 1; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("room channel not subscribed on its new master %s", dst.Options().Addr)
		}
	}
	// The room's alive marker moved with its keys and names the old master's
	// process, so the new master fences the room once (README, known limits):
	// its seq jumps by SEQ_FENCE, also when both masters started within the
	// same second (the test script starts them together).
	want := 2 + testenv.Config().Chat.SeqFence
	if st, m := restSend(t, na, a, room, "mv-2", "after the move"); st != 201 || m.Seq != want {
		t.Fatalf("send after the move: %d, seq %d, want %d", st, m.Seq, want)
	}
	if f := wb.must(5*time.Second, msgIn(room), "message after the move"); f.Int("seq") != want {
		t.Fatalf("after the move: %v, want seq %d", f, want)
	}
}

// moveSlot moves a hash slot and its keys from one master to another, as
// redis-cli --cluster reshard does, and tells every master.
func moveSlot(t *testing.T, slot int, from, to *redis.Client, all []*redis.Client) {
	t.Helper()
	ctx := context.Background()
	fromID, toID := from.Do(ctx, "cluster", "myid").Val(), to.Do(ctx, "cluster", "myid").Val()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("move slot %d: %v", slot, err)
		}
	}
	must(to.Do(ctx, "cluster", "setslot", slot, "importing", fromID).Err())
	must(from.Do(ctx, "cluster", "setslot", slot, "migrating", toID).Err())
	for {
		keys, err := from.ClusterGetKeysInSlot(ctx, slot, 100).Result()
		must(err)
		if len(keys) == 0 {
			break
		}
		host, port, _ := strings.Cut(to.Options().Addr, ":")
		args := []any{"migrate", host, port, "", 0, 5000, "keys"}
		for _, k := range keys {
			args = append(args, k)
		}
		must(from.Do(ctx, args...).Err())
	}
	must(to.Do(ctx, "cluster", "setslot", slot, "node", toID).Err())
	must(from.Do(ctx, "cluster", "setslot", slot, "node", toID).Err())
	for _, c := range all {
		_ = c.Do(ctx, "cluster", "setslot", slot, "node", toID).Err()
	}
}
