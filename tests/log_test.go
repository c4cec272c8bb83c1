package tests

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/segmentio/kafka-go"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/testsuite"

	"github.com/chatflow/chatflow"
	"github.com/chatflow/chatflow/activities"
	"github.com/chatflow/chatflow/chat"
	"github.com/chatflow/chatflow/db"
	"github.com/chatflow/chatflow/events"
	"github.com/chatflow/chatflow/internal/testenv"
	"github.com/chatflow/chatflow/roomlog"
)

// Tests of the room log as a write-ahead log: what the reconciler makes of
// it, the backlog bound, the seq fence after Redis lost state, transport
// errors on the send path and the Kafka outbox. All on the real services.

// roomScoped is the shared Redis client seen through an index of logs that
// only lists the given rooms: a reconciler pass run by a test (with no
// patience at all) then works on the test's rooms and never on those of
// tests that run at the same time. Every other command goes to Redis
// unchanged.
type roomScoped struct {
	redis.UniversalClient
	rooms []string
}

func (r roomScoped) SScan(ctx context.Context, key string, cursor uint64, match string, count int64) *redis.ScanCmd {
	return redis.NewScanCmdResult(r.rooms, 0, nil)
}

// reconciler runs the Reconcile activity as the worker wires it (Postgres,
// Redis, the real Kafka publisher), inside a Temporal activity environment.
type reconciler struct {
	t    *testing.T
	acts *activities.Activities
	aenv *testsuite.TestActivityEnvironment
}

func newReconciler(t *testing.T, env *testenv.Env, cfg activities.Config, rooms ...string) *reconciler {
	t.Helper()
	pub := events.NewPublisher(env.KafkaBrokers)
	t.Cleanup(func() { pub.Close() })
	acts := activities.New(env.Pool, pub)
	acts.Redis, acts.Cfg = roomScoped{UniversalClient: env.Redis, rooms: rooms}, cfg
	var suite testsuite.WorkflowTestSuite
	aenv := suite.NewTestActivityEnvironment()
	aenv.RegisterActivity(acts)
	return &reconciler{t: t, acts: acts, aenv: aenv}
}

func (r *reconciler) pass() activities.ReconcileResult {
	r.t.Helper()
	v, err := r.aenv.ExecuteActivity(r.acts.Reconcile)
	if err != nil {
		r.t.Fatalf("Reconcile: %v", err)
	}
	var res activities.ReconcileResult
	if err := v.Get(&res); err != nil {
		r.t.Fatal(err)
	}
	return res
}

// eager is the activities' configuration with no patience: the log is taken
// at once and holes become tombstones on the second pass that sees them.
func eager() activities.Config {
	c := testenv.Config().Activities
	c.ReconcileAfter, c.HoleGrace = 0, 0
	return c
}

// watermark is the room's persisted_seq in Postgres and in its Redis log.
func watermark(t testing.TB, env *testenv.Env, room string) (pg, rd int64) {
	t.Helper()
	if err := env.Pool.QueryRow(context.Background(), `SELECT persisted_seq FROM chat.rooms WHERE id = $1`, room).Scan(&pg); err != nil {
		t.Fatalf("persisted_seq of %s: %v", room, err)
	}
	rd, err := env.Redis.Get(context.Background(), roomlog.PersistedKey(room)).Int64()
	if err != nil {
		t.Fatalf("%s: %v", roomlog.PersistedKey(room), err)
	}
	return pg, rd
}

