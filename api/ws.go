package api

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/gofiber/contrib/websocket"
	"github.com/gofiber/fiber/v2"
	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"

	"github.com/chatflow/chatflow"
	"github.com/chatflow/chatflow/token"
)

// Frame size limits. A valid send fits well under maxFrame even with every
// character JSON-escaped; frames up to wsReadLimit get an error frame, larger
// ones close the connection (1009) because reading them is the attack.
const (
	maxFrame    = 64 << 10
	wsReadLimit = 256 << 10
	pingEvery   = 25 * time.Second
	readTimeout = 70 * time.Second
	writeWait   = 10 * time.Second
	// maxSyncBuffer bounds live frames held back while a sync replays.
	maxSyncBuffer = 10000
	syncPage      = 500
)

var errConnClosed = errors.New("connection closed by the server")

// inFrame is any client→server frame.
type inFrame struct {
	Type        string           `json:"type"`
	RoomID      string           `json:"room_id"`
	ClientMsgID string           `json:"client_msg_id"`
	Body        string           `json:"body"`
	Seq         int64            `json:"seq"`
	Rooms       map[string]int64 `json:"rooms"`
}

type errorFrame struct {
	Type   string `json:"type"`
	Code   string `json:"code"`
	Detail string `json:"detail"`
	Ref    string `json:"ref"` // always present: the API lists it as part of the frame
}

type ackFrame struct {
	Type        string `json:"type"`
	ClientMsgID string `json:"client_msg_id"`
	MessageID   string `json:"message_id"`
	RoomID      string `json:"room_id"`
	Seq         int64  `json:"seq"`
	Duplicate   bool   `json:"duplicate,omitempty"`
}

// roomState tracks what this connection has been sent of one room, so that
// sync replays and live fan-out never send a message twice.
type roomState struct {
	last      int64 // highest seq sent
	firstLive int64 // first seq sent live (0: none yet)
	syncing   bool
	buf       [][]byte // live frames held back during a sync
}

// markSent records that live frame seq went out. firstLive..last must be
// seqs that were all sent, since replay skips that range as already sent; a
// seq that skips ahead of last+1 means fan-out lost frames (a pub/sub
// reconnect, Redis dropping a lagging subscriber), so it starts a new run and
// a later sync replays the hole instead of skipping it for good.
func (st *roomState) markSent(seq int64) {
	if st.firstLive == 0 || seq != st.last+1 {
		st.firstLive = seq
	}
	st.last = seq
}

// wsConn is one client connection.
type wsConn struct {
	s    *Server
	ws   *websocket.Conn
	user string
	uid  uuid.UUID
	// family is the token family the socket was opened with; logging that
	// session out closes the socket.
	family string

	// Outbound frames wait in q; a flusher goroutine exists only while q is
	// non-empty, so an idle connection costs no goroutine and no buffer.
	qmu     sync.Mutex
	q       [][]byte // nil entry: a ping
	writing bool     // a flusher is running
	done    bool     // closed: nothing more is queued
	wmu     sync.Mutex
	wg      sync.WaitGroup // flusher and closer; the socket is not touched after Wait

	closed    chan struct{}
	closeOnce sync.Once
	reason    string

	mu    sync.Mutex
	rooms map[string]*roomState

	tokens float64
	last   time.Time
}

func (c *wsConn) addRoom(room string) {
	c.mu.Lock()
	if c.rooms[room] == nil {
		c.rooms[room] = &roomState{}
	}
	c.mu.Unlock()
}

func (c *wsConn) removeRoom(room string) {
	c.mu.Lock()
	delete(c.rooms, room)
	c.mu.Unlock()
}

func (c *wsConn) roomList() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]string, 0, len(c.rooms))
	for r := range c.rooms {
		out = append(out, r)
	}
	return out
}

func (c *wsConn) isMember(room string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.rooms[room] != nil
}

// enqueue queues a frame without blocking; a client that lets its queue
// fill up is disconnected so memory stays bounded.
func (c *wsConn) enqueue(frame []byte) {
	c.qmu.Lock()
	if c.done {
		c.qmu.Unlock()
		return
	}
	if len(c.q) >= c.s.Cfg.WSQueue {
		c.qmu.Unlock()
		c.s.metrics.wsSlowDropped.Inc()
		c.close("slow reader: send queue full")
		return
	}
	c.q = append(c.q, frame)
	if !c.writing {
		c.writing = true
		c.wg.Add(1)
		go c.flush()
	}
	c.qmu.Unlock()
}

