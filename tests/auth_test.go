package tests

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"
	"golang.org/x/crypto/bcrypt"

	"github.com/chatflow/chatflow"
	"github.com/chatflow/chatflow/internal/app"
	"github.com/chatflow/chatflow/internal/testenv"
	"github.com/chatflow/chatflow/token"
)

type tokenPair struct {
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
	TokenType    string `json:"token_type"`
	ExpiresIn    int    `json:"expires_in"`
}

type meJSON struct {
	UserID        string `json:"user_id"`
	Username      string `json:"username"`
	DisplayName   string `json:"display_name"`
	StatusMessage string `json:"status_message"`
	Email         string `json:"email"`
	Account       *struct {
		Balance *int64 `json:"balance"`
	} `json:"account"`
}

func login(t testing.TB, n *testenv.Node, username, password string) (acctResp, tokenPair) {
	t.Helper()
	var p tokenPair
	r := acctCall(t, n, "POST", "/api/v1/auth/login", "", map[string]string{"username": username, "password": password}, &p)
	return r, p
}

func refresh(t testing.TB, n *testenv.Node, rt string) (acctResp, tokenPair) {
	t.Helper()
	var p tokenPair
	r := acctCall(t, n, "POST", "/api/v1/auth/refresh", "", map[string]string{"refresh_token": rt}, &p)
	return r, p
}

// mint signs claims the way the test nodes do (testenv.Secret, chatflow
// issuer and audience), so only the field under test differs from a real token.
func mint(t testing.TB, method jwt.SigningMethod, key any, userID string, iat, exp time.Time, kind string) string {
	t.Helper()
	c := token.Claims{
		RegisteredClaims: jwt.RegisteredClaims{
			ID: uuid.NewString(), Subject: userID, Issuer: "chatflow", Audience: jwt.ClaimStrings{"chatflow-clients"},
			IssuedAt: jwt.NewNumericDate(iat), NotBefore: jwt.NewNumericDate(iat.Add(-5 * time.Second)), ExpiresAt: jwt.NewNumericDate(exp),
		},
		Username: "minted", Role: "user", Family: uuid.NewString(), Kind: kind,
	}
	s, err := jwt.NewWithClaims(method, c).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestAuthLogin(t *testing.T) {
	env := testenv.Open(t)
	env.Worker(t, nil)
	n := env.StartNode(t, testenv.NodeConfig{})
	u := n.SignUp(t, "au")

	r, p := login(t, n, u.Username, u.Password)
	if r.Status != 200 {
		t.Fatalf("login: %d %s", r.Status, r.Body)
	}
	if p.TokenType != "Bearer" || p.ExpiresIn <= 0 || p.AccessToken == "" || p.RefreshToken == "" || p.AccessToken == p.RefreshToken {
		t.Errorf("login answer %s", r.Body)
	}
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("login Content-Type %q", ct)
	}

	r, _ = login(t, n, u.Username, u.Password+"x")
	wantProblem(t, "wrong password", r, 401, chatflow.ECodeInvalidCredentials)
	r, _ = login(t, n, "nobody_"+testenv.Unique(), u.Password)
	wantProblem(t, "unknown user", r, 401, chatflow.ECodeInvalidCredentials)
	r, _ = login(t, n, strings.ToUpper(u.Username), u.Password+"x")
	wantProblem(t, "wrong password, other case", r, 401, chatflow.ECodeInvalidCredentials)
}

func TestAuthLoginBeforeActivation(t *testing.T) {
	env := testenv.Open(t)
	n := env.StartNode(t, testenv.NodeConfig{})
	ctx := context.Background()

	// A user whose saga has done step 1 (credentials, pending) but not step 5.
	username, password := "aupend_"+testenv.Unique(), "password-pending"
	hash, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	id := uuid.New()
	if _, err := env.Pool.Exec(ctx, `INSERT INTO auth.users (id, username, email, password_hash) VALUES ($1, $2, $3, $4)`,
		id, username, username+"@example.test", string(hash)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = env.Pool.Exec(context.Background(), `DELETE FROM auth.users WHERE id = $1`, id) })

	r, _ := login(t, n, username, password)
	wantProblem(t, "login of a pending user", r, 401, chatflow.ECodeInvalidCredentials)

	// The same credentials work once the user is activated, so the refusal
	// above was about the state, not the password.
	if _, err := env.Pool.Exec(ctx, `UPDATE auth.users SET status = 'active' WHERE id = $1`, id); err != nil {
		t.Fatal(err)
	}
	if r, _ := login(t, n, username, password); r.Status != 200 {
		t.Fatalf("login after activation: %d %s", r.Status, r.Body)
	}
}

