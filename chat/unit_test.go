package chat

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
	batches []chatflow.MessageBatch
}

func (f *fakeTemporal) ExecuteWorkflow(_ context.Context, _ client.StartWorkflowOptions, _ any, args ...any) (client.WorkflowRun, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.batches = append(f.batches, args[0].(chatflow.MessageBatch))
	return nil, nil
}

// A burst of maximal messages must be split into workflow inputs that
// Temporal accepts (2 MB blob limit), however high BatchMax is.
func TestBatcherCapsPayloadBytes(t *testing.T) {
	tc := &fakeTemporal{}
	cfg := DefaultConfig()
	cfg.BatchMax, cfg.BatchLinger, cfg.BatchInflight = 2000, 50*time.Millisecond, 1
	b := newBatcher(cfg, tc, slog.New(slog.NewTextHandler(io.Discard, nil)), newMetrics())
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan struct{})
	go func() { b.run(ctx); close(stopped) }()

	const n = 600 // 600 × ~24 KB ≈ 14 MB: far over the limit as one batch
	for i := range n {
		m := chatflow.Message{
			MessageID: uuid.NewString(), RoomID: uuid.NewString(), Seq: int64(i + 1), SenderID: uuid.NewString(),
			ClientMsgID: "c" + strings.Repeat("x", 60), Body: strings.Repeat("<", chatflow.MaxBodyChars), SentAt: time.Now().UTC(),
		}
		b.add(m)
	}
	cancel() // the batcher drains its queue on the way out
	<-stopped

	tc.mu.Lock()
	defer tc.mu.Unlock()
	total := 0
	for _, mb := range tc.batches {
		enc, _ := json.Marshal(mb)
		if len(enc) > maxBatchBytes+64<<10 || len(enc) >= 2<<20 {
			t.Errorf("batch of %d messages is %d bytes of JSON", len(mb.Messages), len(enc))
		}
		total += len(mb.Messages)
	}
	if total != n || len(tc.batches) < 10 {
		t.Fatalf("%d messages in %d batches, want %d in at least 10", total, len(tc.batches), n)
	}
}
