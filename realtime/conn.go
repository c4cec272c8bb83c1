package realtime

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/gofiber/contrib/websocket"
	"github.com/google/uuid"

	"github.com/chatflow/chatflow/chat"
)

// Connection limits. A valid send fits well under maxFrame even with every
// character JSON-escaped; frames up to wsReadLimit get an error frame, larger
// ones close the connection (1009) because reading them is the attack.
const (
	maxFrame    = 64 << 10
	wsReadLimit = 256 << 10
	pingEvery   = 25 * time.Second
	readTimeout = 70 * time.Second
	writeWait   = 10 * time.Second
	// finalWait bounds how long a closing connection waits for a write in
	// progress before its final frame (a session frame) goes out.
	finalWait = time.Second
)

var errConnClosed = errors.New("connection closed by the server")

// Conn is one client connection. Its context ends when it closes, which
// cancels whatever its frames started.
type Conn struct {
	node *Node
	ws   *websocket.Conn
	user string
	uid  uuid.UUID

	// The session the socket runs under: the family, token and expiry of
	// the access token it was opened with, or of the last one an auth frame
	// brought. Revoking the family closes the socket; so does the expiry.
	sessMu  sync.Mutex
	sess    Session
	expiry  *time.Timer
	expired bool // the expiry fired: no auth frame can renew it any more

	ctx    context.Context
	cancel context.CancelFunc

	// Outbound frames wait in q; see flush.
	qmu     sync.Mutex
	q       [][]byte // nil entry: a ping
	writing bool     // a flusher is running
	done    bool     // closed: nothing more is queued
	wmu     sync.Mutex
	wg      sync.WaitGroup // flusher and closer; the socket is not touched after Wait

	closeOnce sync.Once
	reason    string
	closeCode int // 0: policy violation

	// loading is set from the subscription of the user channel until the
	// rooms loaded from Postgres are in place; the room events that arrive
	// meanwhile wait in pending (both guarded by the hub's mu).
	loading bool
	pending []chat.RoomEvent
	// leftVia holds the rooms whose "left" of this user came on the room's
	// channel first (Redis Cluster, see Hub.dispatch), guarded by the hub's mu.
	leftVia map[string]bool

	mu    sync.Mutex
	rooms map[string]*roomState

	tokens float64
	last   time.Time

	// presenceSeen holds the event_ids of the last presence frames this
	// socket got, so the copies a presence change sends to each shared room
	// reach it once. Touched only by the hub's dispatch goroutine.
	presenceSeen [8]string
	presenceNext int
}

// firstPresence records a presence event for the socket and reports
// whether it is the first copy the socket sees. The copies of one event are
// published back to back, so a short memory suffices.
func (c *Conn) firstPresence(id string) bool {
	for _, s := range c.presenceSeen {
		if s == id {
			return false
		}
	}
	c.presenceSeen[c.presenceNext] = id
	c.presenceNext = (c.presenceNext + 1) % len(c.presenceSeen)
	return true
}

func newConn(n *Node, ws *websocket.Conn, s Session) *Conn {
	ctx, cancel := context.WithCancel(context.Background())
	return &Conn{
		node: n, ws: ws, user: s.UserID.String(), uid: s.UserID, sess: s,
		ctx: ctx, cancel: cancel,
		rooms: map[string]*roomState{}, tokens: float64(n.cfg.SendBurst), last: time.Now(),
	}
}

func (c *Conn) addRoom(room string) {
	c.mu.Lock()
	if c.rooms[room] == nil {
		c.rooms[room] = &roomState{}
	}
	c.mu.Unlock()
}

func (c *Conn) removeRoom(room string) {
	c.mu.Lock()
	delete(c.rooms, room)
	c.mu.Unlock()
}

func (c *Conn) roomList() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]string, 0, len(c.rooms))
	for r := range c.rooms {
		out = append(out, r)
	}
	return out
}

func (c *Conn) isMember(room string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.rooms[room] != nil
}

func (c *Conn) isClosed() bool { return c.ctx.Err() != nil }

// close ends the connection. The socket's write deadline is cut short so a
// write stuck on a reader that does not read (the slow-reader case) returns
// now instead of after writeWait; the write loop then ends the read loop.
func (c *Conn) close(reason string) { c.closeWith(nil, reason) }

