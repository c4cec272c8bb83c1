package tests

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/fasthttp/websocket"

	"github.com/chatflow/chatflow/internal/testenv"
)

// wsClient is a WebSocket client whose frames are read continuously by a
// goroutine into a queue, so that the server never sees it as a slow reader
// unless a test wants it to.
type wsClient struct {
	t      testing.TB
	name   string
	conn   *websocket.Conn
	wmu    sync.Mutex
	frames chan testenv.Frame
	done   chan struct{} // closed when the reader stops
	err    error         // why the reader stopped (valid after done)
}

// connect dials the node as u, starts the reader and waits until the
// connection is registered (a ping answered by a pong).
func connect(t testing.TB, n *testenv.Node, u testenv.User) *wsClient {
	t.Helper()
	ws := n.Dial(t, u)
	c := newClient(t, u.Username, ws.Conn)
	c.barrier(10 * time.Second)
	return c
}

func newClient(t testing.TB, name string, conn *websocket.Conn) *wsClient {
	c := newClientPaused(t, conn)
	c.name = name
	c.start()
	return c
}

// newClientPaused wraps a connection without reading from it until start.
func newClientPaused(t testing.TB, conn *websocket.Conn) *wsClient {
	c := &wsClient{t: t, name: "ws", conn: conn, frames: make(chan testenv.Frame, 200000), done: make(chan struct{})}
	t.Cleanup(func() { conn.Close() })
	return c
}

func (c *wsClient) start() { go c.readLoop() }

func (c *wsClient) readLoop() {
	defer close(c.done)
	defer close(c.frames)
	for {
		mt, data, err := c.conn.ReadMessage()
		if err != nil {
			c.err = err
			return
		}
		var f testenv.Frame
		if mt != websocket.TextMessage || json.Unmarshal(data, &f) != nil {
			f = testenv.Frame{"type": "__invalid__", "raw": string(data)}
		}
		c.frames <- f
	}
}

// send writes one JSON frame.
func (c *wsClient) send(v any) {
	c.t.Helper()
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if err := c.conn.WriteJSON(v); err != nil {
		c.t.Fatalf("%s: ws write: %v", c.name, err)
	}
}

// sendRaw writes one frame of the given WebSocket message type as is.
func (c *wsClient) sendRaw(mt int, data []byte) {
	c.t.Helper()
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if err := c.conn.WriteMessage(mt, data); err != nil {
		c.t.Fatalf("%s: ws write: %v", c.name, err)
	}
}

func (c *wsClient) sendMsg(room, cmid, body string) {
	c.t.Helper()
	c.send(map[string]any{"type": "send", "room_id": room, "client_msg_id": cmid, "body": body})
}

// next returns the next frame matching pred, dropping others.
func (c *wsClient) next(timeout time.Duration, pred func(testenv.Frame) bool) (testenv.Frame, error) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		select {
		case f, ok := <-c.frames:
			if !ok {
				return nil, fmt.Errorf("%s: connection ended: %v", c.name, c.err)
			}
			if pred == nil || pred(f) {
				return f, nil
			}
		case <-deadline.C:
			return nil, fmt.Errorf("%s: no matching frame within %v", c.name, timeout)
		}
	}
}

// must is next that fails the test.
func (c *wsClient) must(timeout time.Duration, pred func(testenv.Frame) bool, what string) testenv.Frame {
	c.t.Helper()
	f, err := c.next(timeout, pred)
	if err != nil {
		c.t.Fatalf("waiting for %s: %v", what, err)
	}
	return f
}

// barrier sends a ping and returns every frame received before the pong.
// The server handles a connection's frames in order and its outbound queue
// is FIFO, so everything caused by earlier frames is in the result.
func (c *wsClient) barrier(timeout time.Duration) []testenv.Frame {
	c.t.Helper()
	c.send(map[string]any{"type": "ping"})
	var got []testenv.Frame
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		select {
		case f, ok := <-c.frames:
			if !ok {
				c.t.Fatalf("%s: connection ended before pong: %v", c.name, c.err)
			}
			if f.Type() == "pong" {
				return got
			}
			got = append(got, f)
		case <-deadline.C:
			c.t.Fatalf("%s: no pong within %v", c.name, timeout)
		}
	}
}

// drain returns the frames that arrive until the connection is quiet for quiet.
func (c *wsClient) drain(quiet time.Duration) []testenv.Frame {
	var got []testenv.Frame
	for {
		select {
		case f, ok := <-c.frames:
			if !ok {
				return got
			}
			got = append(got, f)
		case <-time.After(quiet):
			return got
		}
	}
}

func ofType(typ string) func(testenv.Frame) bool { return testenv.OfType(typ) }

func msgIn(room string) func(testenv.Frame) bool {
	return func(f testenv.Frame) bool { return f.Type() == "message" && f.Str("room_id") == room }
}

func ackFor(cmid string) func(testenv.Frame) bool {
	return func(f testenv.Frame) bool {
		return (f.Type() == "ack" && f.Str("client_msg_id") == cmid) || (f.Type() == "error" && f.Str("ref") == cmid)
	}
}

