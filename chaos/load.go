package chaos

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fasthttp/websocket"
)

// Load is the chat traffic of one scenario: every client on its own
// WebSocket, sending at a fixed rate into its room, resending what was not
// acked with the same client_msg_id, reconnecting (then syncing) whenever
// its connection ends.
type Load struct {
	Base        string
	Rate        float64       // new messages per second per client
	ResendAfter time.Duration // resend a message with no answer after this
	Clients     []*Client

	stopNew atomic.Bool
	ackMu   sync.Mutex
	acks    []time.Time // when each ack arrived, all clients

	newMsgs, frames, reconnects atomic.Int64
	cancel                      context.CancelFunc
	wg                          sync.WaitGroup
}

// maxFramesPerTick bounds a client's frames per tick (new + resends), so a
// backlog drains at up to 3x the offered rate, under the server's WS_RATE.
const maxFramesPerTick = 3

// permanent error codes: resending the same frame cannot succeed.
var permanent = map[string]bool{"validation_failed": true, "bad_frame": true, "too_large": true}

type outMsg struct {
	room, body string
	lastSent   time.Time // zero: due (not sent on this connection, or answered by an error)
	retryAt    time.Time
}

// Client is one simulated user and its records.
type Client struct {
	load  *Load
	U     User
	Rooms []string
	tag   string // prefix of its client_msg_ids

	wmu  sync.Mutex
	mu   sync.Mutex
	conn *websocket.Conn
	out  map[string]*outMsg
	q    []string          // outbox order
	sent map[string]string // every client_msg_id it created → room
	n    int

	Acks     []AckRec
	Seen     []SeenRec
	lastSeq  map[string]int64
	Errors   map[string]int // errors answering its sends, by code
	Other    map[string]int // other error frames (sync), by code
	GaveUp   int            // sends refused with a permanent code
	answers  chan frame     // when set, acks and errors are copied here (the poison client)
	everConn bool
}

type frame struct {
	Type        string `json:"type"`
	MessageID   string `json:"message_id"`
	RoomID      string `json:"room_id"`
	Seq         int64  `json:"seq"`
	ClientMsgID string `json:"client_msg_id"`
	Code        string `json:"code"`
	Ref         string `json:"ref"`
}

// NewClient makes a client of user u in rooms.
func (l *Load) NewClient(u User, rooms []string) *Client {
	c := &Client{load: l, U: u, Rooms: rooms, tag: u.ID[:8], out: map[string]*outMsg{}, sent: map[string]string{},
		lastSeq: map[string]int64{}, Errors: map[string]int{}, Other: map[string]int{}}
	l.Clients = append(l.Clients, c)
	return c
}

// Start connects every client and starts its sender (when send is set).
func (l *Load) Start(ctx context.Context, senders []*Client) {
	ctx, l.cancel = context.WithCancel(ctx)
	interval := time.Duration(float64(time.Second) / l.Rate)
	for _, c := range l.Clients {
		l.wg.Add(1)
		go func() { defer l.wg.Done(); c.connLoop(ctx) }()
	}
	for _, c := range senders {
		l.wg.Add(1)
		go func() { defer l.wg.Done(); c.sendLoop(ctx, interval) }()
	}
}

// StopNew stops new messages; resends go on.
func (l *Load) StopNew() { l.stopNew.Store(true) }

// Unacked counts messages still waiting for an ack.
func (l *Load) Unacked() int {
	n := 0
	for _, c := range l.Clients {
		c.mu.Lock()
		n += len(c.out)
		c.mu.Unlock()
	}
	return n
}

// Drain waits until every message is acked, up to limit.
func (l *Load) Drain(ctx context.Context, limit time.Duration) int {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		if l.Unacked() == 0 {
			return 0
		}
		time.Sleep(250 * time.Millisecond)
	}
	return l.Unacked()
}

// Close ends every client.
func (l *Load) Close() {
	if l.cancel != nil {
		l.cancel()
	}
	for _, c := range l.Clients {
		c.closeConn()
	}
	l.wg.Wait()
}

