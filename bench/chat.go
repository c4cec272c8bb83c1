package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fasthttp/websocket"
)

// wsClient is one simulated chat client in one room.
type wsClient struct {
	u    user
	idx  int // position in the run's client list
	room string
	conn *websocket.Conn
	wmu  sync.Mutex

	mu       sync.Mutex
	seen     map[int64]int // seq → times received
	order    []int64       // receive order since the last reset
	lastSeq  int64
	sentAt   map[string]time.Time
	acked    map[string]int64 // client_msg_id → seq
	ackLat   []time.Duration
	delivLat []time.Duration
	errors   int
	lastAck  time.Time
	closeErr atomic.Value // why the connection ended
	closed   atomic.Bool
}

func (c *wsClient) dial(node string) error {
	wsURL := "ws" + strings.TrimPrefix(node, "http") + "/ws?access_token=" + c.u.Access
	d := websocket.Dialer{HandshakeTimeout: 30 * time.Second, ReadBufferSize: 4096, WriteBufferSize: 4096}
	conn, _, err := d.Dial(wsURL, nil)
	if err != nil {
		return err
	}
	c.conn = conn
	c.closed.Store(false)
	return nil
}

func (c *wsClient) write(v any) error {
	b, _ := json.Marshal(v)
	return c.writeRaw(b)
}

func (c *wsClient) writeRaw(b []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_ = c.conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
	return c.conn.WriteMessage(websocket.TextMessage, b)
}

// read consumes frames until the connection ends. It picks the few fields
// it needs out of each frame instead of decoding it, so that the load
// generator spends its share of the machine's CPU on sockets, not on JSON.
func (c *wsClient) read(deliveries *atomic.Int64) {
	for {
		_, data, err := c.conn.ReadMessage()
		if err != nil {
			c.closeErr.CompareAndSwap(nil, err.Error())
			c.closed.Store(true)
			return
		}
		now := time.Now()
		switch string(field(data, "type")) {
		case "message":
			deliveries.Add(1)
			seq, _ := strconv.ParseInt(string(field(data, "seq")), 10, 64)
			c.delivered(seq, field(data, "body"), now)
		case "ack":
			seq, _ := strconv.ParseInt(string(field(data, "seq")), 10, 64)
			c.acknowledged(string(field(data, "client_msg_id")), seq, now)
		case "error":
			c.mu.Lock()
			c.errors++
			c.mu.Unlock()
		}
	}
}

// delivered records a delivery of seq whose body starts with the sender's
// clock (unix ns) and a space.
func (c *wsClient) delivered(seq int64, body []byte, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seen[seq]++
	c.order = append(c.order, seq)
	c.lastSeq = max(c.lastSeq, seq)
	if i := bytes.IndexByte(body, ' '); i > 0 {
		if ts, err := strconv.ParseInt(string(body[:i]), 10, 64); err == nil {
			c.delivLat = append(c.delivLat, now.Sub(time.Unix(0, ts)))
		}
	}
}

// acknowledged records the ack of the message sent as cmid, sequenced as seq.
func (c *wsClient) acknowledged(cmid string, seq int64, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if t, ok := c.sentAt[cmid]; ok {
		c.ackLat = append(c.ackLat, now.Sub(t))
		c.acked[cmid] = seq
		c.lastAck = now
	}
}

// field returns the raw value of a top-level "key": in a server frame: the
// contents of a string (escapes left as they are) or the digits of a number.
// Server frames are flat objects whose keys never occur inside earlier values.
func field(frame []byte, key string) []byte {
	i := bytes.Index(frame, []byte(`"`+key+`":`))
	if i < 0 {
		return nil
	}
	v := frame[i+len(key)+3:]
	if len(v) > 0 && v[0] == '"' {
		v = v[1:]
		for j := 0; j < len(v); j++ {
			switch v[j] {
			case '\\':
				j++
			case '"':
				return v[:j]
			}
		}
		return nil
	}
	j := 0
	for j < len(v) && (v[j] == '-' || (v[j] >= '0' && v[j] <= '9')) {
		j++
	}
	return v[:j]
}

// setupRooms signs up o.Clients users, groups them into rooms of o.RoomSize
// and connects every client over WebSocket.
// membersPerCall is the api's default MAX_MEMBERS_PER_CALL.
const membersPerCall = 50

