package activities_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.temporal.io/sdk/testsuite"

	"github.com/chatflow/chatflow"
	"github.com/chatflow/chatflow/activities"
	"github.com/chatflow/chatflow/db"
	"github.com/chatflow/chatflow/internal/testenv"
	"github.com/chatflow/chatflow/roomlog"
)

// These tests run PersistMessages, as the batch workflow runs it (inside a
// Temporal activity environment, its input through the data converter),
// against the real local Postgres and Redis.

type persister struct {
	t    *testing.T
	env  *testenv.Env
	acts *activities.Activities
	aenv *testsuite.TestActivityEnvironment
}

func newPersister(t *testing.T) *persister {
	env := testenv.Open(t)
	acts := activities.New(env.Pool, nil)
	acts.Redis, acts.Cfg = env.Redis, testenv.Config().Activities
	var suite testsuite.WorkflowTestSuite
	aenv := suite.NewTestActivityEnvironment()
	aenv.RegisterActivity(acts)
	return &persister{t: t, env: env, acts: acts, aenv: aenv}
}

func (p *persister) persist(msgs ...chatflow.Message) (int64, error) {
	v, err := p.aenv.ExecuteActivity(p.acts.PersistMessages, chatflow.MessageBatch{Node: "act-test", Messages: msgs})
	if err != nil {
		return 0, err
	}
	var n int64
	return n, v.Get(&n)
}

// room creates a real chat.rooms row (so the room has a watermark) and
// forgets the Redis watermark PersistMessages writes for it when the test ends.
func (p *persister) room() uuid.UUID {
	p.t.Helper()
	id := uuid.New()
	if _, err := p.env.Pool.Exec(context.Background(),
		`INSERT INTO chat.rooms (id, name, created_by) VALUES ($1, $2, $3)`, id, "act test "+id.String()[:8], uuid.New()); err != nil {
		p.t.Fatalf("create room: %v", err)
	}
	p.t.Cleanup(func() { p.env.Redis.Del(context.Background(), roomlog.PersistedKey(id.String())) })
	return id
}

func newMsg(room, sender uuid.UUID, seq int64, cmid, body string) chatflow.Message {
	return chatflow.Message{MessageID: uuid.Must(uuid.NewV7()).String(), RoomID: room.String(), Seq: seq,
		SenderID: sender.String(), ClientMsgID: cmid, Body: body, SentAt: time.Now().UTC().Truncate(time.Microsecond)}
}

type row struct {
	id, sender uuid.UUID
	cmid, body string
	kind       string
	sentAt     time.Time
	seq        int64
}

func (p *persister) rows(room uuid.UUID) map[int64]row {
	p.t.Helper()
	rs, err := p.env.Pool.Query(context.Background(),
		`SELECT seq, id, sender_id, client_msg_id, body, kind, sent_at FROM chat.messages WHERE room_id = $1`, room)
	if err != nil {
		p.t.Fatal(err)
	}
	defer rs.Close()
	out := map[int64]row{}
	for rs.Next() {
		var r row
		if err := rs.Scan(&r.seq, &r.id, &r.sender, &r.cmid, &r.body, &r.kind, &r.sentAt); err != nil {
			p.t.Fatal(err)
		}
		out[r.seq] = r
	}
	if err := rs.Err(); err != nil {
		p.t.Fatal(err)
	}
	return out
}

// watermarks returns the room's persisted_seq in Postgres and in its Redis log.
func (p *persister) watermarks(room uuid.UUID) (pg, rd int64) {
	p.t.Helper()
	if err := p.env.Pool.QueryRow(context.Background(), `SELECT persisted_seq FROM chat.rooms WHERE id = $1`, room).Scan(&pg); err != nil {
		p.t.Fatal(err)
	}
	rd, _ = p.env.Redis.Get(context.Background(), roomlog.PersistedKey(room.String())).Int64()
	return pg, rd
}

// wantText checks that Postgres holds m as a text row, exactly as sent.
func wantText(t *testing.T, got map[int64]row, m chatflow.Message) {
	t.Helper()
	r, ok := got[m.Seq]
	switch {
	case !ok:
		t.Fatalf("room %s seq %d: no row", m.RoomID, m.Seq)
	case r.kind != chatflow.KindText || r.id.String() != m.MessageID || r.sender.String() != m.SenderID ||
		r.cmid != m.ClientMsgID || r.body != m.Body || !r.sentAt.Equal(m.SentAt):
		t.Fatalf("room %s seq %d: row %+v, want the message %+v", m.RoomID, m.Seq, r, m)
	}
}

