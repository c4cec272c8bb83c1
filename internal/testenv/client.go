package testenv

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/fasthttp/websocket"
	"github.com/google/uuid"
)

// Call performs a JSON request and decodes the JSON answer into out (may be nil).
func (n *Node) Call(t testing.TB, method, path, token string, body any, out any) int {
	t.Helper()
	var r io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		r = strings.NewReader(b)
	case []byte:
		r = strings.NewReader(string(b))
	default:
		raw, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		r = strings.NewReader(string(raw))
	}
	req, err := http.NewRequest(method, n.URL+path, r)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if out != nil && len(raw) > 0 {
		if err := json.Unmarshal(raw, out); err != nil {
			t.Fatalf("%s %s: decode %q: %v", method, path, raw, err)
		}
	}
	return resp.StatusCode
}

// User is a signed-up, logged-in test user.
type User struct {
	ID, Username, Email, Password string
	Access, Refresh               string
}

// Unique returns a fresh username-safe suffix.
func Unique() string { return strings.ReplaceAll(uuid.NewString()[:12], "-", "") }

// SignUp registers a user through the saga and logs in. A worker must run.
func (n *Node) SignUp(t testing.TB, prefix string) User {
	t.Helper()
	u := User{Username: prefix + "_" + Unique(), Password: "password-" + Unique()}
	u.Email = u.Username + "@example.test"
	var started struct {
		SignupID string `json:"signup_id"`
	}
	if st := n.Call(t, "POST", "/api/v1/signup", "", map[string]string{
		"username": u.Username, "email": u.Email, "password": u.Password, "display_name": strings.ToUpper(prefix),
	}, &started); st != 202 {
		t.Fatalf("signup %s: status %d", u.Username, st)
	}
	var prog struct {
		Status string `json:"status"`
		UserID string `json:"user_id"`
		Error  string `json:"error"`
	}
	deadline := time.Now().Add(30 * time.Second)
	for prog.Status != "completed" {
		if time.Now().After(deadline) {
			t.Fatalf("signup %s did not complete: %+v", u.Username, prog)
		}
		n.Call(t, "GET", "/api/v1/signup/"+started.SignupID+"?wait=5s", "", nil, &prog)
		if prog.Status == "failed" {
			t.Fatalf("signup %s failed: %s", u.Username, prog.Error)
		}
	}
	u.ID = prog.UserID
	n.Login(t, &u)
	return u
}

// Login refreshes u's tokens.
func (n *Node) Login(t testing.TB, u *User) {
	t.Helper()
	var pair struct {
		AccessToken  string `json:"access_token"`
		RefreshToken string `json:"refresh_token"`
	}
	if st := n.Call(t, "POST", "/api/v1/auth/login", "", map[string]string{"username": u.Username, "password": u.Password}, &pair); st != 200 {
		t.Fatalf("login %s: status %d", u.Username, st)
	}
	u.Access, u.Refresh = pair.AccessToken, pair.RefreshToken
}

// Befriend makes u and each of friends mutual friends the way clients do:
// u sends a friend request, the friend accepts it. Friends may add each
// other to rooms directly (their consent). Pairs already friends stay so;
// a pending request from the friend to u is accepted by u's request.
func (n *Node) Befriend(t testing.TB, u User, friends ...User) {
	t.Helper()
	for _, f := range friends {
		var p struct {
			Code string `json:"code"`
		}
		switch st := n.Call(t, "POST", "/api/v1/friends/requests", u.Access, map[string]string{"user_id": f.ID}, &p); {
		case st == 201:
			if st := n.Call(t, "POST", "/api/v1/friends/requests/"+u.ID+"/accept", f.Access, nil, nil); st != 200 {
				t.Fatalf("%s accepts %s's friend request: status %d", f.Username, u.Username, st)
			}
		case st == 200, st == 409 && p.Code == "already_friends":
		default:
			t.Fatalf("%s asks %s to be friends: status %d %s", u.Username, f.Username, st, p.Code)
		}
	}
}

// CreateRoom creates a room owned by owner with the given members and
// returns its id. Each member first becomes owner's friend (consent), so
// they all become members at once instead of being invited.
func (n *Node) CreateRoom(t testing.TB, owner User, members ...User) string {
	t.Helper()
	ids := make([]string, len(members))
	for i, m := range members {
		ids[i] = m.ID
		if m.ID != owner.ID {
			n.Befriend(t, m, owner)
		}
	}
	var room struct {
		RoomID string `json:"room_id"`
	}
	if st := n.Call(t, "POST", "/api/v1/rooms", owner.Access, map[string]any{"name": "room " + Unique(), "member_ids": ids}, &room); st != 201 {
		t.Fatalf("create room: status %d", st)
	}
	return room.RoomID
}

// WS is a test WebSocket client.
type WS struct {
	Conn *websocket.Conn
	t    testing.TB
}

// Dial opens /ws as the user.
func (n *Node) Dial(t testing.TB, u User) *WS {
	t.Helper()
	c, resp, err := websocket.DefaultDialer.Dial("ws://"+n.Addr+"/ws?access_token="+u.Access, nil)
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		t.Fatalf("dial ws: %v (status %d)", err, status)
	}
	t.Cleanup(func() { c.Close() })
	return &WS{Conn: c, t: t}
}

// Send writes one JSON frame.
func (w *WS) Send(v any) {
	w.t.Helper()
	if err := w.Conn.WriteJSON(v); err != nil {
		w.t.Fatalf("ws write: %v", err)
	}
}

// Frame is any server frame, decoded loosely.
type Frame map[string]any

// Type returns the frame's type.
func (f Frame) Type() string { s, _ := f["type"].(string); return s }

// Str returns a string field.
func (f Frame) Str(k string) string { s, _ := f[k].(string); return s }

// Int returns a numeric field.
func (f Frame) Int(k string) int64 { n, _ := f[k].(float64); return int64(n) }

// Next reads frames until one matches pred or the timeout passes.
func (w *WS) Next(timeout time.Duration, pred func(Frame) bool) (Frame, error) {
	deadline := time.Now().Add(timeout)
	for {
		_ = w.Conn.SetReadDeadline(deadline)
		_, data, err := w.Conn.ReadMessage()
		if err != nil {
			return nil, err
		}
		var f Frame
		if err := json.Unmarshal(data, &f); err != nil {
			return nil, fmt.Errorf("server sent non-JSON frame %q", data)
		}
		if pred == nil || pred(f) {
			return f, nil
		}
	}
}

// OfType matches frames of a type.
func OfType(typ string) func(Frame) bool { return func(f Frame) bool { return f.Type() == typ } }
