package tests

import (
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/chatflow/chatflow"
	"github.com/chatflow/chatflow/internal/testenv"
)

// Tests of issue 10's session controls (SECURITY.md, part 3).

func sessionEvent(event string) func(testenv.Frame) bool {
	return func(f testenv.Frame) bool { return f.Type() == "session" && f.Str("event") == event }
}

// closedWithin asserts that the client's connection ends within timeout.
func (c *wsClient) closedWithin(timeout time.Duration) {
	c.t.Helper()
	select {
	case <-c.done:
	case <-time.After(timeout):
		c.t.Fatalf("%s: socket still open after %v", c.name, timeout)
	}
}

// as returns u holding another access token.
func as(u testenv.User, access string) testenv.User { u.Access = access; return u }

// TestSessionExpiredTokenClosesSocket: a socket ends when its access token
// expires, after a delivered {"type":"session","event":"expired"} frame. An
// auth frame with another user's token, or an invalid one, gets an error
// frame and extends nothing.
func TestSessionExpiredTokenClosesSocket(t *testing.T) {
	env := testenv.Open(t)
	env.Worker(t, nil)
	n := env.StartNode(t, testenv.NodeConfig{AccessTTL: 4 * time.Second})
	u, other := n.SignUp(t, "sexp"), n.SignUp(t, "sexpo")
	n.Login(t, &u)
	n.Login(t, &other)
	opened := time.Now()
	c := connect(t, n, u)

	c.send(map[string]any{"type": "auth", "access_token": other.Access})
	if f := c.must(5*time.Second, ofType("error"), "error for another user's token"); f.Str("code") != chatflow.ECodeForbidden || f.Str("ref") != "auth" {
		t.Fatalf("auth with another user's token: %v", f)
	}
	c.send(map[string]any{"type": "auth", "access_token": u.Access + "x"})
	if f := c.must(5*time.Second, ofType("error"), "error for a tampered token"); f.Str("code") != chatflow.ECodeInvalidToken {
		t.Fatalf("auth with a tampered token: %v", f)
	}
	c.send(map[string]any{"type": "auth", "access_token": "not-a-jwt"})
	if f := c.must(5*time.Second, ofType("error"), "error for garbage"); f.Str("code") != chatflow.ECodeInvalidToken {
		t.Fatalf("auth with garbage: %v", f)
	}
	c.barrier(5 * time.Second) // still open before the expiry

	c.must(10*time.Second, sessionEvent("expired"), "session expired frame")
	if waited := time.Since(opened); waited > 6*time.Second {
		t.Fatalf("expired frame after %v; the token lived at most 4s", waited)
	}
	c.closedWithin(5 * time.Second)

	// A fresh token opens a new socket.
	n.Login(t, &u)
	o := connect(t, n, u)
	o.barrier(5 * time.Second)
}

// TestSessionAuthFrameExtends: a fresh access token of the same user in an
// auth frame moves the socket's end to that token's expiry.
func TestSessionAuthFrameExtends(t *testing.T) {
	env := testenv.Open(t)
	env.Worker(t, nil)
	n := env.StartNode(t, testenv.NodeConfig{AccessTTL: 4 * time.Second})
	u := n.SignUp(t, "sauth")
	n.Login(t, &u)
	first := time.Now()
	c := connect(t, n, u)

	time.Sleep(2 * time.Second)
	fresh := u
	n.Login(t, &fresh) // a new token, 4s from now
	renewedAt := time.Now()
	c.send(map[string]any{"type": "auth", "access_token": fresh.Access})
	f := c.must(5*time.Second, sessionEvent("renewed"), "renewed frame")
	if exp, err := time.Parse(time.RFC3339, f.Str("expires_at")); err != nil || exp.Before(renewedAt.Add(2*time.Second)) {
		t.Fatalf("renewed frame: %v (expires_at %v, %v)", f, exp, err)
	}
	// Past the first token's expiry the socket still works.
	time.Sleep(time.Until(first.Add(5 * time.Second)))
	c.send(map[string]any{"type": "ping"})
	c.must(5*time.Second, ofType("pong"), "pong after the first token expired")

	// ...and it ends with the renewed token.
	c.must(10*time.Second, sessionEvent("expired"), "expired frame of the renewed token")
	if at := time.Since(renewedAt); at < 2*time.Second {
		t.Fatalf("renewed socket expired after %v, before its new token", at)
	}
	c.closedWithin(5 * time.Second)
}

