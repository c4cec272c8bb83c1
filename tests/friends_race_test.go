package tests

import (
	"sync"
	"testing"

	"github.com/chatflow/chatflow/internal/testenv"
)

// friendInvariants checks, in Postgres, the friendship rows among users:
// every friend row has its reverse, no pair is both friends and pending,
// no pair has requests both ways, and no pair with a block (either way)
// is friends or pending.
func friendInvariants(t *testing.T, env *testenv.Env, users ...testenv.User) {
	t.Helper()
	ids := make([]string, len(users))
	for i, u := range users {
		ids[i] = u.ID
	}
	checks := []struct{ what, sql string }{
		{"friend rows without their reverse", `SELECT count(*) FROM chat.friends f
			WHERE f.user_id = ANY($1::uuid[])
			  AND NOT EXISTS (SELECT 1 FROM chat.friends r WHERE r.user_id = f.friend_id AND r.friend_id = f.user_id)`},
		{"pairs both friends and pending", `SELECT count(*) FROM chat.friend_requests q
			JOIN chat.friends f ON f.user_id = q.from_id AND f.friend_id = q.to_id
			WHERE q.from_id = ANY($1::uuid[])`},
		{"pairs with requests both ways", `SELECT count(*) FROM chat.friend_requests q
			JOIN chat.friend_requests r ON r.from_id = q.to_id AND r.to_id = q.from_id
			WHERE q.from_id = ANY($1::uuid[])`},
		{"blocked pairs that are friends", `SELECT count(*) FROM chat.friends f
			JOIN chat.blocks b ON (b.user_id = f.user_id AND b.blocked_id = f.friend_id) OR (b.user_id = f.friend_id AND b.blocked_id = f.user_id)
			WHERE f.user_id = ANY($1::uuid[])`},
		{"blocked pairs with a pending request", `SELECT count(*) FROM chat.friend_requests q
			JOIN chat.blocks b ON (b.user_id = q.from_id AND b.blocked_id = q.to_id) OR (b.user_id = q.to_id AND b.blocked_id = q.from_id)
			WHERE q.from_id = ANY($1::uuid[]) OR q.to_id = ANY($1::uuid[])`},
	}
	for _, c := range checks {
		var n int
		if err := env.Pool.QueryRow(t.Context(), c.sql, ids).Scan(&n); err != nil {
			t.Fatalf("%s: %v", c.what, err)
		}
		if n != 0 {
			t.Fatalf("invariant broken: %d %s", n, c.what)
		}
	}
}

// pairRows counts the friend rows and the pending requests between a and b.
func pairRows(t *testing.T, env *testenv.Env, a, b testenv.User) (friends, requests int) {
	t.Helper()
	err := env.Pool.QueryRow(t.Context(), `SELECT
		(SELECT count(*) FROM chat.friends WHERE (user_id = $1 AND friend_id = $2) OR (user_id = $2 AND friend_id = $1)),
		(SELECT count(*) FROM chat.friend_requests WHERE (from_id = $1 AND to_id = $2) OR (from_id = $2 AND to_id = $1))`,
		a.ID, b.ID).Scan(&friends, &requests)
	if err != nil {
		t.Fatal(err)
	}
	return friends, requests
}

// race runs the calls at the same moment (as far as goroutines allow) and
// returns their statuses in order; a transport error is status -1.
func race(n *testenv.Node, calls ...func(*testenv.Node) (acctResp, error)) []int {
	out := make([]int, len(calls))
	var ready, done sync.WaitGroup
	start := make(chan struct{})
	for i, call := range calls {
		ready.Add(1)
		done.Add(1)
		go func() {
			defer done.Done()
			ready.Done()
			<-start
			r, err := call(n)
			out[i] = r.Status
			if err != nil {
				out[i] = -1
			}
		}()
	}
	ready.Wait()
	close(start)
	done.Wait()
	return out
}

func call(method, path, tok string, body any) func(*testenv.Node) (acctResp, error) {
	return func(n *testenv.Node) (acctResp, error) { return acctDo(n, method, path, tok, body) }
}