func TestAuthMe(t *testing.T) {
	env := testenv.Open(t)
	env.Worker(t, nil)
	n := env.StartNode(t, testenv.NodeConfig{})
	u := n.SignUp(t, "aume")

	var me meJSON
	r := acctCall(t, n, "GET", "/api/v1/me", u.Access, nil, &me)
	if r.Status != 200 {
		t.Fatalf("me: %d %s", r.Status, r.Body)
	}
	if me.UserID != u.ID || me.Username != u.Username || me.DisplayName != "AUME" || me.Email != u.Email {
		t.Errorf("me = %s", r.Body)
	}
	if me.Account == nil || me.Account.Balance == nil || *me.Account.Balance != 0 {
		t.Errorf("me.account = %s", r.Body)
	}
}

func TestAuthRefreshRotation(t *testing.T) {
	env := testenv.Open(t)
	env.Worker(t, nil)
	n := env.StartNode(t, testenv.NodeConfig{RefreshGrace: -1}) // replays right away count as reuse
	u := n.SignUp(t, "aurot")

	r1, p1 := refresh(t, n, u.Refresh)
	if r1.Status != 200 || p1.TokenType != "Bearer" || p1.ExpiresIn <= 0 {
		t.Fatalf("refresh: %d %s", r1.Status, r1.Body)
	}
	if p1.RefreshToken == u.Refresh || p1.AccessToken == u.Access {
		t.Errorf("refresh returned the old tokens")
	}
	var me meJSON
	if r := acctCall(t, n, "GET", "/api/v1/me", p1.AccessToken, nil, &me); r.Status != 200 || me.UserID != u.ID {
		t.Fatalf("me with the refreshed access token: %d %s", r.Status, r.Body)
	}

	// The rotated-out token replayed: reuse is detected and the family revoked.
	r, _ := refresh(t, n, u.Refresh)
	wantProblem(t, "replayed refresh token", r, 401, chatflow.ECodeTokenReused)
	r, _ = refresh(t, n, p1.RefreshToken)
	if r.Status != 401 {
		t.Errorf("newer refresh token after reuse: %d %s, want 401", r.Status, r.Body)
	}
	wantProblem(t, "newer refresh token after reuse", r, 401, chatflow.ECodeInvalidToken)
	// Access tokens of the revoked family stop working too.
	r = acctCall(t, n, "GET", "/api/v1/me", p1.AccessToken, nil, nil)
	wantProblem(t, "access token of a revoked family", r, 401, chatflow.ECodeInvalidToken)

	// A fresh login is a new family and unaffected.
	r, p2 := login(t, n, u.Username, u.Password)
	if r.Status != 200 {
		t.Fatalf("login after revocation: %d", r.Status)
	}
	if r, _ := refresh(t, n, p2.RefreshToken); r.Status != 200 {
		t.Errorf("refresh of a new family: %d %s", r.Status, r.Body)
	}
}

func TestAuthRefreshSingleUse(t *testing.T) {
	env := testenv.Open(t)
	env.Worker(t, nil)
	n := env.StartNode(t, testenv.NodeConfig{RefreshGrace: -1}) // replays right away count as reuse
	u := n.SignUp(t, "ausu")

	if r, _ := refresh(t, n, u.Refresh); r.Status != 200 {
		t.Fatalf("refresh: %d %s", r.Status, r.Body)
	}
	r, _ := refresh(t, n, u.Refresh)
	if r.Status != 401 {
		t.Fatalf("second use of a refresh token: %d %s", r.Status, r.Body)
	}

	// An access token is not a refresh token and vice versa.
	_, p := login(t, n, u.Username, u.Password)
	r, _ = refresh(t, n, p.AccessToken)
	wantProblem(t, "access token as refresh token", r, 401, chatflow.ECodeInvalidToken)
	r = acctCall(t, n, "GET", "/api/v1/me", p.RefreshToken, nil, nil)
	wantProblem(t, "refresh token as access token", r, 401, chatflow.ECodeInvalidToken)
	r, _ = refresh(t, n, "not-a-jwt")
	wantProblem(t, "garbage refresh token", r, 401, chatflow.ECodeInvalidToken)
}