// AckTimes returns when every ack arrived.
func (l *Load) AckTimes() []time.Time {
	l.ackMu.Lock()
	defer l.ackMu.Unlock()
	return append([]time.Time(nil), l.acks...)
}

// Connected counts the clients with an open connection.
func (l *Load) Connected() int {
	n := 0
	for _, c := range l.Clients {
		c.mu.Lock()
		if c.conn != nil {
			n++
		}
		c.mu.Unlock()
	}
	return n
}

// Progress is a one-line status.
func (l *Load) Progress() string {
	l.ackMu.Lock()
	acks := len(l.acks)
	l.ackMu.Unlock()
	connected := l.Connected()
	return fmt.Sprintf("new %d, frames %d, acks %d, unacked %d, connected %d/%d, reconnects %d",
		l.newMsgs.Load(), l.frames.Load(), acks, l.Unacked(), connected, len(l.Clients), l.reconnects.Load())
}

func (c *Client) closeConn() {
	c.mu.Lock()
	conn := c.conn
	c.conn = nil
	c.mu.Unlock()
	if conn != nil {
		conn.Close()
	}
}

// connLoop keeps the client connected: dial, sync what it missed, read
// until the connection ends, again.
func (c *Client) connLoop(ctx context.Context) {
	backoff := 200 * time.Millisecond
	for ctx.Err() == nil {
		conn, err := c.dial(ctx)
		if err != nil {
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff + rand.N(backoff/2)):
			}
			backoff = min(backoff*2, 2*time.Second)
			continue
		}
		backoff = 200 * time.Millisecond
		c.mu.Lock()
		c.conn = conn
		resync := c.everConn
		c.everConn = true
		rooms := map[string]int64{}
		for _, r := range c.Rooms {
			rooms[r] = c.lastSeq[r]
		}
		for _, m := range c.out { // resend everything unacked on the new connection
			m.lastSent = time.Time{}
		}
		c.mu.Unlock()
		if resync {
			c.load.reconnects.Add(1)
			_ = c.write(conn, map[string]any{"type": "sync", "rooms": rooms})
		}
		c.readLoop(conn)
		c.mu.Lock()
		if c.conn == conn {
			c.conn = nil
		}
		c.mu.Unlock()
		conn.Close()
	}
}

func (c *Client) dial(ctx context.Context) (*websocket.Conn, error) {
	dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	d := websocket.Dialer{HandshakeTimeout: 5 * time.Second, NetDialContext: (&net.Dialer{}).DialContext}
	url := "ws" + strings.TrimPrefix(c.load.Base, "http") + "/ws?access_token=" + c.U.Access
	conn, resp, err := d.DialContext(dctx, url, nil)
	if resp != nil && resp.Body != nil {
		resp.Body.Close()
	}
	return conn, err
}

func (c *Client) write(conn *websocket.Conn, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return c.writeRaw(conn, b)
}

func (c *Client) writeRaw(conn *websocket.Conn, b []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_ = conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	err := conn.WriteMessage(websocket.TextMessage, b)
	if err != nil {
		conn.Close() // the reader sees it and the client reconnects
	}
	return err
}

