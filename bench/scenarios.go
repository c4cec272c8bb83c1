package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fasthttp/websocket"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

type user struct {
	ID       string `json:"id"`
	Username string `json:"username"`
	Password string `json:"password"`
	Access   string `json:"-"`
	node     string
}

// signupUsers registers n users through the saga and logs them in,
// recording saga and login latency. With o.UsersFile, users made by earlier
// runs are logged in instead and new ones are appended to the file.
func signupUsers(ctx context.Context, o Options, n int, r *Result, key string) ([]user, error) {
	if o.UsersFile == "" {
		return signupFresh(ctx, o, n, r, key)
	}
	var known []user
	if raw, err := os.ReadFile(o.UsersFile); err == nil {
		_ = json.Unmarshal(raw, &known)
	}
	if len(known) < n {
		fresh, err := signupFresh(ctx, o, n-len(known), r, key)
		if err != nil {
			return nil, err
		}
		known = append(known, fresh...)
		raw, _ := json.Marshal(known)
		if err := os.WriteFile(o.UsersFile, raw, 0o600); err != nil {
			return nil, err
		}
	}
	users := known[:n]
	hc := newHTTPClient()
	sem := make(chan struct{}, 64)
	var wg sync.WaitGroup
	var firstErr atomic.Value
	for i := range users {
		wg.Add(1)
		sem <- struct{}{}
		go func(i int) {
			defer wg.Done()
			defer func() { <-sem }()
			var pair struct {
				AccessToken string `json:"access_token"`
			}
			base := o.URLs[i%len(o.URLs)]
			if _, err := httpJSON(ctx, hc, "POST", base+"/api/v1/auth/login", "", map[string]string{"username": users[i].Username, "password": users[i].Password}, &pair); err != nil {
				firstErr.CompareAndSwap(nil, err)
				return
			}
			users[i].Access, users[i].node = pair.AccessToken, base
		}(i)
	}
	wg.Wait()
	if e := firstErr.Load(); e != nil {
		return nil, fmt.Errorf("login of cached users: %v", e)
	}
	return users, nil
}

func signupFresh(ctx context.Context, o Options, n int, r *Result, key string) ([]user, error) {
	hc := newHTTPClient()
	run := strings.ReplaceAll(uuid.NewString()[:8], "-", "")
	users := make([]user, n)
	var sagaLat, loginLat []time.Duration
	var mu sync.Mutex
	var done, failed atomic.Int64
	var firstErr atomic.Value
	stop := make(chan struct{})
	wg := progress(stop, func() string {
		return fmt.Sprintf("[%s] sign-ups %d/%d failed %d", key, done.Load(), n, failed.Load())
	})
	start := time.Now()
	sem := make(chan struct{}, max(1, o.Concurrency))
	var all sync.WaitGroup
	for i := range users {
		all.Add(1)
		sem <- struct{}{}
		go func(i int) {
			defer all.Done()
			defer func() { <-sem }()
			base := o.URLs[i%len(o.URLs)]
			u := user{Username: fmt.Sprintf("b%s_%d", run, i), Password: "bench-password-" + run, node: base}
			t0 := time.Now()
			var st struct {
				SignupID string `json:"signup_id"`
				Status   string `json:"status"`
				UserID   string `json:"user_id"`
				Error    string `json:"error"`
			}
			_, err := httpJSON(ctx, hc, "POST", base+"/api/v1/signup", "", map[string]string{
				"username": u.Username, "email": u.Username + "@bench.test", "password": u.Password, "display_name": "Bench " + strconv.Itoa(i),
			}, &st)
			for err == nil && st.Status != "completed" {
				if st.Status == "failed" {
					err = fmt.Errorf("saga failed: %s", st.Error)
					break
				}
				id := st.SignupID
				_, err = httpJSON(ctx, hc, "GET", base+"/api/v1/signup/"+id+"?wait=10s", "", nil, &st)
				st.SignupID = id
			}
			saga := time.Since(t0)
			var pair struct {
				AccessToken string `json:"access_token"`
			}
			t1 := time.Now()
			if err == nil {
				_, err = httpJSON(ctx, hc, "POST", base+"/api/v1/auth/login", "", map[string]string{"username": u.Username, "password": u.Password}, &pair)
			}
			if err != nil {
				failed.Add(1)
				firstErr.CompareAndSwap(nil, err.Error())
				return
			}
			u.ID, u.Access = st.UserID, pair.AccessToken
			users[i] = u
			mu.Lock()
			sagaLat = append(sagaLat, saga)
			loginLat = append(loginLat, time.Since(t1))
			mu.Unlock()
			done.Add(1)
		}(i)
	}
	all.Wait()
	el := time.Since(start)
	close(stop)
	wg.Wait()
	r.Metrics[key+"_completed"] = float64(done.Load())
	r.Metrics[key+"_failed"] = float64(failed.Load())
	r.Metrics[key+"_per_s"] = float64(done.Load()) / el.Seconds()
	r.Latency[key+"_saga"] = Summarize(sagaLat)
	r.Latency[key+"_login"] = Summarize(loginLat)
	if f := failed.Load(); f > 0 {
		return nil, fmt.Errorf("%d sign-ups failed; first: %v", f, firstErr.Load())
	}
	return users, nil
}

