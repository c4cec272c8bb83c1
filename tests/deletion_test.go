package tests

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/chatflow/chatflow"
	"github.com/chatflow/chatflow/internal/app"
	"github.com/chatflow/chatflow/internal/testenv"
)

// Account deletion (issue 11): DELETE /me starts the DeleteUser saga,
// GET /deletions/{id} reports it.

type deletionStarted struct {
	DeletionID string `json:"deletion_id"`
	Status     string `json:"status"`
	StatusURL  string `json:"status_url"`
}

type deletionStatus struct {
	DeletionID string `json:"deletion_id"`
	Status     string `json:"status"`
	Step       string `json:"step"`
	ErrorCode  string `json:"error_code"`
	Error      string `json:"error"`
}

// startDeletion deletes u's account and checks the 202 answer.
func startDeletion(t *testing.T, n *testenv.Node, u testenv.User) deletionStarted {
	t.Helper()
	var d deletionStarted
	r := acctCall(t, n, "DELETE", "/api/v1/me", u.Access, map[string]string{"password": u.Password}, &d)
	if r.Status != 202 {
		t.Fatalf("delete %s: %d %s", u.Username, r.Status, r.Body)
	}
	if _, err := uuid.Parse(d.DeletionID); err != nil || d.Status != chatflow.StatusRunning || d.StatusURL != "/api/v1/deletions/"+d.DeletionID {
		t.Fatalf("delete answer %s", r.Body)
	}
	if loc := r.Header.Get("Location"); loc != d.StatusURL {
		t.Fatalf("Location %q, want %q", loc, d.StatusURL)
	}
	return d
}

// deletionOf reads a deletion's status without a token.
func deletionOf(t *testing.T, n *testenv.Node, url, wait string) deletionStatus {
	t.Helper()
	var s deletionStatus
	if wait != "" {
		url += "?wait=" + wait
	}
	if r := acctCall(t, n, "GET", url, "", nil, &s); r.Status != 200 {
		t.Fatalf("deletion status: %d %s", r.Status, r.Body)
	}
	return s
}

// waitDeletion long-polls a deletion until it ends.
func waitDeletion(t *testing.T, n *testenv.Node, url string, timeout time.Duration) deletionStatus {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		s := deletionOf(t, n, url, "10s")
		if s.Status != chatflow.StatusRunning {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("deletion still running after %v: %+v", timeout, s)
		}
	}
}

// roomMessages reads a room's whole history as u.
func roomMessages(t *testing.T, n *testenv.Node, u testenv.User, room string) []chatflow.Message {
	t.Helper()
	var h struct {
		Messages []chatflow.Message `json:"messages"`
	}
	if r := acctCall(t, n, "GET", "/api/v1/rooms/"+room+"/messages?limit=100", u.Access, nil, &h); r.Status != 200 {
		t.Fatalf("history of %s: %d %s", room, r.Status, r.Body)
	}
	return h.Messages
}

// memberLeft finds the system message a deleted user left in a room.
func memberLeft(msgs []chatflow.Message, userID string) (chatflow.Message, bool) {
	for _, m := range msgs {
		if m.Kind != chatflow.KindSystem || m.SenderID != userID {
			continue
		}
		var b map[string]string
		if json.Unmarshal([]byte(m.Body), &b) == nil && b["event"] == "member_left" && b["user_id"] == userID && b["reason"] == "account_deleted" {
			return m, true
		}
	}
	return chatflow.Message{}, false
}

// signupAgain signs up username anew; it returns the answer's status and,
// for a 202, the saga's outcome.
func signupAgain(t *testing.T, n *testenv.Node, username, email string) (int, signupProgress) {
	t.Helper()
	var started struct {
		SignupID string `json:"signup_id"`
	}
	r := acctCall(t, n, "POST", "/api/v1/signup", "", signupBody(username, email), &started)
	if r.Status != 202 {
		return r.Status, signupProgress{}
	}
	return r.Status, waitSignup(t, n, started.SignupID, 60*time.Second)
}

