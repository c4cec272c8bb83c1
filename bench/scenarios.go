package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// reconnectStorm drops every client, sends messages they miss, reconnects
// them all at once to another node and checks sync replays exactly the gap.
func reconnectStorm(ctx context.Context, o Options, r *Result, clients []*wsClient, rooms map[string][]*wsClient) error {
	for _, c := range clients {
		c.conn.Close()
	}
	time.Sleep(300 * time.Millisecond)
	hc := newHTTPClient()
	const missed = 20
	target := map[string]int64{}
	var tmu sync.Mutex
	var swg sync.WaitGroup
	var sendErr atomic.Value
	for room, cs := range rooms { // rooms in parallel, each room's messages in order
		swg.Add(1)
		go func(room string, cs []*wsClient) {
			defer swg.Done()
			for i := 0; i < missed; i++ {
				var m struct {
					Seq int64 `json:"seq"`
				}
				if _, err := httpJSON(ctx, hc, "POST", o.URLs[0]+"/api/v1/rooms/"+room+"/messages", cs[0].u.Access,
					map[string]string{"client_msg_id": "gap-" + strconv.Itoa(i), "body": strconv.FormatInt(time.Now().UnixNano(), 10) + " missed"}, &m); err != nil {
					sendErr.CompareAndSwap(nil, err)
					return
				}
				tmu.Lock()
				target[room] = m.Seq
				tmu.Unlock()
			}
		}(room, cs)
	}
	swg.Wait()
	if e := sendErr.Load(); e != nil {
		return fmt.Errorf("sending the missed messages: %v", e)
	}
	last := map[*wsClient]int64{}
	for _, c := range clients {
		c.mu.Lock()
		last[c] = c.lastSeq
		c.seen, c.order = map[int64]int{}, nil
		c.mu.Unlock()
	}
	var deliveries atomic.Int64
	var recov []time.Duration
	var mu sync.Mutex
	var wg sync.WaitGroup
	// wait records when c has every missed seq.
	wait := func(c *wsClient, start time.Time) {
		defer wg.Done()
		deadline := time.Now().Add(30 * time.Second)
		for time.Now().Before(deadline) {
			c.mu.Lock()
			done := c.lastSeq >= target[c.room]
			c.mu.Unlock()
			if done {
				mu.Lock()
				recov = append(recov, time.Since(start))
				mu.Unlock()
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	// Every client comes back on the other node and syncs as soon as its own
	// socket is up, as a real client does: a client's time runs from the
	// start of the wave, so it includes waiting for its turn to dial.
	start := time.Now()
	err := dialAll(clients, func(i int, c *wsClient) error {
		if err := c.dial(o.URLs[(i+1)%len(o.URLs)]); err != nil {
			return err
		}
		go c.read(&deliveries)
		if err := c.write(map[string]any{"type": "sync", "rooms": map[string]int64{c.room: last[c]}}); err != nil {
			return err
		}
		wg.Add(1)
		go wait(c, start)
		return nil
	})
	if err != nil {
		wg.Wait()
		return err
	}
	wg.Wait()
	r.Metrics["reconnect_clients"] = float64(len(clients))
	r.Metrics["reconnect_recovered"] = float64(len(recov))
	r.Latency["reconnect_to_synced"] = Summarize(recov)
	var wrong int
	for _, c := range clients {
		c.mu.Lock()
		exp := last[c] + 1
		for _, s := range c.order {
			if s != exp {
				wrong++
				break
			}
			exp++
		}
		if exp != target[c.room]+1 {
			wrong++
		}
		c.mu.Unlock()
		c.conn.Close()
	}
	r.check("sync_exact", wrong == 0 && len(recov) == len(clients), fmt.Sprintf("%d of %d clients got exactly the missed seqs in order", len(clients)-wrong, len(clients)))
	return nil
}

// runHistory has readers page through room history with random cursors.
func runHistory(ctx context.Context, o Options, r *Result) error {
	rs, err := setupReadRooms(ctx, o, r, "hist")
	if err != nil {
		return err
	}
	const perRoom = 1000
	fillRooms(ctx, o, rs, perRoom, "h", func(n int) string { return "history message " + strconv.Itoa(n) })
	if err := preloadMessages(ctx, o.DatabaseURL, o.Preload, r); err != nil {
		return err
	}
	hc := newHTTPClient()
	lat, fails := readLoop(o, "history", func(i int) bool {
		rm := rs[rand.IntN(len(rs))]
		before := rand.Int64N(perRoom) + 2
		var page struct {
			Messages []json.RawMessage `json:"messages"`
		}
		_, err := httpJSON(ctx, hc, "GET", fmt.Sprintf("%s/api/v1/rooms/%s/messages?before_seq=%d&limit=50", o.URLs[i%len(o.URLs)], rm.id, before), rm.user.Access, nil, &page)
		return err != nil || len(page.Messages) == 0
	})
	r.Metrics["history_reads_per_s"] = float64(len(lat)) / o.Duration.Seconds()
	r.Metrics["history_failed"] = float64(fails)
	r.Latency["history_page"] = Summarize(lat)
	r.check("history", fails == 0, fmt.Sprintf("%d pages read, %d failed", len(lat), fails))
	return nil
}

// copyBaseline COPYs n message-shaped rows into a table shaped and indexed
// like chat.messages and returns the rate.
func copyBaseline(ctx context.Context, url string, n int) (int64, float64, error) {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return 0, 0, err
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `DROP TABLE IF EXISTS public.bench_copy; CREATE TABLE public.bench_copy (LIKE chat.messages INCLUDING ALL)`); err != nil {
		return 0, 0, err
	}
	defer conn.Exec(context.WithoutCancel(ctx), `DROP TABLE IF EXISTS public.bench_copy`) //nolint:errcheck
	room, sender := uuid.New(), uuid.New()
	body := strings.Repeat("x", 80)
	now := time.Now()
	start := time.Now()
	const chunk = 5000
	var total int64
	for off := 0; off < n; off += chunk {
		rows := make([][]any, 0, chunk)
		for i := off; i < min(off+chunk, n); i++ {
			rows = append(rows, []any{uuid.Must(uuid.NewV7()), room, int64(i + 1), sender, "c" + strconv.Itoa(i), body, now})
		}
		c, err := conn.CopyFrom(ctx, pgx.Identifier{"public", "bench_copy"},
			[]string{"id", "room_id", "seq", "sender_id", "client_msg_id", "body", "sent_at"}, pgx.CopyFromRows(rows))
		if err != nil {
			return 0, 0, err
		}
		total += c
	}
	return total, float64(total) / time.Since(start).Seconds(), nil
}
