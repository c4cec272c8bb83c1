package bench

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/url"
	"strconv"
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
	rs, err := setupReadRooms(ctx, o, r, "search")
	if err != nil {
		return err
	}
	fillRooms(ctx, o, rs, 500, "s", func(n int) string {
		return searchWords[rand.IntN(len(searchWords))] + " " + searchWords[rand.IntN(len(searchWords))] + " message " + strconv.Itoa(n)
	})
	if err := preloadMessages(ctx, o.DatabaseURL, o.Preload, r); err != nil {
		return err
	}
	time.Sleep(2 * time.Second) // let the batcher write the last messages to Postgres
	hc := newHTTPClient()
	var empty atomic.Int64
	lat, fails := readLoop(o, "search", func(i int) bool {
		rm := rs[rand.IntN(len(rs))]
		v := url.Values{"q": {searchQueries[rand.IntN(len(searchQueries))]}, "limit": {"20"}}
		if rand.IntN(2) == 0 {
			v.Set("room_id", rm.id)
		}
		var page struct {
			Results []struct {
				RoomID string `json:"room_id"`
			} `json:"results"`
		}
		if _, err := httpJSON(ctx, hc, "GET", o.URLs[i%len(o.URLs)]+"/api/v1/search?"+v.Encode(), rm.user.Access, nil, &page); err != nil {
			return true
		}
		if len(page.Results) == 0 {
			empty.Add(1)
		}
		return false
	})
	r.Metrics["search_reads_per_s"] = float64(len(lat)) / o.Duration.Seconds()
	r.Metrics["search_failed"] = float64(fails)
	r.Metrics["search_empty"] = float64(empty.Load())
	r.Latency["search_page"] = Summarize(lat)
	r.check("search", fails == 0 && empty.Load() == 0,
		fmt.Sprintf("%d searches, %d failed, %d found nothing", len(lat), fails, empty.Load()))
	return nil
}