// closeWith ends the connection after delivering final (a session frame),
// ahead of anything still queued: a write in progress gets finalWait to
// end whole, then final and the close frame get a second each. A reader too
// slow for that is cut off as close does.
func (c *Conn) closeWith(final []byte, reason string) {
	c.closeOnce.Do(func() {
		c.qmu.Lock()
		c.done, c.q = true, nil
		c.wg.Add(1)
		c.qmu.Unlock()
		c.reason = reason
		c.cancel()
		c.stopExpiry()
		if c.ws == nil {
			c.wg.Done()
			return
		}
		var cut *time.Timer
		if nc := c.ws.NetConn(); nc != nil {
			if final == nil {
				_ = nc.SetWriteDeadline(time.Now())
			} else {
				cut = time.AfterFunc(finalWait, func() { _ = nc.SetWriteDeadline(time.Now()) })
			}
		}
		code := c.closeCode
		if code == 0 {
			code = websocket.ClosePolicyViolation
		}
		go func() {
			defer c.wg.Done()
			c.wmu.Lock() // after any write in progress has ended or given up
			whole := cut == nil || cut.Stop()
			_ = c.ws.SetWriteDeadline(time.Now().Add(time.Second))
			if final != nil && whole {
				if c.ws.WriteMessage(websocket.TextMessage, final) == nil {
					c.node.metrics.framesOut.Inc()
				}
			}
			_ = c.ws.SetWriteDeadline(time.Now().Add(time.Second))
			_ = c.ws.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(code, c.reason))
			c.wmu.Unlock()
			_ = c.ws.Close()
			c.stopReading()
		}()
	})
}

// family is the token family the socket runs under.
func (c *Conn) family() string {
	c.sessMu.Lock()
	defer c.sessMu.Unlock()
	return c.sess.Family
}

// armExpiry starts the timer that ends the session when its token expires.
func (c *Conn) armExpiry() {
	c.sessMu.Lock()
	defer c.sessMu.Unlock()
	if c.sess.Expires.IsZero() || c.expiry != nil || c.isClosed() {
		return
	}
	c.expiry = time.AfterFunc(time.Until(c.sess.Expires), c.onExpiry)
}

// onExpiry closes the connection with a "session expired" frame, unless an
// auth frame moved the expiry meanwhile.
func (c *Conn) onExpiry() {
	c.sessMu.Lock()
	if left := time.Until(c.sess.Expires); left > 0 && !c.expired {
		c.expiry.Reset(left)
		c.sessMu.Unlock()
		return
	}
	c.expired = true
	c.sessMu.Unlock()
	c.node.metrics.sessionsEnded.WithLabelValues("expired").Inc()
	c.closeWith(sessionFrame("expired"), "session expired")
}

func (c *Conn) stopExpiry() {
	c.sessMu.Lock()
	if c.expiry != nil {
		c.expiry.Stop()
	}
	c.sessMu.Unlock()
}

// renew makes s, from a fresh token of the same user, the socket's session.
// False if the old session has already expired.
func (c *Conn) renew(s Session) bool {
	c.sessMu.Lock()
	defer c.sessMu.Unlock()
	if c.expired || c.isClosed() {
		return false
	}
	c.sess = s
	if c.expiry != nil && !s.Expires.IsZero() {
		c.expiry.Reset(time.Until(s.Expires))
	}
	return true
}

// stopReading makes a blocked ReadMessage return. Closing the websocket is
// not enough: a hijacked fasthttp conn is only closed by fasthttp once the
// handler returns, so without this a silent client would hold the
// connection, its goroutines and its hub registration (and look online)
// until the read deadline.
func (c *Conn) stopReading() {
	if nc := c.ws.NetConn(); nc != nil {
		_ = nc.SetReadDeadline(time.Now())
	}
}

func (c *Conn) readLoop() {
	c.ws.SetReadLimit(wsReadLimit)
	_ = c.ws.SetReadDeadline(time.Now().Add(readTimeout))
	c.ws.SetPongHandler(func(string) error {
		if c.isClosed() {
			return errConnClosed
		}
		return c.ws.SetReadDeadline(time.Now().Add(readTimeout))
	})
	for {
		mt, data, err := c.ws.ReadMessage()
		if err != nil {
			return
		}
		_ = c.ws.SetReadDeadline(time.Now().Add(readTimeout))
		c.node.metrics.framesIn.Inc()
		if c.isClosed() {
			return
		}
		c.handleFrame(mt, data)
	}
}

// allow is a token bucket over inbound frames.
func (c *Conn) allow() bool {
	now := time.Now()
	c.tokens += now.Sub(c.last).Seconds() * c.node.cfg.SendRate
	if max := float64(c.node.cfg.SendBurst); c.tokens > max {
		c.tokens = max
	}
	c.last = now
	if c.tokens < 1 {
		return false
	}
	c.tokens--
	return true
}
