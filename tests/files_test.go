package tests

import (
	"bytes"
	"context"
	"encoding/json"
	"image"
	"image/color"
	_ "image/jpeg"
	"image/png"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/chatflow/chatflow/blob"
	"github.com/chatflow/chatflow/internal/testenv"
)

// Attachments through the real object store (versitygw on S3_ENDPOINT,
// started by scripts/services.sh). Unreachable store: skipped, unless
// S3_REQUIRED is set (make test sets it), then failed.

func requireS3(t *testing.T) {
	t.Helper()
	cfg := testenv.Config().Objects
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := blob.New(cfg).EnsureBucket(ctx); err != nil {
		if os.Getenv("S3_REQUIRED") != "" {
			t.Fatalf("object store %s is not reachable (%v); scripts/services.sh s3 starts it", cfg.Endpoint, err)
		}
		t.Skipf("object store %s is not reachable (%v); start it with scripts/services.sh s3 (S3_REQUIRED=1 makes this a failure)", cfg.Endpoint, err)
	}
}

type uploadJSON struct {
	UploadID  string            `json:"upload_id"`
	URL       string            `json:"url"`
	Method    string            `json:"method"`
	Headers   map[string]string `json:"headers"`
	ExpiresAt time.Time         `json:"expires_at"`
}

func newUpload(t *testing.T, n *testenv.Node, u testenv.User, room, name, ct string, size int) (int, uploadJSON, problem) {
	t.Helper()
	var raw json.RawMessage
	st := n.Call(t, "POST", "/api/v1/rooms/"+room+"/uploads", u.Access, map[string]any{"name": name, "size": size, "content_type": ct}, &raw)
	var up uploadJSON
	var p problem
	_ = json.Unmarshal(raw, &up)
	_ = json.Unmarshal(raw, &p)
	return st, up, p
}

// uploadFile uploads data as u's file in room (the upload, then the PUT to
// the store) and returns its upload id, not yet attached.
func uploadFile(t *testing.T, n *testenv.Node, u testenv.User, room, name, ct string, data []byte) string {
	t.Helper()
	st, up, p := newUpload(t, n, u, room, name, ct, len(data))
	if st != 201 || putObject(t, up.URL, ct, data) != 200 {
		t.Fatalf("upload %s: %d %+v", name, st, p)
	}
	return up.UploadID
}

// putObject PUTs body to a pre-signed URL as a browser would (the signed
// content type, the body's real length).
func putObject(t *testing.T, url, ct string, body []byte) int {
	t.Helper()
	req, err := http.NewRequest("PUT", url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", ct)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("PUT to the store: %v", err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode
}

// noRedirect is a client that shows redirects instead of following them.
var noRedirect = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

// fileURL asks the api for a download and returns the redirect's target.
func fileURL(t *testing.T, n *testenv.Node, u testenv.User, room, upload string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", n.URL+"/api/v1/rooms/"+room+"/files/"+upload, nil)
	req.Header.Set("Authorization", "Bearer "+u.Access)
	resp, err := noRedirect.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode, resp.Header.Get("Location")
}

func fetch(t *testing.T, url string) (int, []byte, http.Header) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b, resp.Header
}