func TestAuthLogout(t *testing.T) {
	env := testenv.Open(t)
	env.Worker(t, nil)
	n := env.StartNode(t, testenv.NodeConfig{})
	u := n.SignUp(t, "aulo")
	other := u
	n.Login(t, &other) // a second session of the same user

	if r := acctCall(t, n, "GET", "/api/v1/me", u.Access, nil, nil); r.Status != 200 {
		t.Fatalf("me before logout: %d", r.Status)
	}
	r := acctCall(t, n, "POST", "/api/v1/auth/logout", u.Access, nil, nil)
	if r.Status != 204 || len(r.Body) != 0 {
		t.Fatalf("logout: %d %s", r.Status, r.Body)
	}
	r = acctCall(t, n, "GET", "/api/v1/me", u.Access, nil, nil)
	wantProblem(t, "access token after logout", r, 401, chatflow.ECodeInvalidToken)
	r, _ = refresh(t, n, u.Refresh)
	if r.Status != 401 {
		t.Errorf("refresh token after logout: %d %s", r.Status, r.Body)
	}
	wantProblem(t, "refresh token after logout", r, 401, chatflow.ECodeInvalidToken)
	r = acctCall(t, n, "POST", "/api/v1/auth/logout", u.Access, nil, nil)
	wantProblem(t, "second logout", r, 401, chatflow.ECodeInvalidToken)

	// The other session is untouched.
	if r := acctCall(t, n, "GET", "/api/v1/me", other.Access, nil, nil); r.Status != 200 {
		t.Errorf("other session after logout: %d %s", r.Status, r.Body)
	}
	if r, _ := refresh(t, n, other.Refresh); r.Status != 200 {
		t.Errorf("other session refresh after logout: %d %s", r.Status, r.Body)
	}
}

func TestAuthBadTokens(t *testing.T) {
	env := testenv.Open(t)
	env.Worker(t, nil)
	n := env.StartNode(t, testenv.NodeConfig{})
	u := n.SignUp(t, "aubad")
	key := []byte(testenv.Secret)
	now := time.Now()

	// Control: a token minted like this with a valid lifetime is accepted, so
	// each rejection below is caused by the one thing that differs.
	good := mint(t, jwt.SigningMethodHS256, key, u.ID, now, now.Add(time.Minute), token.KindAccess)
	if r := acctCall(t, n, "GET", "/api/v1/me", good, nil, nil); r.Status != 200 {
		t.Fatalf("control token rejected: %d %s", r.Status, r.Body)
	}

	expired := mint(t, jwt.SigningMethodHS256, key, u.ID, now.Add(-time.Hour), now.Add(-time.Minute), token.KindAccess)
	none := mint(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, u.ID, now, now.Add(time.Minute), token.KindAccess)
	otherKey := mint(t, jwt.SigningMethodHS256, []byte("some-other-secret-0123456789abcdef"), u.ID, now, now.Add(time.Minute), token.KindAccess)
	hs512 := mint(t, jwt.SigningMethodHS512, key, u.ID, now, now.Add(time.Minute), token.KindAccess)

	// Tampered: the payload is changed (role escalated), the signature kept.
	parts := strings.Split(u.Access, ".")
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var claims map[string]any
	if err := json.Unmarshal(raw, &claims); err != nil {
		t.Fatal(err)
	}
	claims["role"] = "admin"
	raw, _ = json.Marshal(claims)
	tampered := parts[0] + "." + base64.RawURLEncoding.EncodeToString(raw) + "." + parts[2]
	sig := []byte(parts[2])
	if sig[0] == 'A' {
		sig[0] = 'B'
	} else {
		sig[0] = 'A'
	}
	badSig := parts[0] + "." + parts[1] + "." + string(sig)

	for _, tc := range []struct{ name, tok string }{
		{"expired", expired}, {"alg none", none}, {"other key", otherKey}, {"HS512", hs512},
		{"tampered payload", tampered}, {"tampered signature", badSig}, {"garbage", "abc.def.ghi"},
	} {
		r := acctCall(t, n, "GET", "/api/v1/me", tc.tok, nil, nil)
		wantProblem(t, tc.name+" token", r, 401, chatflow.ECodeInvalidToken)
	}

	// No token at all, or not a bearer token.
	r := acctCall(t, n, "GET", "/api/v1/me", "", nil, nil)
	wantProblem(t, "missing token", r, 401, chatflow.ECodeUnauthorized)
	req := func(h string) acctResp {
		t.Helper()
		rq, err := acctHTTPRequest(n, "GET", "/api/v1/me", h)
		if err != nil {
			t.Fatal(err)
		}
		return rq
	}
	wantProblem(t, "basic auth", req("Basic dXNlcjpwYXNz"), 401, chatflow.ECodeUnauthorized)
	wantProblem(t, "empty bearer", req("Bearer "), 401, chatflow.ECodeUnauthorized)
	// The query parameter is for WebSocket upgrades only.
	r = acctCall(t, n, "GET", "/api/v1/me?access_token="+u.Access, "", nil, nil)
	wantProblem(t, "token in the query string", r, 401, chatflow.ECodeUnauthorized)
}