// ping queues a ping; the hub calls it for every connection periodically.
func (c *wsConn) ping() { c.enqueue(nil) }

// flush writes queued frames until the queue is empty, then exits. All
// frames waiting at once go out in one write: under load that is one
// syscall for many frames instead of one each.
func (c *wsConn) flush() {
	defer c.wg.Done()
	var buf []byte
	for {
		c.qmu.Lock()
		batch := c.q
		c.q = nil
		if len(batch) == 0 || c.done {
			c.writing = false
			c.qmu.Unlock()
			return
		}
		c.qmu.Unlock()
		buf = buf[:0]
		frames := 0
		for _, b := range batch {
			if b == nil {
				buf = append(buf, 0x89, 0x00) // ping, no payload
				continue
			}
			buf = appendTextFrame(buf, b)
			frames++
		}
		if err := c.writeRaw(buf); err != nil {
			c.close("write failed")
			c.qmu.Lock()
			c.writing = false
			c.qmu.Unlock()
			return
		}
		c.s.metrics.wsFramesOut.Add(float64(frames))
		if cap(buf) > 64<<10 {
			buf = nil // do not keep a burst's buffer around
		}
	}
}

// appendTextFrame appends one unmasked, final text frame (RFC 6455 §5.2):
// what a server sends, byte for byte what WriteMessage would produce.
func appendTextFrame(buf, payload []byte) []byte {
	n := len(payload)
	switch {
	case n < 126:
		buf = append(buf, 0x81, byte(n))
	case n <= 0xffff:
		buf = append(buf, 0x81, 126, byte(n>>8), byte(n))
	default:
		buf = append(buf, 0x81, 127, 0, 0, 0, 0, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	}
	return append(buf, payload...)
}

// writeRaw writes ready-made frames straight to the socket. It holds wmu,
// like every other writer, so it never interleaves with a frame that the
// websocket library is writing.
func (c *wsConn) writeRaw(p []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.isClosed() {
		return errConnClosed
	}
	nc := c.ws.NetConn()
	_ = nc.SetWriteDeadline(time.Now().Add(writeWait))
	_, err := nc.Write(p)
	return err
}

// write puts one frame on the socket; writers take turns.
func (c *wsConn) write(mt int, b []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.isClosed() {
		return errConnClosed
	}
	_ = c.ws.SetWriteDeadline(time.Now().Add(writeWait))
	return c.ws.WriteMessage(mt, b)
}

// deliverMessage sends a live message frame unless a sync is replaying the
// room (then it is held back) or it was already sent.
func (c *wsConn) deliverMessage(room string, seq int64, frame []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	st := c.rooms[room]
	switch {
	case st == nil:
		return
	case st.syncing:
		if len(st.buf) >= maxSyncBuffer {
			go c.close("slow reader: sync backlog")
			return
		}
		st.buf = append(st.buf, frame)
		return
	case seq <= st.last:
		return
	}
	st.markSent(seq)
	c.enqueue(frame)
}

// close ends the connection. The socket's write deadline is cut short so a
// write stuck on a reader that does not read (the slow-reader case) returns
// now instead of after writeWait; the write loop then ends the read loop.
func (c *wsConn) close(reason string) {
	c.closeOnce.Do(func() {
		c.qmu.Lock()
		c.done, c.q = true, nil
		c.wg.Add(1)
		c.qmu.Unlock()
		c.reason = reason
		close(c.closed)
		if c.ws == nil {
			c.wg.Done()
			return
		}
		if nc := c.ws.NetConn(); nc != nil {
			_ = nc.SetWriteDeadline(time.Now())
		}
		go func() {
			defer c.wg.Done()
			c.wmu.Lock() // after any stuck write has given up
			_ = c.ws.SetWriteDeadline(time.Now().Add(time.Second))
			_ = c.ws.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.ClosePolicyViolation, c.reason))
			c.wmu.Unlock()
			_ = c.ws.Close()
			c.stopReading()
		}()
	})
}

// stopReading makes a blocked ReadMessage return. Closing the websocket is
// not enough: a hijacked fasthttp conn is only closed by fasthttp once the
// handler returns, so without this a silent client would hold the
// connection, its goroutines and its hub registration (and look online)
// until the read deadline.
func (c *wsConn) stopReading() {
	if nc := c.ws.NetConn(); nc != nil {
		_ = nc.SetReadDeadline(time.Now())
	}
}

func (c *wsConn) sendJSON(v any) {
	b, err := json.Marshal(v)
	if err != nil {
		return
	}
	c.enqueue(b)
}

