package realtime

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"testing"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"

	"github.com/chatflow/chatflow/chat"
)

// nopPubSub is a subscription that never receives anything.
type nopPubSub struct{}

func (nopPubSub) Subscribe(context.Context, ...string) error   { return nil }
func (nopPubSub) Unsubscribe(context.Context, ...string) error { return nil }
func (nopPubSub) Receive(ctx context.Context) (any, error)     { <-ctx.Done(); return nil, ctx.Err() }
func (nopPubSub) Close() error                                 { return nil }

// testNode is a node with no message core and a subscription that never
// reaches Redis: enough for the hub and the per-connection state.
func testNode() *Node {
	n := &Node{cfg: DefaultConfig(), log: slog.New(slog.NewTextHandler(io.Discard, nil)), metrics: newMetrics()}
	n.hub = newHub(nopPubSub{}, n.log, n.metrics)
	return n
}

// Frames on odd channel names must not panic the hub's receive loop: a
// panic there takes the whole node down.
func TestDispatchOddChannels(t *testing.T) {
	h := newHub(nopPubSub{}, slog.New(slog.NewTextHandler(io.Discard, nil)), newMetrics())
	for _, ch := range []string{"", "{", "{r:", "{u:", "{r:}", "{u:}", "x", "{r:abc"} {
		h.dispatch(ch, []byte(`{"type":"message","seq":1}`))
		h.dispatch(ch, []byte(`garbage`))
	}
	if h.wantedLocked("{r:") || h.wantedLocked("") {
		t.Fatal("odd channel names are never wanted")
	}
}

// A live frame that skips seqs (fan-out lost some) must not let a later sync
// treat the hole as already sent.
func TestDeliverMessageTracksLiveGaps(t *testing.T) {
	room := uuid.NewString()
	c := &Conn{node: testNode(), rooms: map[string]*roomState{room: {}}}
	c.done = true // nothing is written: there is no socket
	for _, seq := range []int64{11, 12, 13} {
		c.deliverMessage(room, seq, nil)
	}
	if st := c.rooms[room]; st.firstLive != 11 || st.last != 13 {
		t.Fatalf("contiguous live run: firstLive %d last %d, want 11, 13", st.firstLive, st.last)
	}
	c.deliverMessage(room, 15, nil) // 14 lost on the way
	c.deliverMessage(room, 16, nil)
	c.deliverMessage(room, 12, nil) // old: ignored
	st := c.rooms[room]
	if st.firstLive != 15 || st.last != 16 {
		t.Fatalf("after a hole: firstLive %d last %d, want 15, 16 (so a sync from 13 replays 14)", st.firstLive, st.last)
	}
}

// A connection unregistered while dispatch was handing it an "invited"
// event must not be put back into the hub.
func TestJoinRoomAfterUnregister(t *testing.T) {
	n := testNode()
	c := &Conn{node: n, user: uuid.NewString(), rooms: map[string]*roomState{}}
	n.hub.joinRoom(c, uuid.NewString())
	n.hub.mu.RLock()
	defer n.hub.mu.RUnlock()
	if len(n.hub.rooms) != 0 || len(c.rooms) != 0 {
		t.Fatalf("unregistered connection joined a room: hub %v, conn %v", n.hub.rooms, c.rooms)
	}
}

// confirmingPubSub confirms every SUBSCRIBE, as Redis does.
type confirmingPubSub struct{ in chan any }