func setupRooms(ctx context.Context, o Options, r *Result) ([]*wsClient, map[string][]*wsClient, error) {
	users, err := signupUsers(ctx, o, o.Clients, r, "setup_signup")
	if err != nil {
		return nil, nil, err
	}
	hc := newHTTPClient()
	rooms := map[string][]*wsClient{}
	var clients []*wsClient
	for i := 0; i+o.RoomSize <= len(users); i += o.RoomSize {
		members := users[i : i+o.RoomSize]
		ids := make([]string, 0, len(members)-1)
		for _, m := range members[1:] {
			ids = append(ids, m.ID)
		}
		// Members become the owner's friends first: their consent to being
		// added directly (otherwise they would only be invited).
		if err := consentTo(ctx, hc, o.URLs[0], members[0], members[1:]); err != nil {
			return nil, nil, err
		}
		var room struct {
			RoomID string `json:"room_id"`
		}
		// one call names at most membersPerCall users (an api limit that
		// stays on with RATE_LIMITS=off): a large room is created with the
		// first of them and the rest are added in further calls
		first := ids[:min(len(ids), membersPerCall)]
		if _, err := httpJSON(ctx, hc, "POST", o.URLs[0]+"/api/v1/rooms", members[0].Access, map[string]any{"name": "bench", "member_ids": first}, &room); err != nil {
			return nil, nil, err
		}
		for rest := ids[len(first):]; len(rest) > 0; rest = rest[min(len(rest), membersPerCall):] {
			chunk := rest[:min(len(rest), membersPerCall)]
			if _, err := httpJSON(ctx, hc, "POST", o.URLs[0]+"/api/v1/rooms/"+room.RoomID+"/members", members[0].Access, map[string]any{"user_ids": chunk}, nil); err != nil {
				return nil, nil, err
			}
		}
		for _, m := range members {
			c := &wsClient{u: m, room: room.RoomID, seen: map[int64]int{}, sentAt: map[string]time.Time{}, acked: map[string]int64{}}
			rooms[room.RoomID] = append(rooms[room.RoomID], c)
			clients = append(clients, c)
		}
	}
	if err := connectAll(clients, o.URLs, 0); err != nil {
		return nil, nil, err
	}
	return clients, rooms, nil
}

// consentTo makes each of members owner's friend (the member asks, the
// owner accepts), so that owner can add them to a room directly rather
// than invite them. Users cached from earlier runs may be friends already.
func consentTo(ctx context.Context, hc *http.Client, base string, owner user, members []user) error {
	for _, m := range members {
		st, err := httpJSON(ctx, hc, "POST", base+"/api/v1/friends/requests", m.Access, map[string]string{"user_id": owner.ID}, nil)
		switch {
		case st == http.StatusOK, st == http.StatusConflict && strings.Contains(err.Error(), "already_friends"):
			continue // friends now (they had asked) or from before
		case st == http.StatusConflict && strings.Contains(err.Error(), "request_pending"):
		case err != nil:
			return err
		}
		if _, err := httpJSON(ctx, hc, "POST", base+"/api/v1/friends/requests/"+m.ID+"/accept", owner.Access, nil, nil); err != nil {
			return err
		}
	}
	return nil
}

// connectAll dials every client (node chosen round-robin, shifted by shift)
// with bounded parallelism.
func connectAll(clients []*wsClient, urls []string, shift int) error {
	return dialAll(clients, func(i int, c *wsClient) error { return c.dial(urls[(i+shift)%len(urls)]) })
}

// dialAll runs dial for every client, 200 at a time.
func dialAll(clients []*wsClient, dial func(i int, c *wsClient) error) error {
	sem := make(chan struct{}, 200)
	var wg sync.WaitGroup
	var firstErr atomic.Value
	for i, c := range clients {
		wg.Add(1)
		sem <- struct{}{}
		go func(i int, c *wsClient) {
			defer wg.Done()
			defer func() { <-sem }()
			if err := dial(i, c); err != nil {
				firstErr.CompareAndSwap(nil, err)
			}
		}(i, c)
	}
	wg.Wait()
	if e := firstErr.Load(); e != nil {
		return fmt.Errorf("connect: %v", e)
	}
	return nil
}

// chatTarget is the system a chat run drives: chatflow, or a peer under the
// same generator (same scheduling, checks and latency summaries).
type chatTarget interface {
	setup(ctx context.Context, o Options, r *Result) ([]*wsClient, map[string][]*wsClient, error)
	msgID(c *wsClient, n int) string                  // the id the ack names
	send(c *wsClient, n int, cmid, body string) error // message n of c
	read(c *wsClient, deliveries *atomic.Int64)
	verify(ctx context.Context, o Options, r *Result, rooms map[string][]*wsClient) error // after the loss check
}

// chatflowTarget drives chatflow's api nodes.
type chatflowTarget struct{}

func (chatflowTarget) setup(ctx context.Context, o Options, r *Result) ([]*wsClient, map[string][]*wsClient, error) {
	return setupRooms(ctx, o, r)
}

func (chatflowTarget) msgID(c *wsClient, n int) string { return c.u.ID[:8] + "-" + strconv.Itoa(n) }

func (chatflowTarget) send(c *wsClient, _ int, cmid, body string) error {
	return c.write(map[string]string{"type": "send", "room_id": c.room, "client_msg_id": cmid, "body": body})
}

func (chatflowTarget) read(c *wsClient, deliveries *atomic.Int64) { c.read(deliveries) }