// kinds maps seq → (kind, message id) of the room's rows.
func kinds(t testing.TB, env *testenv.Env, room string) map[int64][2]string {
	t.Helper()
	rows, err := env.Pool.Query(context.Background(), `SELECT seq, kind, id::text FROM chat.messages WHERE room_id = $1`, room)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[int64][2]string{}
	for rows.Next() {
		var seq int64
		var kind, id string
		if err := rows.Scan(&seq, &kind, &id); err != nil {
			t.Fatal(err)
		}
		out[seq] = [2]string{kind, id}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// quickUser creates an active user with a chat profile straight in Postgres
// and issues its tokens: no sign-up saga, so the log tests that do not need
// batches run while Temporal is away too.
func quickUser(t testing.TB, env *testenv.Env, prefix string) testenv.User {
	t.Helper()
	ctx := context.Background()
	u := testenv.User{ID: uuid.NewString(), Username: prefix + "_" + testenv.Unique()}
	u.Email = u.Username + "@example.test"
	if _, err := env.Pool.Exec(ctx, `INSERT INTO auth.users (id, username, email, password_hash, status, activated_at)
		VALUES ($1, $2, $3, 'not-a-hash', 'active', now())`, u.ID, u.Username, u.Email); err != nil {
		t.Fatalf("create user: %v", err)
	}
	if _, err := env.Pool.Exec(ctx, `INSERT INTO chat.profiles (user_id, username, display_name) VALUES ($1, $2, $3)`,
		u.ID, u.Username, strings.ToUpper(prefix)); err != nil {
		t.Fatalf("create profile: %v", err)
	}
	pair, err := env.Tokens().Issue(ctx, u.ID, u.Username, "user", "")
	if err != nil {
		t.Fatalf("issue tokens: %v", err)
	}
	u.Access, u.Refresh = pair.AccessToken, pair.RefreshToken
	return u
}

// No worker runs this binary's batches, so none of them ever runs; the acked messages
// wait in the room's log. A reconciler pass leaves them to their batch while
// they are younger than ReconcileAfter, then persists every one of them with
// its acked seq and id, and moves the watermark in Postgres and in Redis.
func TestLogReconcileFillsFromLog(t *testing.T) {
	const n = 12
	env := testenv.Open(t)
	node := env.StartNode(t, testenv.NodeConfig{})
	a, b := quickUser(t, env, "rfa"), quickUser(t, env, "rfb")
	room := node.CreateRoom(t, a, b)

	ids := map[int64]string{}
	for i := 1; i <= n; i++ {
		st, m := restSend(t, node, a, room, fmt.Sprintf("rf-%d", i), fmt.Sprintf("from the log %d", i))
		if st != 201 || m.Seq != int64(i) {
			t.Fatalf("send %d: status %d, seq %d", i, st, m.Seq)
		}
		ids[m.Seq] = m.MessageID
	}
	before := roomStats(t, env, room).rows

	patient := testenv.Config().Activities
	patient.ReconcileAfter = time.Hour
	if res := newReconciler(t, env, patient, room).pass(); res.Persisted != 0 || res.Pending != 1 {
		t.Fatalf("a pass with ReconcileAfter 1h took the log: %+v, want the room pending", res)
	}
	if got := roomStats(t, env, room).rows; got != before {
		t.Fatalf("a pass with ReconcileAfter 1h stored %d rows", got-before)
	}

	res := newReconciler(t, env, eager(), room).pass()
	if before == 0 && res.Persisted != n {
		t.Fatalf("reconciler persisted %d messages, want %d: %+v", res.Persisted, n, res)
	} else if before != 0 {
		t.Logf("%d rows were stored before the pass (another reconciler on these services); checking the end state only", before)
	}
	waitPersisted(t, env, room, n, 5*time.Second)
	got := kinds(t, env, room)
	for seq, id := range ids {
		if got[seq] != [2]string{chatflow.KindText, id} {
			t.Fatalf("seq %d in Postgres is %v, acked as message %s", seq, got[seq], id)
		}
	}
	if pg, rd := watermark(t, env, room); pg != n || rd != n {
		t.Fatalf("watermark after the pass: Postgres %d, Redis %d; want %d", pg, rd, n)
	}
	if res := newReconciler(t, env, eager(), room).pass(); res.Persisted != 0 || res.Tombstones != 0 {
		t.Fatalf("a second pass found work: %+v", res)
	}
}

// histMsg is a history entry with its kind.
type histMsg struct {
	Seq       int64  `json:"seq"`
	MessageID string `json:"message_id"`
	Kind      string `json:"kind"`
	Body      string `json:"body"`
}

// Redis "restarts": the room's non-replicated alive key is gone, so the next
// send moves the seq SeqFence past what Redis remembers (it may have handed
// those seqs out before the loss). The reconciler records the hole on one
// pass and tombstones it on the next (HoleGrace 0): every seq from 1 to the
// top has a row, the watermark reaches the top, and history over the range
// answers at once with the skipped seqs as "kind":"gap".
func TestLogReconcileTombstonesFencedSeqs(t *testing.T) {
	env := testenv.Open(t)
	node := env.StartNode(t, testenv.NodeConfig{})
	a, b := quickUser(t, env, "fza"), quickUser(t, env, "fzb")
	room := node.CreateRoom(t, a, b)
	r := newReconciler(t, env, eager(), room)
	ids := map[int64]string{}
	send := func(cmid string) int64 {
		t.Helper()
		st, m := restSend(t, node, a, room, cmid, "fence "+cmid)
		if st != 201 {
			t.Fatalf("send %s: %d", cmid, st)
		}
		ids[m.Seq] = m.MessageID
		return m.Seq
	}
	for i := 1; i <= 3; i++ {
		if s := send(fmt.Sprintf("f%d", i)); s != int64(i) {
			t.Fatalf("send %d got seq %d", i, s)
		}
	}
	if res := r.pass(); res.Tombstones != 0 {
		t.Fatalf("reconciling seqs 1..3: %+v", res)
	}
	waitPersisted(t, env, room, 3, 5*time.Second)
	if pg, rd := watermark(t, env, room); pg != 3 || rd != 3 {
		t.Fatalf("watermark before the restart: Postgres %d, Redis %d", pg, rd)
	}

	// what a Redis restart or failover does to the room: the alive key is gone
	ctx := context.Background()
	if n, err := env.Redis.Del(ctx, "{r:"+room+"}:alive").Result(); err != nil || n != 1 {
		t.Fatalf("delete the alive key: %d, %v (the key name changed?)", n, err)
	}
	fence := testenv.Config().Chat.SeqFence
	top := 3 + fence + 1
	if s := send("f-after-restart"); s != top {
		t.Fatalf("first send after the restart got seq %d, want %d (3 + fence %d + 1)", s, top, fence)
	}
	if s := send("f-next"); s != top+1 {
		t.Fatalf("second send after the restart got seq %d, want %d (the fence moves once)", s, top+1)
	}
	top++

	first := r.pass()
	second := r.pass()
	t.Logf("pass 1: %+v; pass 2: %+v", first, second)
	// (a reconciler of another test run may have recorded the hole first;
	// then the first pass already writes the tombstones)
	if first.Tombstones+second.Tombstones != int(fence) {
		t.Fatalf("passes %+v, %+v: want the hole recorded, then %d tombstones", first, second, fence)
	}
	got := kinds(t, env, room)
	for seq := int64(1); seq <= top; seq++ {
		k, ok := got[seq]
		switch {
		case !ok:
			t.Fatalf("seq %d has no row: a hole remains", seq)
		case seq > 3 && seq < top-1:
			if k[0] != chatflow.KindGap {
				t.Fatalf("fenced seq %d is %v, want a gap tombstone", seq, k)
			}
		case k != [2]string{chatflow.KindText, ids[seq]}:
			t.Fatalf("seq %d is %v, acked as message %s", seq, k, ids[seq])
		}
	}
	if len(got) != int(top) {
		t.Fatalf("%d rows, want %d", len(got), top)
	}
	if pg, rd := watermark(t, env, room); pg != top || rd != top {
		t.Fatalf("watermark: Postgres %d, Redis %d; want %d", pg, rd, top)
	}
	if n, _ := env.Redis.Exists(ctx, roomlog.HoleKey(room)).Result(); n != 0 {
		t.Fatalf("the hole record is still in Redis")
	}

	check := func(query string, lo, hi int64) {
		t.Helper()
		start := time.Now()
		var h struct {
			Messages []histMsg `json:"messages"`
		}
		if st := node.Call(t, "GET", "/api/v1/rooms/"+room+"/messages?"+query, b.Access, nil, &h); st != 200 {
			t.Fatalf("history %s: %d", query, st)
		}
		if d := time.Since(start); d > 3*time.Second {
			t.Fatalf("history %s took %v", query, d)
		}
		var seqs []int64
		for _, m := range h.Messages {
			seqs = append(seqs, m.Seq)
		}
		if int64(len(h.Messages)) != hi-lo+1 {
			t.Fatalf("history %s: %d messages (seqs %v), want seqs %d..%d with the tombstones", query, len(seqs), seqs, lo, hi)
		}
		for i, m := range h.Messages {
			want := lo + int64(i)
			gap := want > 3 && want < top-1
			if m.Seq != want || (gap && m.Kind != chatflow.KindGap) || (!gap && (m.Kind != "" || m.MessageID != ids[want])) {
				t.Fatalf("history %s: entry %d is %+v, want seq %d (gap %v)", query, i, m, want, gap)
			}
		}
	}
	check("limit=50", top-49, top)                                   // the newest page
	check(fmt.Sprintf("before_seq=%d&limit=5", top-1), top-6, top-2) // the end of the hole
	check("after_seq=2&limit=10", 3, 12)                             // across the start of the hole
	check("after_seq=0&limit=200", 1, top)                           // the whole room
}

// nopStarter accepts every batch workflow and runs none.
type nopStarter struct{}

func (nopStarter) ExecuteWorkflow(context.Context, client.StartWorkflowOptions, any, ...any) (client.WorkflowRun, error) {
	return nil, nil
}

// core runs a message core of its own on rdb until the test ends.
func core(t *testing.T, env *testenv.Env, cfg chat.Config, rdb redis.UniversalClient) *chat.Service {
	t.Helper()
	svc := chat.New(cfg, rdb, db.New(env.Pool), nopStarter{}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); svc.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return svc
}

func codeOf(err error) string {
	if err == nil {
		return "<nil>"
	}
	return chatflow.ErrorCode(err)
}

func gather(t *testing.T, svc *chat.Service, name string) float64 {
	t.Helper()
	reg := prometheus.NewRegistry()
	reg.MustRegister(svc.Metrics().Collectors()...)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) > 0 {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	t.Fatalf("metric %s not found", name)
	return 0
}

// A message core with MaxBacklog 3 whose batches never run: three sends are
// acked, the fourth is refused with `unavailable` before it is sequenced
// (no seq used, no dedupe key left), a resend of an acked message still
// gets its original; once the batch is persisted (the watermark moves) the
// refused message goes through with the next seq, and the bound holds again.
func TestLogBacklogBound(t *testing.T) {
	env := testenv.Open(t)
	node := env.StartNode(t, testenv.NodeConfig{})
	u := quickUser(t, env, "bkl")
	room := node.CreateRoom(t, u)
	sender := uuid.MustParse(u.ID)

	cfg := testenv.Config().Chat
	cfg.NodeID, cfg.MaxBacklog = "backlog-"+testenv.Unique(), 3
	svc := core(t, env, cfg, env.Redis)
	ctx := context.Background()
	var accepted []chatflow.Message
	for i := 1; i <= 3; i++ {
		a, err := svc.Accept(ctx, sender, room, fmt.Sprintf("bk%d", i), "backlog")
		if err != nil || a.Msg.Seq != int64(i) {
			t.Fatalf("send %d: %+v, %v", i, a.Msg, err)
		}
		accepted = append(accepted, a.Msg)
	}
	_, err := svc.Accept(ctx, sender, room, "bk4", "one too many")
	if code := codeOf(err); code != chatflow.ECodeUnavailable {
		t.Fatalf("send past the backlog bound: code %s (%v), want %s", code, err, chatflow.ECodeUnavailable)
	}
	if seq, _ := env.Redis.Get(ctx, roomlog.SeqKey(room)).Int64(); seq != 3 {
		t.Fatalf("the refused send moved the seq to %d", seq)
	}
	if n, _ := env.Redis.Exists(ctx, roomlog.DedupeKey(room, u.ID, "bk4")).Result(); n != 0 {
		t.Fatalf("the refused send left a dedupe key")
	}
	if v := gather(t, svc, "chatflow_backlog_refused_total"); v != 1 {
		t.Fatalf("backlog refusals metric = %v, want 1", v)
	}
	if a, err := svc.Accept(ctx, sender, room, "bk2", "backlog"); err != nil || !a.Dup || a.Msg.Seq != 2 || a.Msg.MessageID != accepted[1].MessageID {
		t.Fatalf("resend of an acked message while full: %+v dup=%v, %v", a.Msg, a.Dup, err)
	}

	// the batch lands (as the worker would store it): the watermark moves
	acts := activities.New(env.Pool, nil)
	acts.Redis, acts.Cfg = env.Redis, testenv.Config().Activities
	var suite testsuite.WorkflowTestSuite
	aenv := suite.NewTestActivityEnvironment()
	aenv.RegisterActivity(acts)
	if _, err := aenv.ExecuteActivity(acts.PersistMessages, chatflow.MessageBatch{Node: cfg.NodeID, Messages: accepted}); err != nil {
		t.Fatalf("persist: %v", err)
	}
	if pg, rd := watermark(t, env, room); pg != 3 || rd != 3 {
		t.Fatalf("watermark after the batch: Postgres %d, Redis %d", pg, rd)
	}
	a, err := svc.Accept(ctx, sender, room, "bk4", "one too many")
	if err != nil || a.Dup || a.Msg.Seq != 4 {
		t.Fatalf("the refused message resent after the watermark moved: %+v dup=%v, %v; want seq 4", a.Msg, a.Dup, err)
	}
	for i := 5; i <= 6; i++ {
		if a, err := svc.Accept(ctx, sender, room, fmt.Sprintf("bk%d", i), "backlog"); err != nil || a.Msg.Seq != int64(i) {
			t.Fatalf("send %d: %+v, %v", i, a.Msg, err)
		}
	}
	if _, err := svc.Accept(ctx, sender, room, "bk7", "full again"); codeOf(err) != chatflow.ECodeUnavailable {
		t.Fatalf("send past the bound again: %v", err)
	}
	// leave nothing behind for a reconciler: persist what the log holds
	newReconciler(t, env, eager(), room).pass()
	waitPersisted(t, env, room, 6, 5*time.Second)
}

// A message core whose Redis is a closed port answers `unavailable` (never
// `internal`), promptly: the client may retry with the same client_msg_id.
func TestLogRedisDownUnavailable(t *testing.T) {
	env := testenv.Open(t)
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	rdb := redis.NewClient(&redis.Options{Addr: addr})
	t.Cleanup(func() { rdb.Close() })
	cfg := testenv.Config().Chat
	cfg.NodeID = "redis-down-" + testenv.Unique()
	svc := core(t, env, cfg, rdb)
	room, user := uuid.New(), uuid.New()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()

	t.Run("Accept", func(t *testing.T) {
		start := time.Now()
		_, err := svc.Accept(ctx, user, room.String(), "down-1", "hello")
		if code := codeOf(err); code != chatflow.ECodeUnavailable {
			t.Fatalf("Accept with Redis down: code %s (%v), want %s", code, err, chatflow.ECodeUnavailable)
		}
		if d := time.Since(start); d > 10*time.Second {
			t.Fatalf("Accept with Redis down took %v", d)
		}
		var ce *chatflow.Error
		if !errors.As(err, &ce) || strings.Contains(ce.Detail, addr) {
			t.Fatalf("error detail leaks internals or is not a domain error: %v", err)
		}
	})
	t.Run("FetchRange", func(t *testing.T) {
		if _, err := svc.FetchRange(ctx, room, 1, 10); codeOf(err) != chatflow.ECodeUnavailable {
			t.Fatalf("FetchRange with Redis down: code %s (%v), want %s", codeOf(err), err, chatflow.ECodeUnavailable)
		}
	})
	t.Run("CurrentSeq", func(t *testing.T) {
		// the first step of GET /rooms/{id}/messages and of POST /read
		if _, err := svc.CurrentSeq(ctx, room); codeOf(err) != chatflow.ECodeUnavailable {
			t.Fatalf("CurrentSeq with Redis down: code %s (%v), want %s (history would answer 500)", codeOf(err), err, chatflow.ECodeUnavailable)
		}
	})
}

// lastOffsets returns the end offset of every partition of topic.
func lastOffsets(t *testing.T, broker, topic string) map[int]int64 {
	t.Helper()
	conn, err := kafka.Dial("tcp", broker)
	if err != nil {
		t.Fatalf("kafka dial: %v", err)
	}
	parts, err := conn.ReadPartitions(topic)
	conn.Close()
	if err != nil || len(parts) == 0 {
		t.Fatalf("partitions of %s: %v (%d)", topic, err, len(parts))
	}
	out := map[int]int64{}
	for _, p := range parts {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		pc, err := kafka.DialLeader(ctx, "tcp", broker, topic, p.ID)
		cancel()
		if err != nil {
			t.Fatalf("partition %d leader: %v", p.ID, err)
		}
		last, err := pc.ReadLastOffset()
		pc.Close()
		if err != nil {
			t.Fatalf("partition %d last offset: %v", p.ID, err)
		}
		out[p.ID] = last
	}
	return out
}

type kafkaRec struct {
	partition int
	offset    int64
	msg       chatflow.Message
}

// readRoom reads every partition of topic from the given offsets up to the
// given ends and returns the records keyed by room.
func readRoom(t *testing.T, broker, topic, room string, from, to map[int]int64) []kafkaRec {
	t.Helper()
	var mu sync.Mutex
	var out []kafkaRec
	var wg sync.WaitGroup
	errs := make(chan error, len(to))
	for p, end := range to {
		start := from[p]
		if end <= start {
			continue
		}
		wg.Add(1)
		go func(p int, start, end int64) {
			defer wg.Done()
			r := kafka.NewReader(kafka.ReaderConfig{Brokers: []string{broker}, Topic: topic, Partition: p,
				MinBytes: 1, MaxBytes: 10 << 20, MaxWait: 200 * time.Millisecond})
			defer r.Close()
			if err := r.SetOffset(start); err != nil {
				errs <- err
				return
			}
			ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
			defer cancel()
			for {
				m, err := r.ReadMessage(ctx)
				if err != nil {
					errs <- fmt.Errorf("partition %d at %d of %d: %w", p, start, end, err)
					return
				}
				if string(m.Key) == room {
					var cm chatflow.Message
					if err := json.Unmarshal(m.Value, &cm); err != nil {
						errs <- fmt.Errorf("partition %d offset %d: %w", p, m.Offset, err)
						return
					}
					mu.Lock()
					out = append(out, kafkaRec{p, m.Offset, cm})
					mu.Unlock()
				}
				if m.Offset >= end-1 {
					return
				}
			}
		}(p, start, end)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("read %s: %v", topic, err)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].partition != out[j].partition {
			return out[i].partition < out[j].partition
		}
		return out[i].offset < out[j].offset
	})
	return out
}