// TestFriendRequestRaces: two users asking each other at the same moment
// end as friends (one request, one acceptance), never as requests both
// ways; accept racing cancel, and accept or a request racing a block, end
// consistent.
func TestFriendRequestRaces(t *testing.T) {
	env := testenv.Open(t)
	env.Worker(t, nil)
	n := env.StartNode(t, testenv.NodeConfig{})
	a, b := n.SignUp(t, "fra"), n.SignUp(t, "frb")
	const iterations = 20

	for it := range iterations {
		st := race(n,
			call("POST", "/api/v1/friends/requests", a.Access, map[string]string{"user_id": b.ID}),
			call("POST", "/api/v1/friends/requests", b.Access, map[string]string{"user_id": a.ID}))
		if !(st[0] == 201 && st[1] == 200 || st[0] == 200 && st[1] == 201) {
			t.Fatalf("iteration %d: requests both ways answered %v, want one 201 and one 200", it, st)
		}
		if f, r := pairRows(t, env, a, b); f != 2 || r != 0 {
			t.Fatalf("iteration %d: %d friend rows, %d requests after asking each other", it, f, r)
		}
		friendInvariants(t, env, a, b)
		if r := acctCall(t, n, "DELETE", "/api/v1/friends/"+b.ID, a.Access, nil, nil); r.Status != 204 {
			t.Fatalf("iteration %d: unfriend: %d", it, r.Status)
		}
	}

	accepted := 0
	for it := range iterations {
		if r := acctCall(t, n, "POST", "/api/v1/friends/requests", a.Access, map[string]string{"user_id": b.ID}, nil); r.Status != 201 {
			t.Fatalf("iteration %d: request: %d %s", it, r.Status, r.Body)
		}
		st := race(n,
			call("POST", "/api/v1/friends/requests/"+a.ID+"/accept", b.Access, nil),
			call("DELETE", "/api/v1/friends/requests/"+b.ID, a.Access, nil))
		f, r := pairRows(t, env, a, b)
		switch {
		case st[0] == 200 && st[1] == 404:
			accepted++
			if f != 2 || r != 0 {
				t.Fatalf("iteration %d: accept won but %d friend rows, %d requests", it, f, r)
			}
			if r := acctCall(t, n, "DELETE", "/api/v1/friends/"+a.ID, b.Access, nil, nil); r.Status != 204 {
				t.Fatalf("iteration %d: unfriend: %d", it, r.Status)
			}
		case st[0] == 404 && st[1] == 204:
			if f != 0 || r != 0 {
				t.Fatalf("iteration %d: cancel won but %d friend rows, %d requests", it, f, r)
			}
		default:
			t.Fatalf("iteration %d: accept and cancel answered %v", it, st)
		}
		friendInvariants(t, env, a, b)
	}
	t.Logf("accept vs cancel: accept won %d of %d", accepted, iterations)

	for it := range iterations {
		if r := acctCall(t, n, "POST", "/api/v1/friends/requests", a.Access, map[string]string{"user_id": b.ID}, nil); r.Status != 201 {
			t.Fatalf("iteration %d: request: %d %s", it, r.Status, r.Body)
		}
		st := race(n,
			call("POST", "/api/v1/friends/requests/"+a.ID+"/accept", b.Access, nil),
			call("POST", "/api/v1/users/"+b.ID+"/block", a.Access, nil))
		if (st[0] != 200 && st[0] != 404) || st[1] != 204 {
			t.Fatalf("iteration %d: accept and block answered %v", it, st)
		}
		if f, r := pairRows(t, env, a, b); f != 0 || r != 0 {
			t.Fatalf("iteration %d: after a block %d friend rows, %d requests (accept %d)", it, f, r, st[0])
		}
		friendInvariants(t, env, a, b)
		if r := acctCall(t, n, "DELETE", "/api/v1/users/"+b.ID+"/block", a.Access, nil, nil); r.Status != 204 {
			t.Fatalf("iteration %d: unblock: %d", it, r.Status)
		}
	}

	// a request racing a block by its recipient: refused, or dropped by the block
	for it := range iterations {
		st := race(n,
			call("POST", "/api/v1/friends/requests", a.Access, map[string]string{"user_id": b.ID}),
			call("POST", "/api/v1/users/"+a.ID+"/block", b.Access, nil))
		if (st[0] != 201 && st[0] != 403) || st[1] != 204 {
			t.Fatalf("iteration %d: request and block answered %v", it, st)
		}
		if f, r := pairRows(t, env, a, b); f != 0 || r != 0 {
			t.Fatalf("iteration %d: after a block %d friend rows, %d requests (request %d)", it, f, r, st[0])
		}
		friendInvariants(t, env, a, b)
		if r := acctCall(t, n, "DELETE", "/api/v1/users/"+a.ID+"/block", b.Access, nil, nil); r.Status != 204 {
			t.Fatalf("iteration %d: unblock: %d", it, r.Status)
		}
	}
}
