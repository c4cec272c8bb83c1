package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/fasthttp/websocket"
	"github.com/golang-jwt/jwt/v5"
)

// The peer comparison drives Centrifugo (v6, https://centrifugal.dev) with the
// same generator as chatflow: rooms of RoomSize clients, each publishing at a
// fixed rate over its own WebSocket, the sender's clock in the payload, every
// delivery counted. It speaks Centrifugo's JSON client protocol directly over
// the same fasthttp/websocket dialer and frame scanner as the chatflow side,
// rather than through centrifuge-go: that client adds its own goroutines,
// timers and reconnect state per connection, which would make the generator's
// cost differ between the two systems, and it hides when a publish reply
// arrives behind a callback we do not need.

// CentrifugoConfig is what the peer run needs from a Centrifugo v6 config.
type CentrifugoConfig struct {
	Port        int    // HTTP/WebSocket port
	RedisAddr   string // host:port of its Redis (scripts/bench-peer.sh starts one of its own)
	RedisDB     int    // a database index of its own
	RedisPrefix string // and a key prefix of its own
	HMACSecret  string // connection tokens are HS256 JWTs signed with it
	HistorySize int
	HistoryTTL  time.Duration
}

// centrifugoNamespace is the channel namespace the generator publishes into.
const centrifugoNamespace = "chat"

// Render writes the Centrifugo v6 JSON config: Redis engine, one namespace
// with history and forced recovery, client-side subscribe and publish.
func (c CentrifugoConfig) Render() ([]byte, error) {
	if c.Port <= 0 || c.RedisAddr == "" || c.HMACSecret == "" || c.HistorySize <= 0 || c.HistoryTTL < time.Second {
		return nil, fmt.Errorf("centrifugo config: port, redis address, HMAC secret, history size and a TTL of at least 1s are required")
	}
	if c.RedisPrefix == "" {
		c.RedisPrefix = "centrifugo-bench"
	}
	cfg := map[string]any{
		"http_server": map[string]any{"address": "127.0.0.1", "port": c.Port},
		"log":         map[string]any{"level": "warn"},
		"engine": map[string]any{"type": "redis", "redis": map[string]any{
			"address": []string{"redis://" + c.RedisAddr},
			"db":      c.RedisDB,
			"prefix":  c.RedisPrefix,
		}},
		"client": map[string]any{
			"token":           map[string]any{"hmac_secret_key": c.HMACSecret},
			"allowed_origins": []string{"*"},
		},
		"channel": map[string]any{"namespaces": []map[string]any{{
			"name":                         centrifugoNamespace,
			"history_size":                 c.HistorySize,
			"history_ttl":                  c.HistoryTTL.String(),
			"force_recovery":               true,
			"allow_subscribe_for_client":   true,
			"allow_publish_for_subscriber": true,
		}}},
		"health":   map[string]any{"enabled": true},  // the script waits on /health
		"http_api": map[string]any{"disabled": true}, // the generator needs no server API
		"admin":    map[string]any{"enabled": false},
	}
	return json.MarshalIndent(cfg, "", "  ")
}

// centrifugoToken signs a connection token for user sub.
func centrifugoToken(secret, sub string) (string, error) {
	return jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": sub, "exp": time.Now().Add(2 * time.Hour).Unix()}).SignedString([]byte(secret))
}

// cfFirstCmd is the command id of a client's first publish; 1 is connect,
// 2 subscribe. Publish n has id cfFirstCmd+n, so its reply names n.
const cfFirstCmd = 3

// cfKey identifies publish n of client idx: the loss check's "seq".
func cfKey(idx, n int) int64 { return int64(idx)<<32 | int64(n) }

// cfDial opens a Centrifugo connection for c, connects with a token and
// subscribes to c.room, waiting for both replies.
func cfDial(url, secret string, c *wsClient, bufSize int) (*websocket.Conn, error) {
	tok, err := centrifugoToken(secret, c.u.ID)
	if err != nil {
		return nil, err
	}
	d := websocket.Dialer{HandshakeTimeout: 30 * time.Second, ReadBufferSize: bufSize, WriteBufferSize: bufSize}
	conn, _, err := d.Dial(url, nil)
	if err != nil {
		return nil, err
	}
	_ = conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	_ = conn.SetWriteDeadline(time.Now().Add(30 * time.Second))
	cmds := fmt.Sprintf(`{"id":1,"connect":{"token":%q,"name":"bench"}}`+"\n"+`{"id":2,"subscribe":{"channel":%q}}`, tok, c.room)
	if err := conn.WriteMessage(websocket.TextMessage, []byte(cmds)); err != nil {
		conn.Close()
		return nil, err
	}
	for got := 0; got < 2; {
		_, data, err := conn.ReadMessage()
		if err != nil {
			conn.Close()
			return nil, err
		}
		for line := range bytes.SplitSeq(data, []byte("\n")) {
			if bytes.Contains(line, []byte(`"error":`)) {
				conn.Close()
				return nil, fmt.Errorf("centrifugo: %s", line)
			}
			if id := string(field(line, "id")); id == "1" || id == "2" {
				got++
			}
		}
	}
	_ = conn.SetReadDeadline(time.Time{})
	return conn, nil
}

