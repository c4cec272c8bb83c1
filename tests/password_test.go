package tests

import (
	"context"
	"encoding/json"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/chatflow/chatflow"
	"github.com/chatflow/chatflow/internal/testenv"
)

// Tests of issue 11's password change (POST /me/password).

func changePassword(t *testing.T, n *testenv.Node, u testenv.User, current, next string) acctResp {
	t.Helper()
	return acctCall(t, n, "POST", "/api/v1/me/password", u.Access, map[string]string{"current_password": current, "new_password": next}, nil)
}

// TestPasswordChangeRevokesOtherSessions: two sessions (two logins), each
// with an open socket on its own node. A wrong current password is 401
// invalid_credentials and a short new one 422, changing nothing. Changing it
// from session A ends session B at once (access token, refresh token and
// socket, which gets a "session revoked" frame), while session A goes on;
// the old password no longer logs in, the new one does.
func TestPasswordChangeRevokesOtherSessions(t *testing.T) {
	env := testenv.Open(t)
	env.Worker(t, nil)
	n1 := env.StartNode(t, testenv.NodeConfig{})
	n2 := env.StartNode(t, testenv.NodeConfig{})
	a := n1.SignUp(t, "pwchg") // session A
	b := a
	n2.Login(t, &b) // session B: another device
	wsA, wsB := connect(t, n1, a), connect(t, n2, b)

	wantProblem(t, "wrong current password", changePassword(t, n1, a, "not-the-password", "a-new-password-1"), 401, chatflow.ECodeInvalidCredentials)
	wantProblem(t, "short new password", changePassword(t, n1, a, a.Password, "short"), 422, chatflow.ECodeValidation)
	wantProblem(t, "missing current password", changePassword(t, n1, a, "", "a-new-password-1"), 422, chatflow.ECodeValidation)
	wantProblem(t, "no body", acctCall(t, n1, "POST", "/api/v1/me/password", a.Access, nil, nil), 422, chatflow.ECodeValidation)
	wantProblem(t, "no token", acctCall(t, n1, "POST", "/api/v1/me/password", "", map[string]string{"current_password": a.Password, "new_password": "a-new-password-1"}, nil), 401, chatflow.ECodeUnauthorized)
	if r := acctCall(t, n2, "GET", "/api/v1/me", b.Access, nil, nil); r.Status != 200 {
		t.Fatalf("refused changes ended session B: %d %s", r.Status, r.Body)
	}

	const newPassword = "a-new-password-1"
	if r := changePassword(t, n1, a, a.Password, newPassword); r.Status != 204 {
		t.Fatalf("change password: %d %s", r.Status, r.Body)
	}
	wsB.must(5*time.Second, sessionEvent("revoked"), "session B's revoked frame")
	wsB.closedWithin(5 * time.Second)
	wantProblem(t, "session B's access token", acctCall(t, n2, "GET", "/api/v1/me", b.Access, nil, nil), 401, chatflow.ECodeInvalidToken)
	r, _ := refresh(t, n2, b.Refresh)
	wantProblem(t, "session B's refresh token", r, 401, chatflow.ECodeInvalidToken)

	// Session A lives on: its socket got nothing, its tokens work.
	for _, f := range wsA.barrier(5 * time.Second) {
		if f.Type() == "session" {
			t.Fatalf("session A's socket got %v", f)
		}
	}
	if r := acctCall(t, n1, "GET", "/api/v1/me", a.Access, nil, nil); r.Status != 200 {
		t.Fatalf("session A's access token: %d %s", r.Status, r.Body)
	}
	if r, _ := refresh(t, n1, a.Refresh); r.Status != 200 {
		t.Fatalf("session A's refresh token: %d %s", r.Status, r.Body)
	}

	r, _ = login(t, n1, a.Username, a.Password)
	wantProblem(t, "login with the old password", r, 401, chatflow.ECodeInvalidCredentials)
	if r, _ := login(t, n2, a.Username, newPassword); r.Status != 200 {
		t.Fatalf("login with the new password: %d %s", r.Status, r.Body)
	}
	var changedAt *time.Time
	if err := env.Pool.QueryRow(context.Background(), `SELECT password_changed_at FROM auth.users WHERE id = $1`, a.ID).Scan(&changedAt); err != nil || changedAt == nil {
		t.Fatalf("password_changed_at: %v %v", changedAt, err)
	}
}

