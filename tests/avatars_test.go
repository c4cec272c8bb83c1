package tests

import (
	"bytes"
	"context"
	"encoding/json"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chatflow/chatflow"
	"github.com/chatflow/chatflow/internal/testenv"
)

// Avatars (issue 12) through the real object store: upload with a
// pre-signed PUT, set (checked, decoded, stored as a 128x128 JPEG), read
// through a redirect, cleared by DELETE and by the account deletion saga.

func newAvatarUpload(t *testing.T, n *testenv.Node, u testenv.User, ct string, size int) (int, uploadJSON, problem) {
	t.Helper()
	var raw json.RawMessage
	st := n.Call(t, "POST", "/api/v1/me/avatar/uploads", u.Access, map[string]any{"size": size, "content_type": ct}, &raw)
	var up uploadJSON
	var p problem
	_ = json.Unmarshal(raw, &up)
	_ = json.Unmarshal(raw, &p)
	return st, up, p
}

// uploadAvatar uploads data as u's avatar original and returns its upload id.
func uploadAvatar(t *testing.T, n *testenv.Node, u testenv.User, ct string, data []byte) string {
	t.Helper()
	st, up, p := newAvatarUpload(t, n, u, ct, len(data))
	if st != 201 || up.UploadID == "" || up.Method != "PUT" || up.Headers["Content-Type"] != ct {
		t.Fatalf("avatar upload: %d %+v %+v", st, up, p)
	}
	if st := putObject(t, up.URL, ct, data); st != 200 {
		t.Fatalf("PUT avatar original: %d", st)
	}
	return up.UploadID
}

type meAvatar struct {
	UserID    string `json:"user_id"`
	AvatarURL string `json:"avatar_url"`
	Code      string `json:"code"`
}

func setAvatar(t *testing.T, n *testenv.Node, u testenv.User, upload string) (int, meAvatar) {
	t.Helper()
	var m meAvatar
	st := n.Call(t, "PUT", "/api/v1/me/avatar", u.Access, map[string]string{"upload_id": upload}, &m)
	return st, m
}

// avatarLocation asks for a user's avatar and returns the redirect's target.
func avatarLocation(t *testing.T, n *testenv.Node, as testenv.User, user string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", n.URL+"/api/v1/users/"+user+"/avatar", nil)
	req.Header.Set("Authorization", "Bearer "+as.Access)
	resp, err := noRedirect.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode, resp.Header.Get("Location")
}

// solidPNG is a w×h PNG of one colour.
func solidPNG(t *testing.T, w, h int, c color.Color) []byte {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			img.Set(x, y, c)
		}
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// fetchAvatar follows as's redirect to user's avatar and decodes it.
func fetchAvatar(t *testing.T, n *testenv.Node, as testenv.User, user string) (image.Image, string) {
	t.Helper()
	st, loc := avatarLocation(t, n, as, user)
	if st != 302 || loc == "" {
		t.Fatalf("avatar of %s: %d %q", user, st, loc)
	}
	st, body, hdr := fetch(t, loc)
	if st != 200 {
		t.Fatalf("pre-signed avatar GET: %d %s", st, body)
	}
	if ct := hdr.Get("Content-Type"); ct != "image/jpeg" {
		t.Fatalf("avatar content type %q", ct)
	}
	img, format, err := image.Decode(bytes.NewReader(body))
	if err != nil || format != "jpeg" {
		t.Fatalf("avatar is not a JPEG (%s): %v", format, err)
	}
	return img, loc
}

func near(c color.Color, r, g, b uint8) bool {
	cr, cg, cb, _ := c.RGBA()
	d := func(x uint32, y uint8) bool { v := int(x>>8) - int(y); return v < 24 && v > -24 }
	return d(cr, r) && d(cg, g) && d(cb, b)
}

