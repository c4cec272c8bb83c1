package tests

import (
	"context"
	"encoding/base64"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/fasthttp/websocket"
	"github.com/google/uuid"

	"github.com/chatflow/chatflow"
	"github.com/chatflow/chatflow/internal/app"
	"github.com/chatflow/chatflow/internal/testenv"
)

// Tests of issue 11's admin routes on users and per-day stats.

type adminUserJSON struct {
	ID          string     `json:"id"`
	Username    string     `json:"username"`
	Email       string     `json:"email"`
	Role        string     `json:"role"`
	Status      string     `json:"status"`
	CreatedAt   time.Time  `json:"created_at"`
	LastLoginAt *time.Time `json:"last_login_at"`
	LastSeenAt  *time.Time `json:"last_seen_at"`
	DisabledAt  *time.Time `json:"disabled_at"`
}

type adminUsersPage struct {
	Users      []adminUserJSON `json:"users"`
	NextCursor *string         `json:"next_cursor"`
}

// newAdmin signs up a user, grants the admin role and logs in again so the
// token carries it.
func newAdmin(t *testing.T, env *testenv.Env, n *testenv.Node, prefix string) testenv.User {
	t.Helper()
	a := n.SignUp(t, prefix)
	if err := app.SetAdmin(context.Background(), env.Pool, a.Username, true); err != nil {
		t.Fatal(err)
	}
	n.Login(t, &a)
	return a
}

func listUsers(t *testing.T, n *testenv.Node, admin testenv.User, query url.Values) (acctResp, adminUsersPage) {
	t.Helper()
	var p adminUsersPage
	r := acctCall(t, n, "GET", "/api/v1/admin/users?"+query.Encode(), admin.Access, nil, &p)
	return r, p
}

