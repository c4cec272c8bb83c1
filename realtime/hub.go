package realtime

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/chatflow/chatflow/chat"
)

// PubSub is the subscription a hub receives events on; a *redis.PubSub is one.
type PubSub interface {
	Subscribe(ctx context.Context, channels ...string) error
	Unsubscribe(ctx context.Context, channels ...string) error
	Receive(ctx context.Context) (any, error)
	Close() error
}

// Hub routes frames between Redis pub/sub and this node's WebSocket
// connections. It subscribes only to the channels of rooms and users that
// have a connection here, and drops each subscription with the last one.
type Hub struct {
	ps      PubSub
	log     *slog.Logger
	metrics *Metrics

	mu    sync.RWMutex
	rooms map[string]map[*Conn]struct{} // room id → connections of members
	users map[string]map[*Conn]struct{} // user id → connections

	// subMu serialises (un)subscribe commands so that a late UNSUBSCRIBE can
	// never undo a newer SUBSCRIBE of the same channel.
	subMu      sync.Mutex
	subscribed map[string]bool

	// waiting holds, per channel, those waiting for Redis to confirm a
	// SUBSCRIBE; see reconcile.
	waitMu  sync.Mutex
	waiting map[string][]chan struct{}
}

func newHub(ps PubSub, log *slog.Logger, m *Metrics) *Hub {
	return &Hub{
		ps: ps, log: log, metrics: m,
		rooms: map[string]map[*Conn]struct{}{}, users: map[string]map[*Conn]struct{}{},
		subscribed: map[string]bool{}, waiting: map[string][]chan struct{}{},
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
			h.log.Warn("pubsub receive", "error", err)
			time.Sleep(100 * time.Millisecond)
			continue
		}
		switch m := msg.(type) {
		case *redis.Message:
			h.dispatch(m.Channel, []byte(m.Payload))
		case *redis.Subscription:
			if m.Kind == "subscribe" || m.Kind == "ssubscribe" {
				h.confirmed(m.Channel)
			}
		case *redis.Pong:
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
		for _, c := range h.conns() {
			c.ping()
		}
	}
}

// dispatch hands a frame from Redis to the local connections it concerns.
func (h *Hub) dispatch(channel string, frame []byte) {
	h.metrics.fanoutFrames.Inc()
	kind, id := chat.ParseChannel(channel)
	switch kind {
	case 'r':
		room := id
		seq, isMsg := chat.FrameSeq(frame)
		typing := bytes.HasPrefix(frame, []byte(`{"type":"typing"`))
		var presenceID string
		if !isMsg && !typing && bytes.Contains(frame, []byte(`"type":"presence"`)) {
			var p struct {
				Type    string `json:"type"`
				EventID string `json:"event_id"`
			}
			if json.Unmarshal(frame, &p) == nil && p.Type == "presence" {
				presenceID = p.EventID
			}
		}
		leaver := roomLeaver(isMsg || typing || presenceID != "", frame)
		var gone []*Conn
		h.mu.RLock()
		for c := range h.rooms[room] {
			switch {
			case isMsg:
				c.deliverMessage(room, seq, frame)
			case typing:
				c.writeDroppable(frame)
			case presenceID != "":
				if c.firstPresence(presenceID) {
					c.Write(frame)
				}
			default:
				if leaver != "" && c.user == leaver {
					gone = append(gone, c)
				}
				c.Write(frame)
			}
		}
		h.mu.RUnlock()
		// The room's "left" of a user still here: on a single Redis the
		// user's own copy, published first on the same connection, has
		// already taken the user's sockets out. On a Redis Cluster it comes
		// on another connection and may come later; leaving now keeps
		// every message sequenced after the leave from these sockets (they
		// come after this event on the room's channel), and the user's
		// copy is then not written again.
		for _, c := range gone {
			h.leaveRoom(c, room)
			h.mu.Lock()
			if c.leftVia == nil {
				c.leftVia = map[string]bool{}
			}
			c.leftVia[room] = true
			h.mu.Unlock()
		}
	case 'u':
		user := id
		var ev chat.RoomEvent
		_ = json.Unmarshal(frame, &ev)
		h.mu.RLock()
		conns := make([]*Conn, 0, len(h.users[user]))
		for c := range h.users[user] {
			conns = append(conns, c)
		}
		h.mu.RUnlock()
		for _, c := range conns {
			if ev.Type == "session" {
				// only the sockets of the revoked session see it; they close
				// after it is delivered
				if ev.Event == "revoked" && ev.Family == c.family() {
					h.metrics.sessionsEnded.WithLabelValues("revoked").Inc()
					c.closeWith(frame, "session revoked")
				}
				continue
			}
			if ev.Type == "room" && ev.UserID == user {
				h.mu.Lock()
				if ev.Event == "left" && c.leftVia[ev.RoomID] {
					delete(c.leftVia, ev.RoomID) // delivered with the room's copy
					h.mu.Unlock()
					continue
				}
				loading := c.loading
				if loading {
					c.pending = append(c.pending, ev) // applied by addRooms
				}
				h.mu.Unlock()
				if !loading {
					switch ev.Event {
					case "invited", "joined":
						h.joinRoom(c, ev.RoomID)
					case "left":
						h.leaveRoom(c, ev.RoomID)
					}
				}
			}
			c.Write(frame)
		}
	}
}