// centrifugoTarget runs the chat scenario against Centrifugo.
type centrifugoTarget struct{ secret, run string }

func (t *centrifugoTarget) setup(_ context.Context, o Options, _ *Result) ([]*wsClient, map[string][]*wsClient, error) {
	if t.secret == "" {
		return nil, nil, fmt.Errorf("centrifugo: -centrifugo-secret (or BENCH_CENTRIFUGO_SECRET) is required to sign connection tokens")
	}
	rooms := map[string][]*wsClient{}
	var clients []*wsClient
	for i := 0; i+o.RoomSize <= o.Clients; i += o.RoomSize {
		ch := fmt.Sprintf("%s:%s-%d", centrifugoNamespace, t.run, i/o.RoomSize)
		for j := i; j < i+o.RoomSize; j++ {
			c := &wsClient{u: user{ID: fmt.Sprintf("%s-u%d", t.run, j)}, idx: j, room: ch, seen: map[int64]int{}, sentAt: map[string]time.Time{}, acked: map[string]int64{}}
			rooms[ch] = append(rooms[ch], c)
			clients = append(clients, c)
		}
	}
	if err := dialAll(clients, func(i int, c *wsClient) error {
		conn, err := cfDial(o.URLs[i%len(o.URLs)], t.secret, c, 4096)
		c.conn = conn
		return err
	}); err != nil {
		return nil, nil, err
	}
	return clients, rooms, nil
}

func (t *centrifugoTarget) msgID(c *wsClient, n int) string {
	return strconv.FormatInt(cfKey(c.idx, n), 10)
}

// send publishes message n of c. It is encoded with encoding/json from maps,
// as the chatflow side encodes its send frames, so that the generator spends
// about the same on each side.
func (t *centrifugoTarget) send(c *wsClient, n int, _ string, body string) error {
	return c.write(map[string]any{"id": cfFirstCmd + n, "publish": map[string]any{"channel": c.room,
		"data": map[string]any{"k": cfKey(c.idx, n), "body": body}}})
}

// read consumes Centrifugo frames until the connection ends.
func (t *centrifugoTarget) read(c *wsClient, deliveries *atomic.Int64) {
	for {
		_, data, err := c.conn.ReadMessage()
		if err != nil {
			c.closeErr.CompareAndSwap(nil, err.Error())
			c.closed.Store(true)
			return
		}
		if t.frame(c, data, time.Now(), deliveries) {
			_ = c.writeRaw([]byte("{}"))
		}
	}
}

// frame handles one frame of replies joined by newlines: publication pushes
// are deliveries, publish replies are acks, an empty reply is a ping (the
// result says to answer it). Like the chatflow reader, it picks fields out
// of the frame rather than decoding it.
func (t *centrifugoTarget) frame(c *wsClient, data []byte, now time.Time, deliveries *atomic.Int64) (pong bool) {
	for line := range bytes.SplitSeq(data, []byte("\n")) {
		switch {
		case bytes.HasPrefix(line, []byte(`{"push":`)):
			if !bytes.Contains(line, []byte(`"pub":`)) {
				continue // join/leave and the like: none are enabled
			}
			deliveries.Add(1)
			k, _ := strconv.ParseInt(string(field(line, "k")), 10, 64)
			c.delivered(k, field(line, "body"), now)
		case string(line) == "{}":
			pong = true
		case bytes.Contains(line, []byte(`"error":`)):
			c.mu.Lock()
			c.errors++
			c.mu.Unlock()
		case bytes.Contains(line, []byte(`"publish":`)):
			id, _ := strconv.Atoi(string(field(line, "id")))
			if id < cfFirstCmd {
				continue
			}
			n := id - cfFirstCmd
			c.acknowledged(t.msgID(c, n), cfKey(c.idx, n), now)
		}
	}
	return pong
}

// verify: Centrifugo keeps no durable copy to check; delivery is checked by
// the shared loss check.
func (t *centrifugoTarget) verify(context.Context, Options, *Result, map[string][]*wsClient) error {
	return nil
}

func newCentrifugoTarget(o Options) *centrifugoTarget {
	return &centrifugoTarget{secret: o.CentrifugoSecret, run: strconv.FormatInt(time.Now().UnixNano()%1e9, 36)}
}

// isCentrifugo reports whether the run targets Centrifugo.
func isCentrifugo(o Options) bool { return strings.EqualFold(o.Target, "centrifugo") }
