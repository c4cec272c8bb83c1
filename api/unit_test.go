package api

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"
	"go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"

	"github.com/chatflow/chatflow"
	"github.com/chatflow/chatflow/activities"
)

// offlineServer is a node whose dependencies are never reached (Redis points
// at a closed port), enough for the pure parts of the hub, batcher and ws.
func offlineServer(t *testing.T, tc client.Client, cfg Config) *Server {
	t.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", MaxRetries: -1, DialTimeout: 50 * time.Millisecond})
	t.Cleanup(func() { _ = rdb.Close() })
	return New(nil, rdb, tc, nil, slog.New(slog.NewTextHandler(io.Discard, nil)), cfg)
}

func TestParseChannel(t *testing.T) {
	for _, tc := range []struct {
		ch   string
		kind byte
		id   string
	}{
		{roomChannel("abc"), 'r', "abc"},
		{userChannel("u1"), 'u', "u1"},
		{"{r:}", 'r', ""},
		{"{r:", 0, ""},
		{"{u", 0, ""},
		{"", 0, ""},
		{"}", 0, ""},
		{"{x:abc}", 0, ""},
		{"r:abc}", 0, ""},
		{"{r:abc", 0, ""},
	} {
		kind, id := parseChannel(tc.ch)
		if kind != tc.kind || id != tc.id {
			t.Errorf("parseChannel(%q) = %q, %q; want %q, %q", tc.ch, kind, id, tc.kind, tc.id)
		}
	}
}

// Frames on odd channel names must not panic the hub's receive loop: a
// panic there takes the whole node down.
func TestDispatchOddChannels(t *testing.T) {
	s := offlineServer(t, nil, Config{})
	for _, ch := range []string{"", "{", "{r:", "{u:", "{r:}", "{u:}", "x", "{r:abc"} {
		s.hub.dispatch(ch, []byte(`{"type":"message","seq":1}`))
		s.hub.dispatch(ch, []byte(`garbage`))
	}
	if s.hub.wantedLocked("{r:") || s.hub.wantedLocked("") {
		t.Fatal("odd channel names are never wanted")
	}
}

func TestStreamSeq(t *testing.T) {
	for id, want := range map[string]int64{"12-0": 12, "1-5": 1, "7": 7, "": 0, "-": 0, "-0": 0, "abc": 0} {
		if got := streamSeq(id); got != want {
			t.Errorf("streamSeq(%q) = %d, want %d", id, got, want)
		}
	}
}

func TestFrameSeq(t *testing.T) {
	prefix, suffix := framePieces(uuid.NewString(), uuid.NewString(), uuid.NewString(), `c"seq":9`, `"seq":99`, time.Now())
	for frame, want := range map[string]struct {
		seq int64
		ok  bool
	}{
		prefix + "42" + suffix:               {42, true},
		`{"type":"message"`:                  {0, false},
		`{"type":"message","seq":`:           {0, true},
		`{"type":"message","seq":7`:          {7, true},
		`{"type":"read","seq":3}`:            {0, false},
		``:                                   {0, false},
		`{"type":"messag`:                    {0, false},
		`{"type":"message","body":"x","seq"`: {0, false},
	} {
		seq, ok := frameSeq([]byte(frame))
		if seq != want.seq || ok != want.ok {
			t.Errorf("frameSeq(%q) = %d, %v; want %d, %v", frame, seq, ok, want.seq, want.ok)
		}
	}
}