func TestDeletionSagaDeletesTheAccount(t *testing.T) {
	env := testenv.Open(t)
	env.Worker(t, nil)
	n := env.StartNode(t, testenv.NodeConfig{})
	ctx := context.Background()
	a, b, c := n.SignUp(t, "dela"), n.SignUp(t, "delb"), n.SignUp(t, "delc")
	mine := n.CreateRoom(t, a, b)      // a created it
	theirs := n.CreateRoom(t, b, a, c) // a is a member
	if r := acctCall(t, n, "POST", "/api/v1/rooms/"+mine+"/messages", a.Access,
		map[string]string{"client_msg_id": "before-" + testenv.Unique(), "body": "hello before I go"}, nil); r.Status != 201 {
		t.Fatalf("post: %d %s", r.Status, r.Body)
	}
	// c invites a to a room of c's: a has not consented, so it is pending
	var inv struct {
		RoomID string `json:"room_id"`
	}
	if r := acctCall(t, n, "POST", "/api/v1/rooms", c.Access, map[string]any{"name": "later", "member_ids": []string{a.ID}}, &inv); r.Status != 201 {
		t.Fatalf("invite: %d %s", r.Status, r.Body)
	}
	wa, wb := connect(t, n, a), connect(t, n, b)

	// refused: wrong or missing password
	wantProblem(t, "wrong password", acctCall(t, n, "DELETE", "/api/v1/me", a.Access, map[string]string{"password": a.Password + "x"}, nil), 401, chatflow.ECodeInvalidCredentials)
	wantProblem(t, "no password", acctCall(t, n, "DELETE", "/api/v1/me", a.Access, map[string]string{}, nil), 422, chatflow.ECodeValidation)
	wantProblem(t, "no body", acctCall(t, n, "DELETE", "/api/v1/me", a.Access, nil, nil), 422, chatflow.ECodeValidation)
	wantProblem(t, "no token", acctCall(t, n, "DELETE", "/api/v1/me", "", map[string]string{"password": a.Password}, nil), 401, chatflow.ECodeUnauthorized)

	d := startDeletion(t, n, a)
	got := waitDeletion(t, n, d.StatusURL, 60*time.Second)
	if got.Status != chatflow.StatusCompleted || got.Step != chatflow.DelStepDeleteCredentials || got.ErrorCode != "" || got.DeletionID != d.DeletionID {
		t.Fatalf("deletion ended %+v", got)
	}
	wantProblem(t, "unknown deletion", acctCall(t, n, "GET", "/api/v1/deletions/"+uuid.NewString(), "", nil, nil), 404, chatflow.ECodeNotFound)

	// 1. sessions: tokens refused, the socket closed, no login
	wa.closedWithin(10 * time.Second)
	if r := acctCall(t, n, "GET", "/api/v1/me", a.Access, nil, nil); r.Status != 401 {
		t.Fatalf("old access token: %d %s", r.Status, r.Body)
	}
	if r := acctCall(t, n, "POST", "/api/v1/auth/refresh", "", map[string]string{"refresh_token": a.Refresh}, nil); r.Status != 401 {
		t.Fatalf("refresh after deletion: %d %s", r.Status, r.Body)
	}
	wantProblem(t, "login", acctCall(t, n, "POST", "/api/v1/auth/login", "", map[string]string{"username": a.Username, "password": a.Password}, nil), 401, chatflow.ECodeInvalidCredentials)

	// 2. rooms: a member_left system message in each, seen live and in
	// history, and a is no member any more; a's own message stays
	// The saga leaves the rooms in no set order, and waiting for one frame
	// skips the others: wait for both rooms' frames in one pass.
	leftSeq := map[string]int64{}
	for _, room := range []string{mine, theirs} {
		msgs := roomMessages(t, n, b, room)
		m, ok := memberLeft(msgs, a.ID)
		if !ok {
			t.Fatalf("room %s has no member_left message of %s: %+v", room, a.ID, msgs)
		}
		leftSeq[room] = m.Seq
	}
	for len(leftSeq) > 0 {
		f := wb.must(10*time.Second, func(f testenv.Frame) bool {
			seq, ok := leftSeq[f.Str("room_id")]
			return ok && f.Type() == "message" && f.Int("seq") == seq && f.Str("kind") == chatflow.KindSystem
		}, fmt.Sprintf("live member_left in %v", leftSeq))
		delete(leftSeq, f.Str("room_id"))
	}
	for _, room := range []string{mine, theirs} {
		var rv struct {
			Members []struct {
				UserID string `json:"user_id"`
			} `json:"members"`
		}
		acctCall(t, n, "GET", "/api/v1/rooms/"+room, b.Access, nil, &rv)
		for _, mem := range rv.Members {
			if mem.UserID == a.ID {
				t.Fatalf("%s still listed in room %s", a.ID, room)
			}
		}
	}
	old := false
	for _, m := range roomMessages(t, n, b, mine) {
		old = old || (m.SenderID == a.ID && m.Body == "hello before I go")
	}
	if !old {
		t.Fatal("the deleted user's message is gone from history")
	}
	var name, uname, status string
	var deletedAt *time.Time
	if err := env.Pool.QueryRow(ctx, `SELECT display_name, username, status_message, deleted_at FROM chat.profiles WHERE user_id = $1`, a.ID).
		Scan(&name, &uname, &status, &deletedAt); err != nil {
		t.Fatal(err)
	}
	if name != chatflow.DeletedDisplayName || uname != chatflow.DeletedUsername(uuid.MustParse(a.ID)) || status != "" || deletedAt == nil {
		t.Fatalf("profile of the sender: %q %q %q %v", name, uname, status, deletedAt)
	}

	// 3. friends and invitations
	var friends []struct {
		UserID string `json:"user_id"`
	}
	acctCall(t, n, "GET", "/api/v1/friends", b.Access, nil, &friends)
	for _, f := range friends {
		if f.UserID == a.ID {
			t.Fatal("the deleted user is still in a friend list")
		}
	}
	var pending int
	if err := env.Pool.QueryRow(ctx, `SELECT count(*) FROM chat.invitations WHERE invitee_id = $1 AND status = 'pending'`, a.ID).Scan(&pending); err != nil || pending != 0 {
		t.Fatalf("%d pending invitations left (%v)", pending, err)
	}

	// nobody finds or names the deleted user any more
	var found []struct {
		UserID string `json:"user_id"`
	}
	if r := acctCall(t, n, "GET", "/api/v1/users?q="+uname, b.Access, nil, &found); r.Status != 200 || len(found) != 0 {
		t.Fatalf("search for the deleted user: %d %s", r.Status, r.Body)
	}
	wantProblem(t, "befriend the deleted user", acctCall(t, n, "POST", "/api/v1/friends", b.Access, map[string]string{"username": uname}, nil), 404, chatflow.ECodeNotFound)
	wantProblem(t, "room with the deleted user", acctCall(t, n, "POST", "/api/v1/rooms", b.Access, map[string]any{"name": "ghost", "member_ids": []string{a.ID}}, nil), 422, chatflow.ECodeValidation)

	// 4. the account is closed; 7. the credentials are gone
	var closed *time.Time
	if err := env.Pool.QueryRow(ctx, `SELECT closed_at FROM customer.accounts WHERE user_id = $1`, a.ID).Scan(&closed); err != nil || closed == nil {
		t.Fatalf("account closed_at %v (%v)", closed, err)
	}
	if u, _, _ := rowCounts(t, env, a.ID); u != 0 {
		t.Fatal("credentials still there")
	}

	// 6. Kafka
	ev, msg := findUserEvent(t, env.KafkaBrokers, chatflow.EventUserDeleted, a.ID, 30*time.Second)
	var del chatflow.UserDeleted
	if err := json.Unmarshal(msg.Value, &del); err != nil || string(msg.Key) != a.ID || ev.UserID != a.ID ||
		del.DeletionID != d.DeletionID || del.EventID != d.DeletionID+":"+chatflow.EventUserDeleted {
		t.Fatalf("user.deleted record key %q value %s (%v)", msg.Key, msg.Value, err)
	}

	// the username and email are free again
	if st, p := signupAgain(t, n, a.Username, a.Email); st != 202 || p.Status != chatflow.StatusCompleted || p.UserID == a.ID {
		t.Fatalf("sign-up with the freed name: %d %+v", st, p)
	}
}