func (c *wsConn) sendError(code, detail, ref string) {
	c.s.metrics.wsErrors.WithLabelValues(code).Inc()
	c.sendJSON(errorFrame{Type: "error", Code: code, Detail: detail, Ref: ref})
}

// allow is a token bucket over inbound frames.
func (c *wsConn) allow() bool {
	now := time.Now()
	c.tokens += now.Sub(c.last).Seconds() * c.s.Cfg.WSSendRate
	if max := float64(c.s.Cfg.WSSendBurst); c.tokens > max {
		c.tokens = max
	}
	c.last = now
	if c.tokens < 1 {
		return false
	}
	c.tokens--
	return true
}

func (s *Server) wsUpgrade(c *fiber.Ctx) error {
	if !websocket.IsWebSocketUpgrade(c) {
		return fiber.NewError(fiber.StatusUpgradeRequired, "GET /ws needs a WebSocket upgrade")
	}
	claims, err := s.authenticate(c, true)
	if err != nil {
		return err
	}
	c.Locals(claimsKey, claims)
	return c.Next()
}

func (s *Server) wsHandler() fiber.Handler {
	// Write buffers come from a pool: idle connections hold none.
	return websocket.New(s.serveWS, websocket.Config{ReadBufferSize: 1024, WriteBufferSize: 4096, WriteBufferPool: &sync.Pool{}})
}

func (s *Server) serveWS(ws *websocket.Conn) {
	claims := ws.Locals(claimsKey).(*token.Claims)
	uid := uuid.MustParse(claims.Subject)
	c := &wsConn{
		s: s, ws: ws, user: uid.String(), uid: uid, family: claims.Family,
		closed: make(chan struct{}),
		rooms:  map[string]*roomState{}, tokens: float64(s.Cfg.WSSendBurst), last: time.Now(),
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	ids, err := s.Queries.UserRoomIDs(ctx, uid)
	cancel()
	if err != nil {
		s.Log.Error("ws: load rooms", "user", c.user, "error", err)
		_ = ws.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseInternalServerErr, "try again"))
		return
	}
	rooms := make([]string, len(ids))
	for i, id := range ids {
		rooms[i] = id.String()
	}
	s.hub.register(c, rooms)
	s.presence(c, true)
	c.readLoop()
	c.close("client gone")
	c.wg.Wait() // the socket is released when this handler returns
	s.hub.unregister(c)
	s.presence(c, false)
}

func (c *wsConn) readLoop() {
	c.ws.SetReadLimit(wsReadLimit)
	_ = c.ws.SetReadDeadline(time.Now().Add(readTimeout))
	c.ws.SetPongHandler(func(string) error {
		select {
		case <-c.closed:
			return errConnClosed
		default:
		}
		return c.ws.SetReadDeadline(time.Now().Add(readTimeout))
	})
	for {
		mt, data, err := c.ws.ReadMessage()
		if err != nil {
			return
		}
		_ = c.ws.SetReadDeadline(time.Now().Add(readTimeout))
		c.s.metrics.wsFramesIn.Inc()
		select {
		case <-c.closed:
			return
		default:
		}
		c.handleFrame(mt, data)
	}
}