// TestAdminUsersListAndPaging: q matches a username or email prefix,
// whatever its case; pages come newest first, limit at a time, with an
// opaque cursor until the last; no hash is ever in the answer; a garbled
// cursor is 422; last_login_at shows the sign-up's login. Non-admins get
// 403 on every admin route.
func TestAdminUsersListAndPaging(t *testing.T) {
	env := testenv.Open(t)
	env.Worker(t, nil)
	n := env.StartNode(t, testenv.NodeConfig{})
	admin := newAdmin(t, env, n, "auladm")
	prefix := "aul" + testenv.Unique()[:6]
	var users []testenv.User // in sign-up order: oldest first
	for range 3 {
		users = append(users, n.SignUp(t, prefix))
	}

	r, all := listUsers(t, n, admin, url.Values{"q": {strings.ToUpper(prefix)}})
	if r.Status != 200 || len(all.Users) != 3 || all.NextCursor != nil {
		t.Fatalf("list q=%s: %d %s", prefix, r.Status, r.Body)
	}
	for _, bad := range []string{"password", "hash", "$2a$"} {
		if strings.Contains(string(r.Body), bad) {
			t.Fatalf("admin users list contains %q: %s", bad, r.Body)
		}
	}
	for i, got := range all.Users {
		want := users[len(users)-1-i] // newest first
		if got.ID != want.ID || got.Username != want.Username || got.Email != want.Email || got.Role != "user" || got.Status != "active" {
			t.Fatalf("user %d: %+v, want %s", i, got, want.Username)
		}
		if got.LastLoginAt == nil || time.Since(*got.LastLoginAt) > time.Minute || got.CreatedAt.IsZero() || got.DisabledAt != nil {
			t.Fatalf("user %d times: %+v", i, got)
		}
	}

	// Two pages of 2 and 1, the same users in the same order.
	var paged []adminUserJSON
	q := url.Values{"q": {prefix}, "limit": {"2"}}
	r, p1 := listUsers(t, n, admin, q)
	if r.Status != 200 || len(p1.Users) != 2 || p1.NextCursor == nil {
		t.Fatalf("first page: %d %s", r.Status, r.Body)
	}
	paged = append(paged, p1.Users...)
	q.Set("cursor", *p1.NextCursor)
	r, p2 := listUsers(t, n, admin, q)
	if r.Status != 200 || len(p2.Users) != 1 {
		t.Fatalf("second page: %d %s", r.Status, r.Body)
	}
	paged = append(paged, p2.Users...)
	if p2.NextCursor != nil {
		q.Set("cursor", *p2.NextCursor)
		if r, p3 := listUsers(t, n, admin, q); r.Status != 200 || len(p3.Users) != 0 {
			t.Fatalf("page past the end: %d %s", r.Status, r.Body)
		}
	}
	for i := range paged {
		if paged[i].ID != all.Users[i].ID {
			t.Fatalf("paged order %d: %s, want %s", i, paged[i].Username, all.Users[i].Username)
		}
	}

	// An email prefix past the username matches that one user only.
	r, byEmail := listUsers(t, n, admin, url.Values{"q": {users[1].Username + "@EXAMPLE"}})
	if r.Status != 200 || len(byEmail.Users) != 1 || byEmail.Users[0].ID != users[1].ID {
		t.Fatalf("list by email prefix: %d %s", r.Status, r.Body)
	}
	// LIKE wildcards are literal: "%" matches no username.
	if r, none := listUsers(t, n, admin, url.Values{"q": {"%"}}); r.Status != 200 || len(none.Users) != 0 {
		t.Fatalf("q=%%: %d %d users", r.Status, len(none.Users))
	}
	// No q: everyone, newest first (the three are the newest users here).
	if r, page := listUsers(t, n, admin, url.Values{"limit": {"3"}}); r.Status != 200 || len(page.Users) != 3 || page.NextCursor == nil {
		t.Fatalf("list without q: %d %s", r.Status, r.Body)
	}

	for _, cur := range []string{"garbage!", base64.RawURLEncoding.EncodeToString([]byte("u12.not-a-uuid")), base64.RawURLEncoding.EncodeToString([]byte("e12")), strings.Repeat("a", 600)} {
		r, _ := listUsers(t, n, admin, url.Values{"cursor": {cur}})
		wantProblem(t, "cursor "+cur[:min(len(cur), 20)], r, 422, chatflow.ECodeValidation)
	}
	r, _ = listUsers(t, n, admin, url.Values{"limit": {"-1"}})
	wantProblem(t, "negative limit", r, 422, chatflow.ECodeValidation)

	plain := users[0]
	for _, rt := range [][2]string{
		{"GET", "/api/v1/admin/users"},
		{"POST", "/api/v1/admin/users/" + users[1].ID + "/disable"},
		{"POST", "/api/v1/admin/users/" + users[1].ID + "/enable"},
		{"GET", "/api/v1/admin/stats?days=3"},
	} {
		wantProblem(t, "non-admin on "+rt[1], acctCall(t, n, rt[0], rt[1], plain.Access, nil, nil), 403, chatflow.ECodeForbidden)
	}
	if r := acctCall(t, n, "GET", "/api/v1/me", users[1].Access, nil, nil); r.Status != 200 {
		t.Fatalf("a non-admin's disable attempt touched the user: %d", r.Status)
	}
}