func TestDeletionRefusedWhileBalanceNotZero(t *testing.T) {
	env := testenv.Open(t)
	env.Worker(t, nil)
	n := env.StartNode(t, testenv.NodeConfig{})
	a := n.SignUp(t, "delm")
	if r := acctCall(t, n, "POST", "/api/v1/me/account/deposits", a.Access, map[string]any{"amount": 100, "idempotency_key": "k-" + testenv.Unique()}, nil); r.Status != 201 {
		t.Fatalf("deposit: %d %s", r.Status, r.Body)
	}
	wantProblem(t, "delete with money", acctCall(t, n, "DELETE", "/api/v1/me", a.Access, map[string]string{"password": a.Password}, nil), 409, chatflow.ECodeBalanceNotZero)
	// nothing changed: the token works, login works, no deletion recorded
	var me struct {
		Username string `json:"username"`
		Account  struct {
			Balance int64 `json:"balance"`
		} `json:"account"`
	}
	if r := acctCall(t, n, "GET", "/api/v1/me", a.Access, nil, &me); r.Status != 200 || me.Account.Balance != 100 {
		t.Fatalf("me after the refusal: %d %s", r.Status, r.Body)
	}
	n.Login(t, &a)
	var rows int
	if err := env.Pool.QueryRow(context.Background(), `SELECT count(*) FROM auth.deletions WHERE user_id = $1`, a.ID).Scan(&rows); err != nil || rows != 0 {
		t.Fatalf("%d deletions recorded (%v)", rows, err)
	}
}

