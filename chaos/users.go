package chaos

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"
)

// User is a signed-up, logged-in test user.
type User struct {
	ID       string
	Username string
	Password string
	Access   string
}

func newHTTPClient() *http.Client {
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
}

// httpDo sends raw (may be nil) and decodes a 2xx answer into out. It
// returns the status (0 when there was no answer) and the body.
func httpDo(ctx context.Context, hc *http.Client, method, url, token string, raw []byte, out any) (int, []byte, error) {
	var rd io.Reader
	if raw != nil {
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode >= 300 {
		return resp.StatusCode, body, fmt.Errorf("%s %s: %d %s", method, url, resp.StatusCode, strings.TrimSpace(string(body)))
	}
	if out != nil && len(body) > 0 {
		if err := json.Unmarshal(body, out); err != nil {
			return resp.StatusCode, body, err
		}
	}
	return resp.StatusCode, body, nil
}

func httpJSON(ctx context.Context, hc *http.Client, method, url, token string, in, out any) error {
	var raw []byte
	if in != nil {
		raw, _ = json.Marshal(in)
	}
	_, _, err := httpDo(ctx, hc, method, url, token, raw, out)
	return err
}

// SignUp registers n users through the sign-up saga (POST /signup, then
// long-polls its status) and logs each in, 8 at a time.
func SignUp(ctx context.Context, base, prefix string, n int) ([]User, error) {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	hc := newHTTPClient()
	users := make([]User, n)
	var g errgroup.Group
	g.SetLimit(8)
	for i := range users {
		g.Go(func() (err error) {
			users[i], err = signUpOne(ctx, hc, base, fmt.Sprintf("%s_%d", prefix, i))
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, fmt.Errorf("sign-up: %w", err)
	}
	return users, nil
}

func signUpOne(ctx context.Context, hc *http.Client, base, name string) (User, error) {
	u := User{Username: name, Password: "chaos-pw-" + name}
	var st struct {
		SignupID string `json:"signup_id"`
		Status   string `json:"status"`
		UserID   string `json:"user_id"`
		Error    string `json:"error"`
	}
	err := httpJSON(ctx, hc, "POST", base+"/api/v1/signup", "", map[string]string{
		"username": name, "email": name + "@chaos.test", "password": u.Password, "display_name": "Chaos " + name,
	}, &st)
	for err == nil && st.Status != "completed" {
		if st.Status == "failed" {
			return u, fmt.Errorf("saga of %s failed: %s", name, st.Error)
		}
		id := st.SignupID
		err = httpJSON(ctx, hc, "GET", base+"/api/v1/signup/"+id+"?wait=5s", "", nil, &st)
		st.SignupID = id
	}
	if err != nil {
		return u, err
	}
	u.ID = st.UserID
	var pair struct {
		AccessToken string `json:"access_token"`
	}
	if err := httpJSON(ctx, hc, "POST", base+"/api/v1/auth/login", "", map[string]string{"username": name, "password": u.Password}, &pair); err != nil {
		return u, err
	}
	u.Access = pair.AccessToken
	return u, nil
}

// befriend makes u and friend friends: u asks, friend accepts. Friends
// already (the owner of an earlier room) is fine.
func befriend(ctx context.Context, hc *http.Client, base string, u, friend User) error {
	raw, _ := json.Marshal(map[string]string{"user_id": friend.ID})
	st, body, err := httpDo(ctx, hc, "POST", base+"/api/v1/friends/requests", u.Access, raw, nil)
	switch {
	case st == http.StatusOK, st == http.StatusConflict && bytes.Contains(body, []byte(`"already_friends"`)):
		return nil
	case st == http.StatusConflict && bytes.Contains(body, []byte(`"request_pending"`)):
	case err != nil:
		return err
	}
	return httpJSON(ctx, hc, "POST", base+"/api/v1/friends/requests/"+u.ID+"/accept", friend.Access, nil, nil)
}

// CreateRoom makes a room owned by owner with the others as members and
// checks that they all are members.
func CreateRoom(ctx context.Context, base string, owner User, others []User, name string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	ids := make([]string, len(others))
	hc := newHTTPClient()
	for i, o := range others {
		ids[i] = o.ID
		// membership is consent-based: each member becomes the owner's
		// friend, so the owner adds them directly instead of inviting
		if err := befriend(ctx, hc, base, o, owner); err != nil {
			return "", fmt.Errorf("%s befriends %s: %w", o.Username, owner.Username, err)
		}
	}
	var room struct {
		RoomID  string          `json:"room_id"`
		Members json.RawMessage `json:"members"`
	}
	if err := httpJSON(ctx, hc, "POST", base+"/api/v1/rooms", owner.Access, map[string]any{"name": name, "member_ids": ids}, &room); err != nil {
		return "", err
	}
	for _, id := range ids {
		if !bytes.Contains(room.Members, []byte(id)) {
			return "", fmt.Errorf("room %s: %s is not a member after creation (members %s)", room.RoomID, id, room.Members)
		}
	}
	return room.RoomID, nil
}