func (chatflowTarget) verify(ctx context.Context, o Options, r *Result, rooms map[string][]*wsClient) error {
	return pgCheck(ctx, o, r, rooms)
}

func runChat(ctx context.Context, o Options, r *Result, reconnect bool) error {
	var t chatTarget = chatflowTarget{}
	if isCentrifugo(o) {
		if reconnect {
			return fmt.Errorf("the reconnect scenario is chatflow's only")
		}
		t = newCentrifugoTarget(o)
	}
	clients, rooms, err := t.setup(ctx, o, r)
	if err != nil {
		return err
	}
	var deliveries atomic.Int64
	for _, c := range clients {
		go t.read(c, &deliveries)
	}
	time.Sleep(500 * time.Millisecond) // let subscriptions settle
	var sent, sendErr atomic.Int64
	procs := startProcWatch()
	loadStart := time.Now()
	endProgress := progress(func() string {
		el := time.Since(loadStart).Seconds()
		var acks int
		for _, c := range clients {
			c.mu.Lock()
			acks += len(c.acked)
			c.mu.Unlock()
		}
		return fmt.Sprintf("[chat] %4.0fs sent %d (%.0f/s) acked %d deliveries %d (%.0f/s)", el, sent.Load(), float64(sent.Load())/el, acks, deliveries.Load(), float64(deliveries.Load())/el)
	})
	var wg sync.WaitGroup
	interval := time.Duration(float64(time.Second) / o.Rate)
	deadline := loadStart.Add(o.Duration)
	for _, c := range clients {
		wg.Add(1)
		go func(c *wsClient) {
			defer wg.Done()
			time.Sleep(time.Duration(rand.Int64N(int64(interval)))) // spread the clients' phases
			tick := time.NewTicker(interval)
			defer tick.Stop()
			pad := strings.Repeat("x", 60)
			for n := 0; time.Now().Before(deadline); n++ {
				cmid := t.msgID(c, n)
				now := time.Now()
				c.mu.Lock()
				c.sentAt[cmid] = now
				c.mu.Unlock()
				if err := t.send(c, n, cmid, strconv.FormatInt(now.UnixNano(), 10)+" "+pad); err != nil {
					sendErr.Add(1)
					return
				}
				sent.Add(1)
				<-tick.C
			}
		}(c)
	}
	wg.Wait()
	loadEl := time.Since(loadStart)
	r.Processes = procs.stop()
	// drain: wait for outstanding acks and deliveries
	drainUntil := time.Now().Add(15 * time.Second)
	for time.Now().Before(drainUntil) {
		var acks int
		for _, c := range clients {
			c.mu.Lock()
			acks += len(c.acked)
			c.mu.Unlock()
		}
		if int64(acks) >= sent.Load() && allDelivered(rooms, ackedSnapshot(rooms)) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	// what is acked now must reach every member: give the deliveries of the
	// last acks (an overloaded run is still acking) a few seconds more
	ackedAtEnd := ackedSnapshot(rooms)
	for settle := time.Now().Add(5 * time.Second); time.Now().Before(settle) && !allDelivered(rooms, ackedAtEnd); {
		time.Sleep(100 * time.Millisecond)
	}
	endProgress()

	var ackLat, delivLat []time.Duration
	var acks, errs int
	ackSpan := loadEl // overloaded runs keep acking after the senders stop
	for _, c := range clients {
		c.mu.Lock()
		ackSpan = max(ackSpan, c.lastAck.Sub(loadStart))
		ackLat = append(ackLat, c.ackLat...)
		delivLat = append(delivLat, c.delivLat...)
		acks += len(c.acked)
		errs += c.errors
		c.mu.Unlock()
	}
	r.Metrics["clients"] = float64(len(clients))
	r.Metrics["rooms"] = float64(len(rooms))
	r.Metrics["offered_msgs_per_s"] = float64(len(clients)) * o.Rate
	r.Metrics["sent"] = float64(sent.Load())
	r.Metrics["acked"] = float64(acks)
	r.Metrics["error_frames"] = float64(errs)
	r.Metrics["accepted_msgs_per_s"] = float64(acks) / ackSpan.Seconds()
	r.Metrics["ack_span_s"] = ackSpan.Seconds()
	r.Metrics["deliveries"] = float64(deliveries.Load())
	r.Metrics["deliveries_per_s"] = float64(deliveries.Load()) / loadEl.Seconds()
	r.Latency["send_to_ack"] = Summarize(ackLat)
	r.Latency["send_to_deliver"] = Summarize(delivLat)
	lossCheck(r, rooms, ackedAtEnd)
	if err := t.verify(ctx, o, r, rooms); err != nil {
		return err
	}
	if reconnect {
		return reconnectStorm(ctx, o, r, clients, rooms)
	}
	for _, c := range clients {
		c.conn.Close()
	}
	return nil
}
