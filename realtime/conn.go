package realtime

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/gofiber/contrib/websocket"
	"github.com/google/uuid"
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
)

var errConnClosed = errors.New("connection closed by the server")

// Conn is one client connection. Its context ends when it closes, which
// cancels whatever its frames started.
type Conn struct {
	node *Node
	ws   *websocket.Conn
	user string
	uid  uuid.UUID
	// family is the token family the socket was opened with; logging that
	// session out closes the socket.
	family string

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

	mu    sync.Mutex
	rooms map[string]*roomState

	tokens float64
	last   time.Time
}

func newConn(n *Node, ws *websocket.Conn, s Session) *Conn {
	ctx, cancel := context.WithCancel(context.Background())
	return &Conn{
		node: n, ws: ws, user: s.UserID.String(), uid: s.UserID, family: s.Family,
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
func (c *Conn) close(reason string) {
	c.closeOnce.Do(func() {
		c.qmu.Lock()
		c.done, c.q = true, nil
		c.wg.Add(1)
		c.qmu.Unlock()
		c.reason = reason
		c.cancel()
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