// outboxCaughtUp polls until the room's publish cursor equals its
// watermark and the watermark is want.
func outboxCaughtUp(t *testing.T, env *testenv.Env, room string, want int64, timeout time.Duration) {
	t.Helper()
	var persisted, published int64
	deadline := time.Now().Add(timeout)
	for {
		err := env.Pool.QueryRow(context.Background(),
			`SELECT r.persisted_seq, coalesce(c.published_seq, -1) FROM chat.rooms r LEFT JOIN chat.publish_cursors c ON c.room_id = r.id WHERE r.id = $1`,
			room).Scan(&persisted, &published)
		if err != nil {
			t.Fatal(err)
		}
		if persisted == want && published == persisted {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("outbox: persisted_seq %d, published_seq %d after %v; want both %d", persisted, published, timeout, want)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// checkKafka reads the room's records of chat.messages after the offsets
// from and checks them against the acked messages (id → seq): each once,
// nothing else, one partition, in seq order.
func checkKafka(t *testing.T, broker, room string, from map[int]int64, acked map[string]int64) {
	t.Helper()
	to := lastOffsets(t, broker, chatflow.TopicChatMessages)
	recs := readRoom(t, broker, chatflow.TopicChatMessages, room, from, to)
	count := map[string]int{}
	parts := map[int]bool{}
	var seqs []int64
	for _, r := range recs {
		seq, ok := acked[r.msg.MessageID]
		if !ok {
			t.Fatalf("Kafka has a record of room %s that is no acked message (a tombstone?): %+v", room, r.msg)
		}
		if seq != r.msg.Seq || r.msg.RoomID != room {
			t.Fatalf("Kafka record %+v does not match the ack (seq %d)", r.msg, seq)
		}
		count[r.msg.MessageID]++
		parts[r.partition] = true
		seqs = append(seqs, r.msg.Seq)
	}
	dups := 0
	for id, seq := range acked {
		switch c := count[id]; {
		case c == 0:
			t.Fatalf("message %s (seq %d) is persisted but not in Kafka (records: seqs %v)", id, seq, seqs)
		case c > 1:
			dups += c - 1
		}
	}
	if dups != 0 {
		t.Fatalf("%d duplicate records in Kafka (seqs %v)", dups, seqs)
	}
	if len(parts) != 1 {
		t.Fatalf("the room's records are spread over partitions %v", parts)
	}
	if !sort.SliceIsSorted(seqs, func(i, j int) bool { return seqs[i] < seqs[j] }) {
		t.Fatalf("the room's records are out of order: %v", seqs)
	}
}

// Persisted messages reach Kafka through the outbox, on the live path: the
// worker's batches store them and publish right after. The room's publish
// cursor catches up with its watermark, and chat.messages holds each
// message once, keyed by the room, in one partition, in seq order.
func TestLogKafkaOutbox(t *testing.T) {
	const n = 15
	env := testenv.Open(t)
	broker := strings.Split(env.KafkaBrokers, ",")[0]
	// records of this room can only come after these offsets: it does not exist yet
	from := lastOffsets(t, broker, chatflow.TopicChatMessages)
	env.Worker(t, nil)
	node := env.StartNode(t, testenv.NodeConfig{})
	a, b := quickUser(t, env, "kfa"), quickUser(t, env, "kfb")
	room := node.CreateRoom(t, a, b)
	acked := map[string]int64{}
	for i := 1; i <= n; i++ {
		st, m := restSend(t, node, a, room, fmt.Sprintf("kf-%d", i), fmt.Sprintf("to kafka %d", i))
		if st != 201 {
			t.Fatalf("send %d: %d", i, st)
		}
		acked[m.MessageID] = m.Seq
	}
	t0 := time.Now()
	waitPersisted(t, env, room, n, 20*time.Second)
	outboxCaughtUp(t, env, room, n, 15*time.Second)
	t.Logf("persisted and published %v after the last ack", time.Since(t0).Round(time.Millisecond))
	checkKafka(t, broker, room, from, acked)
}

// The outbox on the reconciler's path, through tombstones: no batch runs; a
// Redis restart fences 100 seqs; the reconciler stores the log, tombstones
// the hole and publishes. The cursor passes the tombstones to the top, and
// Kafka carries exactly the acked messages (no record for a gap).
func TestLogKafkaOutboxFromReconciler(t *testing.T) {
	env := testenv.Open(t)
	broker := strings.Split(env.KafkaBrokers, ",")[0]
	from := lastOffsets(t, broker, chatflow.TopicChatMessages)
	node := env.StartNode(t, testenv.NodeConfig{})
	a, b := quickUser(t, env, "kra"), quickUser(t, env, "krb")
	room := node.CreateRoom(t, a, b)
	acked := map[string]int64{}
	var top int64
	send := func(cmid string) {
		t.Helper()
		st, m := restSend(t, node, b, room, cmid, "via the reconciler "+cmid)
		if st != 201 {
			t.Fatalf("send %s: %d", cmid, st)
		}
		acked[m.MessageID], top = m.Seq, m.Seq
	}
	for i := 1; i <= 5; i++ {
		send(fmt.Sprintf("kr-%d", i))
	}
	if err := env.Redis.Del(context.Background(), "{r:"+room+"}:alive").Err(); err != nil {
		t.Fatal(err)
	}
	for i := 6; i <= 8; i++ {
		send(fmt.Sprintf("kr-%d", i))
	}
	if want := 5 + testenv.Config().Chat.SeqFence + 3; top != want {
		t.Fatalf("top seq %d, want %d", top, want)
	}
	r := newReconciler(t, env, eager(), room)
	first, second := r.pass(), r.pass()
	t.Logf("pass 1: %+v; pass 2: %+v", first, second)
	if fence := int(testenv.Config().Chat.SeqFence); first.Tombstones+second.Tombstones != fence {
		t.Fatalf("passes %+v, %+v: want %d tombstones", first, second, fence)
	}
	waitPersisted(t, env, room, top, 5*time.Second)
	outboxCaughtUp(t, env, room, top, 5*time.Second)
	checkKafka(t, broker, room, from, acked)
}

// roomKeys lists every Redis key of a room (they share its hash tag).
func roomKeys(t *testing.T, env *testenv.Env, room string) []string {
	t.Helper()
	keys, err := env.Keys(context.Background(), "{r:"+room+"}*")
	if err != nil {
		t.Fatal(err)
	}
	return keys
}

// A failover to a replica that never received a young room's keys (or any
// loss of the room's whole Redis state): the next send re-seeds the room
// from Postgres, which holds none of the acked messages yet. The seq must
// still never be handed out twice: it has to land past every acked seq
// (they may still be on their way to Postgres in batch workflows).
func TestLogSeqNeverReissuedAfterRoomStateLost(t *testing.T) {
	env := testenv.Open(t)
	node := env.StartNode(t, testenv.NodeConfig{})
	a, b := quickUser(t, env, "rla"), quickUser(t, env, "rlb")
	room := node.CreateRoom(t, a, b)
	forgetRoomLog(t, env, room)
	for i := 1; i <= 3; i++ {
		if st, m := restSend(t, node, a, room, fmt.Sprintf("rl-%d", i), "before the loss"); st != 201 || m.Seq != int64(i) {
			t.Fatalf("send %d: %d, seq %d", i, st, m.Seq)
		}
	}
	keys := roomKeys(t, env, room)
	if len(keys) == 0 {
		t.Fatalf("no Redis keys for room %s", room)
	}
	if err := env.Redis.Del(context.Background(), keys...).Err(); err != nil {
		t.Fatal(err)
	}
	st, m := restSend(t, node, b, room, "rl-after", "after the loss")
	if st != 201 {
		t.Fatalf("send after the loss: %d", st)
	}
	if m.Seq <= 3 {
		t.Fatalf("send after the room's Redis state was lost got seq %d, which was already acked to another message (seqs 1..3 are in no place Postgres knows yet)", m.Seq)
	}
}

// forgetRoomLog deletes the room's Redis state when the test ends, so that a
// room a failing test leaves inconsistent is no work for later reconcilers.
func forgetRoomLog(t *testing.T, env *testenv.Env, room string) {
	t.Cleanup(func() {
		if keys := roomKeys(t, env, room); len(keys) > 0 {
			env.Redis.Del(context.Background(), keys...)
		}
	})
}

// A client resends a message after its dedupe key expired (an hour later):
// the resend gets a new seq in the log, and Postgres skips the row (its
// (room, sender, client_msg_id) is taken). That seq must not stall the room:
// the reconciler has to get the watermark past it, or the room's Kafka
// outbox stops for good and the backlog grows until sends are refused.
func TestLogResendAfterDedupeExpiryDoesNotStallWatermark(t *testing.T) {
	env := testenv.Open(t)
	node := env.StartNode(t, testenv.NodeConfig{})
	a, b := quickUser(t, env, "dxa"), quickUser(t, env, "dxb")
	room := node.CreateRoom(t, a, b)
	forgetRoomLog(t, env, room)
	r := newReconciler(t, env, eager(), room)
	if st, m := restSend(t, node, a, room, "dx-1", "original"); st != 201 || m.Seq != 1 {
		t.Fatalf("send: %d, seq %d", st, m.Seq)
	}
	r.pass()
	waitPersisted(t, env, room, 1, 5*time.Second)
	// an hour passes: the dedupe key expires
	if n, err := env.Redis.Del(context.Background(), roomlog.DedupeKey(room, a.ID, "dx-1")).Result(); err != nil || n != 1 {
		t.Fatalf("expire the dedupe key: %d, %v", n, err)
	}
	if st, m := restSend(t, node, a, room, "dx-1", "original"); st != 201 || m.Seq != 2 {
		t.Fatalf("late resend: %d, seq %d (want a new seq 2: the documented limit)", st, m.Seq)
	}
	if st, m := restSend(t, node, b, room, "dx-3", "after the resend"); st != 201 || m.Seq != 3 {
		t.Fatalf("send: %d, seq %d", st, m.Seq)
	}
	for i := 0; i < 3; i++ {
		t.Logf("pass %d: %+v", i+1, r.pass())
	}
	got := kinds(t, env, room)
	if pg, rd := watermark(t, env, room); pg != 3 || rd != 3 {
		t.Fatalf("watermark stuck: Postgres %d, Redis %d, want 3; rows %v (seq 2 is the late resend, in the log forever and never in Postgres)", pg, rd, got)
	}
	outboxCaughtUp(t, env, room, 3, 5*time.Second)
}