// A batch of two rooms carries two rows Postgres refuses (NUL in a body,
// NUL in a client_msg_id; the HTTP validation never lets these in, so they
// are handed to the activity directly). Each refused row is dead-lettered
// with its reason and a gap tombstone holds its seq; every other row lands;
// both watermarks move past the refused seqs; the metric counts them. A
// replay of the batch changes nothing.
func TestPersistPoisonRowDeadLettered(t *testing.T) {
	p := newPersister(t)
	ctx := context.Background()
	a, b, sender := p.room(), p.room(), uuid.New()
	a1, a2, a3, a4 := newMsg(a, sender, 1, "a1", "first"), newMsg(a, sender, 2, "a2", "poi\x00son"), newMsg(a, sender, 3, "a3", "third"), newMsg(a, sender, 4, "a4", "fourth")
	b1, b2, b3 := newMsg(b, sender, 1, "b1", "one"), newMsg(b, sender, 2, "b\x002", "two"), newMsg(b, sender, 3, "b3", "three")
	batch := []chatflow.Message{a1, b1, a2, b2, a3, b3, a4}

	n, err := p.persist(batch...)
	if err != nil {
		t.Fatalf("PersistMessages with poison rows failed (the batch would retry forever): %v", err)
	}
	if n != 5 {
		t.Fatalf("PersistMessages stored %d rows, want the 5 good ones", n)
	}
	for _, poison := range []chatflow.Message{a2, b2} {
		room := uuid.MustParse(poison.RoomID)
		var reason string
		var mid uuid.UUID
		var payload []byte
		err := p.env.Pool.QueryRow(ctx, `SELECT reason, message_id, payload FROM chat.dead_letters WHERE room_id = $1 AND seq = $2`, room, poison.Seq).
			Scan(&reason, &mid, &payload)
		if err != nil {
			t.Fatalf("dead letter of room %s seq %d: %v", room, poison.Seq, err)
		}
		if strings.TrimSpace(reason) == "" || mid.String() != poison.MessageID {
			t.Fatalf("dead letter of seq %d: reason %q, message_id %s (want %s)", poison.Seq, reason, mid, poison.MessageID)
		}
		var kept chatflow.Message
		if err := json.Unmarshal(payload, &kept); err != nil || kept.Body != poison.Body || kept.ClientMsgID != poison.ClientMsgID {
			t.Fatalf("dead letter payload %q (%v) does not keep the refused message %+v", payload, err, poison)
		}
		if c, err := p.acts.Queries.CountDeadLetters(ctx, room); err != nil || c != 1 {
			t.Fatalf("room %s has %d dead letters (%v), want 1", room, c, err)
		}
		t.Logf("dead letter room %s seq %d: %s", room.String()[:8], poison.Seq, reason)
	}
	ra, rb := p.rows(a), p.rows(b)
	if len(ra) != 4 || len(rb) != 3 {
		t.Fatalf("rows: room a %d, room b %d; want 4 and 3 (tombstones included)", len(ra), len(rb))
	}
	for _, m := range []chatflow.Message{a1, a3, a4} {
		wantText(t, ra, m)
	}
	for _, m := range []chatflow.Message{b1, b3} {
		wantText(t, rb, m)
	}
	if r := ra[2]; r.kind != chatflow.KindGap || r.body != "" {
		t.Fatalf("room a seq 2 is %+v, want a gap tombstone", r)
	}
	if r := rb[2]; r.kind != chatflow.KindGap || r.body != "" {
		t.Fatalf("room b seq 2 is %+v, want a gap tombstone", r)
	}
	if pg, rd := p.watermarks(a); pg != 4 || rd != 4 {
		t.Fatalf("room a watermark: Postgres %d, Redis %d; want 4 (past the refused seq 2)", pg, rd)
	}
	if pg, rd := p.watermarks(b); pg != 3 || rd != 3 {
		t.Fatalf("room b watermark: Postgres %d, Redis %d; want 3 (past the refused seq 2)", pg, rd)
	}
	if d := testutil.ToFloat64(p.acts.Metrics.DeadLetters); d != 2 {
		t.Fatalf("dead-letter metric = %v, want 2", d)
	}
	if c := testutil.ToFloat64(p.acts.Metrics.SeqCollisions); c != 0 {
		t.Fatalf("seq collisions = %v, want 0", c)
	}
	if c := testutil.ToFloat64(p.acts.Metrics.MessagesPersisted); c != 5 {
		t.Fatalf("persisted metric = %v, want 5", c)
	}

	// a retry of the same batch (the workflow replays it) changes nothing
	if n, err := p.persist(batch...); err != nil || n != 0 {
		t.Fatalf("replayed batch: %d rows, %v; want 0, nil", n, err)
	}
	if ra, rb := p.rows(a), p.rows(b); len(ra) != 4 || len(rb) != 3 || ra[2].kind != chatflow.KindGap || rb[2].kind != chatflow.KindGap {
		t.Fatalf("after replay: room a %v, room b %v", ra, rb)
	}
	for _, r := range []uuid.UUID{a, b} {
		if c, err := p.acts.Queries.CountDeadLetters(ctx, r); err != nil || c != 1 {
			t.Fatalf("after replay room %s has %d dead letters (%v), want 1", r, c, err)
		}
	}
	if d := testutil.ToFloat64(p.acts.Metrics.DeadLetters); d != 2 {
		// not fatal: the rows are right, only the counter counts a replay again
		t.Logf("NOTE: dead-letter metric = %v after a replay of the same batch, want 2 (a retry counts its refused rows again)", d)
	}
}

