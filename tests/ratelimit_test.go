package tests

import (
	"encoding/json"
	"io"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fasthttp/websocket"

	"github.com/chatflow/chatflow/internal/testenv"
	"github.com/chatflow/chatflow/ratelimit"
)

// callH is Call with extra request headers; it returns the status, the
// answer's headers and its problem body (if any).
func callH(t *testing.T, n *testenv.Node, method, path, token string, body any, hdr map[string]string) (int, http.Header, problem) {
	t.Helper()
	raw, _ := json.Marshal(body)
	req, err := http.NewRequest(method, n.URL+path, strings.NewReader(string(raw)))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var p problem
	if resp.StatusCode >= 400 {
		_ = json.Unmarshal(b, &p)
	}
	return resp.StatusCode, resp.Header, p
}

// assertLimited checks a 429 rate_limited problem with a whole-second
// Retry-After no longer than max.
func assertLimited(t *testing.T, what string, st int, h http.Header, p problem, max time.Duration) {
	t.Helper()
	if st != 429 || p.Code != "rate_limited" || p.Status != 429 {
		t.Fatalf("%s: %d %+v, want 429 rate_limited", what, st, p)
	}
	ra, err := strconv.Atoi(h.Get("Retry-After"))
	if err != nil || ra < 1 || time.Duration(ra)*time.Second > max+time.Second {
		t.Fatalf("%s: Retry-After %q, want 1..%v seconds", what, h.Get("Retry-After"), max)
	}
	if ct := h.Get("Content-Type"); !strings.HasPrefix(ct, "application/problem+json") {
		t.Fatalf("%s: content type %q", what, ct)
	}
}

func tryLogin(t *testing.T, n *testenv.Node, username, password string, hdr map[string]string) (int, http.Header, problem) {
	t.Helper()
	return callH(t, n, "POST", "/api/v1/auth/login", "", map[string]string{"username": username, "password": password}, hdr)
}

// TestRateLimitLoginSharedAcrossNodes: ten login attempts for one username
// within the minute pass (wrong passwords get 401), spread over two nodes;
// the eleventh gets 429 with Retry-After on either node, even with the
// right password, and the refusal is counted in the node's metrics.
func TestRateLimitLoginSharedAcrossNodes(t *testing.T) {
	env := testenv.Open(t)
	env.Worker(t, nil)
	u := env.StartNode(t, testenv.NodeConfig{}).SignUp(t, "rlogin") // signed up (and logged in) without limits
	cfg := testenv.RateLimitConfig()
	na := env.StartNode(t, testenv.NodeConfig{RateLimit: &cfg})
	nb := env.StartNode(t, testenv.NodeConfig{RateLimit: &cfg})
	for i := range 10 {
		n := na
		if i%2 == 1 {
			n = nb
		}
		if st, _, p := tryLogin(t, n, u.Username, "wrong-password", nil); st != 401 || p.Code != "invalid_credentials" {
			t.Fatalf("attempt %d: %d %+v", i+1, st, p)
		}
	}
	for _, n := range []*testenv.Node{na, nb} {
		st, h, p := tryLogin(t, n, u.Username, u.Password, nil)
		assertLimited(t, "11th login", st, h, p, 6*time.Second) // 10/min: one more every 6 s
	}
	// The limit is the username's: another user from the same address logs in.
	v := env.StartNode(t, testenv.NodeConfig{}).SignUp(t, "rlogin2")
	if st, _, p := tryLogin(t, na, v.Username, v.Password, nil); st != 200 {
		t.Fatalf("another username is throttled too: %d %+v", st, p)
	}
	m, ok := metrics(t, na)
	if !ok || m[`chatflow_rate_limited_total{limit="login_user"}`] != 1 {
		t.Fatalf("refusal metric on node a: %v", m[`chatflow_rate_limited_total{limit="login_user"}`])
	}
}

