package bench

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"
)

// readRoom is a room of a read scenario and a member who reads it.
type readRoom struct {
	id   string
	user user
}

// setupReadRooms signs up users and pairs them into rooms of two (the
// first of each o.RoomSize users owns one), for the read scenarios.
func setupReadRooms(ctx context.Context, o Options, r *Result, name string) ([]readRoom, error) {
	o.Clients, o.RoomSize = max(o.RoomSize, 2)*4, max(o.RoomSize, 2)
	users, err := signupUsers(ctx, o, o.Clients, r, "setup_signup")
	if err != nil {
		return nil, err
	}
	hc := newHTTPClient()
	var rs []readRoom
	for i := 0; i+o.RoomSize <= len(users); i += o.RoomSize {
		var rm struct {
			RoomID string `json:"room_id"`
		}
		if err := consentTo(ctx, hc, o.URLs[0], users[i], users[i+1:i+2]); err != nil {
			return nil, err
		}
		if _, err := httpJSON(ctx, hc, "POST", o.URLs[0]+"/api/v1/rooms", users[i].Access, map[string]any{"name": name, "member_ids": []string{users[i+1].ID}}, &rm); err != nil {
			return nil, err
		}
		rs = append(rs, readRoom{id: rm.RoomID, user: users[i]})
	}
	return rs, nil
}

// fillRooms posts n messages into every room over REST, 8 in flight;
// body gives the n-th message's text, prefix its client_msg_id's.
func fillRooms(ctx context.Context, o Options, rs []readRoom, n int, prefix string, body func(int) string) {
	hc := newHTTPClient()
	for _, rm := range rs {
		var g errgroup.Group
		g.SetLimit(8)
		for k := range n {
			g.Go(func() error {
				_, _ = httpJSON(ctx, hc, "POST", o.URLs[k%len(o.URLs)]+"/api/v1/rooms/"+rm.id+"/messages", rm.user.Access,
					map[string]string{"client_msg_id": prefix + strconv.Itoa(k), "body": body(k)}, nil)
				return nil
			})
		}
		_ = g.Wait()
	}
}

// readLoop runs o.Readers readers for o.Duration; read does one request
// with its own client and node and says whether it failed. It answers the
// successful reads' latencies and the number of failures.
func readLoop(o Options, name string, read func(reader int) (failed bool)) (lat []time.Duration, fails int64) {
	var reqs, failed atomic.Int64
	var mu sync.Mutex
	start := time.Now()
	endProgress := progress(func() string {
		return fmt.Sprintf("[%s] %d reads (%.0f/s) failed %d", name, reqs.Load(), float64(reqs.Load())/time.Since(start).Seconds(), failed.Load())
	})
	defer endProgress()
	deadline := start.Add(o.Duration)
	var wg sync.WaitGroup
	for i := 0; i < o.Readers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var local []time.Duration
			for time.Now().Before(deadline) {
				t0 := time.Now()
				if read(i) {
					failed.Add(1)
					continue
				}
				local = append(local, time.Since(t0))
				reqs.Add(1)
			}
			mu.Lock()
			lat = append(lat, local...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	return lat, failed.Load()
}
