package bench

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// searchWords are the vocabulary of the search scenario's messages and
// queries: English words (stemmed) and Korean words with particles (found by
// their bigrams).
var searchWords = []string{"running", "meeting", "coffee", "deploy", "weekend", "tickets",
	"서울에서", "부산으로", "회의는", "점심을", "주말에", "커피를"}

// searchQueries are what the readers search for; each matches some messages.
var searchQueries = []string{"run", "meet", "coffee", "deployed", "weekend", "ticket", "서울", "부산", "회의", "점심", "주말", "커피"}

// runSearch fills a few rooms with messages built from searchWords, then has
// readers run GET /search (over all their rooms, or one room) and reports
// the read rate and latency. Kept small: it measures the query, not a big
// table (see BENCHMARKS.md for the large runs).
func runSearch(ctx context.Context, o Options, r *Result) error {
	o.Clients, o.RoomSize = max(o.RoomSize, 2)*4, max(o.RoomSize, 2)
	users, err := signupUsers(ctx, o, o.Clients, r, "setup_signup")
	if err != nil {
		return err
	}
	hc := newHTTPClient()
	type room struct {
		id   string
		user user
	}
	var rs []room
	for i := 0; i+o.RoomSize <= len(users); i += o.RoomSize {
		var rm struct {
			RoomID string `json:"room_id"`
		}
		if err := consentTo(ctx, hc, o.URLs[0], users[i], users[i+1:i+2]); err != nil {
			return err
		}
		if _, err := httpJSON(ctx, hc, "POST", o.URLs[0]+"/api/v1/rooms", users[i].Access, map[string]any{"name": "search", "member_ids": []string{users[i+1].ID}}, &rm); err != nil {
			return err
		}
		rs = append(rs, room{id: rm.RoomID, user: users[i]})
	}
	const perRoom = 500
	for i := range rs {
		var wg sync.WaitGroup
		sem := make(chan struct{}, 8)
		for n := 0; n < perRoom; n++ {
			wg.Add(1)
			sem <- struct{}{}
			go func(n int) {
				defer wg.Done()
				defer func() { <-sem }()
				body := searchWords[rand.IntN(len(searchWords))] + " " + searchWords[rand.IntN(len(searchWords))] + " message " + strconv.Itoa(n)
				_, _ = httpJSON(ctx, hc, "POST", o.URLs[n%len(o.URLs)]+"/api/v1/rooms/"+rs[i].id+"/messages", rs[i].user.Access,
					map[string]string{"client_msg_id": "s" + strconv.Itoa(n), "body": body}, nil)
			}(n)
		}
		wg.Wait()
	}
	time.Sleep(2 * time.Second) // let the batcher write the last messages to Postgres
	var reqs, fails, empty atomic.Int64
	var lat []time.Duration
	var mu sync.Mutex
	start := time.Now()
	endProgress := progress(func() string {
		return fmt.Sprintf("[search] %d reads (%.0f/s) failed %d", reqs.Load(), float64(reqs.Load())/time.Since(start).Seconds(), fails.Load())
	})
	deadline := start.Add(o.Duration)
	var wg sync.WaitGroup
	for i := 0; i < o.Readers; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			var local []time.Duration
			for time.Now().Before(deadline) {
				rm := rs[rand.IntN(len(rs))]
				v := url.Values{"q": {searchQueries[rand.IntN(len(searchQueries))]}, "limit": {"20"}}
				if rand.IntN(2) == 0 {
					v.Set("room_id", rm.id)
				}
				t0 := time.Now()
				var page struct {
					Results []struct {
						RoomID string `json:"room_id"`
					} `json:"results"`
				}
				_, err := httpJSON(ctx, hc, "GET", o.URLs[i%len(o.URLs)]+"/api/v1/search?"+v.Encode(), rm.user.Access, nil, &page)
				if err != nil {
					fails.Add(1)
					continue
				}
				if len(page.Results) == 0 {
					empty.Add(1)
				}
				local = append(local, time.Since(t0))
				reqs.Add(1)
			}
			mu.Lock()
			lat = append(lat, local...)
			mu.Unlock()
		}(i)
	}
	wg.Wait()
	endProgress()
	r.Metrics["search_reads_per_s"] = float64(reqs.Load()) / o.Duration.Seconds()
	r.Metrics["search_failed"] = float64(fails.Load())
	r.Metrics["search_empty"] = float64(empty.Load())
	r.Latency["search_page"] = Summarize(lat)
	r.check("search", fails.Load() == 0 && empty.Load() == 0,
		fmt.Sprintf("%d searches, %d failed, %d found nothing", reqs.Load(), fails.Load(), empty.Load()))
	return nil
}
