package chat

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"testing"

	"github.com/google/uuid"

	"github.com/chatflow/chatflow/db"
)

// namerStore counts the display-name queries a sync page makes.
type namerStore struct {
	memberStore
	names   map[uuid.UUID]string
	queries int
	fail    bool
}

func (n *namerStore) DisplayNames(_ context.Context, ids []uuid.UUID) ([]db.DisplayNamesRow, error) {
	n.queries++
	if n.fail {
		return nil, errors.New("postgres is down")
	}
	var out []db.DisplayNamesRow
	for _, id := range ids {
		if name, ok := n.names[id]; ok {
			out = append(out, db.DisplayNamesRow{UserID: id, DisplayName: name})
		}
	}
	return out, nil
}

func TestWithSendersOneQueryPerPage(t *testing.T) {
	a, b, gone := uuid.New(), uuid.New(), uuid.New()
	st := &namerStore{names: map[uuid.UUID]string{a: `Ann "A"`, b: "비비"}}
	s := &Service{store: st, log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	frame := func(seq int, sender uuid.UUID) json.RawMessage {
		return json.RawMessage(`{"type":"message","seq":` + string(rune('0'+seq)) + `,"sender_id":"` + sender.String() + `","body":"x"}`)
	}
	in := []json.RawMessage{frame(1, a), frame(2, b), frame(3, a), frame(4, gone), json.RawMessage(`{"type":"message","seq":5,"kind":"gap"}`)}
	orig := make([]string, len(in))
	for i, f := range in {
		orig[i] = string(f)
	}
	out := s.WithSenders(context.Background(), in)
	if st.queries != 1 {
		t.Fatalf("%d queries for one page, want 1", st.queries)
	}
	for i, f := range in {
		if string(f) != orig[i] {
			t.Fatalf("frame %d changed in place: %s", i, f)
		}
	}
	for i, want := range []map[string]string{{a.String(): `Ann "A"`}, {b.String(): "비비"}, {a.String(): `Ann "A"`}, nil, nil} {
		var got struct {
			Seq     int               `json:"seq"`
			Body    string            `json:"body"`
			Senders map[string]string `json:"senders"`
		}
		if err := json.Unmarshal(out[i], &got); err != nil {
			t.Fatalf("frame %d is not JSON: %s", i, out[i])
		}
		if got.Seq != i+1 || len(got.Senders) != len(want) || (want != nil && got.Senders[want0(want)] != want[want0(want)]) {
			t.Fatalf("frame %d: %s, want senders %v", i, out[i], want)
		}
		if seq, ok := FrameSeq(out[i]); !ok || seq != int64(i+1) {
			t.Fatalf("frame %d reads as seq %d", i, seq)
		}
	}
	// names unreadable: the frames go as they are, still one query
	st.fail, st.queries = true, 0
	out = s.WithSenders(context.Background(), in)
	if st.queries != 1 || string(out[0]) != orig[0] {
		t.Fatalf("with Postgres down: %d queries, %s", st.queries, out[0])
	}
}

func want0(m map[string]string) string {
	for k := range m {
		return k
	}
	return ""
}