// TestRateLimitLoginPerAddress: login attempts are limited per client
// address too, whatever the usernames; behind a trusted proxy the address
// is the X-Forwarded-For client, from anyone else the header is ignored.
func TestRateLimitLoginPerAddress(t *testing.T) {
	env := testenv.Open(t)
	proxied := testenv.RateLimitConfig()
	proxied.LoginUser, proxied.LoginIP = ratelimit.Rule{}, ratelimit.Per(3, time.Minute)
	proxied.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	np := env.StartNode(t, testenv.NodeConfig{RateLimit: &proxied})
	xff := func(ip string) map[string]string { return map[string]string{"X-Forwarded-For": ip} }
	for i := range 3 {
		if st, _, _ := tryLogin(t, np, "nobody_"+testenv.Unique(), "pw", xff("198.51.100.1")); st != 401 {
			t.Fatalf("attempt %d from .1: %d", i+1, st)
		}
	}
	st, h, p := tryLogin(t, np, "nobody_"+testenv.Unique(), "pw", xff("198.51.100.1"))
	assertLimited(t, "4th attempt from one address", st, h, p, 20*time.Second)
	// another client behind the same proxy is not affected
	if st, _, _ := tryLogin(t, np, "nobody_"+testenv.Unique(), "pw", xff("198.51.100.2")); st != 401 {
		t.Fatalf("another client behind the proxy: %d", st)
	}

	// A node that trusts no proxy keys on the TCP peer: a forged header
	// does not buy a fresh budget.
	direct := testenv.RateLimitConfig()
	direct.LoginUser, direct.LoginIP = ratelimit.Rule{}, ratelimit.Per(3, time.Minute)
	nd := env.StartNode(t, testenv.NodeConfig{RateLimit: &direct})
	for i := range 3 {
		if st, _, _ := tryLogin(t, nd, "nobody_"+testenv.Unique(), "pw", xff("203.0.113."+strconv.Itoa(i))); st != 401 {
			t.Fatalf("attempt %d: %d", i+1, st)
		}
	}
	st, h, p = tryLogin(t, nd, "nobody_"+testenv.Unique(), "pw", xff("203.0.113.99"))
	assertLimited(t, "forged X-Forwarded-For", st, h, p, 20*time.Second)
}

// TestRateLimitSignupPerAddress: sign-ups are limited per client address
// before any hash is computed or saga started.
func TestRateLimitSignupPerAddress(t *testing.T) {
	env := testenv.Open(t)
	env.Worker(t, nil)
	cfg := testenv.RateLimitConfig()
	cfg.SignupIP = ratelimit.Per(2, time.Hour)
	n := env.StartNode(t, testenv.NodeConfig{RateLimit: &cfg})
	n.SignUp(t, "rsig")
	n.SignUp(t, "rsig")
	name := "rsig_" + testenv.Unique()
	st, h, p := callH(t, n, "POST", "/api/v1/signup", "", map[string]string{
		"username": name, "email": name + "@example.test", "password": "password-" + testenv.Unique(), "display_name": "R",
	}, nil)
	assertLimited(t, "3rd sign-up", st, h, p, 30*time.Minute)
	// no user was created for the refused sign-up
	var exists bool
	if err := env.Pool.QueryRow(t.Context(), `SELECT EXISTS (SELECT 1 FROM auth.users WHERE username = $1)`, name).Scan(&exists); err != nil || exists {
		t.Fatalf("refused sign-up left a user: %v %v", exists, err)
	}
}

// TestRateLimitSends: REST sends and WebSocket sends are limited per user;
// the WebSocket limit covers all of the user's sockets on every node, and
// a refused send gets an error frame rate_limited with retry_after.
func TestRateLimitSends(t *testing.T) {
	env := testenv.Open(t)
	env.Worker(t, nil)
	cfg := testenv.RateLimitConfig()
	cfg.RESTSend = ratelimit.Rule{Rate: 1, Period: time.Minute, Burst: 3}
	cfg.WSSend = ratelimit.Rule{Rate: 1, Period: time.Minute, Burst: 3}
	na := env.StartNode(t, testenv.NodeConfig{RateLimit: &cfg})
	nb := env.StartNode(t, testenv.NodeConfig{RateLimit: &cfg})
	a := na.SignUp(t, "rsend")
	room := na.CreateRoom(t, a)

	for i := 1; i <= 3; i++ {
		if st, m := restSend(t, na, a, room, "rest-"+strconv.Itoa(i), "hi"); st != 201 || m.Seq != int64(i) {
			t.Fatalf("REST send %d: %d %+v", i, st, m)
		}
	}
	st, h, p := callH(t, nb, "POST", "/api/v1/rooms/"+room+"/messages", a.Access, map[string]string{"client_msg_id": "rest-4", "body": "hi"}, nil)
	assertLimited(t, "4th REST send (other node)", st, h, p, 60*time.Second)

	// WebSocket: its own budget, shared by the user's sockets on both nodes
	w1, w2 := connect(t, na, a), connect(t, nb, a)
	for i, w := range []*wsClient{w1, w1, w2} {
		cmid := "ws-" + strconv.Itoa(i+1)
		w.sendMsg(room, cmid, "hello")
		if f := w.must(5*time.Second, ackFor(cmid), "ack"); f.Type() != "ack" || f.Int("seq") != int64(4+i) {
			t.Fatalf("WS send %d: %v", i+1, f)
		}
	}
	w2.sendMsg(room, "ws-4", "hello")
	f := w2.must(5*time.Second, ackFor("ws-4"), "answer to the 4th send")
	if f.Type() != "error" || f.Str("code") != "rate_limited" || f.Int("retry_after") < 1 || f.Int("retry_after") > 61 {
		t.Fatalf("4th WS send: %v", f)
	}
	// the connection stays usable, and nothing was sequenced for the refused sends
	w2.barrier(5 * time.Second)
	var hist history
	if st := na.Call(t, "GET", "/api/v1/rooms/"+room+"/messages", a.Access, nil, &hist); st != 200 || len(hist.Messages) != 6 {
		t.Fatalf("history after refused sends: %d %v", st, seqsOf(hist.Messages))
	}
}