// roomLeaver is the user a room's "left" event is about ("" for any
// other frame); known says the frame is already known to be something else.
func roomLeaver(known bool, frame []byte) string {
	if known || !bytes.Contains(frame, []byte(`"event":"left"`)) {
		return ""
	}
	var ev chat.RoomEvent
	if json.Unmarshal(frame, &ev) != nil || ev.Type != "room" || ev.Event != "left" {
		return ""
	}
	return ev.UserID
}

// addUser registers a connection and subscribes its user's channel,
// waiting for Redis to confirm: every event published for the user from
// then on reaches the connection. Room events are held back until addRooms.
func (h *Hub) addUser(c *Conn) {
	var subs []string
	h.mu.Lock()
	c.loading = true
	if h.users[c.user] == nil {
		h.users[c.user] = map[*Conn]struct{}{}
	}
	h.users[c.user][c] = struct{}{}
	subs = append(subs, chat.UserChannel(c.user))
	h.mu.Unlock()
	h.reconcile(subs, true)
	h.metrics.connOpened()
}

// addRooms gives a connection its rooms, as loaded from Postgres after
// addUser, then applies the room events that arrived meanwhile on top (an
// event may or may not be in what was loaded; applying it again changes
// nothing, and applying it after the load is what keeps a leave that
// raced the load from being undone). It waits for Redis to confirm the
// room subscriptions before the connection reads its first frame: a sync
// reads the room's seq once, and anything published after that must reach
// the connection live.
func (h *Hub) addRooms(c *Conn, rooms []string) {
	var chans []string
	h.mu.Lock()
	if _, ok := h.users[c.user][c]; !ok {
		h.mu.Unlock()
		return
	}
	for _, r := range rooms {
		h.addRoomLocked(c, r)
		chans = append(chans, chat.RoomChannel(r))
	}
	for _, ev := range c.pending {
		switch ev.Event {
		case "invited", "joined":
			h.addRoomLocked(c, ev.RoomID)
		case "left":
			c.removeRoom(ev.RoomID)
			h.removeRoomLocked(c, ev.RoomID)
		default:
			continue
		}
		chans = append(chans, chat.RoomChannel(ev.RoomID))
	}
	c.pending, c.loading = nil, false
	h.mu.Unlock()
	h.reconcile(chans, true)
}

func (h *Hub) addRoomLocked(c *Conn, room string) (first bool) {
	c.addRoom(room)
	if h.rooms[room] == nil {
		h.rooms[room] = map[*Conn]struct{}{}
		first = true
	}
	h.rooms[room][c] = struct{}{}
	return first
}

func (h *Hub) joinRoom(c *Conn, room string) { h.join(c, room, false) }

// joinRoomWait is joinRoom that waits for Redis to confirm the room's
// subscription; never from the receive loop, which delivers confirmations.
func (h *Hub) joinRoomWait(c *Conn, room string) { h.join(c, room, true) }

func (h *Hub) join(c *Conn, room string, wait bool) {
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
	if first || wait {
		h.reconcile([]string{chat.RoomChannel(room)}, wait)
	}
}

func (h *Hub) leaveRoom(c *Conn, room string) {
	h.mu.Lock()
	c.removeRoom(room)
	last := h.removeRoomLocked(c, room)
	h.mu.Unlock()
	if last {
		h.unsubscribe(chat.RoomChannel(room))
	}
}

func (h *Hub) removeRoomLocked(c *Conn, room string) (last bool) {
	set := h.rooms[room]
	delete(set, c)
	if set != nil && len(set) == 0 {
		delete(h.rooms, room)
		return true
	}
	return false
}

// unregister drops a connection and the subscriptions nobody here needs any more.
func (h *Hub) unregister(c *Conn) {
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
			unsubs = append(unsubs, chat.UserChannel(c.user))
		}
	}
	for _, r := range c.roomList() {
		if h.removeRoomLocked(c, r) {
			unsubs = append(unsubs, chat.RoomChannel(r))
		}
	}
	h.mu.Unlock()
	h.unsubscribe(unsubs...)
	h.metrics.connClosed()
}

// closeAll disconnects every client (shutdown); they reconnect elsewhere and sync.
func (h *Hub) closeAll() {
	for _, c := range h.conns() {
		c.close("server shutting down")
	}
}

// conns lists the connections of this node, to act on them unlocked.
func (h *Hub) conns() []*Conn {
	h.mu.RLock()
	defer h.mu.RUnlock()
	out := make([]*Conn, 0, len(h.users))
	for _, set := range h.users {
		for c := range set {
			out = append(out, c)
		}
	}
	return out
}
