package tests

import (
	"context"
	"errors"
	"fmt"
	"image/color"
	"strings"
	"sync"
	"testing"
	"time"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/testsuite"

	"github.com/chatflow/chatflow/activities"
	"github.com/chatflow/chatflow/blob"
	"github.com/chatflow/chatflow/internal/testenv"
	"github.com/chatflow/chatflow/workers"
)

// The upload sweep against the real Postgres and object store: uploads
// never attached and avatar uploads never set go away, objects first; what
// was attached or set, and what is still young, stays.

// sweeper is the sweep's activity on the shared services, run through
// Temporal's activity test environment (the activity is the real one).
func sweeper(t *testing.T, env *testenv.Env, store *blob.Store, grace time.Duration) func() (activities.SweepResult, error) {
	t.Helper()
	acts := activities.New(env.Pool, nil)
	acts.Objects = store
	acts.Cfg.UploadSweepGrace = grace
	var suite testsuite.WorkflowTestSuite
	ae := suite.NewTestActivityEnvironment()
	ae.RegisterActivity(acts)
	return func() (activities.SweepResult, error) {
		var res activities.SweepResult
		v, err := ae.ExecuteActivity(acts.SweepUploads)
		if err == nil {
			err = v.Get(&res)
		}
		return res, err
	}
}

// age moves an upload's creation back by d, as if it had waited that long.
func age(t *testing.T, env *testenv.Env, table, id string, d time.Duration) {
	t.Helper()
	tag, err := env.Pool.Exec(context.Background(), "UPDATE chat."+table+" SET created_at = created_at - $2::interval WHERE id = $1", id, fmt.Sprintf("%d seconds", int(d.Seconds())))
	if err != nil || tag.RowsAffected() != 1 {
		t.Fatalf("age %s %s: %v (%d rows)", table, id, err, tag.RowsAffected())
	}
}

