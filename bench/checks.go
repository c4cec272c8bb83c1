package bench

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// allDelivered reports whether every client saw every seq in want (room →
// seqs, as ackedSnapshot gives).
func allDelivered(rooms map[string][]*wsClient, want map[string]map[int64]bool) bool {
	for id, cs := range rooms {
		for _, c := range cs {
			c.mu.Lock()
			for s := range want[id] {
				if c.seen[s] == 0 {
					c.mu.Unlock()
					return false
				}
			}
			c.mu.Unlock()
		}
	}
	return true
}

// ackedSnapshot is every room's acked seqs now.
func ackedSnapshot(rooms map[string][]*wsClient) map[string]map[int64]bool {
	out := make(map[string]map[int64]bool, len(rooms))
	for id, cs := range rooms {
		out[id] = ackedSeqs(cs)
	}
	return out
}

func ackedSeqs(cs []*wsClient) map[int64]bool {
	want := map[int64]bool{}
	for _, c := range cs {
		c.mu.Lock()
		for _, s := range c.acked {
			want[s] = true
		}
		c.mu.Unlock()
	}
	return want
}

// lossCheck: every message acked by the end of the drain reached every
// member online, exactly once. The acked set is a snapshot (acked): in an
// overloaded run acks still arrive during the check, each with its
// deliveries a moment behind, and those are not losses. A client the
// server disconnected (a slow reader) is not online any more; it is
// counted, and recovers by reconnecting with sync.
func lossCheck(r *Result, rooms map[string][]*wsClient, acked map[string]map[int64]bool) {
	var missing, dups, nacked, dropped int
	var why any
	for id, cs := range rooms {
		want := acked[id]
		nacked += len(want)
		for _, c := range cs {
			if c.closed.Load() {
				dropped++
				if why == nil {
					why = c.closeErr.Load()
				}
				continue
			}
			c.mu.Lock()
			for s := range want {
				if c.seen[s] == 0 {
					missing++
				}
			}
			for _, n := range c.seen {
				if n > 1 {
					dups += n - 1
				}
			}
			c.mu.Unlock()
		}
	}
	r.Metrics["clients_disconnected"] = float64(dropped)
	r.check("delivery_loss", missing == 0, fmt.Sprintf("%d acked messages, %d member deliveries missing (%d clients disconnected by the server: %v)", nacked, missing, dropped, why))
	r.check("delivery_dups", dups == 0, fmt.Sprintf("%d duplicate deliveries", dups))
}

// pgCheck: every acked message is in Postgres exactly once, and each room's
// rows are gap-free 1..max.
func pgCheck(ctx context.Context, o Options, r *Result, rooms map[string][]*wsClient) error {
	pool, err := pgxpool.New(ctx, o.DatabaseURL)
	if err != nil {
		return err
	}
	defer pool.Close()
	type key struct {
		room string
		seq  int64
	}
	want := map[key]bool{}
	roomIDs := make([]string, 0, len(rooms))
	for id, cs := range rooms {
		roomIDs = append(roomIDs, id)
		for s := range ackedSeqs(cs) {
			want[key{id, s}] = true
		}
	}
	deadline := time.Now().Add(60 * time.Second)
	var found, rows, gaps int
	for {
		found, rows, gaps = 0, 0, 0
		res, err := pool.Query(ctx, `SELECT room_id::text, seq FROM chat.messages WHERE room_id = ANY($1::uuid[])`, roomIDs)
		if err != nil {
			return err
		}
		maxSeq := map[string]int64{}
		count := map[string]int64{}
		for res.Next() {
			var k key
			if err := res.Scan(&k.room, &k.seq); err != nil {
				return err
			}
			rows++
			count[k.room]++
			maxSeq[k.room] = max(maxSeq[k.room], k.seq)
			if want[k] {
				found++
			}
		}
		res.Close()
		for id, m := range maxSeq {
			if count[id] != m {
				gaps++
			}
		}
		// accepted-but-unacked messages may still be on their way: wait for the gaps too
		if (found == len(want) && gaps == 0) || time.Now().After(deadline) {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	r.Metrics["pg_rows"] = float64(rows)
	r.check("pg_persisted", found == len(want), fmt.Sprintf("%d of %d acked messages in Postgres", found, len(want)))
	r.check("pg_gap_free", gaps == 0, fmt.Sprintf("%d rooms with seq gaps", gaps))
	return nil
}