// TestAdminDisableEnable: disabling an active user ends its sessions on
// every node (tokens refused, sockets get "session revoked" and close);
// the right password then gets 403 account_disabled, a wrong one 401
// invalid_credentials as before, and refresh 401. Disabling is idempotent,
// refused for oneself (422), unknown users (404) and users not active
// (409). Enabling lets the user log in again; the sessions ended by the
// disable stay ended.
func TestAdminDisableEnable(t *testing.T) {
	env := testenv.Open(t)
	env.Worker(t, nil)
	n1 := env.StartNode(t, testenv.NodeConfig{})
	n2 := env.StartNode(t, testenv.NodeConfig{})
	admin := newAdmin(t, env, n1, "adsadm")
	v := n1.SignUp(t, "adsv")
	v2 := v
	n2.Login(t, &v2) // a second session
	ws1, ws2 := connect(t, n1, v), connect(t, n2, v2)
	bystander := n1.SignUp(t, "adsb")
	wsB := connect(t, n1, bystander)

	var view adminUserJSON
	r := acctCall(t, n1, "POST", "/api/v1/admin/users/"+v.ID+"/disable", admin.Access, nil, &view)
	if r.Status != 200 || view.ID != v.ID || view.Status != "disabled" || view.DisabledAt == nil {
		t.Fatalf("disable: %d %s", r.Status, r.Body)
	}
	for _, c := range []*wsClient{ws1, ws2} {
		c.must(5*time.Second, sessionEvent("revoked"), "disabled user's revoked frame")
		c.closedWithin(5 * time.Second)
	}
	for _, f := range wsB.barrier(5 * time.Second) {
		if f.Type() == "session" {
			t.Fatalf("another user's socket got %v", f)
		}
	}
	for _, u := range []testenv.User{v, v2} {
		wantProblem(t, "disabled user's access token", acctCall(t, n2, "GET", "/api/v1/me", u.Access, nil, nil), 401, chatflow.ECodeInvalidToken)
		r, _ := refresh(t, n2, u.Refresh)
		wantProblem(t, "disabled user's refresh token", r, 401, chatflow.ECodeInvalidToken)
	}
	r, _ = login(t, n1, v.Username, v.Password)
	wantProblem(t, "disabled user's login, right password", r, 403, chatflow.ECodeAccountDisabled)
	r, _ = login(t, n1, v.Username, "wrong-password")
	wantProblem(t, "disabled user's login, wrong password", r, 401, chatflow.ECodeInvalidCredentials)
	// A socket cannot be opened with the old token either.
	if _, resp, err := websocket.DefaultDialer.Dial("ws://"+n2.Addr+"/ws?access_token="+v.Access, nil); err == nil || resp == nil || resp.StatusCode != 401 {
		t.Fatalf("ws with a disabled user's token: %v %v", err, resp)
	}

	var again adminUserJSON
	if r := acctCall(t, n2, "POST", "/api/v1/admin/users/"+v.ID+"/disable", admin.Access, nil, &again); r.Status != 200 || again.Status != "disabled" || again.DisabledAt == nil || !again.DisabledAt.Equal(*view.DisabledAt) {
		t.Fatalf("disable again: %d %s", r.Status, r.Body)
	}
	wantProblem(t, "disable oneself", acctCall(t, n1, "POST", "/api/v1/admin/users/"+admin.ID+"/disable", admin.Access, nil, nil), 422, chatflow.ECodeValidation)
	wantProblem(t, "disable unknown user", acctCall(t, n1, "POST", "/api/v1/admin/users/"+uuid.NewString()+"/disable", admin.Access, nil, nil), 404, chatflow.ECodeNotFound)
	wantProblem(t, "enable unknown user", acctCall(t, n1, "POST", "/api/v1/admin/users/"+uuid.NewString()+"/enable", admin.Access, nil, nil), 404, chatflow.ECodeNotFound)
	wantProblem(t, "disable a non-id", acctCall(t, n1, "POST", "/api/v1/admin/users/nope/disable", admin.Access, nil, nil), 404, chatflow.ECodeNotFound)
	pending := uuid.New()
	if _, err := env.Pool.Exec(context.Background(), `INSERT INTO auth.users (id, username, email, password_hash) VALUES ($1, $2, $3, 'x')`,
		pending, "adsp_"+testenv.Unique(), "adsp_"+testenv.Unique()+"@example.test"); err != nil {
		t.Fatal(err)
	}
	wantProblem(t, "disable a pending user", acctCall(t, n1, "POST", "/api/v1/admin/users/"+pending.String()+"/disable", admin.Access, nil, nil), 409, chatflow.ECodeConflict)
	wantProblem(t, "enable a pending user", acctCall(t, n1, "POST", "/api/v1/admin/users/"+pending.String()+"/enable", admin.Access, nil, nil), 409, chatflow.ECodeConflict)
	if _, err := env.Pool.Exec(context.Background(), `UPDATE auth.users SET status = 'deleting' WHERE id = $1`, pending); err != nil {
		t.Fatal(err)
	}
	wantProblem(t, "disable a user being deleted", acctCall(t, n1, "POST", "/api/v1/admin/users/"+pending.String()+"/disable", admin.Access, nil, nil), 409, chatflow.ECodeConflict)

	var enabled adminUserJSON
	if r := acctCall(t, n1, "POST", "/api/v1/admin/users/"+v.ID+"/enable", admin.Access, nil, &enabled); r.Status != 200 || enabled.Status != "active" || enabled.DisabledAt != nil {
		t.Fatalf("enable: %d %s", r.Status, r.Body)
	}
	if r := acctCall(t, n1, "POST", "/api/v1/admin/users/"+v.ID+"/enable", admin.Access, nil, &enabled); r.Status != 200 || enabled.Status != "active" {
		t.Fatalf("enable again: %d %s", r.Status, r.Body)
	}
	if r, _ := refresh(t, n1, v2.Refresh); r.Status != 401 {
		t.Fatalf("a session ended by the disable works again after enable: %d", r.Status)
	}
	r, p := login(t, n1, v.Username, v.Password)
	if r.Status != 200 {
		t.Fatalf("login after enable: %d %s", r.Status, r.Body)
	}
	connect(t, n2, as(v, p.AccessToken)).barrier(5 * time.Second)
}

