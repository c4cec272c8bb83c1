package api

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// Hub routes frames between Redis pub/sub and this node's WebSocket
// connections. It subscribes only to the channels of rooms and users that
// have a connection here, and drops each subscription with the last one.
type Hub struct {
	s  *Server
	ps *redis.PubSub

	mu    sync.RWMutex
	rooms map[string]map[*wsConn]struct{} // room id → connections of members
	users map[string]map[*wsConn]struct{} // user id → connections

	// subMu serialises (un)subscribe commands so that a late UNSUBSCRIBE can
	// never undo a newer SUBSCRIBE of the same channel.
	subMu      sync.Mutex
	subscribed map[string]bool
}

func newHub(s *Server) *Hub {
	return &Hub{
		s: s, ps: s.Redis.Subscribe(context.Background()),
		rooms: map[string]map[*wsConn]struct{}{}, users: map[string]map[*wsConn]struct{}{},
		subscribed: map[string]bool{},
	}
}

func (h *Hub) run(ctx context.Context) {
	// Receive does not watch ctx; closing the PubSub is what unblocks it.
	go func() { <-ctx.Done(); h.ps.Close() }()
	go h.pingLoop(ctx)
	for {
		msg, err := h.ps.Receive(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			h.s.Log.Warn("pubsub receive", "error", err)
			time.Sleep(100 * time.Millisecond)
			continue
		}
		switch m := msg.(type) {
		case *redis.Message:
			h.dispatch(m.Channel, []byte(m.Payload))
		case *redis.Subscription, *redis.Pong:
		}
	}
}

// pingLoop pings every connection periodically; the pongs keep read
// deadlines moving and reveal dead peers.
func (h *Hub) pingLoop(ctx context.Context) {
	t := time.NewTicker(pingEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		h.mu.RLock()
		conns := make([]*wsConn, 0, len(h.users))
		for _, set := range h.users {
			for c := range set {
				conns = append(conns, c)
			}
		}
		h.mu.RUnlock()
		for _, c := range conns {
			c.ping()
		}
	}
}

// dispatch hands a frame from Redis to the local connections it concerns.
func (h *Hub) dispatch(channel string, frame []byte) {
	h.s.metrics.fanoutFrames.Inc()
	kind, id := parseChannel(channel)
	switch kind {
	case 'r':
		room := id
		seq, isMsg := frameSeq(frame)
		h.mu.RLock()
		for c := range h.rooms[room] {
			if isMsg {
				c.deliverMessage(room, seq, frame)
			} else {
				c.enqueue(frame)
			}
		}
		h.mu.RUnlock()
	case 'u':
		user := id
		var ev roomEvent
		_ = json.Unmarshal(frame, &ev)
		h.mu.RLock()
		conns := make([]*wsConn, 0, len(h.users[user]))
		for c := range h.users[user] {
			conns = append(conns, c)
		}
		h.mu.RUnlock()
		for _, c := range conns {
			if ev.Type == "session" && ev.Event == "revoked" && ev.Family == c.family {
				// the session this socket was opened with was logged out
				c.enqueue(frame)
				c.close("session revoked")
				continue
			}
			if ev.Type == "room" && ev.UserID == user {
				switch ev.Event {
				case "invited", "joined":
					h.joinRoom(c, ev.RoomID)
				case "left":
					h.leaveRoom(c, ev.RoomID)
				}
			}
			c.enqueue(frame)
		}
	}
}

// parseChannel splits a channel name made by roomChannel or userChannel
// into its kind ('r' or 'u') and id; kind is 0 for any other name. It never
// slices past the name, so an odd channel cannot panic the hub's receive
// loop (which would take the whole node down).
func parseChannel(ch string) (kind byte, id string) {
	if len(ch) < 4 || ch[0] != '{' || ch[2] != ':' || ch[len(ch)-1] != '}' {
		return 0, ""
	}
	switch ch[1] {
	case 'r', 'u':
		return ch[1], ch[3 : len(ch)-1]
	}
	return 0, ""
}

// register adds a connection with its rooms and subscribes what is new.
func (h *Hub) register(c *wsConn, rooms []string) {
	var subs []string
	h.mu.Lock()
	if h.users[c.user] == nil {
		h.users[c.user] = map[*wsConn]struct{}{}
		subs = append(subs, userChannel(c.user))
	}
	h.users[c.user][c] = struct{}{}
	for _, r := range rooms {
		if h.addRoomLocked(c, r) {
			subs = append(subs, roomChannel(r))
		}
	}
	h.mu.Unlock()
	h.subscribe(subs...)
	h.s.metrics.connOpened()
}