// TestSessionRefreshReuseClosesThiefSocket: a replayed refresh token (past
// the grace window) revokes the family, and every socket of that family
// is closed, on every node, after a delivered session frame. The user's
// other sessions stay connected.
func TestSessionRefreshReuseClosesThiefSocket(t *testing.T) {
	env := testenv.Open(t)
	env.Worker(t, nil)
	grace := 500 * time.Millisecond
	n1 := env.StartNode(t, testenv.NodeConfig{RefreshGrace: grace})
	n2 := env.StartNode(t, testenv.NodeConfig{RefreshGrace: grace})
	u := n1.SignUp(t, "sreuse")
	other := u
	n1.Login(t, &other) // another device: a family of its own

	// The thief uses the stolen refresh token first, on node 2.
	r, stolen := refresh(t, n2, u.Refresh)
	if r.Status != 200 {
		t.Fatalf("thief's refresh: %d %s", r.Status, r.Body)
	}
	thief := connect(t, n2, as(u, stolen.AccessToken))
	victim := connect(t, n1, u)
	bystander := connect(t, n2, other)

	// The real client refreshes with the same token after the window: reuse.
	time.Sleep(2 * grace)
	r, _ = refresh(t, n1, u.Refresh)
	wantProblem(t, "replayed refresh token", r, 401, chatflow.ECodeTokenReused)

	for _, c := range []*wsClient{thief, victim} {
		c.must(5*time.Second, sessionEvent("revoked"), "session revoked frame")
		c.closedWithin(5 * time.Second)
	}
	bystander.barrier(5 * time.Second)
	if f := bystander.drain(300 * time.Millisecond); len(f) != 0 {
		for _, x := range f {
			if x.Type() == "session" {
				t.Fatalf("the other session's socket got %v", x)
			}
		}
	}
	// The family's tokens no longer open sockets.
	if st := acctCall(t, n2, "GET", "/api/v1/me", stolen.AccessToken, nil, nil).Status; st != 401 {
		t.Fatalf("thief's access token after the revocation: %d", st)
	}
}

// TestSessionLogoutDeliversFrame: logout closes the session's sockets on
// every node, and each gets the session frame before the close.
func TestSessionLogoutDeliversFrame(t *testing.T) {
	env := testenv.Open(t)
	env.Worker(t, nil)
	n1 := env.StartNode(t, testenv.NodeConfig{})
	n2 := env.StartNode(t, testenv.NodeConfig{})
	u := n1.SignUp(t, "slogo")
	a, b := connect(t, n1, u), connect(t, n2, u)
	if r := acctCall(t, n2, "POST", "/api/v1/auth/logout", u.Access, nil, nil); r.Status != 204 {
		t.Fatalf("logout: %d %s", r.Status, r.Body)
	}
	for _, c := range []*wsClient{a, b} {
		c.must(5*time.Second, sessionEvent("revoked"), "session revoked frame")
		c.closedWithin(5 * time.Second)
	}
}

// TestSessionConcurrentRefreshGrace: two tabs refreshing with the same
// refresh token at once (here on two nodes) both succeed with the same new
// pair, and the session lives on.
func TestSessionConcurrentRefreshGrace(t *testing.T) {
	env := testenv.Open(t)
	env.Worker(t, nil)
	n1 := env.StartNode(t, testenv.NodeConfig{})
	n2 := env.StartNode(t, testenv.NodeConfig{})
	u := n1.SignUp(t, "sgrace")
	ws := connect(t, n1, u)

	const tabs = 4
	var wg sync.WaitGroup
	res := make([]acctResp, tabs)
	pairs := make([]tokenPair, tabs)
	errs := make([]error, tabs)
	for i := range tabs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n := []*testenv.Node{n1, n2}[i%2]
			res[i], errs[i] = acctDo(n, "POST", "/api/v1/auth/refresh", "", map[string]string{"refresh_token": u.Refresh})
		}()
	}
	wg.Wait()
	for i := range tabs {
		if errs[i] != nil || res[i].Status != 200 {
			t.Fatalf("tab %d: %v %d %s", i, errs[i], res[i].Status, res[i].Body)
		}
		if err := json.Unmarshal(res[i].Body, &pairs[i]); err != nil {
			t.Fatal(err)
		}
		if pairs[i] != pairs[0] {
			t.Fatalf("tab %d got another pair than tab 0", i)
		}
	}
	// Not revoked: the old and new access tokens work, the socket is open,
	// and the new refresh token rotates.
	for _, tok := range []string{u.Access, pairs[0].AccessToken} {
		if r := acctCall(t, n2, "GET", "/api/v1/me", tok, nil, nil); r.Status != 200 {
			t.Fatalf("me after concurrent refreshes: %d %s", r.Status, r.Body)
		}
	}
	ws.barrier(5 * time.Second)
	if r, _ := refresh(t, n1, pairs[0].RefreshToken); r.Status != 200 {
		t.Fatalf("refresh with the new token: %d %s", r.Status, r.Body)
	}
}