// jsonStringSize must never under-count what encoding/json (Temporal's data
// converter) makes of a string, or batches could pass the payload limit.
func TestJSONStringSizeIsAnUpperBound(t *testing.T) {
	nasty := []string{
		"", "plain", strings.Repeat("<", 4000), strings.Repeat(`"\`, 2000), strings.Repeat("\x00\n\t\x1f", 1000),
		strings.Repeat("\u2028\u2029", 2000), strings.Repeat("😀", 4000), strings.Repeat("€—…", 1333),
		"a\u2028b&c>d<e\"f\\g\u2029", "x\u2028", "\u2029",
	}
	for _, s := range nasty {
		enc, _ := json.Marshal(s)
		if got := jsonStringSize(s); got < len(enc) {
			t.Errorf("jsonStringSize(%.20q...) = %d < %d encoded", s, got, len(enc))
		}
	}
	m := chatflow.Message{
		MessageID: uuid.NewString(), RoomID: uuid.NewString(), Seq: math.MaxInt64, SenderID: uuid.NewString(),
		ClientMsgID: strings.Repeat("<", chatflow.MaxClientMsgID), Body: strings.Repeat("&", chatflow.MaxBodyChars),
		SentAt: time.Date(2026, 12, 31, 23, 59, 59, 999999000, time.FixedZone("x", -11*3600)),
	}
	enc, _ := json.Marshal(m)
	if got := msgJSONSize(m); got < len(enc)+1 { // +1: the comma between array elements
		t.Fatalf("msgJSONSize = %d < %d encoded", got, len(enc)+1)
	}
}

// fakeTemporal records the batch workflow starts.
type fakeTemporal struct {
	client.Client
	mu      sync.Mutex
	batches []activities.MessageBatch
}

func (f *fakeTemporal) ExecuteWorkflow(_ context.Context, _ client.StartWorkflowOptions, _ any, args ...any) (client.WorkflowRun, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.batches = append(f.batches, args[0].(activities.MessageBatch))
	return nil, nil
}

// A burst of maximal messages must be split into workflow inputs that
// Temporal accepts (2 MB blob limit), however high BatchMax is.
func TestBatcherCapsPayloadBytes(t *testing.T) {
	tc := &fakeTemporal{}
	s := offlineServer(t, tc, Config{BatchMax: 2000, BatchLinger: 50 * time.Millisecond, BatchInflight: 1})
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan struct{})
	go func() { s.batcher.run(ctx); close(stopped) }()

	const n = 600 // 600 × ~24 KB ≈ 14 MB: far over the limit as one batch
	var wg sync.WaitGroup
	wg.Add(n)
	for i := range n {
		m := chatflow.Message{
			MessageID: uuid.NewString(), RoomID: uuid.NewString(), Seq: int64(i + 1), SenderID: uuid.NewString(),
			ClientMsgID: "c" + strings.Repeat("x", 60), Body: strings.Repeat("<", chatflow.MaxBodyChars), SentAt: time.Now().UTC(),
		}
		if err := s.batcher.add(m, func(err error) {
			if err != nil {
				t.Errorf("batch failed: %v", err)
			}
			wg.Done()
		}); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
	cancel()
	<-stopped

	tc.mu.Lock()
	defer tc.mu.Unlock()
	total := 0
	for _, b := range tc.batches {
		enc, _ := json.Marshal(b)
		if len(enc) > maxBatchBytes+64<<10 || len(enc) >= 2<<20 {
			t.Errorf("batch of %d messages is %d bytes of JSON", len(b.Messages), len(enc))
		}
		total += len(b.Messages)
	}
	if total != n || len(tc.batches) < 10 {
		t.Fatalf("%d messages in %d batches, want %d in at least 10", total, len(tc.batches), n)
	}
}

// A live frame that skips seqs (fan-out lost some) must not let a later sync
// treat the hole as already sent.
func TestDeliverMessageTracksLiveGaps(t *testing.T) {
	s := offlineServer(t, nil, Config{})
	room := uuid.NewString()
	c := &wsConn{s: s, rooms: map[string]*roomState{room: {}}, closed: make(chan struct{})}
	c.done = true // nothing is written: there is no socket
	for _, seq := range []int64{11, 12, 13} {
		c.deliverMessage(room, seq, nil)
	}
	if st := c.rooms[room]; st.firstLive != 11 || st.last != 13 {
		t.Fatalf("contiguous live run: firstLive %d last %d, want 11, 13", st.firstLive, st.last)
	}
	c.deliverMessage(room, 15, nil) // 14 lost on the way
	c.deliverMessage(room, 16, nil)
	c.deliverMessage(room, 12, nil) // old: ignored
	st := c.rooms[room]
	if st.firstLive != 15 || st.last != 16 {
		t.Fatalf("after a hole: firstLive %d last %d, want 15, 16 (so a sync from 13 replays 14)", st.firstLive, st.last)
	}
}

// A connection unregistered while dispatch was handing it an "invited"
// event must not be put back into the hub.
func TestJoinRoomAfterUnregister(t *testing.T) {
	s := offlineServer(t, nil, Config{})
	c := &wsConn{s: s, user: uuid.NewString(), rooms: map[string]*roomState{}, closed: make(chan struct{})}
	s.hub.joinRoom(c, uuid.NewString())
	s.hub.mu.RLock()
	defer s.hub.mu.RUnlock()
	if len(s.hub.rooms) != 0 || len(c.rooms) != 0 {
		t.Fatalf("unregistered connection joined a room: hub %v, conn %v", s.hub.rooms, c.rooms)
	}
}

func TestExecutionStatusNames(t *testing.T) {
	for st, want := range map[enums.WorkflowExecutionStatus]string{
		enums.WORKFLOW_EXECUTION_STATUS_TIMED_OUT:        "timed_out",
		enums.WORKFLOW_EXECUTION_STATUS_CONTINUED_AS_NEW: "continued_as_new",
		enums.WORKFLOW_EXECUTION_STATUS_COMPLETED:        "completed",
	} {
		if got := executionStatus(st); got != want {
			t.Errorf("%v: %q, want %q", st, got, want)
		}
	}
}