func runSignups(ctx context.Context, o Options, r *Result) error {
	_, err := signupUsers(ctx, o, o.Signups, r, "signup")
	if err == nil {
		r.check("signups", true, fmt.Sprintf("%d sagas completed and logged in", o.Signups))
	}
	return err
}

// wsClient is one simulated chat client in one room.
type wsClient struct {
	u    user
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
			body := field(data, "body")
			c.mu.Lock()
			c.seen[seq]++
			c.order = append(c.order, seq)
			c.lastSeq = max(c.lastSeq, seq)
			if i := bytes.IndexByte(body, ' '); i > 0 {
				if ts, err := strconv.ParseInt(string(body[:i]), 10, 64); err == nil {
					c.delivLat = append(c.delivLat, now.Sub(time.Unix(0, ts)))
				}
			}
			c.mu.Unlock()
		case "ack":
			cmid := string(field(data, "client_msg_id"))
			seq, _ := strconv.ParseInt(string(field(data, "seq")), 10, 64)
			c.mu.Lock()
			if t, ok := c.sentAt[cmid]; ok {
				c.ackLat = append(c.ackLat, now.Sub(t))
				c.acked[cmid] = seq
				c.lastAck = now
			}
			c.mu.Unlock()
		case "error":
			c.mu.Lock()
			c.errors++
			c.mu.Unlock()
		}
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
		// Members list the owner as a friend first: their consent to being
		// added directly (otherwise they would only be invited).
		if err := consentTo(ctx, hc, o.URLs[0], members[0], members[1:]); err != nil {
			return nil, nil, err
		}
		var room struct {
			RoomID string `json:"room_id"`
		}
		if _, err := httpJSON(ctx, hc, "POST", o.URLs[0]+"/api/v1/rooms", members[0].Access, map[string]any{"name": "bench", "member_ids": ids}, &room); err != nil {
			return nil, nil, err
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

// consentTo has each of members list owner as a friend, so that owner can
// add them to a room directly rather than invite them.
func consentTo(ctx context.Context, hc *http.Client, base string, owner user, members []user) error {
	for _, m := range members {
		if _, err := httpJSON(ctx, hc, "POST", base+"/api/v1/friends", m.Access, map[string]string{"username": owner.Username}, nil); err != nil {
			return err
		}
	}
	return nil
}

// connectAll dials every client (node chosen round-robin, shifted by shift)
// with bounded parallelism and returns the time each took.
func connectAll(clients []*wsClient, urls []string, shift int) error {
	sem := make(chan struct{}, 200)
	var wg sync.WaitGroup
	var firstErr atomic.Value
	for i, c := range clients {
		wg.Add(1)
		sem <- struct{}{}
		go func(i int, c *wsClient) {
			defer wg.Done()
			defer func() { <-sem }()
			if err := c.dial(urls[(i+shift)%len(urls)]); err != nil {
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

func runChat(ctx context.Context, o Options, r *Result, reconnect bool) error {
	clients, rooms, err := setupRooms(ctx, o, r)
	if err != nil {
		return err
	}
	var deliveries atomic.Int64
	for _, c := range clients {
		go c.read(&deliveries)
	}
	time.Sleep(500 * time.Millisecond) // let subscriptions settle
	var sent, sendErr atomic.Int64
	stop := make(chan struct{})
	procs := startProcWatch()
	loadStart := time.Now()
	pw := progress(stop, func() string {
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
			t := time.NewTicker(interval)
			defer t.Stop()
			pad := strings.Repeat("x", 60)
			for n := 0; time.Now().Before(deadline); n++ {
				cmid := c.u.ID[:8] + "-" + strconv.Itoa(n)
				now := time.Now()
				c.mu.Lock()
				c.sentAt[cmid] = now
				c.mu.Unlock()
				if err := c.write(map[string]string{"type": "send", "room_id": c.room, "client_msg_id": cmid,
					"body": strconv.FormatInt(now.UnixNano(), 10) + " " + pad}); err != nil {
					sendErr.Add(1)
					return
				}
				sent.Add(1)
				<-t.C
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
		if int64(acks) >= sent.Load() && allDelivered(rooms) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	close(stop)
	pw.Wait()

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
	lossCheck(r, rooms)
	if err := pgCheck(ctx, o, r, rooms); err != nil {
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

// allDelivered reports whether every client saw every acked seq of its room.
func allDelivered(rooms map[string][]*wsClient) bool {
	for _, cs := range rooms {
		want := ackedSeqs(cs)
		for _, c := range cs {
			c.mu.Lock()
			for s := range want {
				if c.seen[s] == 0 {
					c.mu.Unlock()
					return false
				}
			}
			c.mu.Unlock()
		}
	}
	return true
}

func ackedSeqs(cs []*wsClient) map[int64]bool {
	want := map[int64]bool{}
	for _, c := range cs {
		c.mu.Lock()
		for _, s := range c.acked {
			want[s] = true
		}
		c.mu.Unlock()
	}
	return want
}

// lossCheck: every acked message reached every member online, exactly once.
// A client the server disconnected (a slow reader) is not online any more;
// it is counted, and recovers by reconnecting with sync.
func lossCheck(r *Result, rooms map[string][]*wsClient) {
	var missing, dups, acked, dropped int
	var why any
	for _, cs := range rooms {
		want := ackedSeqs(cs)
		acked += len(want)
		for _, c := range cs {
			if c.closed.Load() {
				dropped++
				if why == nil {
					why = c.closeErr.Load()
				}
				continue
			}
			c.mu.Lock()
			for s := range want {
				if c.seen[s] == 0 {
					missing++
				}
			}
			for _, n := range c.seen {
				if n > 1 {
					dups += n - 1
				}
			}
			c.mu.Unlock()
		}
	}
	r.Metrics["clients_disconnected"] = float64(dropped)
	r.check("delivery_loss", missing == 0, fmt.Sprintf("%d acked messages, %d member deliveries missing (%d clients disconnected by the server: %v)", acked, missing, dropped, why))
	r.check("delivery_dups", dups == 0, fmt.Sprintf("%d duplicate deliveries", dups))
}

// pgCheck: every acked message is in Postgres exactly once, and each room's
// rows are gap-free 1..max.
func pgCheck(ctx context.Context, o Options, r *Result, rooms map[string][]*wsClient) error {
	pool, err := pgxpool.New(ctx, o.DatabaseURL)
	if err != nil {
		return err
	}
	defer pool.Close()
	type key struct {
		room string
		seq  int64
	}
	want := map[key]bool{}
	roomIDs := make([]string, 0, len(rooms))
	for id, cs := range rooms {
		roomIDs = append(roomIDs, id)
		for s := range ackedSeqs(cs) {
			want[key{id, s}] = true
		}
	}
	deadline := time.Now().Add(60 * time.Second)
	var found, rows, gaps int
	for {
		found, rows, gaps = 0, 0, 0
		res, err := pool.Query(ctx, `SELECT room_id::text, seq FROM chat.messages WHERE room_id = ANY($1::uuid[])`, roomIDs)
		if err != nil {
			return err
		}
		maxSeq := map[string]int64{}
		count := map[string]int64{}
		for res.Next() {
			var k key
			if err := res.Scan(&k.room, &k.seq); err != nil {
				return err
			}
			rows++
			count[k.room]++
			maxSeq[k.room] = max(maxSeq[k.room], k.seq)
			if want[k] {
				found++
			}
		}
		res.Close()
		for id, m := range maxSeq {
			if count[id] != m {
				gaps++
			}
		}
		// accepted-but-unacked messages may still be on their way: wait for the gaps too
		if (found == len(want) && gaps == 0) || time.Now().After(deadline) {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	r.Metrics["pg_rows"] = float64(rows)
	r.check("pg_persisted", found == len(want), fmt.Sprintf("%d of %d acked messages in Postgres", found, len(want)))
	r.check("pg_gap_free", gaps == 0, fmt.Sprintf("%d rooms with seq gaps", gaps))
	return nil
}

// reconnectStorm drops every client, sends messages they miss, reconnects
// them all at once to another node and checks sync replays exactly the gap.
func reconnectStorm(ctx context.Context, o Options, r *Result, clients []*wsClient, rooms map[string][]*wsClient) error {
	for _, c := range clients {
		c.conn.Close()
	}
	time.Sleep(300 * time.Millisecond)
	hc := newHTTPClient()
	const missed = 20
	target := map[string]int64{}
	var tmu sync.Mutex
	var swg sync.WaitGroup
	var sendErr atomic.Value
	for room, cs := range rooms { // rooms in parallel, each room's messages in order
		swg.Add(1)
		go func(room string, cs []*wsClient) {
			defer swg.Done()
			for i := 0; i < missed; i++ {
				var m struct {
					Seq int64 `json:"seq"`
				}
				if _, err := httpJSON(ctx, hc, "POST", o.URLs[0]+"/api/v1/rooms/"+room+"/messages", cs[0].u.Access,
					map[string]string{"client_msg_id": "gap-" + strconv.Itoa(i), "body": strconv.FormatInt(time.Now().UnixNano(), 10) + " missed"}, &m); err != nil {
					sendErr.CompareAndSwap(nil, err)
					return
				}
				tmu.Lock()
				target[room] = m.Seq
				tmu.Unlock()
			}
		}(room, cs)
	}
	swg.Wait()
	if e := sendErr.Load(); e != nil {
		return fmt.Errorf("sending the missed messages: %v", e)
	}
	last := map[*wsClient]int64{}
	for _, c := range clients {
		c.mu.Lock()
		last[c] = c.lastSeq
		c.seen, c.order = map[int64]int{}, nil
		c.mu.Unlock()
	}
	var deliveries atomic.Int64
	start := time.Now()
	if err := connectAll(clients, o.URLs, 1); err != nil {
		return err
	}
	var recov []time.Duration
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, c := range clients {
		go c.read(&deliveries)
		wg.Add(1)
		go func(c *wsClient) {
			defer wg.Done()
			_ = c.write(map[string]any{"type": "sync", "rooms": map[string]int64{c.room: last[c]}})
			deadline := time.Now().Add(30 * time.Second)
			for time.Now().Before(deadline) {
				c.mu.Lock()
				done := c.lastSeq >= target[c.room]
				c.mu.Unlock()
				if done {
					mu.Lock()
					recov = append(recov, time.Since(start))
					mu.Unlock()
					return
				}
				time.Sleep(5 * time.Millisecond)
			}
		}(c)
	}
	wg.Wait()
	r.Metrics["reconnect_clients"] = float64(len(clients))
	r.Metrics["reconnect_recovered"] = float64(len(recov))
	r.Latency["reconnect_to_synced"] = Summarize(recov)
	var wrong int
	for _, c := range clients {
		c.mu.Lock()
		exp := last[c] + 1
		for _, s := range c.order {
			if s != exp {
				wrong++
				break
			}
			exp++
		}
		if exp != target[c.room]+1 {
			wrong++
		}
		c.mu.Unlock()
		c.conn.Close()
	}
	r.check("sync_exact", wrong == 0 && len(recov) == len(clients), fmt.Sprintf("%d of %d clients got exactly the missed seqs in order", len(clients)-wrong, len(clients)))
	return nil
}

// runHistory has readers page through room history with random cursors.
func runHistory(ctx context.Context, o Options, r *Result) error {
	o.Clients, o.RoomSize = max(o.RoomSize, 2)*4, max(o.RoomSize, 2)
	users, err := signupUsers(ctx, o, o.Clients, r, "setup_signup")
	if err != nil {
		return err
	}
	hc := newHTTPClient()
	type room struct {
		id   string
		user user
		max  int64
	}
	var rs []room
	for i := 0; i+o.RoomSize <= len(users); i += o.RoomSize {
		var rm struct {
			RoomID string `json:"room_id"`
		}
		if err := consentTo(ctx, hc, o.URLs[0], users[i], users[i+1:i+2]); err != nil {
			return err
		}
		if _, err := httpJSON(ctx, hc, "POST", o.URLs[0]+"/api/v1/rooms", users[i].Access, map[string]any{"name": "hist", "member_ids": []string{users[i+1].ID}}, &rm); err != nil {
			return err
		}
		rs = append(rs, room{id: rm.RoomID, user: users[i]})
	}
	// fill each room with 1000 messages over REST, 8 in flight
	for i := range rs {
		var wg sync.WaitGroup
		sem := make(chan struct{}, 8)
		for n := 0; n < 1000; n++ {
			wg.Add(1)
			sem <- struct{}{}
			go func(n int) {
				defer wg.Done()
				defer func() { <-sem }()
				_, _ = httpJSON(ctx, hc, "POST", o.URLs[n%len(o.URLs)]+"/api/v1/rooms/"+rs[i].id+"/messages", rs[i].user.Access,
					map[string]string{"client_msg_id": "h" + strconv.Itoa(n), "body": "history message " + strconv.Itoa(n)}, nil)
			}(n)
		}
		wg.Wait()
		rs[i].max = 1000
	}
	var reqs, fails atomic.Int64
	var lat []time.Duration
	var mu sync.Mutex
	stop := make(chan struct{})
	start := time.Now()
	pw := progress(stop, func() string {
		return fmt.Sprintf("[history] %d reads (%.0f/s) failed %d", reqs.Load(), float64(reqs.Load())/time.Since(start).Seconds(), fails.Load())
	})
	deadline := start.Add(o.Duration)
	var wg sync.WaitGroup
	for i := 0; i < o.Readers; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			var local []time.Duration
			for time.Now().Before(deadline) {
				rm := rs[rand.IntN(len(rs))]
				before := rand.Int64N(rm.max) + 2
				t0 := time.Now()
				var page struct {
					Messages []json.RawMessage `json:"messages"`
				}
				_, err := httpJSON(ctx, hc, "GET", fmt.Sprintf("%s/api/v1/rooms/%s/messages?before_seq=%d&limit=50", o.URLs[i%len(o.URLs)], rm.id, before), rm.user.Access, nil, &page)
				if err != nil || len(page.Messages) == 0 {
					fails.Add(1)
					continue
				}
				local = append(local, time.Since(t0))
				reqs.Add(1)
			}
			mu.Lock()
			lat = append(lat, local...)
			mu.Unlock()
		}(i)
	}
	wg.Wait()
	close(stop)
	pw.Wait()
	r.Metrics["history_reads_per_s"] = float64(reqs.Load()) / o.Duration.Seconds()
	r.Metrics["history_failed"] = float64(fails.Load())
	r.Latency["history_page"] = Summarize(lat)
	r.check("history", fails.Load() == 0, fmt.Sprintf("%d pages read, %d failed", reqs.Load(), fails.Load()))
	return nil
}

// copyBaseline COPYs n message-shaped rows into a table shaped and indexed
// like chat.messages and returns the rate.
func copyBaseline(ctx context.Context, url string, n int) (int64, float64, error) {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return 0, 0, err
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `DROP TABLE IF EXISTS public.bench_copy; CREATE TABLE public.bench_copy (LIKE chat.messages INCLUDING ALL)`); err != nil {
		return 0, 0, err
	}
	defer conn.Exec(context.WithoutCancel(ctx), `DROP TABLE IF EXISTS public.bench_copy`) //nolint:errcheck
	room, sender := uuid.New(), uuid.New()
	body := strings.Repeat("x", 80)
	now := time.Now()
	start := time.Now()
	const chunk = 5000
	var total int64
	for off := 0; off < n; off += chunk {
		rows := make([][]any, 0, chunk)
		for i := off; i < min(off+chunk, n); i++ {
			rows = append(rows, []any{uuid.Must(uuid.NewV7()), room, int64(i + 1), sender, "c" + strconv.Itoa(i), body, now})
		}
		c, err := conn.CopyFrom(ctx, pgx.Identifier{"public", "bench_copy"},
			[]string{"id", "room_id", "seq", "sender_id", "client_msg_id", "body", "sent_at"}, pgx.CopyFromRows(rows))
		if err != nil {
			return 0, 0, err
		}
		total += c
	}
	return total, float64(total) / time.Since(start).Seconds(), nil
}