// TestPasswordChangeRacesLogins: logins with the old password run
// concurrently with the change, on two nodes. Whatever they got before it
// answered, no session obtained with the old password survives it: every
// such access token is refused and every refresh token too (a login that
// read the old hash before the change gets no session: token.IssueAfter).
func TestPasswordChangeRacesLogins(t *testing.T) {
	env := testenv.Open(t)
	env.Worker(t, nil)
	n1 := env.StartNode(t, testenv.NodeConfig{})
	n2 := env.StartNode(t, testenv.NodeConfig{})
	u := n1.SignUp(t, "pwrace")
	slowHash(t, env, u)
	stop := raceLogins(t, []*testenv.Node{n1, n2}, u.Username, u.Password)
	time.Sleep(300 * time.Millisecond) // let logins run before and during the change
	if r := changePassword(t, n1, u, u.Password, "the-new-password"); r.Status != 204 {
		t.Fatalf("change password: %d %s", r.Status, r.Body)
	}
	time.Sleep(100 * time.Millisecond)
	got := stop()
	if len(got) == 0 {
		t.Fatal("no login succeeded before the change: the race was not run")
	}
	assertSessionsDead(t, n2, got, "old-password session")
	t.Logf("%d old-password sessions, none survived", len(got))
}

// slowHash stores u's password with bcrypt cost 10 instead of the test
// nodes' 4, so that each login spends tens of milliseconds between reading
// the hash and issuing its session: a race with a revocation then has a
// window wide enough to be hit.
func slowHash(t *testing.T, env *testenv.Env, u testenv.User) {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(u.Password), 10)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := env.Pool.Exec(context.Background(), `UPDATE auth.users SET password_hash = $2 WHERE id = $1`, u.ID, string(h)); err != nil {
		t.Fatal(err)
	}
}

// raceLogins logs in as username with password in a loop on the nodes (4
// goroutines) until stop; stop answers the pairs that logins got.
func raceLogins(t *testing.T, nodes []*testenv.Node, username, password string) (stop func() []tokenPair) {
	t.Helper()
	var (
		mu    sync.Mutex
		pairs []tokenPair
		wg    sync.WaitGroup
		done  atomic.Bool
	)
	for i := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !done.Load() {
				r, err := acctDo(nodes[i%len(nodes)], "POST", "/api/v1/auth/login", "", map[string]string{"username": username, "password": password})
				if err != nil || r.Status != 200 {
					continue
				}
				var p tokenPair
				if json.Unmarshal(r.Body, &p) == nil {
					mu.Lock()
					pairs = append(pairs, p)
					mu.Unlock()
				}
			}
		}()
	}
	var once sync.Once
	stop = func() []tokenPair {
		once.Do(func() { done.Store(true); wg.Wait() })
		mu.Lock()
		defer mu.Unlock()
		return pairs
	}
	t.Cleanup(func() { stop() })
	return stop
}

// assertSessionsDead checks that every pair's access and refresh tokens are
// refused.
func assertSessionsDead(t *testing.T, n *testenv.Node, pairs []tokenPair, what string) {
	t.Helper()
	for i, p := range pairs {
		if r := acctCall(t, n, "GET", "/api/v1/me", p.AccessToken, nil, nil); r.Status != 401 {
			t.Fatalf("%s %d of %d: access token answers %d", what, i+1, len(pairs), r.Status)
		}
		if r, _ := refresh(t, n, p.RefreshToken); r.Status != 401 {
			t.Fatalf("%s %d of %d: refresh token answers %d", what, i+1, len(pairs), r.Status)
		}
	}
}

// TestPasswordChangeChargesLoginLimit: wrong current passwords count
// against the same per-username limit as logins (10 a minute), so a stolen
// access token is no faster a way to guess the password: the 11th attempt is
// 429 even with the right password, and so is a login.
func TestPasswordChangeChargesLoginLimit(t *testing.T) {
	env := testenv.Open(t)
	env.Worker(t, nil)
	u := env.StartNode(t, testenv.NodeConfig{}).SignUp(t, "pwlimit") // signed up without limits
	cfg := testenv.RateLimitConfig()
	n := env.StartNode(t, testenv.NodeConfig{RateLimit: &cfg})
	for range 10 {
		wantProblem(t, "wrong current password", changePassword(t, n, u, "wrong-password", "another-password"), 401, chatflow.ECodeInvalidCredentials)
	}
	r := changePassword(t, n, u, u.Password, "another-password")
	wantProblem(t, "11th password change", r, 429, chatflow.ECodeRateLimited)
	if r.Header.Get("Retry-After") == "" {
		t.Fatal("429 without Retry-After")
	}
	st, h, p := tryLogin(t, n, u.Username, u.Password, nil)
	assertLimited(t, "login after 10 password guesses", st, h, p, 6*time.Second)
}
