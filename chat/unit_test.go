package chat

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"go.temporal.io/sdk/client"

	"github.com/chatflow/chatflow"
)

func TestParseChannel(t *testing.T) {
	for _, tc := range []struct {
		ch   string
		kind byte
		id   string
	}{
		{RoomChannel("abc"), 'r', "abc"},
		{UserChannel("u1"), 'u', "u1"},
		{"{r:}", 'r', ""},
		{"{r:", 0, ""},
		{"{u", 0, ""},
		{"", 0, ""},
		{"}", 0, ""},
		{"{x:abc}", 0, ""},
		{"r:abc}", 0, ""},
		{"{r:abc", 0, ""},
	} {
		kind, id := ParseChannel(tc.ch)
		if kind != tc.kind || id != tc.id {
			t.Errorf("ParseChannel(%q) = %q, %q; want %q, %q", tc.ch, kind, id, tc.kind, tc.id)
		}
	}
}

func TestFrameSeq(t *testing.T) {
	prefix, suffix := framePieces(uuid.NewString(), uuid.NewString(), uuid.NewString(), `c"seq":9`, "", `"seq":99`, time.Now(), 0)
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
		seq, ok := FrameSeq([]byte(frame))
		if seq != want.seq || ok != want.ok {
			t.Errorf("FrameSeq(%q) = %d, %v; want %d, %v", frame, seq, ok, want.seq, want.ok)
		}
	}
}

// fakeTemporal records the batch workflow starts.
type fakeTemporal struct {
	client.Client
	mu      sync.Mutex
	batches []chatflow.MessageBatch
}

func (f *fakeTemporal) ExecuteWorkflow(_ context.Context, _ client.StartWorkflowOptions, _ any, args ...any) (client.WorkflowRun, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.batches = append(f.batches, args[0].(chatflow.MessageBatch))
	return nil, nil
}

// A batch names its messages by room and runs of seqs: exactly the seqs
// the node accepted (a seq another node took splits a run), every one once,
// in a workflow input that stays small however many messages it names.
func TestBatcherRanges(t *testing.T) {
	tc := &fakeTemporal{}
	cfg := DefaultConfig()
	cfg.BatchMax, cfg.BatchLinger, cfg.BatchInflight = 500, 50*time.Millisecond, 1
	b := newBatcher(cfg, tc, slog.New(slog.NewTextHandler(io.Discard, nil)), newMetrics())
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan struct{})
	go func() { b.run(ctx); close(stopped) }()

	rooms := make([]string, 40)
	for i := range rooms {
		rooms[i] = uuid.NewString()
	}
	want := map[string]map[int64]bool{}
	const n = 1900 // under the queue's 4×BatchMax: add never blocks, a full queue leaves messages to the reconciler
	for i := range n {
		room := rooms[i%len(rooms)]
		seq := int64(i/len(rooms))*3 + 1 // every third seq: 1, 4, 7, ...
		if i%7 == 0 {
			seq++ // and some runs of two
		}
		if want[room] == nil {
			want[room] = map[int64]bool{}
		}
		if want[room][seq] {
			continue
		}
		want[room][seq] = true
		b.add(room, seq)
	}
	cancel() // the batcher drains its queue on the way out
	<-stopped

	tc.mu.Lock()
	defer tc.mu.Unlock()
	got := map[string]map[int64]bool{}
	for _, mb := range tc.batches {
		if len(mb.Messages) != 0 {
			t.Fatalf("batch carries %d message bodies; want ranges only", len(mb.Messages))
		}
		var count int64
		for _, r := range mb.Ranges {
			if r.From > r.To {
				t.Fatalf("range %+v is empty", r)
			}
			count += r.Len()
			for s := r.From; s <= r.To; s++ {
				if got[r.Room] == nil {
					got[r.Room] = map[int64]bool{}
				}
				if got[r.Room][s] {
					t.Fatalf("room %s seq %d in two batches", r.Room, s)
				}
				got[r.Room][s] = true
			}
		}
		if count > int64(cfg.BatchMax) {
			t.Fatalf("batch names %d messages, over BatchMax %d", count, cfg.BatchMax)
		}
		if enc, _ := json.Marshal(mb); len(enc) > 64<<10 {
			t.Errorf("batch naming %d messages is %d bytes of JSON", count, len(enc))
		}
	}
	if len(got) != len(want) {
		t.Fatalf("%d rooms batched, want %d", len(got), len(want))
	}
	for room, seqs := range want {
		if len(got[room]) != len(seqs) {
			t.Fatalf("room %s: %d seqs batched, want %d", room, len(got[room]), len(seqs))
		}
		for s := range seqs {
			if !got[room][s] {
				t.Fatalf("room %s: seq %d not batched", room, s)
			}
		}
	}
}