// TestAdminDisableRacesLogins: logins with the right password run
// concurrently with a disable, on two nodes; none of the sessions they got
// survives it (token.IssueAfter refuses a login that read the user as
// active before the revocation).
func TestAdminDisableRacesLogins(t *testing.T) {
	env := testenv.Open(t)
	env.Worker(t, nil)
	n1 := env.StartNode(t, testenv.NodeConfig{})
	n2 := env.StartNode(t, testenv.NodeConfig{})
	admin := newAdmin(t, env, n1, "adradm")
	v := n1.SignUp(t, "adrv")
	slowHash(t, env, v)
	stop := raceLogins(t, []*testenv.Node{n1, n2}, v.Username, v.Password)
	time.Sleep(300 * time.Millisecond)
	if r := acctCall(t, n2, "POST", "/api/v1/admin/users/"+v.ID+"/disable", admin.Access, nil, nil); r.Status != 200 {
		t.Fatalf("disable: %d %s", r.Status, r.Body)
	}
	time.Sleep(100 * time.Millisecond)
	got := stop()
	if len(got) == 0 {
		t.Fatal("no login succeeded before the disable: the race was not run")
	}
	assertSessionsDead(t, n1, got, "session from before the disable")
	t.Logf("%d sessions from logins racing the disable, none survived", len(got))
}

type dayStats struct {
	Date        string `json:"date"`
	Signups     int64  `json:"signups"`
	Messages    int64  `json:"messages"`
	ActiveUsers int64  `json:"active_users"`
}

func adminDays(t *testing.T, n *testenv.Node, admin testenv.User, days string) []dayStats {
	t.Helper()
	var out struct {
		Users int64      `json:"users"`
		Days  []dayStats `json:"days"`
	}
	path := "/api/v1/admin/stats"
	if days != "" {
		path += "?days=" + days
	}
	if r := acctCall(t, n, "GET", path, admin.Access, nil, &out); r.Status != 200 {
		t.Fatalf("admin stats: %d %s", r.Status, r.Body)
	}
	return out.Days
}

