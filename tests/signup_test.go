package tests

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/segmentio/kafka-go"
	"go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
	"golang.org/x/crypto/bcrypt"

	"github.com/chatflow/chatflow"
	"github.com/chatflow/chatflow/activities"
	"github.com/chatflow/chatflow/api"
	"github.com/chatflow/chatflow/events"
	"github.com/chatflow/chatflow/internal/testenv"
	"github.com/chatflow/chatflow/workflows"
)

// ---- helpers shared by signup_test.go, auth_test.go and validation_test.go ----

// acctResp is one raw HTTP answer.
type acctResp struct {
	Status int
	Header http.Header
	Body   []byte
}

// acctProblem is an RFC 9457 problem body with chatflow's code.
type acctProblem struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail"`
	Code   string `json:"code"`
}

var acctHTTP = &http.Client{Timeout: 60 * time.Second}

// acctDo performs a request without touching t, so goroutines may use it.
// body may be nil, a string (sent verbatim) or anything JSON-encodable.
func acctDo(n *testenv.Node, method, path, tok string, body any) (acctResp, error) {
	var r io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		r = strings.NewReader(b)
	default:
		raw, err := json.Marshal(b)
		if err != nil {
			return acctResp{}, err
		}
		r = strings.NewReader(string(raw))
	}
	req, err := http.NewRequest(method, n.URL+path, r)
	if err != nil {
		return acctResp{}, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := acctHTTP.Do(req)
	if err != nil {
		return acctResp{}, fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return acctResp{}, err
	}
	return acctResp{Status: resp.StatusCode, Header: resp.Header, Body: raw}, nil
}

// acctCall is acctDo for the test goroutine: it fails the test on transport
// errors and decodes a JSON answer into out (may be nil).
func acctCall(t testing.TB, n *testenv.Node, method, path, tok string, body, out any) acctResp {
	t.Helper()
	r, err := acctDo(n, method, path, tok, body)
	if err != nil {
		t.Fatal(err)
	}
	if out != nil && len(r.Body) > 0 {
		if err := json.Unmarshal(r.Body, out); err != nil {
			t.Fatalf("%s %s: decode %q: %v", method, path, r.Body, err)
		}
	}
	return r
}

// wantProblem checks that r is a problem+json answer with the given status
// and code and all the RFC 9457 fields filled in.
func wantProblem(t testing.TB, what string, r acctResp, status int, code string) acctProblem {
	t.Helper()
	var p acctProblem
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/problem+json") {
		t.Errorf("%s: Content-Type %q, want application/problem+json (status %d, body %s)", what, ct, r.Status, r.Body)
		return p
	}
	var m map[string]any
	if err := json.Unmarshal(r.Body, &m); err != nil {
		t.Errorf("%s: problem body %q is not JSON: %v", what, r.Body, err)
		return p
	}
	for _, k := range []string{"type", "title", "status", "detail", "code"} {
		if v, ok := m[k]; !ok || v == "" || v == nil {
			t.Errorf("%s: problem lacks %q: %s", what, k, r.Body)
		}
	}
	_ = json.Unmarshal(r.Body, &p)
	if r.Status != status || p.Status != status || p.Code != code {
		t.Errorf("%s: got %d/%d %q (%s), want %d %q", what, r.Status, p.Status, p.Code, p.Detail, status, code)
	}
	if p.Type != "" && !strings.HasSuffix(p.Type, p.Code) {
		t.Errorf("%s: type %q does not name code %q", what, p.Type, p.Code)
	}
	return p
}

// signupProgress is the sign-up status answer.
type signupProgress struct {
	SignupID string `json:"signup_id"`
	Status   string `json:"status"`
	Steps    []struct {
		Name   string `json:"name"`
		Status string `json:"status"`
		Error  string `json:"error"`
	} `json:"steps"`
	UserID    string `json:"user_id"`
	Error     string `json:"error"`
	ErrorCode string `json:"error_code"`
}

func signupBody(username, email string) map[string]string {
	return map[string]string{"username": username, "email": email, "password": "password-" + username, "display_name": "D " + username}
}

// waitSignup long-polls the status endpoint until the saga ends.
func waitSignup(t testing.TB, n *testenv.Node, id string, timeout time.Duration) signupProgress {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		var p signupProgress
		r := acctCall(t, n, "GET", "/api/v1/signup/"+id+"?wait=5s", "", nil, &p)
		if r.Status != 200 {
			t.Fatalf("signup status %s: %d %s", id, r.Status, r.Body)
		}
		if p.Status != chatflow.StatusRunning {
			return p
		}
		if time.Now().After(deadline) {
			t.Fatalf("signup %s still running after %v: %+v", id, timeout, p)
		}
	}
}