func uploadStatus(t *testing.T, env *testenv.Env, table, id string) string {
	t.Helper()
	var st string
	err := env.Pool.QueryRow(context.Background(), "SELECT status FROM chat."+table+" WHERE id = $1", id).Scan(&st)
	if err != nil && strings.Contains(err.Error(), "no rows") {
		return "gone"
	}
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func objectKey(t *testing.T, env *testenv.Env, table, id string) string {
	t.Helper()
	var key string
	if err := env.Pool.QueryRow(context.Background(), "SELECT object_key FROM chat."+table+" WHERE id = $1", id).Scan(&key); err != nil {
		t.Fatal(err)
	}
	return key
}

func stored(t *testing.T, store *blob.Store, key string) bool {
	t.Helper()
	_, err := store.Head(context.Background(), key)
	if errors.Is(err, blob.ErrNotFound) {
		return false
	}
	if err != nil {
		t.Fatalf("HEAD %s: %v", key, err)
	}
	return true
}

// TestSweepUploads: a file upload and an avatar upload left pending past
// the TTL are expired by one sweep (their objects kept through the grace,
// attaching and setting them answer 404), and their objects and rows
// removed by a sweep after the grace. An attached file, a set avatar and a
// young pending upload are untouched by both.
func TestSweepUploads(t *testing.T) {
	requireS3(t)
	env := testenv.Open(t)
	env.Worker(t, nil)
	n := env.StartNode(t, testenv.NodeConfig{})
	a := n.SignUp(t, "swa")
	room := n.CreateRoom(t, a)
	store := blob.New(testenv.Config().Objects)
	ttl := activities.DefaultConfig().UploadPendingTTL

	stale := uploadFile(t, n, a, room, "stale.png", "image/png", testPNG(t, 64, 64))
	attached := uploadFile(t, n, a, room, "kept.png", "image/png", testPNG(t, 64, 64))
	var m message
	if st := n.Call(t, "POST", "/api/v1/rooms/"+room+"/messages/files", a.Access, map[string]string{"upload_id": attached, "client_msg_id": "sw-kept"}, &m); st != 201 {
		t.Fatalf("attach: %d", st)
	}
	young := uploadFile(t, n, a, room, "young.txt", "text/plain", []byte("young"))
	staleAvatar := uploadAvatar(t, n, a, "image/png", solidPNG(t, 32, 32, color.RGBA{G: 200, A: 255}))
	usedAvatar := uploadAvatar(t, n, a, "image/png", solidPNG(t, 32, 32, color.RGBA{B: 200, A: 255}))
	if st, _ := setAvatar(t, n, a, usedAvatar); st != 200 {
		t.Fatalf("set avatar: %d", st)
	}
	for _, id := range []string{stale, attached} {
		age(t, env, "uploads", id, ttl+time.Minute)
	}
	age(t, env, "avatar_uploads", staleAvatar, ttl+time.Minute)
	age(t, env, "avatar_uploads", usedAvatar, ttl+time.Minute)
	staleKey, attachedKey, youngKey := objectKey(t, env, "uploads", stale), objectKey(t, env, "uploads", attached), objectKey(t, env, "uploads", young)
	staleAvatarKey := objectKey(t, env, "avatar_uploads", staleAvatar)
	var me struct {
		AvatarURL string `json:"avatar_url"`
	}
	n.Call(t, "GET", "/api/v1/me", a.Access, nil, &me)

	// first sweep, inside the grace: marked, objects kept
	res, err := sweeper(t, env, store, time.Hour)()
	if err != nil {
		t.Fatalf("sweep: %v", err)
	}
	if res.Expired < 2 {
		t.Fatalf("first sweep expired %d uploads, want at least the 2 stale ones: %+v", res.Expired, res)
	}
	for id, want := range map[string]string{stale: "expired", attached: "attached", young: "pending"} {
		if got := uploadStatus(t, env, "uploads", id); got != want {
			t.Fatalf("upload %s: %s, want %s", id, got, want)
		}
	}
	for id, want := range map[string]string{staleAvatar: "expired", usedAvatar: "used"} {
		if got := uploadStatus(t, env, "avatar_uploads", id); got != want {
			t.Fatalf("avatar upload %s: %s, want %s", id, got, want)
		}
	}
	if !stored(t, store, staleKey) || !stored(t, store, staleAvatarKey) {
		t.Fatal("an expired upload lost its object inside the grace")
	}
	var p problem
	if st := n.Call(t, "POST", "/api/v1/rooms/"+room+"/messages/files", a.Access, map[string]string{"upload_id": stale, "client_msg_id": "sw-late"}, &p); st != 404 || p.Code != "not_found" || !strings.Contains(p.Detail, "expired") {
		t.Fatalf("attach of an expired upload: %d %+v", st, p)
	}
	if st, got := setAvatar(t, n, a, staleAvatar); st != 404 || got.Code != "not_found" {
		t.Fatalf("set of an expired avatar upload: %d %+v", st, got)
	}

	// a sweep after the grace: objects, then rows, gone; the rest untouched
	res, err = sweeper(t, env, store, 0)()
	if err != nil {
		t.Fatalf("sweep: %v", err)
	}
	if res.Deleted < 2 {
		t.Fatalf("second sweep deleted %d uploads, want at least the 2 stale ones: %+v", res.Deleted, res)
	}
	if uploadStatus(t, env, "uploads", stale) != "gone" || uploadStatus(t, env, "avatar_uploads", staleAvatar) != "gone" {
		t.Fatal("an expired upload's row outlived its objects")
	}
	for _, key := range []string{staleKey, staleKey + ".thumb.jpg", staleAvatarKey, staleAvatarKey + ".jpg"} {
		if stored(t, store, key) {
			t.Fatalf("%s is still in the store", key)
		}
	}
	for _, key := range []string{attachedKey, attachedKey + ".thumb.jpg", youngKey} {
		if !stored(t, store, key) {
			t.Fatalf("the sweep deleted %s, which was attached or young", key)
		}
	}
	if st, loc := fileURL(t, n, a, room, attached); st != 302 || loc == "" {
		t.Fatalf("download of the attached file after the sweep: %d", st)
	}
	if me.AvatarURL == "" {
		t.Fatal("no avatar before the sweep")
	}
	if st, body, _ := fetchAvatarBytes(t, n, a, me.AvatarURL); st != 200 || len(body) == 0 {
		t.Fatalf("the set avatar after the sweep: %d", st)
	}
	if st := n.Call(t, "POST", "/api/v1/rooms/"+room+"/messages/files", a.Access, map[string]string{"upload_id": stale, "client_msg_id": "sw-late"}, &p); st != 404 {
		t.Fatalf("attach of a swept upload: %d %+v", st, p)
	}
}

// fetchAvatarBytes follows an avatar_url (an api path) to the store.
func fetchAvatarBytes(t *testing.T, n *testenv.Node, as testenv.User, path string) (int, []byte, error) {
	t.Helper()
	var u struct {
		URL string `json:"url"`
	}
	sep := "?"
	if strings.Contains(path, "?") {
		sep = "&"
	}
	if st := n.Call(t, "GET", path+sep+"redirect=false", as.Access, nil, &u); st != 200 {
		return st, nil, nil
	}
	st, body, _ := fetch(t, u.URL)
	return st, body, nil
}

// TestSweepUploadsStoreDown: with the object store unreachable a sweep
// fails after marking, and deletes no row: the expired upload keeps its row
// (and the object its key names) until a sweep that reaches the store.
func TestSweepUploadsStoreDown(t *testing.T) {
	requireS3(t)
	env := testenv.Open(t)
	env.Worker(t, nil)
	n := env.StartNode(t, testenv.NodeConfig{})
	a := n.SignUp(t, "swd")
	room := n.CreateRoom(t, a)
	store := blob.New(testenv.Config().Objects)
	id := uploadFile(t, n, a, room, "left.txt", "text/plain", []byte("left behind"))
	age(t, env, "uploads", id, activities.DefaultConfig().UploadPendingTTL+time.Minute)
	key := objectKey(t, env, "uploads", id)

	down := testenv.Config().Objects
	down.Endpoint = "http://127.0.0.1:1" // nothing listens there
	if _, err := sweeper(t, env, blob.New(down), 0)(); err == nil {
		t.Fatal("a sweep with the store down succeeded")
	}
	if got := uploadStatus(t, env, "uploads", id); got != "expired" {
		t.Fatalf("after the failed sweep the upload is %s, want expired (its object is still stored)", got)
	}
	if !stored(t, store, key) {
		t.Fatal("the object went while the store was down")
	}
	if _, err := sweeper(t, env, store, 0)(); err != nil {
		t.Fatalf("sweep with the store back: %v", err)
	}
	if uploadStatus(t, env, "uploads", id) != "gone" || stored(t, store, key) {
		t.Fatal("the next sweep did not finish the job")
	}
}

// raceDelays are how long after the requests of a race round its sweep
// starts: from before any request gets far to after most have finished.
var raceDelays = []time.Duration{0, 10 * time.Millisecond, 20 * time.Millisecond, 40 * time.Millisecond, 80 * time.Millisecond, 160 * time.Millisecond}

// raceSweep runs do(0..k-1) at once and, delay later, a sweep that expires
// (inside the grace); once all are done, final (after the grace). It
// returns each request's status.
func raceSweep(t *testing.T, k int, delay time.Duration, do func(i int) int, sweep, final func() (activities.SweepResult, error)) []int {
	t.Helper()
	codes := make([]int, k)
	var wg sync.WaitGroup
	for i := range k {
		wg.Go(func() { codes[i] = do(i) })
	}
	time.Sleep(delay)
	if _, err := sweep(); err != nil {
		t.Fatalf("sweep: %v", err)
	}
	wg.Wait()
	if _, err := final(); err != nil {
		t.Fatalf("sweep after the grace: %v", err)
	}
	return codes
}

// bothOutcomes fails a race test in which the requests all won or all lost:
// then it did not race anything.
func bothOutcomes(t *testing.T, won string, nWon, nLost int) {
	t.Helper()
	t.Logf("%d %s, %d expired", nWon, won, nLost)
	if nWon == 0 || nLost == 0 {
		t.Fatalf("no race took place (%d %s, %d expired): the delays no longer straddle the requests", nWon, won, nLost)
	}
}

// TestSweepUploadsRacesAttach: attaches of stale uploads run while a sweep
// expires them, the sweep started at several delays after the attaches so
// that some attaches win and some lose. Each upload ends one way only:
// attached (201, its message posted, object and thumbnail kept by a later
// sweep) or expired (404, then object, thumbnail and row gone after the
// grace); never a 409/500, never a posted file whose object was deleted.
func TestSweepUploadsRacesAttach(t *testing.T) {
	requireS3(t)
	env := testenv.Open(t)
	env.Worker(t, nil)
	n := env.StartNode(t, testenv.NodeConfig{})
	a := n.SignUp(t, "swr")
	room := n.CreateRoom(t, a)
	store := blob.New(testenv.Config().Objects)
	ttl := activities.DefaultConfig().UploadPendingTTL
	img := testPNG(t, 48, 48)
	sweep, final := sweeper(t, env, store, time.Hour), sweeper(t, env, store, 0)
	const k = 8
	won, lost := 0, 0
	for _, delay := range raceDelays {
		ids, keys := make([]string, k), make([]string, k)
		for i := range ids {
			ids[i] = uploadFile(t, n, a, room, fmt.Sprintf("r%d.png", i), "image/png", img)
			age(t, env, "uploads", ids[i], ttl+time.Minute)
			keys[i] = objectKey(t, env, "uploads", ids[i])
		}
		codes := raceSweep(t, k, delay, func(i int) int {
			var p problem
			return n.Call(t, "POST", "/api/v1/rooms/"+room+"/messages/files", a.Access, map[string]string{"upload_id": ids[i], "client_msg_id": "swr-" + ids[i][:8]}, &p)
		}, sweep, final)

		var h history
		if st := n.Call(t, "GET", "/api/v1/rooms/"+room+"/messages?limit=100", a.Access, nil, &h); st != 200 {
			t.Fatalf("history: %d", st)
		}
		posted := map[string]bool{}
		for _, m := range h.Messages {
			for _, id := range ids {
				if strings.Contains(m.Body, id) {
					posted[id] = true
				}
			}
		}
		for i, id := range ids {
			switch codes[i] {
			case 201:
				won++
				if !posted[id] || uploadStatus(t, env, "uploads", id) != "attached" || !stored(t, store, keys[i]) || !stored(t, store, keys[i]+".thumb.jpg") {
					t.Errorf("upload %s attached (201) but: posted %v, status %s, object %v, thumbnail %v", id, posted[id], uploadStatus(t, env, "uploads", id), stored(t, store, keys[i]), stored(t, store, keys[i]+".thumb.jpg"))
				}
			case 404:
				lost++
				if posted[id] || uploadStatus(t, env, "uploads", id) != "gone" || stored(t, store, keys[i]) || stored(t, store, keys[i]+".thumb.jpg") {
					t.Errorf("upload %s refused (404) but: posted %v, status %s, object %v, thumbnail %v", id, posted[id], uploadStatus(t, env, "uploads", id), stored(t, store, keys[i]), stored(t, store, keys[i]+".thumb.jpg"))
				}
			default:
				t.Errorf("attach of %s: %d", id, codes[i])
			}
		}
	}
	bothOutcomes(t, "attached", won, lost)
}

// TestSweepAvatarUploadsRacesSet: the same race for avatars, one upload per
// user per round (a user's sets would replace each other): a set that wins
// (200) leaves the user's avatar stored; one that loses (404) leaves no
// original, no square JPEG and no row once the grace is over.
func TestSweepAvatarUploadsRacesSet(t *testing.T) {
	requireS3(t)
	env := testenv.Open(t)
	env.Worker(t, nil)
	n := env.StartNode(t, testenv.NodeConfig{})
	store := blob.New(testenv.Config().Objects)
	ttl := activities.DefaultConfig().UploadPendingTTL
	pic := solidPNG(t, 64, 64, color.RGBA{R: 90, G: 30, B: 200, A: 255})
	sweep, final := sweeper(t, env, store, time.Hour), sweeper(t, env, store, 0)
	const k = 6
	users := make([]testenv.User, k)
	for i := range users {
		users[i] = n.SignUp(t, fmt.Sprintf("swv%d", i))
	}
	won, lost := 0, 0
	for _, delay := range raceDelays {
		ids, keys := make([]string, k), make([]string, k)
		for i, u := range users {
			ids[i] = uploadAvatar(t, n, u, "image/png", pic)
			age(t, env, "avatar_uploads", ids[i], ttl+time.Minute)
			keys[i] = objectKey(t, env, "avatar_uploads", ids[i])
		}
		codes := raceSweep(t, k, delay, func(i int) int {
			st, _ := setAvatar(t, n, users[i], ids[i])
			return st
		}, sweep, final)
		for i, id := range ids {
			switch codes[i] {
			case 200:
				won++
				if uploadStatus(t, env, "avatar_uploads", id) != "used" || !stored(t, store, keys[i]+".jpg") {
					t.Errorf("avatar upload %s set (200) but: status %s, picture %v", id, uploadStatus(t, env, "avatar_uploads", id), stored(t, store, keys[i]+".jpg"))
				}
			case 404:
				lost++
				if uploadStatus(t, env, "avatar_uploads", id) != "gone" || stored(t, store, keys[i]) || stored(t, store, keys[i]+".jpg") {
					t.Errorf("avatar upload %s refused (404) but: status %s, original %v, picture %v", id, uploadStatus(t, env, "avatar_uploads", id), stored(t, store, keys[i]), stored(t, store, keys[i]+".jpg"))
				}
			default:
				t.Errorf("set of %s: %d", id, codes[i])
			}
		}
	}
	bothOutcomes(t, "set", won, lost)
}

// TestSweepSchedule: a worker sets up the sweep's Temporal Schedule on the
// sagas' task queue; triggered, it runs SweepUploads on the worker to the
// end.
func TestSweepSchedule(t *testing.T) {
	requireS3(t)
	env := testenv.Open(t)
	env.Worker(t, nil)
	cfg := testenv.Config().Workers
	h := env.Temporal.ScheduleClient().GetHandle(context.Background(), workers.SweepScheduleID(cfg.SignupTaskQueue))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	d, err := h.Describe(ctx)
	if err != nil {
		t.Fatalf("describe the sweep schedule: %v", err)
	}
	act, ok := d.Schedule.Action.(*client.ScheduleWorkflowAction)
	if !ok || act.Workflow != "SweepUploads" || act.TaskQueue != cfg.SignupTaskQueue {
		t.Fatalf("schedule action: %+v", d.Schedule.Action)
	}
	if iv := d.Schedule.Spec.Intervals; len(iv) != 1 || iv[0].Every != cfg.SweepEvery {
		t.Fatalf("schedule spec: %+v", d.Schedule.Spec)
	}
	before := len(d.Info.RecentActions)
	if err := h.Trigger(ctx, client.ScheduleTriggerOptions{}); err != nil {
		t.Fatalf("trigger: %v", err)
	}
	for {
		if d, err = h.Describe(ctx); err != nil {
			t.Fatal(err)
		}
		if len(d.Info.RecentActions) > before {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatal("the triggered sweep never started")
		case <-time.After(200 * time.Millisecond):
		}
	}
	run := d.Info.RecentActions[len(d.Info.RecentActions)-1].StartWorkflowResult
	var res activities.SweepResult
	if err := env.Temporal.GetWorkflow(ctx, run.WorkflowID, run.FirstExecutionRunID).Get(ctx, &res); err != nil {
		t.Fatalf("the scheduled sweep failed: %v", err)
	}
	t.Logf("scheduled sweep: %+v", res)
}