func (c *Client) readLoop(conn *websocket.Conn) {
	for {
		// a silent connection is re-dialled: a half-open socket must not
		// keep a client away for the rest of the run
		_ = conn.SetReadDeadline(time.Now().Add(30 * time.Second))
		_, data, err := conn.ReadMessage()
		if err != nil {
			return
		}
		var f frame
		if json.Unmarshal(data, &f) != nil {
			continue
		}
		now := time.Now()
		switch f.Type {
		case "message":
			c.mu.Lock()
			c.Seen = append(c.Seen, SeenRec{Room: f.RoomID, Seq: f.Seq, MessageID: f.MessageID, ClientMsgID: f.ClientMsgID})
			c.lastSeq[f.RoomID] = max(c.lastSeq[f.RoomID], f.Seq)
			c.mu.Unlock()
		case "ack":
			c.mu.Lock()
			if room, ok := c.sent[f.ClientMsgID]; ok {
				if f.RoomID == "" {
					f.RoomID = room
				}
				c.Acks = append(c.Acks, AckRec{Sender: c.U.ID, ClientMsgID: f.ClientMsgID, Room: f.RoomID, Seq: f.Seq, MessageID: f.MessageID})
				delete(c.out, f.ClientMsgID)
				c.load.ackMu.Lock()
				c.load.acks = append(c.load.acks, now)
				c.load.ackMu.Unlock()
			}
			c.mu.Unlock()
		case "error":
			c.mu.Lock()
			if m, ok := c.out[f.Ref]; ok {
				c.Errors[f.Code]++
				if permanent[f.Code] {
					delete(c.out, f.Ref)
					c.GaveUp++
				} else {
					m.lastSent, m.retryAt = time.Time{}, now.Add(time.Second)
				}
			} else if _, ok := c.sent[f.Ref]; ok {
				c.Errors[f.Code]++ // answer to a resend that was acked meanwhile
			} else if c.answers == nil {
				c.Other[f.Code]++
			}
			c.mu.Unlock()
		}
		if c.answers != nil && (f.Type == "ack" || f.Type == "error") {
			select {
			case c.answers <- f:
			default:
			}
		}
	}
}

// sendLoop creates a new message every interval and sends what is due,
// oldest first, at most maxFramesPerTick frames a tick.
func (c *Client) sendLoop(ctx context.Context, interval time.Duration) {
	select { // spread the clients' phases
	case <-ctx.Done():
		return
	case <-time.After(rand.N(interval)):
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		var now time.Time
		select {
		case <-ctx.Done():
			return
		case now = <-t.C:
		}
		c.mu.Lock()
		if !c.load.stopNew.Load() {
			c.n++
			cmid := fmt.Sprintf("%s-%d", c.tag, c.n)
			room := c.Rooms[c.n%len(c.Rooms)]
			c.out[cmid] = &outMsg{room: room, body: fmt.Sprintf("chaos %s #%d at %s", c.U.Username, c.n, now.Format(time.RFC3339Nano))}
			c.sent[cmid] = room
			c.q = append(c.q, cmid)
			c.load.newMsgs.Add(1)
		}
		conn := c.conn
		var due []string
		if conn != nil {
			keep := c.q[:0]
			for _, cmid := range c.q {
				m, ok := c.out[cmid]
				if !ok {
					continue // acked or given up: leaves the queue
				}
				keep = append(keep, cmid)
				if len(due) < maxFramesPerTick && now.After(m.retryAt) &&
					(m.lastSent.IsZero() || now.Sub(m.lastSent) > c.load.ResendAfter) {
					m.lastSent = now
					due = append(due, cmid)
				}
			}
			c.q = keep
		}
		frames := make([][]byte, 0, len(due))
		for _, cmid := range due {
			m := c.out[cmid]
			b, _ := json.Marshal(map[string]string{"type": "send", "room_id": m.room, "client_msg_id": cmid, "body": m.body})
			frames = append(frames, b)
		}
		c.mu.Unlock()
		for _, b := range frames {
			if c.writeRaw(conn, b) != nil {
				break
			}
			c.load.frames.Add(1)
		}
	}
}

// Records gathers every client's records.
func (l *Load) Records() (acks []AckRec, seen []SeenRec, errs, other map[string]int, gaveUp int) {
	errs, other = map[string]int{}, map[string]int{}
	for _, c := range l.Clients {
		c.mu.Lock()
		acks = append(acks, c.Acks...)
		seen = append(seen, c.Seen...)
		if c.answers == nil { // the poison client's errors are its own business
			for k, v := range c.Errors {
				errs[k] += v
			}
			for k, v := range c.Other {
				other[k] += v
			}
			gaveUp += c.GaveUp
		}
		c.mu.Unlock()
	}
	return
}