// rowCounts counts a user's rows in the three bounded contexts.
func rowCounts(t testing.TB, env *testenv.Env, userID string) (users, profiles, accounts int) {
	t.Helper()
	ctx := context.Background()
	id := uuid.MustParse(userID)
	if err := env.Pool.QueryRow(ctx, `SELECT
		(SELECT count(*) FROM auth.users WHERE id = $1),
		(SELECT count(*) FROM chat.profiles WHERE user_id = $1),
		(SELECT count(*) FROM customer.accounts WHERE user_id = $1)`, id).Scan(&users, &profiles, &accounts); err != nil {
		t.Fatal(err)
	}
	return
}

// findUserEvent reads user.events from the first offset of every partition
// until it finds the record of the given type for userID.
func findUserEvent(t testing.TB, brokers, typ, userID string, timeout time.Duration) (chatflow.UserCreated, kafka.Message) {
	t.Helper()
	var ev chatflow.UserCreated
	m := findRecord(t, brokers, chatflow.TopicUserEvents, timeout, func(m kafka.Message) bool {
		var e chatflow.UserCreated
		if json.Unmarshal(m.Value, &e) == nil && e.Type == typ && e.UserID == userID {
			ev = e
			return true
		}
		return false
	}, fmt.Sprintf("%s record for user %s", typ, userID))
	return ev, m
}