func TestAvatarRoundTrip(t *testing.T) {
	requireS3(t)
	env := testenv.Open(t)
	env.Worker(t, nil)
	n := env.StartNode(t, testenv.NodeConfig{})
	a, b := n.SignUp(t, "ava"), n.SignUp(t, "avb")
	room := n.CreateRoom(t, a, b) // befriends them too

	var me meAvatar
	n.Call(t, "GET", "/api/v1/me", a.Access, nil, &me)
	if me.UserID != a.ID || me.AvatarURL != "" {
		t.Fatalf("/me before any avatar: %+v", me)
	}
	if st, _ := avatarLocation(t, n, b, a.ID); st != 404 {
		t.Fatalf("avatar before any: %d", st)
	}

	// refused at the request: type, size
	for _, c := range []struct {
		ct     string
		size   int
		status int
		code   string
	}{
		{"text/plain", 10, 422, chatflow.ECodeValidation},
		{"image/svg+xml", 10, 422, chatflow.ECodeValidation},
		{"image/png", 0, 422, chatflow.ECodeValidation},
		{"image/png", 2<<20 + 1, 413, chatflow.ECodeTooLarge},
	} {
		if st, _, p := newAvatarUpload(t, n, a, c.ct, c.size); st != c.status || p.Code != c.code {
			t.Fatalf("upload %s of %d: %d %+v, want %d %s", c.ct, c.size, st, p, c.status, c.code)
		}
	}

	// the store refuses a PUT of more bytes than were declared and signed
	big := solidPNG(t, 64, 64, color.RGBA{B: 255, A: 255})
	st, up, p := newAvatarUpload(t, n, a, "image/png", len(big)-10)
	if st != 201 {
		t.Fatalf("upload: %d %+v", st, p)
	}
	if st := putObject(t, up.URL, "image/png", big); st/100 == 2 {
		t.Fatalf("store took %d bytes on a PUT signed for %d: %d", len(big), len(big)-10, st)
	}

	// set before the bytes are there, someone else's upload, unknown id
	data := solidPNG(t, 300, 200, color.RGBA{R: 20, G: 40, B: 220, A: 255})
	st, up, p = newAvatarUpload(t, n, a, "image/png", len(data))
	if st != 201 {
		t.Fatalf("upload: %d %+v", st, p)
	}
	if st, m := setAvatar(t, n, a, up.UploadID); st != 422 || m.Code != chatflow.ECodeValidation {
		t.Fatalf("set before PUT: %d %+v", st, m)
	}
	if st := putObject(t, up.URL, "image/png", data); st != 200 {
		t.Fatalf("PUT: %d", st)
	}
	if st, m := setAvatar(t, n, b, up.UploadID); st != 404 || m.Code != chatflow.ECodeNotFound {
		t.Fatalf("b sets a's upload: %d %+v", st, m)
	}
	if st, m := setAvatar(t, n, a, "not-a-uuid"); st != 422 || m.Code != chatflow.ECodeValidation {
		t.Fatalf("bad upload id: %d %+v", st, m)
	}

	// set: the answer is a's profile with the avatar URL
	st, set := setAvatar(t, n, a, up.UploadID)
	if st != 200 || set.UserID != a.ID || !strings.HasPrefix(set.AvatarURL, "/api/v1/users/"+a.ID+"/avatar?v=") {
		t.Fatalf("set avatar: %d %+v", st, set)
	}
	if st, m := setAvatar(t, n, a, up.UploadID); st != 409 || m.Code != chatflow.ECodeConflict {
		t.Fatalf("set with a used upload: %d %+v", st, m)
	}

	// b reads it: 128x128 JPEG of the picture's colour
	img, firstLoc := fetchAvatar(t, n, b, a.ID)
	if bd := img.Bounds(); bd.Dx() != 128 || bd.Dy() != 128 {
		t.Fatalf("avatar is %v, want 128x128", bd)
	}
	if c := img.At(64, 64); !near(c, 20, 40, 220) {
		t.Fatalf("avatar centre %v, not the uploaded colour", c)
	}
	// the avatar_url path itself redirects too
	req, _ := http.NewRequest("GET", n.URL+set.AvatarURL, nil)
	req.Header.Set("Authorization", "Bearer "+b.Access)
	if resp, err := noRedirect.Do(req); err != nil || resp.StatusCode != 302 {
		t.Fatalf("GET %s: %v %v", set.AvatarURL, resp, err)
	} else {
		resp.Body.Close()
	}
	if st, _ := avatarLocation(t, n, testenv.User{Access: "x"}, a.ID); st != 401 {
		t.Fatalf("avatar without a token: %d", st)
	}

	// avatar_url in the user views: /me, /users, /friends, room members
	if me = (meAvatar{}); n.Call(t, "GET", "/api/v1/me", a.Access, nil, &me) != 200 || me.AvatarURL != set.AvatarURL {
		t.Fatalf("/me avatar_url %q, want %q", me.AvatarURL, set.AvatarURL)
	}
	var found []meAvatar
	n.Call(t, "GET", "/api/v1/users?q="+a.Username, b.Access, nil, &found)
	if len(found) != 1 || found[0].AvatarURL != set.AvatarURL {
		t.Fatalf("/users: %+v", found)
	}
	var friends []meAvatar
	n.Call(t, "GET", "/api/v1/friends", b.Access, nil, &friends)
	if len(friends) != 1 || friends[0].UserID != a.ID || friends[0].AvatarURL != set.AvatarURL {
		t.Fatalf("/friends: %+v", friends)
	}
	var rv struct {
		Members []meAvatar `json:"members"`
	}
	n.Call(t, "GET", "/api/v1/rooms/"+room, b.Access, nil, &rv)
	for _, m := range rv.Members {
		if want := map[string]string{a.ID: set.AvatarURL, b.ID: ""}[m.UserID]; m.AvatarURL != want {
			t.Fatalf("room member %s avatar_url %q, want %q", m.UserID, m.AvatarURL, want)
		}
	}

	// not images: bytes that decode as nothing, a header with huge sides
	for what, bad := range map[string][]byte{
		"text": []byte("this is not a picture at all, only some words"),
		"huge sides": func() []byte {
			var buf bytes.Buffer
			_ = png.Encode(&buf, image.NewGray(image.Rect(0, 0, 9000, 1)))
			return buf.Bytes()
		}(),
	} {
		id := uploadAvatar(t, n, a, "image/png", bad)
		if st, m := setAvatar(t, n, a, id); st != 422 || m.Code != chatflow.ECodeValidation {
			t.Fatalf("%s as an avatar: %d %+v", what, st, m)
		}
		if st, m := setAvatar(t, n, a, id); st != 404 {
			t.Fatalf("%s: a refused upload is forgotten, got %d %+v", what, st, m)
		}
	}
	if me = (meAvatar{}); n.Call(t, "GET", "/api/v1/me", a.Access, nil, &me) != 200 || me.AvatarURL != set.AvatarURL {
		t.Fatalf("a refused avatar changed the avatar: %q", me.AvatarURL)
	}

	// a new picture (a JPEG): a new cache buster, the old object gone
	var jbuf bytes.Buffer
	red := image.NewRGBA(image.Rect(0, 0, 40, 90))
	for i := 0; i < len(red.Pix); i += 4 {
		red.Pix[i], red.Pix[i+3] = 230, 255
	}
	if err := jpeg.Encode(&jbuf, red, nil); err != nil {
		t.Fatal(err)
	}
	st, set2 := setAvatar(t, n, a, uploadAvatar(t, n, a, "image/jpeg", jbuf.Bytes()))
	if st != 200 || set2.AvatarURL == set.AvatarURL || set2.AvatarURL == "" {
		t.Fatalf("second avatar: %d %+v (first %q)", st, set2, set.AvatarURL)
	}
	img, _ = fetchAvatar(t, n, b, a.ID)
	if c := img.At(64, 64); !near(c, 230, 0, 0) || img.Bounds().Dx() != 128 || img.Bounds().Dy() != 128 {
		t.Fatalf("second avatar %v centre %v", img.Bounds(), c)
	}
	if st, _, _ := fetch(t, firstLoc); st != 404 {
		t.Fatalf("the replaced avatar's object is still served: %d", st)
	}

	// delete: 204, then none
	if st := n.Call(t, "DELETE", "/api/v1/me/avatar", a.Access, nil, nil); st != 204 {
		t.Fatalf("delete avatar: %d", st)
	}
	if st, _ := avatarLocation(t, n, b, a.ID); st != 404 {
		t.Fatalf("avatar after delete: %d", st)
	}
	if me = (meAvatar{}); n.Call(t, "GET", "/api/v1/me", a.Access, nil, &me) != 200 || me.AvatarURL != "" {
		t.Fatalf("/me after delete: %+v", me)
	}
	if st := n.Call(t, "DELETE", "/api/v1/me/avatar", a.Access, nil, nil); st != 204 {
		t.Fatalf("delete again: %d", st)
	}
}