// handleFrame answers every bad frame with an error frame; nothing a client
// sends ends the connection except frames over wsReadLimit.
func (c *wsConn) handleFrame(mt int, data []byte) {
	if mt != websocket.TextMessage {
		c.sendError(chatflow.ECodeBadFrame, "only text frames carrying JSON are accepted", "")
		return
	}
	if len(data) > maxFrame {
		c.sendError(chatflow.ECodeTooLarge, "frame is larger than 64 KiB", "")
		return
	}
	if !utf8.Valid(data) {
		c.sendError(chatflow.ECodeBadFrame, "frame is not valid UTF-8", "")
		return
	}
	var f inFrame
	if err := json.Unmarshal(data, &f); err != nil {
		// A field of the wrong type still leaves the others decoded, so the
		// client learns which of its frames was refused.
		var ute *json.UnmarshalTypeError
		ref := ""
		if errors.As(err, &ute) {
			ref = refOf(f)
		}
		c.sendError(chatflow.ECodeBadFrame, "frame is not a valid JSON object of a known shape", ref)
		return
	}
	if !c.allow() {
		c.sendError(chatflow.ECodeRateLimited, "too many frames; slow down", refOf(f))
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	switch f.Type {
	case "send":
		c.handleSend(ctx, f)
	case "typing":
		// Rooms are keyed by the canonical id, as send, read and sync parse
		// it: an upper-case id must not read as "not a member".
		room, err := uuid.Parse(f.RoomID)
		if err != nil {
			c.sendError(chatflow.ECodeValidation, "room_id must be a UUID", refOf(f))
			return
		}
		roomID := room.String()
		if !c.isMember(roomID) {
			c.sendError(chatflow.ECodeNotMember, "not a member of that room", roomID)
			return
		}
		_ = c.s.publish(ctx, roomChannel(roomID), map[string]string{"type": "typing", "room_id": roomID, "user_id": c.user})
	case "read":
		c.handleRead(ctx, f)
	case "sync":
		c.handleSync(ctx, f)
	case "ping":
		c.sendJSON(map[string]string{"type": "pong"})
	default:
		c.sendError(chatflow.ECodeBadFrame, "unknown frame type "+quoteShort(f.Type), refOf(f))
	}
}

func refOf(f inFrame) string {
	if f.ClientMsgID != "" && len(f.ClientMsgID) <= chatflow.MaxClientMsgID {
		return f.ClientMsgID
	}
	if len(f.Type) > 32 {
		return "" // never echo a large client string back
	}
	return f.Type
}

func quoteShort(s string) string {
	if len(s) > 32 {
		s = s[:32]
	}
	b, _ := json.Marshal(s)
	return string(b)
}

func (c *wsConn) handleSend(ctx context.Context, f inFrame) {
	ref := refOf(f)
	start := time.Now()
	a, err := c.s.accept(ctx, c.uid, f.RoomID, f.ClientMsgID, f.Body)
	if err != nil {
		c.sendError(chatflow.ErrorCode(err), chatflow.ErrorDetail(err), ref)
		return
	}
	c.s.metrics.messagesAccepted.Inc()
	ack := ackFrame{Type: "ack", ClientMsgID: a.msg.ClientMsgID, MessageID: a.msg.MessageID, RoomID: a.msg.RoomID, Seq: a.msg.Seq, Duplicate: a.dup}
	err = c.s.batcher.add(a.msg, func(err error) {
		if err != nil {
			c.sendError(chatflow.ErrorCode(err), chatflow.ErrorDetail(err), ref)
			return
		}
		c.s.metrics.ackLatency.Observe(time.Since(start).Seconds())
		c.sendJSON(ack)
	})
	if err != nil {
		c.sendError(chatflow.ErrorCode(err), chatflow.ErrorDetail(err), ref)
	}
}

func (c *wsConn) handleRead(ctx context.Context, f inFrame) {
	room, err := uuid.Parse(f.RoomID)
	if err != nil || f.Seq < 0 {
		c.sendError(chatflow.ECodeValidation, "read needs a room_id and a seq >= 0", f.RoomID)
		return
	}
	if _, err := c.s.markRead(ctx, c.uid, room, f.Seq); err != nil {
		c.sendError(chatflow.ErrorCode(err), chatflow.ErrorDetail(err), f.RoomID)
	}
}

// handleSync replays, per room, every message after the client's last seen
// seq, then resumes live delivery with no gap and no duplicate.
func (c *wsConn) handleSync(ctx context.Context, f inFrame) {
	if len(f.Rooms) == 0 {
		c.sendError(chatflow.ECodeValidation, "sync needs rooms: {room_id: last_seq}", "sync")
		return
	}
	for roomID, last := range f.Rooms {
		room, err := uuid.Parse(roomID)
		if err != nil || last < 0 {
			c.syncError(chatflow.ECodeValidation, "sync rooms must map room ids to seqs >= 0", roomID)
			continue
		}
		roomID = room.String()
		c.mu.Lock()
		st := c.rooms[roomID]
		if st != nil {
			st.syncing = true
		}
		c.mu.Unlock()
		if st == nil {
			c.syncError(chatflow.ECodeNotMember, "not a member of that room", roomID)
			continue
		}
		sent, err := c.replay(ctx, room, last, st)
		// Hand over the live frames held back meanwhile, by the same blocking
		// path and never under c.mu (the hub takes it); frames arriving while
		// this runs are held back too, until none is left.
		c.mu.Lock()
		if sent > st.last {
			st.last = sent
		}
		for len(st.buf) > 0 {
			buf, top := st.buf, st.last
			st.buf = nil
			c.mu.Unlock()
			var sentLive []int64
			for _, b := range buf {
				if seq, _ := frameSeq(b); seq > top {
					if !c.sendBulk(b) {
						break
					}
					top = seq
					sentLive = append(sentLive, seq)
				}
			}
			c.mu.Lock()
			for _, seq := range sentLive { // as live sends, so holes among them are seen
				if seq > st.last {
					st.markSent(seq)
				}
			}
			if c.isClosed() {
				st.buf = nil
			}
		}
		st.syncing = false
		c.mu.Unlock()
		if err != nil {
			c.syncError(chatflow.ErrorCode(err), chatflow.ErrorDetail(err), roomID)
		}
	}
}

// syncError answers one room of a sync. One sync frame can name over a
// thousand rooms, so its errors are written like the replay, paced by the
// client: queued, a single frame's errors could fill the live queue and
// disconnect the client as a slow reader, on every reconnect of a client
// that keeps rooms it has left in its sync.
func (c *wsConn) syncError(code, detail, ref string) {
	c.s.metrics.wsErrors.WithLabelValues(code).Inc()
	if b, err := json.Marshal(errorFrame{Type: "error", Code: code, Detail: detail, Ref: ref}); err == nil {
		c.sendBulk(b)
	}
}

// replay sends the room's messages after last, page by page, blocking on the
// queue (the client asked for them), and returns the highest seq covered.
func (c *wsConn) replay(ctx context.Context, room uuid.UUID, last int64, st *roomState) (int64, error) {
	// Its own deadline too: the sync frame's budget may be spent by the
	// replays of the rooms before this one, which would fail this room.
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	cur, err := c.s.currentSeq(cctx, room)
	cancel()
	if err != nil {
		return last, err
	}
	c.mu.Lock()
	firstLive, liveLast := st.firstLive, st.last
	c.mu.Unlock()
	for lo := last + 1; lo <= cur; lo += syncPage {
		// each page gets its own deadline: a long replay is paced by the
		// client's link, not bounded by the sync frame's handling budget
		pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		frames, err := c.s.fetchRange(pctx, room, lo, min(lo+syncPage-1, cur))
		cancel()
		if err != nil {
			return lo - 1, err
		}
		for _, fr := range frames {
			if seq, _ := frameSeq(fr); firstLive > 0 && seq >= firstLive && seq <= liveLast {
				continue // already sent live on this connection
			}
			if !c.sendBulk(fr) {
				return cur, nil
			}
		}
	}
	return cur, nil
}

// sendBulk writes a replayed frame straight to the socket, paced by the
// client's reading (it asked for these) rather than through the bounded
// live queue; false once the connection is closed.
func (c *wsConn) sendBulk(fr []byte) bool {
	if err := c.write(websocket.TextMessage, fr); err != nil {
		c.close("slow reader during sync")
		return false
	}
	c.s.metrics.wsFramesOut.Inc()
	return true
}

func (c *wsConn) isClosed() bool {
	select {
	case <-c.closed:
		return true
	default:
		return false
	}
}

// presence counts a user's connections across nodes and announces the
// transitions online/offline to the rooms the user is in.
func (s *Server) presence(c *wsConn, online bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	key := "presence:" + userChannel(c.user)
	var n int64
	var err error
	if online {
		n, err = s.Redis.Incr(ctx, key).Result()
	} else {
		n, err = s.Redis.Decr(ctx, key).Result()
	}
	if err != nil || (online && n != 1) || (!online && n > 0) {
		return
	}
	if n < 0 {
		s.Redis.Set(ctx, key, 0, 0)
	}
	// the connection's rooms are the user's rooms, kept current by room events
	frame, _ := json.Marshal(map[string]any{"type": "presence", "user_id": c.user, "online": online})
	pipe := s.Redis.Pipeline()
	for _, room := range c.roomList() {
		pipe.Publish(ctx, roomChannel(room), frame)
	}
	_, _ = pipe.Exec(ctx)
}

// online reports, for each user, whether it has a live connection on any
// node, in one pipelined round trip.
func (s *Server) online(ctx context.Context, users []uuid.UUID) []bool {
	out := make([]bool, len(users))
	if len(users) == 0 {
		return out
	}
	pipe := s.Redis.Pipeline()
	cmds := make([]*redis.StringCmd, len(users))
	for i, u := range users {
		cmds[i] = pipe.Get(ctx, "presence:"+userChannel(u.String()))
	}
	_, _ = pipe.Exec(ctx) // absent keys mean offline
	for i, c := range cmds {
		n, _ := c.Int64()
		out[i] = n > 0
	}
	return out
}