func (h *Hub) addRoomLocked(c *wsConn, room string) (first bool) {
	c.addRoom(room)
	if h.rooms[room] == nil {
		h.rooms[room] = map[*wsConn]struct{}{}
		first = true
	}
	h.rooms[room][c] = struct{}{}
	return first
}

func (h *Hub) joinRoom(c *wsConn, room string) {
	h.mu.Lock()
	// dispatch picks connections up before calling this, unlocked: one that
	// has been unregistered since must not be added back, or it would stay
	// in h.rooms (and keep the room subscribed) for good.
	if _, ok := h.users[c.user][c]; !ok {
		h.mu.Unlock()
		return
	}
	first := h.addRoomLocked(c, room)
	h.mu.Unlock()
	if first {
		h.subscribe(roomChannel(room))
	}
}

func (h *Hub) leaveRoom(c *wsConn, room string) {
	h.mu.Lock()
	c.removeRoom(room)
	last := h.removeRoomLocked(c, room)
	h.mu.Unlock()
	if last {
		h.unsubscribe(roomChannel(room))
	}
}

func (h *Hub) removeRoomLocked(c *wsConn, room string) (last bool) {
	set := h.rooms[room]
	delete(set, c)
	if set != nil && len(set) == 0 {
		delete(h.rooms, room)
		return true
	}
	return false
}

// unregister drops a connection and the subscriptions nobody here needs any more.
func (h *Hub) unregister(c *wsConn) {
	var unsubs []string
	h.mu.Lock()
	if set := h.users[c.user]; set != nil {
		if _, ok := set[c]; !ok {
			h.mu.Unlock()
			return
		}
		delete(set, c)
		if len(set) == 0 {
			delete(h.users, c.user)
			unsubs = append(unsubs, userChannel(c.user))
		}
	}
	for _, r := range c.roomList() {
		if h.removeRoomLocked(c, r) {
			unsubs = append(unsubs, roomChannel(r))
		}
	}
	h.mu.Unlock()
	h.unsubscribe(unsubs...)
	h.s.metrics.connClosed()
}

func (h *Hub) subscribe(chans ...string)   { h.reconcile(chans) }
func (h *Hub) unsubscribe(chans ...string) { h.reconcile(chans) }

// reconcile makes the Redis subscriptions of chans match whether any local
// connection still needs them, at the moment the command is sent.
func (h *Hub) reconcile(chans []string) {
	if len(chans) == 0 {
		return
	}
	h.subMu.Lock()
	defer h.subMu.Unlock()
	var sub, unsub []string
	h.mu.RLock()
	for _, ch := range chans {
		want := h.wantedLocked(ch)
		switch have := h.subscribed[ch]; {
		case want && !have:
			sub = append(sub, ch)
		case !want && have:
			unsub = append(unsub, ch)
		}
	}
	h.mu.RUnlock()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if len(sub) > 0 {
		if err := h.ps.Subscribe(ctx, sub...); err != nil {
			h.s.Log.Error("subscribe", "channels", len(sub), "error", err)
		} else {
			for _, ch := range sub {
				h.subscribed[ch] = true
			}
		}
	}
	if len(unsub) > 0 {
		// after shutdown the PubSub is closed, which drops every subscription anyway
		if err := h.ps.Unsubscribe(ctx, unsub...); err != nil && !errors.Is(err, redis.ErrClosed) {
			h.s.Log.Warn("unsubscribe", "channels", len(unsub), "error", err)
		}
		for _, ch := range unsub {
			delete(h.subscribed, ch)
		}
	}
}

func (h *Hub) wantedLocked(ch string) bool {
	switch kind, id := parseChannel(ch); kind {
	case 'r':
		return len(h.rooms[id]) > 0
	case 'u':
		return len(h.users[id]) > 0
	}
	return false
}

// closeAll disconnects every client (shutdown); they reconnect elsewhere and sync.
func (h *Hub) closeAll() {
	h.mu.RLock()
	var conns []*wsConn
	for _, set := range h.users {
		for c := range set {
			conns = append(conns, c)
		}
	}
	h.mu.RUnlock()
	for _, c := range conns {
		c.close("server shutting down")
	}
}

// roomEvent is the room membership frame.
type roomEvent struct {
	Type   string `json:"type"`
	Event  string `json:"event"`
	RoomID string `json:"room_id,omitempty"`
	UserID string `json:"user_id,omitempty"`
	// Family is the token family of a revoked session ("session" events).
	Family string `json:"family,omitempty"`
}