func (p confirmingPubSub) Subscribe(_ context.Context, chans ...string) error {
	for _, ch := range chans {
		p.in <- &redis.Subscription{Kind: "subscribe", Channel: ch}
	}
	return nil
}
func (confirmingPubSub) Unsubscribe(context.Context, ...string) error { return nil }
func (p confirmingPubSub) Receive(ctx context.Context) (any, error) {
	select {
	case m := <-p.in:
		return m, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}
func (confirmingPubSub) Close() error { return nil }

// Room events that arrive while a connection's rooms load from Postgres
// are applied on top of what was loaded: a leave that raced the load is
// not undone by it, and an invite is not lost.
func TestRoomEventsDuringLoadApplyAfterIt(t *testing.T) {
	n := testNode()
	n.hub = newHub(confirmingPubSub{in: make(chan any, 16)}, n.log, n.metrics)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go n.hub.run(ctx)
	user := uuid.NewString()
	c := &Conn{node: n, user: user, rooms: map[string]*roomState{}}
	c.done = true // no socket: frames are not written
	n.hub.addUser(c)

	left, kept, invited := uuid.NewString(), uuid.NewString(), uuid.NewString()
	event := func(ev, room string) []byte {
		b, _ := json.Marshal(chat.RoomEvent{Type: "room", Event: ev, RoomID: room, UserID: user})
		return b
	}
	n.hub.dispatch(chat.UserChannel(user), event("left", left))       // committed after the load read
	n.hub.dispatch(chat.UserChannel(user), event("invited", invited)) // likewise
	n.hub.addRooms(c, []string{left, kept})                           // the load still had "left"

	for room, want := range map[string]bool{left: false, kept: true, invited: true} {
		n.hub.mu.RLock()
		_, inHub := n.hub.rooms[room][c]
		n.hub.mu.RUnlock()
		if c.isMember(room) != want || inHub != want {
			t.Errorf("room %s: conn %v hub %v, want %v", room[:8], c.isMember(room), inHub, want)
		}
	}
	// After the load, events apply directly.
	n.hub.dispatch(chat.UserChannel(user), event("left", kept))
	if c.isMember(kept) {
		t.Error("a leave after the load was not applied")
	}
}

// The slots are CLUSTER KEYSLOT's answers (Redis 7.0).
func TestKeySlot(t *testing.T) {
	for key, want := range map[string]int{
		"{r:abc}": 145, "{r:abc}:seq": 145, "{u:zzz}": 7445, "{r:abd}": 12406,
		"foo": 12182, "{}foo": 9500, "a{}b": 13694, "{user1000}.following": 3443,
	} {
		if got := keySlot(key); got != want {
			t.Errorf("keySlot(%q) = %d, want %d", key, got, want)
		}
	}
	groups := bySlot([]string{"{r:abc}", "{r:abd}", "{r:abc}"})
	if len(groups) != 2 || len(groups[0]) != 2 || len(groups[1]) != 1 {
		t.Errorf("bySlot: %v", groups)
	}
}

// On a Redis Cluster a leave's event on the leaver's own channel may come
// after the room's copy and the messages sequenced after the leave (they
// travel on other connections). The room's copy alone must take the
// leaver's sockets out of the room, before those messages; the user's copy
// then changes nothing (and is not written twice).
func TestRoomLeftOnRoomChannelFirst(t *testing.T) {
	n := testNode()
	n.hub = newHub(confirmingPubSub{in: make(chan any, 16)}, n.log, n.metrics)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go n.hub.run(ctx)
	user, other, room := uuid.NewString(), uuid.NewString(), uuid.NewString()
	c := &Conn{node: n, user: user, rooms: map[string]*roomState{}}
	d := &Conn{node: n, user: other, rooms: map[string]*roomState{}}
	c.done, d.done = true, true // no socket: frames are not written
	for _, x := range []*Conn{c, d} {
		n.hub.addUser(x)
		n.hub.addRooms(x, []string{room})
	}
	left, _ := json.Marshal(chat.RoomEvent{Type: "room", Event: "left", RoomID: room, UserID: user})
	n.hub.dispatch(chat.RoomChannel(room), left)
	if c.isMember(room) {
		t.Fatal("the room's \"left\" of a local user did not take its socket out of the room")
	}
	if !d.isMember(room) {
		t.Fatal("another member's socket left the room")
	}
	n.hub.dispatch(chat.RoomChannel(room), []byte(`{"type":"message","room_id":"`+room+`","seq":7}`))
	if c.rooms[room] != nil || d.rooms[room].last != 7 {
		t.Fatalf("message after the leave: leaver %v, other member %+v", c.rooms[room], d.rooms[room])
	}
	n.hub.dispatch(chat.UserChannel(user), left)
	n.hub.mu.RLock()
	_, inHub := n.hub.rooms[room][c]
	via := len(c.leftVia)
	n.hub.mu.RUnlock()
	if inHub || c.isMember(room) || via != 0 {
		t.Fatalf("after the user's copy: in hub %v, member %v, leftVia %d", inHub, c.isMember(room), via)
	}
}