func errorFrame(code string) func(testenv.Frame) bool {
	return func(f testenv.Frame) bool { return f.Type() == "error" && f.Str("code") == code }
}

// collectMessages reads message frames of room until it has want of them or
// the timeout passes, and returns their seqs in arrival order.
func (c *wsClient) collectSeqs(room string, want int, timeout time.Duration) []int64 {
	c.t.Helper()
	var seqs []int64
	deadline := time.Now().Add(timeout)
	for len(seqs) < want {
		f, err := c.next(time.Until(deadline), msgIn(room))
		if err != nil {
			c.t.Fatalf("%s: got %d of %d messages %v: %v", c.name, len(seqs), want, seqs, err)
		}
		seqs = append(seqs, f.Int("seq"))
	}
	return seqs
}

// assertRun checks that seqs are exactly from, from+1, ..., to.
func assertRun(t testing.TB, who string, seqs []int64, from, to int64) {
	t.Helper()
	if int64(len(seqs)) != to-from+1 {
		t.Fatalf("%s: got %d messages, want %d (seq %d..%d)", who, len(seqs), to-from+1, from, to)
	}
	for i, s := range seqs {
		if s != from+int64(i) {
			t.Fatalf("%s: message %d has seq %d, want %d (seqs %v)", who, i, s, from+int64(i), seqs)
		}
	}
}

// dialSlow opens /ws with a tiny socket receive buffer, for a client that
// never reads.
func dialSlow(t testing.TB, n *testenv.Node, u testenv.User) *websocket.Conn {
	t.Helper()
	d := websocket.Dialer{
		HandshakeTimeout: 10 * time.Second,
		NetDial: func(network, addr string) (net.Conn, error) {
			nd := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
				var serr error
				err := rc.Control(func(fd uintptr) {
					serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096)
				})
				if err != nil {
					return err
				}
				return serr
			}}
			return nd.Dial(network, addr)
		},
	}
	c, _, err := d.Dial("ws://"+n.Addr+"/ws?access_token="+u.Access, nil)
	if err != nil {
		t.Fatalf("dial slow ws: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// pgStats reports the persisted messages of a room.
type pgStats struct{ rows, distinct, min, max int64 }

func roomStats(t testing.TB, env *testenv.Env, room string) pgStats {
	t.Helper()
	var s pgStats
	err := env.Pool.QueryRow(context.Background(),
		`SELECT count(*), count(DISTINCT seq), coalesce(min(seq),0), coalesce(max(seq),0) FROM chat.messages WHERE room_id = $1`, room).
		Scan(&s.rows, &s.distinct, &s.min, &s.max)
	if err != nil {
		t.Fatalf("count messages: %v", err)
	}
	return s
}

// waitPersisted polls Postgres until the room has want rows (bounded) and
// checks they are exactly seqs 1..want.
func waitPersisted(t testing.TB, env *testenv.Env, room string, want int64, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var s pgStats
	for {
		s = roomStats(t, env, room)
		if s.rows >= want || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	// a little longer: more rows than expected would be a bug too
	time.Sleep(200 * time.Millisecond)
	s = roomStats(t, env, room)
	if s.rows != want || s.distinct != want || (want > 0 && (s.min != 1 || s.max != want)) {
		t.Fatalf("room %s in Postgres: %+v, want %d rows with seqs 1..%d", room, s, want, want)
	}
}

// metrics scrapes a node's /metrics (on its internal metrics address, as
// METRICS_ADDR serves it) into name{labels} → value; ok is false (and the
// reason logged) when the node cannot serve them.
func metrics(t testing.TB, n *testenv.Node) (_ map[string]float64, ok bool) {
	t.Helper()
	resp, err := http.Get(n.MetricsURL)
	if err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		t.Logf("GET /metrics: %d %.300s", resp.StatusCode, b)
		return nil, false
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err == nil {
			out[line[:i]] = v
		}
	}
	return out, true
}

// problem is an RFC 9457 error body.
type problem struct {
	Status int    `json:"status"`
	Code   string `json:"code"`
	Detail string `json:"detail"`
}

// message is a chat message as the API returns it.
type message struct {
	Type        string    `json:"type"`
	MessageID   string    `json:"message_id"`
	RoomID      string    `json:"room_id"`
	Seq         int64     `json:"seq"`
	SenderID    string    `json:"sender_id"`
	ClientMsgID string    `json:"client_msg_id"`
	Body        string    `json:"body"`
	SentAt      time.Time `json:"sent_at"`
}

type history struct {
	Messages []message `json:"messages"`
	HasMore  bool      `json:"has_more"`
}

func seqsOf(ms []message) []int64 {
	out := make([]int64, len(ms))
	for i, m := range ms {
		out[i] = m.Seq
	}
	return out
}

// restSend posts a message and returns the status and answer.
func restSend(t testing.TB, n *testenv.Node, u testenv.User, room, cmid, body string) (int, message) {
	t.Helper()
	var m message
	st := n.Call(t, "POST", "/api/v1/rooms/"+room+"/messages", u.Access, map[string]string{"client_msg_id": cmid, "body": body}, &m)
	return st, m
}
