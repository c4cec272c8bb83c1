package chat

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"

	"github.com/google/uuid"

	"github.com/chatflow/chatflow/roomlog"
)

// TestPipelineSplitReplies: batches longer than a chunk go out on several
// connections at once; every caller must still get its own reply, and the
// room's seqs must be 1..n with none handed out twice.
func TestPipelineSplitReplies(t *testing.T) {
	s, st := raceService(t)
	ctx := context.Background()
	const senders, rounds = 200, 3
	ids := make([]uuid.UUID, senders)
	for i := range ids {
		ids[i] = uuid.New()
	}
	st.set(ids...)
	room := uuid.NewString()
	warm, err := s.Accept(ctx, ids[0], room, "warm", "first") // builds the member set
	if err != nil {
		t.Fatal(err)
	}
	first := warm.Msg.Seq
	type got struct {
		cmid string
		seq  int64
	}
	seqs := make(chan got, senders*rounds)
	var wg sync.WaitGroup
	for r := range rounds {
		start := make(chan struct{})
		for i, id := range ids {
			wg.Go(func() {
				<-start
				cmid := fmt.Sprintf("r%d-s%d", r, i)
				a, err := s.Accept(ctx, id, room, cmid, cmid)
				switch {
				case err != nil:
					t.Errorf("%s: %v", cmid, err)
				case a.Msg.ClientMsgID != cmid || a.Msg.SenderID != id.String() || a.Msg.Body != cmid:
					t.Errorf("%s got the reply of %s by %s", cmid, a.Msg.ClientMsgID, a.Msg.SenderID)
				default:
					seqs <- got{cmid, a.Msg.Seq}
				}
			})
		}
		close(start)
		wg.Wait()
	}
	close(seqs)
	// the log says which message each seq is: every ack must name its own
	logged := map[int64]string{}
	entries, err := s.rdb.XRange(ctx, roomlog.StreamKey(room), "-", "+").Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		var f struct {
			Seq         int64  `json:"seq"`
			ClientMsgID string `json:"client_msg_id"`
		}
		if err := json.Unmarshal([]byte(e.Values["f"].(string)), &f); err != nil {
			t.Fatal(err)
		}
		logged[f.Seq] = f.ClientMsgID
	}
	seen := map[int64]bool{first: true}
	for g := range seqs {
		if seen[g.seq] {
			t.Fatalf("seq %d handed out twice", g.seq)
		}
		seen[g.seq] = true
		if logged[g.seq] != g.cmid {
			t.Errorf("%s was acked with seq %d, which the log holds for %q", g.cmid, g.seq, logged[g.seq])
		}
	}
	for q := first; q <= first+senders*rounds; q++ {
		if !seen[q] {
			t.Errorf("seq %d missing", q)
		}
	}
	if s.pipe.split.Load() == 0 {
		t.Fatalf("no batch was split over connections: %d concurrent senders never filled a chunk of %d", senders, pipelineChunk)
	}
	t.Logf("%d batches split", s.pipe.split.Load())
}