// TestAdminStatsPerDay: days lists the last N UTC days (7 by default, up to
// 90), oldest first, one entry per day with zeros for quiet days. Sign-ups
// and messages sent show up in today's counts; moved to earlier days (in
// Postgres), they count exactly there: users activated that day, text
// messages sent that day, distinct senders that day.
func TestAdminStatsPerDay(t *testing.T) {
	env := testenv.Open(t)
	env.Worker(t, nil)
	n := env.StartNode(t, testenv.NodeConfig{})
	admin := newAdmin(t, env, n, "asdadm")

	before := adminDays(t, n, admin, "")
	if len(before) != 7 {
		t.Fatalf("default days: %d entries", len(before))
	}
	today := time.Now().UTC()
	for i, d := range before {
		if want := today.AddDate(0, 0, i-6).Format("2006-01-02"); d.Date != want {
			t.Fatalf("day %d is %s, want %s (oldest first, today last)", i, d.Date, want)
		}
	}
	if got := adminDays(t, n, admin, "90"); len(got) != 90 || got[89].Date != before[6].Date {
		t.Fatalf("days=90: %d entries", len(got))
	}
	if got := adminDays(t, n, admin, "1"); len(got) != 1 || got[0].Date != before[6].Date {
		t.Fatalf("days=1: %+v", got)
	}
	for _, bad := range []string{"0", "91", "-3", "x"} {
		wantProblem(t, "days="+bad, acctCall(t, n, "GET", "/api/v1/admin/stats?days="+bad, admin.Access, nil, nil), 422, chatflow.ECodeValidation)
	}

	a, b := n.SignUp(t, "asda"), n.SignUp(t, "asdb")
	room := n.CreateRoom(t, a, b)
	for i, u := range []testenv.User{a, a, a, b, b} {
		if st, _ := restSend(t, n, u, room, "m"+string(rune('0'+i)), "hello"); st != 201 {
			t.Fatalf("send %d: %d", i, st)
		}
	}
	waitPersisted(t, env, room, 5, 15*time.Second)
	now := adminDays(t, n, admin, "")
	if d := now[6]; d.Signups-before[6].Signups < 2 || d.Messages-before[6].Messages < 5 || d.ActiveUsers-before[6].ActiveUsers < 2 {
		t.Fatalf("today after 2 sign-ups and 5 messages by 2 users: %+v, before %+v", d, before[6])
	}

	// Move this test's rows into the past, where nothing else writes: the
	// counts of those days then move by exactly this test's activity.
	ctx := context.Background()
	if _, err := env.Pool.Exec(ctx, `UPDATE auth.users SET activated_at = activated_at - interval '3 days' WHERE id = ANY($1::uuid[])`, []string{a.ID, b.ID}); err != nil {
		t.Fatal(err)
	}
	if _, err := env.Pool.Exec(ctx, `UPDATE chat.messages SET sent_at = sent_at - interval '2 days' WHERE room_id = $1`, room); err != nil {
		t.Fatal(err)
	}
	after := adminDays(t, n, admin, "")
	// index 6 is today, 4 two days ago, 3 three days ago
	if after[6].Date != before[6].Date {
		t.Skip("the UTC day changed during the test")
	}
	delta := func(i int) dayStats {
		return dayStats{Date: after[i].Date, Signups: after[i].Signups - before[i].Signups,
			Messages: after[i].Messages - before[i].Messages, ActiveUsers: after[i].ActiveUsers - before[i].ActiveUsers}
	}
	if d := delta(4); d.Messages != 5 || d.ActiveUsers != 2 || d.Signups != 0 {
		t.Fatalf("two days ago: %+v, want 5 messages by 2 users", d)
	}
	if d := delta(3); d.Signups != 2 || d.Messages != 0 || d.ActiveUsers != 0 {
		t.Fatalf("three days ago: %+v, want 2 sign-ups", d)
	}
	for _, i := range []int{0, 1, 2, 5} {
		if d := delta(i); d.Signups != 0 || d.Messages != 0 || d.ActiveUsers != 0 {
			t.Fatalf("day %s moved: %+v", d.Date, d)
		}
	}
}