// acctHTTPRequest sends a request with a raw Authorization header.
func acctHTTPRequest(n *testenv.Node, method, path, authz string) (acctResp, error) {
	rq, err := http.NewRequest(method, n.URL+path, nil)
	if err != nil {
		return acctResp{}, err
	}
	rq.Header.Set("Authorization", authz)
	resp, err := acctHTTP.Do(rq)
	if err != nil {
		return acctResp{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return acctResp{Status: resp.StatusCode, Header: resp.Header, Body: b}, err
}

func TestAuthAdmin(t *testing.T) {
	env := testenv.Open(t)
	env.Worker(t, nil)
	n := env.StartNode(t, testenv.NodeConfig{})
	plain, boss := n.SignUp(t, "auusr"), n.SignUp(t, "auadm")
	an := env.StartNode(t, testenv.NodeConfig{})
	// The admin role comes from `chatflow admin grant` only.
	if err := app.SetAdmin(context.Background(), env.Pool, boss.Username, true); err != nil {
		t.Fatal(err)
	}

	for _, path := range []string{"/api/v1/admin/stats", "/api/v1/admin/signups"} {
		r := acctCall(t, n, "GET", path, plain.Access, nil, nil)
		wantProblem(t, "normal user on "+path, r, 403, chatflow.ECodeForbidden)
		// The admin's token from before the grant carries role user: still forbidden.
		r = acctCall(t, an, "GET", path, boss.Access, nil, nil)
		wantProblem(t, "granted user with a user-role token on "+path, r, 403, chatflow.ECodeForbidden)
		r = acctCall(t, an, "GET", path, "", nil, nil)
		wantProblem(t, "anonymous on "+path, r, 401, chatflow.ECodeUnauthorized)
	}

	an.Login(t, &boss)
	var stats map[string]any
	r := acctCall(t, an, "GET", "/api/v1/admin/stats", boss.Access, nil, &stats)
	if r.Status != 200 {
		t.Fatalf("admin stats: %d %s", r.Status, r.Body)
	}
	for _, k := range []string{"users", "rooms", "messages", "connections"} {
		if v, ok := stats[k].(float64); !ok || v < 0 {
			t.Errorf("stats[%q] = %v", k, stats[k])
		}
	}
	if v, _ := stats["users"].(float64); v < 2 {
		t.Errorf("stats users = %v, want at least the 2 users of this test", v)
	}
	// The role claim is what counts, so the admin token works on any node.
	if r := acctCall(t, n, "GET", "/api/v1/admin/stats", boss.Access, nil, nil); r.Status != 200 {
		t.Errorf("admin token on another node: %d %s", r.Status, r.Body)
	}

	type signupRow struct {
		WorkflowID string    `json:"workflow_id"`
		Username   string    `json:"username"`
		Status     string    `json:"status"`
		StartedAt  time.Time `json:"started_at"`
	}
	desc, err := env.Temporal.DescribeWorkflowExecution(context.Background(), "signup-"+boss.Username, "")
	if err != nil {
		t.Fatal(err)
	}
	bossStarted := desc.WorkflowExecutionInfo.GetStartTime().AsTime()
	var rows []signupRow
	deadline := time.Now().Add(10 * time.Second)
	for {
		var signups struct {
			Signups []signupRow `json:"signups"`
		}
		r = acctCall(t, an, "GET", "/api/v1/admin/signups", boss.Access, nil, &signups)
		if r.Status != 200 {
			t.Fatalf("admin signups: %d %s", r.Status, r.Body)
		}
		rows = signups.Signups
		found := false
		for _, s := range rows {
			found = found || (s.Username == boss.Username && s.Status == "completed")
		}
		// Visibility is eventually consistent, and under parallel load 50
		// newer sign-ups may push this test's one off the page.
		crowded := len(rows) == 50 && rows[len(rows)-1].StartedAt.After(bossStarted)
		if found || crowded {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("admin signups never listed %s as completed: %s", boss.Username, r.Body)
		}
		time.Sleep(200 * time.Millisecond)
	}
	for i, s := range rows {
		if s.WorkflowID != "signup-"+s.Username || s.StartedAt.IsZero() {
			t.Errorf("signup row %+v", s)
		}
		switch s.Status {
		case "running", "completed", "failed", "terminated", "canceled", "timed_out", "continued_as_new":
		default:
			t.Errorf("signup row status %q", s.Status)
		}
		if i > 0 && s.StartedAt.After(rows[i-1].StartedAt) {
			t.Errorf("admin signups not newest first at %d: %v after %v", i, s.StartedAt, rows[i-1].StartedAt)
		}
	}
	var me meJSON
	if r := acctCall(t, an, "GET", "/api/v1/me", boss.Access, nil, &me); r.Status != 200 || me.UserID != boss.ID {
		t.Errorf("admin me: %d %s", r.Status, r.Body)
	}
}

// TestAuthLogoutClosesSessionSockets: logging a session out closes the
// WebSockets opened with it, on every node, and leaves the user's other
// sessions connected.
func TestAuthLogoutClosesSessionSockets(t *testing.T) {
	env := testenv.Open(t)
	env.Worker(t, nil)
	n1 := env.StartNode(t, testenv.NodeConfig{})
	n2 := env.StartNode(t, testenv.NodeConfig{})
	u := n1.SignUp(t, "aloc")
	other := u
	n1.Login(t, &other) // a second session (another device)

	s1, s2, keep := n1.Dial(t, u), n2.Dial(t, u), n1.Dial(t, other)
	for _, w := range []*testenv.WS{s1, s2, keep} {
		w.Send(map[string]any{"type": "ping"})
		if _, err := w.Next(5*time.Second, testenv.OfType("pong")); err != nil {
			t.Fatal(err)
		}
	}
	if st := n1.Call(t, "POST", "/api/v1/auth/logout", u.Access, nil, nil); st != 204 {
		t.Fatalf("logout: %d", st)
	}
	for name, w := range map[string]*testenv.WS{"same node": s1, "other node": s2} {
		if _, err := w.Next(5*time.Second, func(testenv.Frame) bool { return false }); err == nil || isTimeout(err) {
			t.Fatalf("%s: socket of the logged-out session still open (%v)", name, err)
		}
	}
	keep.Send(map[string]any{"type": "ping"})
	if _, err := keep.Next(5*time.Second, testenv.OfType("pong")); err != nil {
		t.Fatalf("the other session's socket was closed too: %v", err)
	}
}

func isTimeout(err error) bool {
	var ne interface{ Timeout() bool }
	return errors.As(err, &ne) && ne.Timeout()
}