func testPNG(t *testing.T, w, h int) []byte {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for x := 0; x < w; x++ {
		img.Set(x, x%h, color.RGBA{R: 200, A: 255})
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestFileUploadRoundTrip(t *testing.T) {
	requireS3(t)
	env := testenv.Open(t)
	env.Worker(t, nil)
	n := env.StartNode(t, testenv.NodeConfig{})
	a, b := n.SignUp(t, "fla"), n.SignUp(t, "flb")
	room := n.CreateRoom(t, a, b)
	wb := connect(t, n, b)

	data := testPNG(t, 600, 300)
	st, up, p := newUpload(t, n, a, room, "cat picture.png", "image/png", len(data))
	if st != 201 || up.UploadID == "" || up.URL == "" || up.Method != "PUT" || time.Until(up.ExpiresAt) > 10*time.Minute {
		t.Fatalf("create upload: %d %+v %+v", st, up, p)
	}
	if !strings.Contains(up.URL, "X-Amz-SignedHeaders=content-length%3Bcontent-type") {
		t.Fatalf("length and type are not signed: %s", up.URL)
	}
	// attaching before the PUT: nothing in the store
	if st := n.Call(t, "POST", "/api/v1/rooms/"+room+"/messages/files", a.Access, map[string]string{"upload_id": up.UploadID, "client_msg_id": "f0"}, &p); st != 422 {
		t.Fatalf("attach before PUT: %d %+v", st, p)
	}
	if st := putObject(t, up.URL, "image/png", data); st != 200 {
		t.Fatalf("PUT: %d", st)
	}
	var m message
	if st := n.Call(t, "POST", "/api/v1/rooms/"+room+"/messages/files", a.Access, map[string]any{"upload_id": up.UploadID, "client_msg_id": "f1", "width": 1, "height": 1}, &m); st != 201 {
		t.Fatalf("attach: %d", st)
	}
	var fm struct {
		UploadID    string `json:"upload_id"`
		Name        string `json:"name"`
		Size        int    `json:"size"`
		ContentType string `json:"content_type"`
		Width       int    `json:"width"`
		Height      int    `json:"height"`
		Thumbnail   bool   `json:"thumbnail"`
	}
	if err := json.Unmarshal([]byte(m.Body), &fm); err != nil {
		t.Fatalf("file body %q: %v", m.Body, err)
	}
	// the real dimensions from the PNG header, not the client's
	if fm.UploadID != up.UploadID || fm.Name != "cat picture.png" || fm.Size != len(data) || fm.ContentType != "image/png" || fm.Width != 600 || fm.Height != 300 || !fm.Thumbnail {
		t.Fatalf("file message body: %+v", fm)
	}
	// the member's socket sees it live, with kind file
	f := wb.must(5*time.Second, msgIn(room), "file message")
	if f.Str("kind") != "file" || f.Str("body") != m.Body {
		t.Fatalf("live frame: %v", f)
	}
	// a retry with the same client_msg_id is the same message; another id is refused
	var again message
	if st := n.Call(t, "POST", "/api/v1/rooms/"+room+"/messages/files", a.Access, map[string]string{"upload_id": up.UploadID, "client_msg_id": "f1"}, &again); st != 201 || again.MessageID != m.MessageID {
		t.Fatalf("retry: %d %+v", st, again)
	}
	if st := n.Call(t, "POST", "/api/v1/rooms/"+room+"/messages/files", a.Access, map[string]string{"upload_id": up.UploadID, "client_msg_id": "f2"}, &p); st != 409 || p.Code != "conflict" {
		t.Fatalf("second attach: %d %+v", st, p)
	}
	// in history, with its kind
	var h struct {
		Messages []struct {
			message
			Kind string `json:"kind"`
		} `json:"messages"`
	}
	if st := n.Call(t, "GET", "/api/v1/rooms/"+room+"/messages", b.Access, nil, &h); st != 200 {
		t.Fatalf("history: %d", st)
	}
	last := h.Messages[len(h.Messages)-1]
	if last.MessageID != m.MessageID || last.Kind != "file" || last.Body != m.Body {
		t.Fatalf("history's last message: %+v", last)
	}
	// the other member downloads the same bytes through the redirect
	st, loc := fileURL(t, n, b, room, up.UploadID)
	if st != 302 || loc == "" {
		t.Fatalf("download: %d %q", st, loc)
	}
	st, got, hdr := fetch(t, loc)
	if st != 200 || !bytes.Equal(got, data) {
		t.Fatalf("GET the redirect: %d, %d bytes (want %d)", st, len(got), len(data))
	}
	if cd := hdr.Get("Content-Disposition"); !strings.HasPrefix(cd, "inline") {
		t.Fatalf("Content-Disposition %q", cd)
	}
	var j struct {
		URL string `json:"url"`
	}
	if st := n.Call(t, "GET", "/api/v1/rooms/"+room+"/files/"+up.UploadID+"?redirect=false", b.Access, nil, &j); st != 200 || j.URL == "" {
		t.Fatalf("download as JSON: %d %+v", st, j)
	}
	// its thumbnail: a JPEG of at most 256 pixels a side
	st, loc = fileURL(t, n, b, room, up.UploadID+"?variant=thumb")
	if st != 302 {
		t.Fatalf("thumbnail: %d", st)
	}
	st, got, _ = fetch(t, loc)
	thumb, format, err := image.Decode(bytes.NewReader(got))
	if st != 200 || err != nil || format != "jpeg" || thumb.Bounds().Dx() != 256 || thumb.Bounds().Dy() != 128 {
		t.Fatalf("thumbnail: %d %v %s %v", st, err, format, thumb.Bounds())
	}
	// the web page may PUT to and show images from the store, nothing else
	_, _, page := fetch(t, n.URL+"/")
	if origin := blob.New(testenv.Config().Objects).Origin(); !strings.Contains(page.Get("Content-Security-Policy"), "img-src 'self' data: blob: "+origin+";") {
		t.Fatalf("CSP %q does not allow %s", page.Get("Content-Security-Policy"), origin)
	}
}

func TestFileSizeLimit(t *testing.T) {
	requireS3(t)
	env := testenv.Open(t)
	env.Worker(t, nil)
	n := env.StartNode(t, testenv.NodeConfig{})
	a := n.SignUp(t, "fsa")
	room := n.CreateRoom(t, a)
	max := testenv.Config().Objects.MaxUploadBytes

	// declared too big: 413 before anything is signed
	if st, _, p := newUpload(t, n, a, room, "big.bin", "application/octet-stream", int(max)+1); st != 413 || p.Code != "too_large" {
		t.Fatalf("declared over the limit: %d %+v", st, p)
	}
	for _, bad := range []map[string]any{
		{"name": "", "size": 10, "content_type": "text/plain"},
		{"name": "a\nb", "size": 10, "content_type": "text/plain"},
		{"name": strings.Repeat("n", 201), "size": 10, "content_type": "text/plain"},
		{"name": "x", "size": 10, "content_type": "text/html; charset=utf-8"},
		{"name": "x", "size": 0, "content_type": "text/plain"},
	} {
		var p problem
		if st := n.Call(t, "POST", "/api/v1/rooms/"+room+"/uploads", a.Access, bad, &p); st != 422 || p.Code != "validation_failed" {
			t.Fatalf("%v: %d %+v", bad, st, p)
		}
	}

	// more bytes than declared: the signature binds Content-Length
	st, up, _ := newUpload(t, n, a, room, "small.txt", "text/plain", 10)
	if st != 201 {
		t.Fatalf("create: %d", st)
	}
	if st := putObject(t, up.URL, "text/plain", bytes.Repeat([]byte("x"), 11)); st != 403 {
		t.Fatalf("PUT of 11 bytes on a 10-byte signature: %d, want 403", st)
	}
	// another content type than signed
	if st := putObject(t, up.URL, "text/html", bytes.Repeat([]byte("x"), 10)); st != 403 {
		t.Fatalf("PUT as text/html on a text/plain signature: %d, want 403", st)
	}
	// an object of another size than declared (written behind the api's
	// back, as a client with store access could): refused at attach and deleted
	store := blob.New(testenv.Config().Objects)
	key := "rooms/" + room + "/" + up.UploadID
	if err := store.Put(context.Background(), key, "text/plain", bytes.Repeat([]byte("y"), 12)); err != nil {
		t.Fatal(err)
	}
	var p problem
	if st := n.Call(t, "POST", "/api/v1/rooms/"+room+"/messages/files", a.Access, map[string]string{"upload_id": up.UploadID, "client_msg_id": "s1"}, &p); st != 422 {
		t.Fatalf("attach of a 12-byte object declared 10: %d %+v", st, p)
	}
	if _, err := store.Head(context.Background(), key); err != blob.ErrNotFound {
		t.Fatalf("refused object still stored: %v", err)
	}
	if st := n.Call(t, "POST", "/api/v1/rooms/"+room+"/messages/files", a.Access, map[string]string{"upload_id": up.UploadID, "client_msg_id": "s1"}, &p); st != 404 {
		t.Fatalf("attach after refusal: %d %+v", st, p)
	}
	// an object over the limit (declared at the limit): 413 and deleted
	st, up, _ = newUpload(t, n, a, room, "edge.bin", "application/octet-stream", int(max))
	if st != 201 {
		t.Fatalf("create at the limit: %d", st)
	}
	key = "rooms/" + room + "/" + up.UploadID
	if err := store.Put(context.Background(), key, "application/octet-stream", make([]byte, max+1)); err != nil {
		t.Fatal(err)
	}
	if st := n.Call(t, "POST", "/api/v1/rooms/"+room+"/messages/files", a.Access, map[string]string{"upload_id": up.UploadID, "client_msg_id": "s2"}, &p); st != 413 || p.Code != "too_large" {
		t.Fatalf("attach over the limit: %d %+v", st, p)
	}
	if _, err := store.Head(context.Background(), key); err != blob.ErrNotFound {
		t.Fatalf("oversized object still stored: %v", err)
	}

	// a small file whose header claims 25 megapixels (a decompression bomb
	// in spirit): dimensions from the header, never decoded for a thumbnail
	var bomb bytes.Buffer
	if err := png.Encode(&bomb, image.NewGray(image.Rect(0, 0, 5000, 5000))); err != nil {
		t.Fatal(err)
	}
	st, up, _ = newUpload(t, n, a, room, "bomb.png", "image/png", bomb.Len())
	if st != 201 || putObject(t, up.URL, "image/png", bomb.Bytes()) != 200 {
		t.Fatalf("upload of the large image: %d", st)
	}
	var m message
	if st := n.Call(t, "POST", "/api/v1/rooms/"+room+"/messages/files", a.Access, map[string]string{"upload_id": up.UploadID, "client_msg_id": "s3"}, &m); st != 201 {
		t.Fatalf("attach of the large image: %d", st)
	}
	if !strings.Contains(m.Body, `"width":5000,"height":5000`) || strings.Contains(m.Body, "thumbnail") {
		t.Fatalf("large image body: %s", m.Body)
	}
	if _, err := store.Head(context.Background(), "rooms/"+room+"/"+up.UploadID+".thumb.jpg"); err != blob.ErrNotFound {
		t.Fatalf("thumbnail of the large image: %v", err)
	}
}

func TestFileAccess(t *testing.T) {
	requireS3(t)
	env := testenv.Open(t)
	env.Worker(t, nil)
	n := env.StartNode(t, testenv.NodeConfig{})
	a, b, out := n.SignUp(t, "faa"), n.SignUp(t, "fab"), n.SignUp(t, "fao")
	roomA := n.CreateRoom(t, a, b)
	roomB := n.CreateRoom(t, a)

	attach := func(room, name string, data []byte) string {
		st, up, p := newUpload(t, n, a, room, name, "text/plain", len(data))
		if st != 201 {
			t.Fatalf("create: %d %+v", st, p)
		}
		if st := putObject(t, up.URL, "text/plain", data); st != 200 {
			t.Fatalf("PUT: %d", st)
		}
		if st := n.Call(t, "POST", "/api/v1/rooms/"+room+"/messages/files", a.Access, map[string]string{"upload_id": up.UploadID, "client_msg_id": "c" + up.UploadID[:8]}, nil); st != 201 {
			t.Fatalf("attach: %d", st)
		}
		return up.UploadID
	}
	inA := attach(roomA, "a.txt", []byte("room A secret"))
	inB := attach(roomB, "b.txt", []byte("room B secret"))

	// a non-member can neither upload nor download
	if st, _, p := newUpload(t, n, out, roomA, "x.txt", "text/plain", 3); st != 403 || p.Code != "not_member" {
		t.Fatalf("outsider upload: %d %+v", st, p)
	}
	if st, loc := fileURL(t, n, out, roomA, inA); st != 403 || loc != "" {
		t.Fatalf("outsider download: %d %q", st, loc)
	}
	// b is not in room B: its file cannot be had through room A either
	if st, loc := fileURL(t, n, b, roomB, inB); st != 403 || loc != "" {
		t.Fatalf("non-member download of room B: %d %q", st, loc)
	}
	if st, loc := fileURL(t, n, b, roomA, inB); st != 404 || loc != "" {
		t.Fatalf("room B's upload through room A: %d %q", st, loc)
	}
	// unknown upload: 404; another user's upload cannot be attached
	if st, _ := fileURL(t, n, a, roomA, inA+"?variant=thumb"); st != 404 {
		t.Fatalf("thumbnail of a text file: %d", st)
	}
	if st, _ := fileURL(t, n, a, roomA, "0190f000-0000-7000-8000-000000000000"); st != 404 {
		t.Fatalf("unknown upload: %d", st)
	}
	var p problem
	if st := n.Call(t, "POST", "/api/v1/rooms/"+roomA+"/messages/files", a.Access, map[string]string{"upload_id": "0190f000-0000-7000-8000-000000000000", "client_msg_id": "u1"}, &p); st != 404 {
		t.Fatalf("attach unknown: %d %+v", st, p)
	}
	_, up, _ := newUpload(t, n, a, roomA, "mine.txt", "text/plain", 3)
	if st := n.Call(t, "POST", "/api/v1/rooms/"+roomA+"/messages/files", b.Access, map[string]string{"upload_id": up.UploadID, "client_msg_id": "u2"}, &p); st != 404 {
		t.Fatalf("attach someone else's upload: %d %+v", st, p)
	}
	// a URL signed for room A's object fetches nothing else: its signature
	// covers the key
	_, loc := fileURL(t, n, b, roomA, inA)
	if st, body, _ := fetch(t, loc); st != 200 || string(body) != "room A secret" {
		t.Fatalf("signed URL: %d %q", st, body)
	}
	forged := strings.Replace(loc, "/rooms/"+roomA+"/"+inA, "/rooms/"+roomB+"/"+inB, 1)
	if forged == loc {
		t.Fatalf("key not in URL %s", loc)
	}
	if st, body, _ := fetch(t, forged); st != 403 || strings.Contains(string(body), "room B secret") {
		t.Fatalf("room A's signature on room B's key: %d %q", st, body)
	}
	// a text file downloads as an attachment, never renders inline
	if _, _, hdr := fetch(t, loc); !strings.HasPrefix(hdr.Get("Content-Disposition"), "attachment") {
		t.Fatalf("Content-Disposition %q", hdr.Get("Content-Disposition"))
	}
}

// Two attaches of one upload at once with different client_msg_ids: one
// message, the other answer 409.
func TestFileAttachRace(t *testing.T) {
	requireS3(t)
	env := testenv.Open(t)
	env.Worker(t, nil)
	n := env.StartNode(t, testenv.NodeConfig{})
	a := n.SignUp(t, "fra")
	room := n.CreateRoom(t, a)
	for round := 0; round < 3; round++ {
		data := []byte("race " + strings.Repeat("r", round))
		st, up, _ := newUpload(t, n, a, room, "r.txt", "text/plain", len(data))
		if st != 201 || putObject(t, up.URL, "text/plain", data) != 200 {
			t.Fatalf("upload: %d", st)
		}
		const k = 4
		codes := make(chan int, k)
		for i := 0; i < k; i++ {
			go func(i int) {
				codes <- n.Call(t, "POST", "/api/v1/rooms/"+room+"/messages/files", a.Access,
					map[string]string{"upload_id": up.UploadID, "client_msg_id": up.UploadID[:8] + "-" + strings.Repeat("x", i+1)}, nil)
			}(i)
		}
		won := 0
		for i := 0; i < k; i++ {
			switch c := <-codes; c {
			case 201:
				won++
			case 409:
			default:
				t.Fatalf("attach: %d", c)
			}
		}
		if won != 1 {
			t.Fatalf("round %d: %d attaches won", round, won)
		}
	}
	var h history
	if st := n.Call(t, "GET", "/api/v1/rooms/"+room+"/messages", a.Access, nil, &h); st != 200 {
		t.Fatalf("history: %d", st)
	}
	files := 0
	for _, m := range h.Messages {
		if strings.Contains(m.Body, `"upload_id"`) {
			files++
		}
	}
	if files != 3 {
		t.Fatalf("%d file messages for 3 uploads", files)
	}
}