// findRecord reads topic from the first offset of every partition until a
// record matches (match is called from one goroutine per partition, and
// returns true once).
func findRecord(t testing.TB, brokers, topic string, timeout time.Duration, match func(kafka.Message) bool, what string) kafka.Message {
	t.Helper()
	broker := strings.Split(brokers, ",")[0]
	conn, err := kafka.Dial("tcp", broker)
	if err != nil {
		t.Fatalf("kafka dial: %v", err)
	}
	parts, err := conn.ReadPartitions(topic)
	conn.Close()
	if err != nil || len(parts) == 0 {
		t.Fatalf("kafka partitions of %s: %v (%d)", topic, err, len(parts))
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var mu sync.Mutex
	found := make(chan kafka.Message, len(parts))
	var wg sync.WaitGroup
	for _, p := range parts {
		wg.Add(1)
		go func(partition int) {
			defer wg.Done()
			r := kafka.NewReader(kafka.ReaderConfig{
				Brokers: []string{broker}, Topic: topic, Partition: partition,
				MinBytes: 1, MaxBytes: 10 << 20, MaxWait: 200 * time.Millisecond,
			})
			defer r.Close()
			if err := r.SetOffset(kafka.FirstOffset); err != nil {
				return
			}
			for {
				m, err := r.ReadMessage(ctx)
				if err != nil {
					return
				}
				mu.Lock()
				ok := match(m)
				mu.Unlock()
				if ok {
					found <- m
					return
				}
			}
		}(p.ID)
	}
	select {
	case m := <-found:
		cancel()
		wg.Wait()
		return m
	case <-ctx.Done():
		wg.Wait()
		t.Fatalf("no %s on %s within %v", what, topic, timeout)
	}
	panic("unreachable")
}

// ---- tests ----

func TestSignupSagaCompletes(t *testing.T) {
	env := testenv.Open(t)
	env.Worker(t, nil)
	n := env.StartNode(t, testenv.NodeConfig{})
	ctx := context.Background()

	username := "sg_" + testenv.Unique()
	email := strings.ToUpper(username) + "@Example.TEST" // stored lower-cased
	var started struct {
		SignupID string `json:"signup_id"`
		Status   string `json:"status"`
	}
	r := acctCall(t, n, "POST", "/api/v1/signup", "", signupBody(username, email), &started)
	if r.Status != 202 {
		t.Fatalf("signup: %d %s", r.Status, r.Body)
	}
	if _, err := uuid.Parse(started.SignupID); err != nil || started.Status != chatflow.StatusRunning {
		t.Fatalf("signup answer %s", r.Body)
	}
	if loc := r.Header.Get("Location"); loc != "/api/v1/signup/"+started.SignupID {
		t.Errorf("Location %q", loc)
	}

	p := waitSignup(t, n, started.SignupID, 60*time.Second)
	if p.Status != chatflow.StatusCompleted || p.SignupID != started.SignupID {
		t.Fatalf("signup ended %+v", p)
	}
	if _, err := uuid.Parse(p.UserID); err != nil {
		t.Fatalf("user_id %q: %v", p.UserID, err)
	}
	if len(p.Steps) != 5 {
		t.Fatalf("steps = %+v, want 5", p.Steps)
	}
	for i, s := range p.Steps {
		if s.Name != chatflow.SignupSteps[i] || s.Status != chatflow.StatusCompleted {
			t.Errorf("step %d = %+v, want %s completed", i+1, s, chatflow.SignupSteps[i])
		}
	}

	// The three bounded contexts hold the user.
	var status, storedEmail, uname string
	if err := env.Pool.QueryRow(ctx, `SELECT status, email, username FROM auth.users WHERE id = $1`, uuid.MustParse(p.UserID)).
		Scan(&status, &storedEmail, &uname); err != nil {
		t.Fatalf("auth.users row: %v", err)
	}
	if status != "active" || uname != username || storedEmail != strings.ToLower(email) {
		t.Errorf("auth.users row = %s %s %s", status, uname, storedEmail)
	}
	var display string
	if err := env.Pool.QueryRow(ctx, `SELECT display_name FROM chat.profiles WHERE user_id = $1 AND username = $2`,
		uuid.MustParse(p.UserID), username).Scan(&display); err != nil {
		t.Fatalf("chat.profiles row: %v", err)
	}
	if display != "D "+username {
		t.Errorf("display_name %q", display)
	}
	var balance int64
	if err := env.Pool.QueryRow(ctx, `SELECT balance FROM customer.accounts WHERE user_id = $1`, uuid.MustParse(p.UserID)).Scan(&balance); err != nil {
		t.Fatalf("customer.accounts row: %v", err)
	}
	if balance != 0 {
		t.Errorf("opening balance %d", balance)
	}

	// A real Kafka consumer sees user.created, keyed by the user id.
	ev, msg := findUserEvent(t, env.KafkaBrokers, "user.created", p.UserID, 30*time.Second)
	if ev.Username != username || ev.Email != strings.ToLower(email) || ev.DisplayName != "D "+username || ev.EventID == "" {
		t.Errorf("user.created = %+v", ev)
	}
	if string(msg.Key) != p.UserID {
		t.Errorf("record key %q, want the user id", msg.Key)
	}

	// Temporal has the saga, closed as completed, under the username's id.
	desc, err := env.Temporal.DescribeWorkflowExecution(ctx, workflows.SignupWorkflowID(username), "")
	if err != nil {
		t.Fatalf("describe workflow: %v", err)
	}
	if st := desc.WorkflowExecutionInfo.GetStatus(); st != enums.WORKFLOW_EXECUTION_STATUS_COMPLETED {
		t.Errorf("workflow status %v", st)
	}
	if tn := desc.WorkflowExecutionInfo.GetType().GetName(); tn != "Signup" {
		t.Errorf("workflow type %q", tn)
	}

	// The user can log in now.
	var pair struct {
		AccessToken string `json:"access_token"`
	}
	if r := acctCall(t, n, "POST", "/api/v1/auth/login", "", map[string]string{"username": username, "password": "password-" + username}, &pair); r.Status != 200 || pair.AccessToken == "" {
		t.Fatalf("login after sign-up: %d %s", r.Status, r.Body)
	}
}

// brokenSignupWorker serves the sign-up saga on its own task queue with a
// Kafka publisher that can never reach a broker.
func brokenSignupWorker(t *testing.T, env *testenv.Env) string {
	t.Helper()
	queue := "signup-broken-" + testenv.Unique()
	pub := events.NewPublisher("127.0.0.1:1")
	t.Cleanup(func() { _ = pub.Close() })
	w := worker.New(env.Temporal, queue, worker.Options{})
	w.RegisterWorkflow(workflows.Signup)
	w.RegisterActivity(activities.New(env.Pool, pub))
	if err := w.Start(); err != nil {
		t.Fatalf("start worker: %v", err)
	}
	t.Cleanup(w.Stop)
	return queue
}

func TestSignupFailureCompensates(t *testing.T) {
	env := testenv.Open(t)
	queue := brokenSignupWorker(t, env)
	ctx := context.Background()

	username := "sgfail_" + testenv.Unique()
	hash, err := bcrypt.GenerateFromPassword([]byte("password-1234"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	in := chatflow.SignupInput{
		SignupID: uuid.NewString(), UserID: uuid.New(), Username: username, Email: username + "@example.test",
		PasswordHash: string(hash), DisplayName: "Fail", RequestedAt: time.Now().UTC(),
	}
	// No execution timeout: the server would cut the compensations short.
	run, err := env.Temporal.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID: workflows.SignupWorkflowID(username), TaskQueue: queue,
	}, workflows.Signup, in)
	if err != nil {
		t.Fatal(err)
	}

	// While it runs, steps 1-3 have really written rows (so the cleanup below
	// is proven to be the compensations' work, not a saga that never started).
	sawRows := false
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		u, pr, a := rowCounts(t, env, in.UserID.String())
		if u == 1 && pr == 1 && a == 1 {
			sawRows = true
			break
		}
		var p chatflow.SignupProgress
		if v, err := env.Temporal.QueryWorkflow(ctx, run.GetID(), run.GetRunID(), workflows.QueryProgress); err == nil && v.Get(&p) == nil && p.Status != chatflow.StatusRunning {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !sawRows {
		t.Errorf("never saw the rows of steps 1-3 while the saga ran")
	}

	wctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	var res chatflow.SignupResult
	err = run.Get(wctx, &res)
	if err == nil {
		t.Fatalf("saga with a dead Kafka completed: %+v", res)
	}
	desc, derr := env.Temporal.DescribeWorkflowExecution(ctx, run.GetID(), run.GetRunID())
	if derr != nil {
		t.Fatal(derr)
	}
	if st := desc.WorkflowExecutionInfo.GetStatus(); st != enums.WORKFLOW_EXECUTION_STATUS_FAILED {
		t.Errorf("workflow status %v, want failed (%v)", st, err)
	}

	v, err := env.Temporal.QueryWorkflow(ctx, run.GetID(), run.GetRunID(), workflows.QueryProgress)
	if err != nil {
		t.Fatalf("query progress: %v", err)
	}
	var p chatflow.SignupProgress
	if err := v.Get(&p); err != nil {
		t.Fatal(err)
	}
	if p.Status != chatflow.StatusFailed || p.Error == "" || p.ErrorCode != chatflow.ECodeInternal {
		t.Errorf("progress = %+v, want failed with an error and code %q", p, chatflow.ECodeInternal)
	}
	want := []string{chatflow.StatusCompensated, chatflow.StatusCompensated, chatflow.StatusCompensated, chatflow.StatusFailed, chatflow.StatusPending}
	if len(p.Steps) != len(want) {
		t.Fatalf("steps %+v", p.Steps)
	}
	for i, s := range p.Steps {
		if s.Name != chatflow.SignupSteps[i] || s.Status != want[i] {
			t.Errorf("step %d = %s %s, want %s %s", i+1, s.Name, s.Status, chatflow.SignupSteps[i], want[i])
		}
	}
	if p.Steps[3].Error == "" {
		t.Errorf("failed step 4 carries no error")
	}

	if u, pr, a := rowCounts(t, env, in.UserID.String()); u+pr+a != 0 {
		t.Errorf("rows left after a failed sign-up: users %d profiles %d accounts %d", u, pr, a)
	}
	var byName int
	if err := env.Pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM auth.users WHERE username = $1) + (SELECT count(*) FROM chat.profiles WHERE username = $1)`, username).Scan(&byName); err != nil {
		t.Fatal(err)
	}
	if byName != 0 {
		t.Errorf("%d rows still carry username %s", byName, username)
	}
}

func TestSignupEmailTakenConcurrently(t *testing.T) {
	env := testenv.Open(t)
	env.Worker(t, nil)
	n := env.StartNode(t, testenv.NodeConfig{})
	ctx := context.Background()

	email := "shared_" + testenv.Unique() + "@example.test"
	names := []string{"sgmail_a" + testenv.Unique(), "sgmail_b" + testenv.Unique()}
	resps := make([]acctResp, len(names))
	errs := make([]error, len(names))
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i, name := range names {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			resps[i], errs[i] = acctDo(n, "POST", "/api/v1/signup", "", signupBody(name, email))
		}()
	}
	close(start)
	wg.Wait()

	completed, emailTaken := 0, 0
	for i, r := range resps {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		switch r.Status {
		case 202:
			var s struct {
				SignupID string `json:"signup_id"`
			}
			if err := json.Unmarshal(r.Body, &s); err != nil {
				t.Fatal(err)
			}
			p := waitSignup(t, n, s.SignupID, 60*time.Second)
			switch {
			case p.Status == chatflow.StatusCompleted:
				completed++
			case p.Status == chatflow.StatusFailed && p.ErrorCode == chatflow.ECodeEmailTaken:
				t.Logf("%s lost the race inside the saga", names[i])
				emailTaken++
				if p.Steps[0].Status != chatflow.StatusFailed {
					t.Errorf("email clash should fail step 1: %+v", p.Steps)
				}
			default:
				t.Errorf("sign-up %s ended %+v", names[i], p)
			}
		case 409:
			t.Logf("%s was refused up front", names[i])
			wantProblem(t, "second sign-up with the same email", r, 409, chatflow.ECodeEmailTaken)
			emailTaken++
		default:
			t.Errorf("sign-up %s: %d %s", names[i], r.Status, r.Body)
		}
	}
	if completed != 1 || emailTaken != 1 {
		t.Errorf("completed %d, email_taken %d; want exactly one of each", completed, emailTaken)
	}
	var rows, active int
	if err := env.Pool.QueryRow(ctx, `SELECT count(*), count(*) FILTER (WHERE status = 'active') FROM auth.users WHERE email = $1`, email).Scan(&rows, &active); err != nil {
		t.Fatal(err)
	}
	if rows != 1 || active != 1 {
		t.Errorf("auth.users rows with the email: %d (active %d), want 1", rows, active)
	}

	// A later sign-up with that email is refused up front.
	r := acctCall(t, n, "POST", "/api/v1/signup", "", signupBody("sgmail_c"+testenv.Unique(), strings.ToUpper(email)), nil)
	wantProblem(t, "sign-up with a registered email", r, 409, chatflow.ECodeEmailTaken)
}

func TestSignupDuplicateUsernameConcurrently(t *testing.T) {
	env := testenv.Open(t)
	env.Worker(t, nil)
	n := env.StartNode(t, testenv.NodeConfig{})
	ctx := context.Background()

	username := "sgdup_" + testenv.Unique()
	const N = 10
	resps := make([]acctResp, N)
	errs := make([]error, N)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range N {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			resps[i], errs[i] = acctDo(n, "POST", "/api/v1/signup", "", signupBody(username, fmt.Sprintf("%s_%d@example.test", username, i)))
		}()
	}
	close(start)
	wg.Wait()

	var signupID string
	accepted := 0
	for i, r := range resps {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		switch r.Status {
		case 202:
			accepted++
			var s struct {
				SignupID string `json:"signup_id"`
			}
			_ = json.Unmarshal(r.Body, &s)
			signupID = s.SignupID
		case 409:
			wantProblem(t, "duplicate username", r, 409, chatflow.ECodeUsernameTaken)
		default:
			t.Errorf("sign-up %d: %d %s", i, r.Status, r.Body)
		}
	}
	if accepted != 1 {
		t.Fatalf("%d sign-ups accepted for one username, want exactly 1", accepted)
	}
	p := waitSignup(t, n, signupID, 60*time.Second)
	if p.Status != chatflow.StatusCompleted {
		t.Fatalf("the accepted sign-up ended %+v", p)
	}
	var rows int
	if err := env.Pool.QueryRow(ctx, `SELECT count(*) FROM auth.users WHERE username = $1`, username).Scan(&rows); err != nil {
		t.Fatal(err)
	}
	if rows != 1 {
		t.Errorf("auth.users rows for %s: %d, want 1", username, rows)
	}

	r := acctCall(t, n, "POST", "/api/v1/signup", "", signupBody(username, "later_"+username+"@example.test"), nil)
	wantProblem(t, "username of a completed sign-up", r, 409, chatflow.ECodeUsernameTaken)
}

// TestSignupNameFreedByFailure: a failed saga releases its username, so the
// same name can sign up again (the workflow id reuse policy allows it).
func TestSignupNameFreedByFailure(t *testing.T) {
	env := testenv.Open(t)
	env.Worker(t, nil)
	n := env.StartNode(t, testenv.NodeConfig{})

	// The first attempt fails on step 1 because the email belongs to someone else.
	owner := n.SignUp(t, "sgown")
	username := "sgfree_" + testenv.Unique()
	var s struct {
		SignupID string `json:"signup_id"`
	}
	// Start the saga directly (the API would refuse the email up front).
	hash, _ := bcrypt.GenerateFromPassword([]byte("password-1234"), bcrypt.MinCost)
	run, err := env.Temporal.ExecuteWorkflow(context.Background(), client.StartWorkflowOptions{
		ID: workflows.SignupWorkflowID(username), TaskQueue: testenv.SignupTaskQueue,
	}, workflows.Signup, chatflow.SignupInput{
		SignupID: uuid.NewString(), UserID: uuid.New(), Username: username, Email: owner.Email,
		PasswordHash: string(hash), DisplayName: "x", RequestedAt: time.Now().UTC(),
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := run.Get(context.Background(), nil); err == nil {
		t.Fatalf("sign-up with a taken email completed")
	}
	// The saga reports the domain code of step 1's failure.
	v, err := env.Temporal.QueryWorkflow(context.Background(), run.GetID(), run.GetRunID(), workflows.QueryProgress)
	if err != nil {
		t.Fatal(err)
	}
	var p chatflow.SignupProgress
	if err := v.Get(&p); err != nil {
		t.Fatal(err)
	}
	if p.Status != chatflow.StatusFailed || p.ErrorCode != chatflow.ECodeEmailTaken || p.Steps[0].Status != chatflow.StatusFailed || p.Steps[1].Status != chatflow.StatusPending {
		t.Errorf("progress of the email clash = %+v", p)
	}

	r := acctCall(t, n, "POST", "/api/v1/signup", "", signupBody(username, username+"@example.test"), &s)
	if r.Status != 202 {
		t.Fatalf("sign-up after a failed one: %d %s", r.Status, r.Body)
	}
	if p := waitSignup(t, n, s.SignupID, 60*time.Second); p.Status != chatflow.StatusCompleted {
		t.Fatalf("second sign-up ended %+v", p)
	}
}

// TestSignupStatusWithoutWorker: with no worker to answer the progress query,
// the status still answers (from the server's own record) instead of failing.
func TestSignupStatusWithoutWorker(t *testing.T) {
	env := testenv.Open(t)
	n := env.StartNode(t, testenv.NodeConfig{SignupTaskQueue: "nobody-polls-" + testenv.Unique()})
	username := "sgnw_" + testenv.Unique()
	var started struct {
		SignupID string `json:"signup_id"`
	}
	if st := n.Call(t, "POST", "/api/v1/signup", "", map[string]string{
		"username": username, "email": username + "@example.test", "password": "password-123",
	}, &started); st != 202 {
		t.Fatalf("signup: %d", st)
	}
	var p struct {
		Status string `json:"status"`
		Steps  []struct {
			Name, Status string
		} `json:"steps"`
	}
	if st := n.Call(t, "GET", "/api/v1/signup/"+started.SignupID, "", nil, &p); st != 200 {
		t.Fatalf("status without a worker: %d", st)
	}
	if p.Status != "running" || len(p.Steps) != 5 || p.Steps[0].Status != "pending" {
		t.Fatalf("progress without a worker: %+v", p)
	}
	_ = env.Temporal.TerminateWorkflow(context.Background(), workflows.SignupWorkflowID(username), "", "test over")
}

// hangingPublisher never reaches a broker: every publish waits until its
// activity gives up. A saga on it stays at step 4 with steps 1-3 written.
type hangingPublisher struct{}

func (hangingPublisher) Publish(ctx context.Context, _ ...events.Record) error {
	<-ctx.Done()
	return ctx.Err()
}

// stuckSignupWorker serves the sign-up saga on its own task queue with a
// publisher that hangs.
func stuckSignupWorker(t *testing.T, env *testenv.Env) string {
	t.Helper()
	queue := "signup-stuck-" + testenv.Unique()
	w := worker.New(env.Temporal, queue, worker.Options{})
	w.RegisterWorkflow(workflows.Signup)
	w.RegisterActivity(activities.New(env.Pool, hangingPublisher{}))
	if err := w.Start(); err != nil {
		t.Fatalf("start worker: %v", err)
	}
	t.Cleanup(w.Stop)
	return queue
}

// signupStart posts a sign-up that must be accepted and returns its id.
func signupStart(t *testing.T, n *testenv.Node, username, email string) string {
	t.Helper()
	var s struct {
		SignupID string `json:"signup_id"`
	}
	if r := acctCall(t, n, "POST", "/api/v1/signup", "", signupBody(username, email), &s); r.Status != 202 {
		t.Fatalf("sign-up %s <%s>: %d %s", username, email, r.Status, r.Body)
	}
	return s.SignupID
}

// TestSignupFreedAfterFailedSignup: a sign-up that fails (through the API,
// on a worker whose Kafka is dead) compensates, reports failed, and leaves
// its username and email free for the next sign-up, which completes.
func TestSignupFreedAfterFailedSignup(t *testing.T) {
	env := testenv.Open(t)
	env.Worker(t, nil)
	good := env.StartNode(t, testenv.NodeConfig{})
	broken := env.StartNode(t, testenv.NodeConfig{SignupTaskQueue: brokenSignupWorker(t, env)})
	ctx := context.Background()

	username := "sgrel_" + testenv.Unique()
	email := username + "@example.test"
	first := signupStart(t, broken, username, email)
	p := waitSignup(t, broken, first, 2*time.Minute)
	if p.Status != chatflow.StatusFailed || p.Steps[3].Status != chatflow.StatusFailed {
		t.Fatalf("sign-up with a dead Kafka ended %+v", p)
	}
	for i := range 3 {
		if p.Steps[i].Status != chatflow.StatusCompensated {
			t.Errorf("step %d = %+v, want compensated", i+1, p.Steps[i])
		}
	}
	if u, pr, a := rowCounts(t, env, p.UserID); u+pr+a != 0 {
		t.Errorf("rows left after the failed sign-up: users %d profiles %d accounts %d", u, pr, a)
	}
	// The failed status is final and cached like a completed one.
	var cached signupProgress
	raw, err := env.Redis.Get(ctx, api.SignupFinalKey(first)).Bytes()
	if err != nil || json.Unmarshal(raw, &cached) != nil || cached.Status != chatflow.StatusFailed {
		t.Errorf("final status of the failed sign-up not cached: %v %s", err, raw)
	}

	second := signupStart(t, good, username, email)
	p2 := waitSignup(t, good, second, time.Minute)
	if p2.Status != chatflow.StatusCompleted {
		t.Fatalf("sign-up after the failed one ended %+v", p2)
	}
	var active int
	if err := env.Pool.QueryRow(ctx, `SELECT count(*) FROM auth.users WHERE username = $1 AND email = $2 AND status = 'active'`, username, email).Scan(&active); err != nil {
		t.Fatal(err)
	}
	if active != 1 {
		t.Errorf("%d active users %s <%s>, want 1", active, username, email)
	}
}

// TestSignupFreedAfterSagaEndedWithoutCompensating: a saga ended from outside
// (one timed out, as sagas started with an execution timeout did; one
// terminated) could not compensate and left pending rows that hold its
// username and email. Once it has ended they hold nothing: the next sign-up
// of that username, or with that email, removes them and completes.
func TestSignupFreedAfterSagaEndedWithoutCompensating(t *testing.T) {
	env := testenv.Open(t)
	env.Worker(t, nil)
	n := env.StartNode(t, testenv.NodeConfig{})
	queue := stuckSignupWorker(t, env)
	ctx := context.Background()
	hash, err := bcrypt.GenerateFromPassword([]byte("password-1234"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}

	// leave starts a saga that hangs at step 4, waits for steps 1-3's rows,
	// ends it from outside (end nil: leaves it running) and checks the rows
	// stayed behind.
	leave := func(prefix string, end func(run client.WorkflowRun)) chatflow.SignupInput {
		t.Helper()
		username := prefix + "_" + testenv.Unique()
		in := chatflow.SignupInput{
			SignupID: uuid.NewString(), UserID: uuid.New(), Username: username, Email: username + "@example.test",
			PasswordHash: string(hash), DisplayName: "Stale", RequestedAt: time.Now().UTC(),
		}
		opts := client.StartWorkflowOptions{ID: workflows.SignupWorkflowID(username), TaskQueue: queue}
		if prefix == "sgto" {
			opts.WorkflowExecutionTimeout = 4 * time.Second // what every sign-up used to run with (10 minutes)
		}
		run, err := env.Temporal.ExecuteWorkflow(ctx, opts, workflows.Signup, in)
		if err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(30 * time.Second)
		for {
			if u, pr, a := rowCounts(t, env, in.UserID.String()); u == 1 && pr == 1 && a == 1 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("saga %s never wrote steps 1-3", username)
			}
			time.Sleep(20 * time.Millisecond)
		}
		if end == nil {
			return in // left running
		}
		end(run)
		desc, err := env.Temporal.DescribeWorkflowExecution(ctx, run.GetID(), run.GetRunID())
		if err != nil {
			t.Fatal(err)
		}
		if st := desc.GetWorkflowExecutionInfo().GetStatus(); st == enums.WORKFLOW_EXECUTION_STATUS_RUNNING {
			t.Fatalf("saga %s still running", username)
		}
		if u, pr, a := rowCounts(t, env, in.UserID.String()); u+pr+a != 3 {
			t.Fatalf("the ended saga %s left users %d profiles %d accounts %d, want one of each", username, u, pr, a)
		}
		return in
	}
	timedOut := leave("sgto", func(run client.WorkflowRun) {
		if err := run.Get(ctx, nil); err == nil {
			t.Fatalf("the stuck saga completed")
		}
	})
	terminated := leave("sgterm", func(run client.WorkflowRun) {
		if err := env.Temporal.TerminateWorkflow(ctx, run.GetID(), run.GetRunID(), "test: ended before it could compensate"); err != nil {
			t.Fatal(err)
		}
	})

	// The username of the timed-out saga, with a new email.
	p := waitSignup(t, n, signupStart(t, n, timedOut.Username, "new_"+timedOut.Email), time.Minute)
	if p.Status != chatflow.StatusCompleted {
		t.Fatalf("sign-up of the timed-out saga's username ended %+v", p)
	}
	// The email of the terminated saga, with a new username.
	other := "sgmail_" + testenv.Unique()
	p2 := waitSignup(t, n, signupStart(t, n, other, terminated.Email), time.Minute)
	if p2.Status != chatflow.StatusCompleted {
		t.Fatalf("sign-up with the terminated saga's email ended %+v", p2)
	}
	// A saga started directly (no api pre-check) for the username of an
	// ended one frees it itself: only an earlier run of its own workflow ID
	// can have left pending credentials under that username.
	direct := leave("sgdir", func(run client.WorkflowRun) {
		if err := env.Temporal.TerminateWorkflow(ctx, run.GetID(), run.GetRunID(), "test: ended before it could compensate"); err != nil {
			t.Fatal(err)
		}
	})
	run, err := env.Temporal.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID: workflows.SignupWorkflowID(direct.Username), TaskQueue: testenv.SignupTaskQueue,
	}, workflows.Signup, chatflow.SignupInput{
		SignupID: uuid.NewString(), UserID: uuid.New(), Username: direct.Username, Email: "new_" + direct.Email,
		PasswordHash: string(hash), DisplayName: "Again", RequestedAt: time.Now().UTC(),
	})
	if err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := run.Get(wctx, nil); err != nil {
		t.Fatalf("saga for the username of an ended saga: %v", err)
	}
	for _, in := range []chatflow.SignupInput{timedOut, terminated, direct} {
		if u, pr, a := rowCounts(t, env, in.UserID.String()); u+pr+a != 0 {
			t.Errorf("stale rows of %s still there: users %d profiles %d accounts %d", in.Username, u, pr, a)
		}
	}
	// A username held by a running sign-up stays taken.
	running := leave("sgrun", nil)
	r := acctCall(t, n, "POST", "/api/v1/signup", "", signupBody(running.Username, "x_"+running.Email), nil)
	wantProblem(t, "username of a running sign-up", r, 409, chatflow.ECodeUsernameTaken)
	r = acctCall(t, n, "POST", "/api/v1/signup", "", signupBody("sgx_"+testenv.Unique(), running.Email), nil)
	wantProblem(t, "email of a running sign-up", r, 409, chatflow.ECodeEmailTaken)
	_ = env.Temporal.TerminateWorkflow(ctx, workflows.SignupWorkflowID(running.Username), "", "test over")
}

// TestSignupStatusServedFromCache: once a sign-up has ended, its status comes
// from the final status recorded in Redis, not from a Temporal query or
// history read per request.
func TestSignupStatusServedFromCache(t *testing.T) {
	env := testenv.Open(t)
	env.Worker(t, nil)
	n := env.StartNode(t, testenv.NodeConfig{})
	ctx := context.Background()

	username := "sgcache_" + testenv.Unique()
	id := signupStart(t, n, username, username+"@example.test")
	p := waitSignup(t, n, id, time.Minute)
	if p.Status != chatflow.StatusCompleted {
		t.Fatalf("sign-up ended %+v", p)
	}

	raw, err := env.Redis.Get(ctx, api.SignupFinalKey(id)).Bytes()
	if err != nil {
		t.Fatalf("no cached final status under %s: %v", api.SignupFinalKey(id), err)
	}
	var cached signupProgress
	if err := json.Unmarshal(raw, &cached); err != nil {
		t.Fatal(err)
	}
	answer := func(query string) string {
		t.Helper()
		r := acctCall(t, n, "GET", "/api/v1/signup/"+id+query, "", nil, nil)
		if r.Status != 200 {
			t.Fatalf("status%s: %d %s", query, r.Status, r.Body)
		}
		var v signupProgress
		if err := json.Unmarshal(r.Body, &v); err != nil {
			t.Fatal(err)
		}
		out, _ := json.Marshal(v)
		return string(out)
	}
	want, _ := json.Marshal(cached)
	if got := answer(""); got != string(want) {
		t.Errorf("answer %s, cached %s", got, want)
	}
	if ttl := env.Redis.TTL(ctx, api.SignupFinalKey(id)).Val(); ttl <= 0 {
		t.Errorf("cached status has no expiry (ttl %v)", ttl)
	}

	// The answer comes from that record, not from Temporal: a marker put
	// into the record shows up in the answer, long poll or not, at once.
	cached.Error = "marker " + testenv.Unique()
	marked, _ := json.Marshal(cached)
	if err := env.Redis.Set(ctx, api.SignupFinalKey(id), marked, time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if got := answer("?wait=5s"); got != string(marked) {
		t.Errorf("answer %s, want the cached record %s", got, marked)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("an ended sign-up's long poll took %v", d)
	}
	if got := answer(""); got != string(marked) {
		t.Errorf("answer %s, want the cached record %s", got, marked)
	}
}