// A gap tombstone written while a message was late (the reconciler's
// patience ran out, or the seq was dead-lettered and later fixed) is
// replaced by the message when it arrives: the real message wins, the
// watermark passes it, and it is not taken for a seq collision.
func TestPersistReplacesTombstone(t *testing.T) {
	p := newPersister(t)
	ctx := context.Background()
	room, sender := p.room(), uuid.New()
	tomb := uuid.NewSHA1(room, []byte("gap:2"))
	if n, err := p.acts.Queries.InsertTombstones(ctx, db.InsertTombstonesParams{Ids: []uuid.UUID{tomb}, RoomID: room, Seqs: []int64{2}}); err != nil || n != 1 {
		t.Fatalf("insert tombstone: %d, %v", n, err)
	}
	if r := p.rows(room)[2]; r.kind != chatflow.KindGap {
		t.Fatalf("seq 2 before the message arrives: %+v, want a tombstone", r)
	}
	m1, m2, m3 := newMsg(room, sender, 1, "t1", "one"), newMsg(room, sender, 2, "t2", "the late one"), newMsg(room, sender, 3, "t3", "three")
	if _, err := p.persist(m1, m2, m3); err != nil {
		t.Fatalf("PersistMessages: %v", err)
	}
	got := p.rows(room)
	if len(got) != 3 {
		t.Fatalf("room has %d rows, want 3: %v", len(got), got)
	}
	for _, m := range []chatflow.Message{m1, m2, m3} {
		wantText(t, got, m)
	}
	if pg, rd := p.watermarks(room); pg != 3 || rd != 3 {
		t.Fatalf("watermark: Postgres %d, Redis %d; want 3", pg, rd)
	}
	if c := testutil.ToFloat64(p.acts.Metrics.SeqCollisions); c != 0 {
		t.Fatalf("the replaced tombstone counted as %v seq collisions", c)
	}
	// a replay keeps the message (no tombstone comes back, nothing doubles)
	if n, err := p.persist(m1, m2, m3); err != nil || n != 0 {
		t.Fatalf("replay: %d rows, %v", n, err)
	}
	wantText(t, p.rows(room), m2)

	// a late tombstone never overwrites a message that is there
	if n, err := p.acts.Queries.InsertTombstones(ctx, db.InsertTombstonesParams{Ids: []uuid.UUID{uuid.NewSHA1(room, []byte("gap:3"))}, RoomID: room, Seqs: []int64{3}}); err != nil || n != 0 {
		t.Fatalf("tombstone over a stored message: %d rows, %v; want 0", n, err)
	}
	wantText(t, p.rows(room), m3)
}

// The local Postgres that `make dev` and `make test` start keeps
// per-statement statistics (pg_stat_statements, README "Operations"), and
// the persistence path's insert is among them under its sqlc name.
func TestPersistStatementStats(t *testing.T) {
	p := newPersister(t)
	ctx := context.Background()
	room, sender := p.room(), uuid.New()
	body := "counted " + uuid.NewString()
	if _, err := p.persist(newMsg(room, sender, 1, "s1", body)); err != nil {
		t.Fatalf("PersistMessages: %v", err)
	}
	var calls int64
	err := p.acts.Pool.QueryRow(ctx, `SELECT coalesce(sum(calls), 0)::bigint FROM pg_stat_statements
		WHERE query LIKE '-- name: InsertMessages %'`).Scan(&calls)
	if err != nil {
		t.Fatalf("pg_stat_statements: %v (a Postgres started before scripts/services.sh preloaded the library needs a restart: scripts/services.sh stop, then make services)", err)
	}
	if calls < 1 {
		t.Fatalf("pg_stat_statements has no InsertMessages call after a persist")
	}
	// the view holds statement texts, never their parameters: no body
	var leaked int64
	if err := p.acts.Pool.QueryRow(ctx, `SELECT count(*) FROM pg_stat_statements WHERE query LIKE '%' || $1 || '%'
		AND query NOT LIKE '%pg_stat_statements%'`, body).Scan(&leaked); err != nil || leaked != 0 {
		t.Fatalf("%d statement texts hold the message body (%v)", leaked, err)
	}
}