func TestAvatarClearedByAccountDeletion(t *testing.T) {
	requireS3(t)
	env := testenv.Open(t)
	env.Worker(t, nil)
	n := env.StartNode(t, testenv.NodeConfig{})
	a, b := n.SignUp(t, "avd"), n.SignUp(t, "ave")
	if st, m := setAvatar(t, n, a, uploadAvatar(t, n, a, "image/png", solidPNG(t, 50, 50, color.White))); st != 200 || m.AvatarURL == "" {
		t.Fatalf("set: %d %+v", st, m)
	}
	_, loc := fetchAvatar(t, n, b, a.ID) // a pre-signed GET still valid after the deletion
	d := startDeletion(t, n, a)
	if got := waitDeletion(t, n, d.StatusURL, 60*time.Second); got.Status != chatflow.StatusCompleted {
		t.Fatalf("deletion: %+v", got)
	}
	if st, _ := avatarLocation(t, n, b, a.ID); st != 404 {
		t.Fatalf("deleted user's avatar: %d", st)
	}
	if st, _, _ := fetch(t, loc); st != 404 {
		t.Fatalf("the deleted user's avatar object is still in the store: %d", st)
	}
	var key *string
	if err := env.Pool.QueryRow(context.Background(), `SELECT avatar_key FROM chat.profiles WHERE user_id = $1`, a.ID).Scan(&key); err != nil || key != nil {
		t.Fatalf("deleted user's profile keeps avatar_key %v (%v)", key, err)
	}
}

// Concurrent sets of one upload: one takes it, the others are told it was
// used (never a 5xx, even when the winner has deleted the original under
// them).
func TestAvatarSetRace(t *testing.T) {
	requireS3(t)
	env := testenv.Open(t)
	env.Worker(t, nil)
	n := env.StartNode(t, testenv.NodeConfig{})
	a := n.SignUp(t, "avr")
	for round := 0; round < 4; round++ {
		id := uploadAvatar(t, n, a, "image/png", solidPNG(t, 400, 400, color.RGBA{G: 200, A: 255}))
		const k = 6
		statuses := make(chan int, k)
		var wg sync.WaitGroup
		for i := 0; i < k; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				// staggered: later sets land while the first is taking the
				// upload, and after it deleted the original
				time.Sleep(time.Duration(i) * 8 * time.Millisecond)
				st, _ := setAvatar(t, n, a, id)
				statuses <- st
			}()
		}
		wg.Wait()
		close(statuses)
		count := map[int]int{}
		for st := range statuses {
			count[st]++
		}
		if count[200] != 1 || count[409] != k-1 {
			t.Fatalf("round %d: %d concurrent sets of one upload answered %v; want one 200, the rest 409", round, k, count)
		}
	}
}