// TestRateLimitConnectionsPerUser: a user's open sockets are capped over
// all nodes; past the cap the upgrade is refused with 429 and Retry-After,
// and closing a socket frees its slot.
func TestRateLimitConnectionsPerUser(t *testing.T) {
	env := testenv.Open(t)
	env.Worker(t, nil)
	cfg := testenv.RateLimitConfig()
	cfg.MaxConns = 2
	na := env.StartNode(t, testenv.NodeConfig{RateLimit: &cfg})
	nb := env.StartNode(t, testenv.NodeConfig{RateLimit: &cfg})
	a := na.SignUp(t, "rconn")
	c1 := connect(t, na, a)
	connect(t, nb, a)
	dial := func(n *testenv.Node) (*websocket.Conn, *http.Response, error) {
		return websocket.DefaultDialer.Dial("ws://"+n.Addr+"/ws?access_token="+a.Access, nil)
	}
	_, resp, err := dial(na)
	if err == nil || resp == nil {
		t.Fatalf("third socket was accepted (err %v)", err)
	}
	var p problem
	b, _ := io.ReadAll(resp.Body)
	_ = json.Unmarshal(b, &p)
	assertLimited(t, "third socket", resp.StatusCode, resp.Header, p, 10*time.Second)

	c1.conn.Close()
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, _, err := dial(na)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("closing a socket did not free its slot: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestRateLimitRoomsAndInvites: room creations and named users are limited
// per user.
func TestRateLimitRoomsAndInvites(t *testing.T) {
	env := testenv.Open(t)
	env.Worker(t, nil)
	cfg := testenv.RateLimitConfig()
	cfg.RoomCreate = ratelimit.Per(2, 24*time.Hour)
	cfg.Invite = ratelimit.Per(3, time.Hour)
	n := env.StartNode(t, testenv.NodeConfig{RateLimit: &cfg})
	a, b, c, d, e := n.SignUp(t, "rri"), n.SignUp(t, "rri"), n.SignUp(t, "rri"), n.SignUp(t, "rri"), n.SignUp(t, "rri")
	room := n.CreateRoom(t, a, b, c) // two named users
	n.CreateRoom(t, a)
	st, h, p := callH(t, n, "POST", "/api/v1/rooms", a.Access, map[string]any{"name": "third", "member_ids": []string{}}, nil)
	assertLimited(t, "3rd room in a day", st, h, p, 24*time.Hour)

	// one named user left in the invite budget
	if st := n.Call(t, "POST", "/api/v1/rooms/"+room+"/members", a.Access, map[string]any{"user_ids": []string{d.ID}}, nil); st != 200 {
		t.Fatalf("invite within the budget: %d", st)
	}
	st, h, p = callH(t, n, "POST", "/api/v1/rooms/"+room+"/members", a.Access, map[string]any{"user_ids": []string{e.ID}}, nil)
	assertLimited(t, "invite past the budget", st, h, p, time.Hour)
	// another member's budget is their own
	if st := n.Call(t, "POST", "/api/v1/rooms/"+room+"/members", b.Access, map[string]any{"user_ids": []string{e.ID}}, nil); st != 200 {
		t.Fatalf("another member invites: %d", st)
	}
}

// TestRateLimitSearch: searches are charged per user across nodes; past the
// burst the next search is 429 with Retry-After, another user still
// searches, and a refused search costs nothing extra.
func TestRateLimitSearch(t *testing.T) {
	env := testenv.Open(t)
	env.Worker(t, nil)
	cfg := testenv.RateLimitConfig()
	cfg.Search = ratelimit.Rule{Rate: 1, Period: time.Minute, Burst: 3}
	na := env.StartNode(t, testenv.NodeConfig{RateLimit: &cfg})
	nb := env.StartNode(t, testenv.NodeConfig{RateLimit: &cfg})
	a, b := na.SignUp(t, "rsearch"), na.SignUp(t, "rsearch2")
	for i := 1; i <= 3; i++ {
		if st, h, p := callH(t, []*testenv.Node{na, nb}[i%2], "GET", "/api/v1/search?q=hello", a.Access, nil, nil); st != 200 {
			t.Fatalf("search %d: %d %v %+v", i, st, h, p)
		}
	}
	st, h, p := callH(t, nb, "GET", "/api/v1/search?q=hello", a.Access, nil, nil)
	assertLimited(t, "4th search (other node)", st, h, p, 60*time.Second)
	if st, _, p := callH(t, na, "GET", "/api/v1/search?q=hello", b.Access, nil, nil); st != 200 {
		t.Fatalf("another user's search: %d %+v", st, p)
	}
}