// The saga's own check (step 4): money that arrives after the api checked
// the balance fails the deletion with balance_not_zero, and the account is
// usable again. The money comes in by hand here, as an incoming transfer
// would, while the saga cannot run yet (no worker on its queue).
func TestDeletionSagaRefusesBalanceAndReactivates(t *testing.T) {
	env := testenv.Open(t)
	env.Worker(t, nil)
	n := env.StartNode(t, testenv.NodeConfig{})
	a := n.SignUp(t, "delr")
	queue := "test-deletion-parked-" + testenv.Unique()
	parked := env.StartNode(t, testenv.NodeConfig{SignupTaskQueue: queue})
	d := startDeletion(t, parked, a)

	// while the deletion waits: no second one, no login, no refresh
	wantProblem(t, "second deletion", acctCall(t, n, "DELETE", "/api/v1/me", a.Access, map[string]string{"password": a.Password}, nil), 409, chatflow.ECodeDeletionInProgress)
	wantProblem(t, "login while deleting", acctCall(t, n, "POST", "/api/v1/auth/login", "", map[string]string{"username": a.Username, "password": a.Password}, nil), 401, chatflow.ECodeInvalidCredentials)
	if r := acctCall(t, n, "POST", "/api/v1/auth/refresh", "", map[string]string{"refresh_token": a.Refresh}, nil); r.Status != 401 {
		t.Fatalf("refresh while deleting: %d %s", r.Status, r.Body)
	}
	if s := deletionOf(t, n, d.StatusURL, ""); s.Status != chatflow.StatusRunning || s.Step != "" {
		t.Fatalf("parked deletion %+v", s)
	}
	if _, err := env.Pool.Exec(context.Background(), `UPDATE customer.accounts SET balance = 7 WHERE user_id = $1`, a.ID); err != nil {
		t.Fatal(err)
	}

	// now a worker serves the queue
	env.WorkerWith(t, nil, func(c *app.Config) { c.Workers.SignupTaskQueue = queue })
	got := waitDeletion(t, n, d.StatusURL, 60*time.Second)
	if got.Status != chatflow.StatusFailed || got.ErrorCode != chatflow.ECodeBalanceNotZero || got.Step != chatflow.DelStepCloseAccount {
		t.Fatalf("deletion ended %+v", got)
	}
	n.Login(t, &a) // active again
	if r := acctCall(t, n, "GET", "/api/v1/me", a.Access, nil, nil); r.Status != 200 {
		t.Fatalf("me after the failed deletion: %d %s", r.Status, r.Body)
	}
	var closed *time.Time
	if err := env.Pool.QueryRow(context.Background(), `SELECT closed_at FROM customer.accounts WHERE user_id = $1`, a.ID).Scan(&closed); err != nil || closed != nil {
		t.Fatalf("account closed_at %v (%v)", closed, err)
	}
}

// TestDeletionPasswordRateLimited: the password of DELETE /me is charged
// to the username's login limit, so a stolen token cannot guess it faster
// than a login could; past the limit even the right password gets 429.
func TestDeletionPasswordRateLimited(t *testing.T) {
	env := testenv.Open(t)
	env.Worker(t, nil)
	u := env.StartNode(t, testenv.NodeConfig{}).SignUp(t, "delrl")
	cfg := testenv.RateLimitConfig()
	n := env.StartNode(t, testenv.NodeConfig{RateLimit: &cfg})
	for range 10 {
		wantProblem(t, "wrong password", acctCall(t, n, "DELETE", "/api/v1/me", u.Access, map[string]string{"password": "wrong-" + testenv.Unique()}, nil), 401, chatflow.ECodeInvalidCredentials)
	}
	wantProblem(t, "11th attempt", acctCall(t, n, "DELETE", "/api/v1/me", u.Access, map[string]string{"password": u.Password}, nil), 429, chatflow.ECodeRateLimited)
	if st, _, p := tryLogin(t, n, u.Username, u.Password, nil); st != 429 {
		t.Fatalf("login after the deletion attempts: %d %+v", st, p)
	}
}
