package tests

import (
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/chatflow/chatflow/internal/testenv"
)

type searchHit struct {
	message
	Kind    string  `json:"kind"`
	Snippet string  `json:"snippet"`
	Rank    float64 `json:"rank"`
}

type searchPage struct {
	Results    []searchHit `json:"results"`
	NextCursor *string     `json:"next_cursor"`
}

// search calls GET /search and returns the status and page.
func search(t *testing.T, n *testenv.Node, u testenv.User, params url.Values) (int, searchPage) {
	t.Helper()
	var p searchPage
	st := n.Call(t, "GET", "/api/v1/search?"+params.Encode(), u.Access, nil, &p)
	return st, p
}

// searchUntil polls until the search returns want results: messages reach
// Postgres (and so the index) a moment after they are acknowledged.
func searchUntil(t *testing.T, n *testenv.Node, u testenv.User, params url.Values, want int) searchPage {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		st, p := search(t, n, u, params)
		if st != 200 {
			t.Fatalf("search %v: status %d", params, st)
		}
		if len(p.Results) >= want || time.Now().After(deadline) {
			if len(p.Results) != want {
				t.Fatalf("search %v: %d results, want %d: %+v", params, len(p.Results), want, p.Results)
			}
			return p
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func q(kv ...string) url.Values {
	v := url.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		v.Set(kv[i], kv[i+1])
	}
	return v
}

func sendAll(t *testing.T, n *testenv.Node, u testenv.User, room string, bodies ...string) {
	t.Helper()
	for _, b := range bodies {
		if st, _ := restSend(t, n, u, room, "c"+testenv.Unique(), b); st != 201 {
			t.Fatalf("send %q: %d", b, st)
		}
	}
}

func TestSearchEnglishStemmingAndKorean(t *testing.T) {
	env := testenv.Open(t)
	env.Worker(t, nil)
	n := env.StartNode(t, testenv.NodeConfig{})
	a := n.SignUp(t, "sea")
	room := n.CreateRoom(t, a)
	sendAll(t, n, a, room,
		"I was running late <b>again</b>",
		"서울에서 만나요",
		"부산으로 갈까요",
		"nothing to see")

	// English stemming: "run" and "runs" find "running"
	for _, word := range []string{"run", "runs", "RUNNING"} {
		p := searchUntil(t, n, a, q("q", word, "room_id", room), 1)
		h := p.Results[0]
		if h.Body != "I was running late <b>again</b>" || h.RoomID != room || h.SenderID != a.ID || h.Seq == 0 || h.MessageID == "" || h.Kind != "" {
			t.Fatalf("%q: %+v", word, h)
		}
		// the snippet marks the match and escapes the body's HTML
		if !strings.Contains(h.Snippet, "<mark>running</mark>") || !strings.Contains(h.Snippet, "&lt;b&gt;again") {
			t.Fatalf("%q snippet: %q", word, h.Snippet)
		}
	}
	// Korean: a word followed by a particle is found by the bare word
	p := searchUntil(t, n, a, q("q", "서울", "room_id", room), 1)
	if p.Results[0].Body != "서울에서 만나요" || !strings.Contains(p.Results[0].Snippet, "<mark>서울</mark>에서") {
		t.Fatalf("서울: %+v", p.Results[0])
	}
	searchUntil(t, n, a, q("q", "부산", "room_id", room), 1)
	searchUntil(t, n, a, q("q", "만나요", "room_id", room), 1)
	// every term must match; bigrams are not a substring free-for-all
	searchUntil(t, n, a, q("q", "서울 부산", "room_id", room), 0)
	searchUntil(t, n, a, q("q", "울만", "room_id", room), 0)
	// system messages (the room's creation) are never results
	st, sys := search(t, n, a, q("q", "created", "room_id", room))
	for _, h := range sys.Results {
		if h.Kind != "" {
			t.Fatalf("search returned a %s message: %+v (status %d)", h.Kind, h, st)
		}
	}
}

func TestSearchRankingAndPaging(t *testing.T) {
	env := testenv.Open(t)
	env.Worker(t, nil)
	n := env.StartNode(t, testenv.NodeConfig{})
	a := n.SignUp(t, "ser")
	room := n.CreateRoom(t, a)
	sendAll(t, n, a, room,
		"banana once and then a long tail of other words here",
		"banana banana banana",
		"banana banana and more",
		"no fruit at all")
	all := searchUntil(t, n, a, q("q", "banana"), 3)
	// more occurrences rank higher
	want := []string{"banana banana banana", "banana banana and more", "banana once and then a long tail of other words here"}
	for i, h := range all.Results {
		if h.Body != want[i] {
			t.Fatalf("rank order: got %q at %d, want %q", h.Body, i, want[i])
		}
		if i > 0 && h.Rank > all.Results[i-1].Rank {
			t.Fatalf("ranks not descending: %+v", all.Results)
		}
	}
	if all.NextCursor != nil {
		t.Fatalf("a short page has a next cursor")
	}
	// one at a time: the same order, no repeats, then the end
	var got []string
	cursor := ""
	for i := 0; i < 5; i++ {
		v := q("q", "banana", "limit", "1")
		if cursor != "" {
			v.Set("cursor", cursor)
		}
		st, p := search(t, n, a, v)
		if st != 200 {
			t.Fatalf("page %d: %d", i, st)
		}
		for _, h := range p.Results {
			got = append(got, h.Body)
		}
		if p.NextCursor == nil {
			break
		}
		cursor = *p.NextCursor
	}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("paged: %q, want %q", got, want)
	}
	// bad input is 422, never 500
	for _, v := range []url.Values{q("q", ""), q("q", "   "), q("q", "banana", "limit", "51"), q("q", "banana", "limit", "0"),
		q("q", "banana", "cursor", "!!"), q("q", "banana", "cursor", "bm90IGEgY3Vyc29y"), q("q", "banana", "room_id", "nope"),
		q("q", strings.Repeat("x", 65))} {
		if st, _ := search(t, n, a, v); st != 422 {
			t.Fatalf("search %v: %d, want 422", v, st)
		}
	}
	// punctuation that means something to tsquery is just text here
	for _, s := range []string{"&", "a | b", "!!", "'", ":*", "(", "the"} {
		if st, _ := search(t, n, a, q("q", s)); st != 200 {
			t.Fatalf("search %q: %d", s, st)
		}
	}
}

func TestSearchNeverCrossesRooms(t *testing.T) {
	env := testenv.Open(t)
	env.Worker(t, nil)
	n := env.StartNode(t, testenv.NodeConfig{})
	a, b, c := n.SignUp(t, "sxa"), n.SignUp(t, "sxb"), n.SignUp(t, "sxc")
	shared := n.CreateRoom(t, a, b)
	other := n.CreateRoom(t, b, c) // a is not in it
	word := "zebra" + testenv.Unique()[:4]
	sendAll(t, n, b, shared, "the "+word+" in the shared room")
	sendAll(t, n, b, other, "the "+word+" in the other room", word+" "+word)

	searchUntil(t, n, b, q("q", word), 3) // everything is indexed
	p := searchUntil(t, n, a, q("q", word), 1)
	if p.Results[0].RoomID != shared {
		t.Fatalf("a found a message of room %s", p.Results[0].RoomID)
	}
	var e problem
	if st := n.Call(t, "GET", "/api/v1/search?"+q("q", word, "room_id", other).Encode(), a.Access, nil, &e); st != 403 || e.Code != "not_member" {
		t.Fatalf("search in another's room: %d %+v", st, e)
	}
	// after a leaves, the shared room's messages stop matching
	if st := n.Call(t, "DELETE", "/api/v1/rooms/"+shared+"/members/me", a.Access, nil, nil); st != 204 && st != 200 {
		t.Fatalf("leave: %d", st)
	}
	if _, p := search(t, n, a, q("q", word)); len(p.Results) != 0 {
		t.Fatalf("a still finds %+v after leaving", p.Results)
	}
	if st := n.Call(t, "GET", "/api/v1/search?"+q("q", word, "room_id", shared).Encode(), a.Access, nil, &e); st != 403 || e.Code != "not_member" {
		t.Fatalf("search in a left room: %d %+v", st, e)
	}
	searchUntil(t, n, b, q("q", word), 3) // b still sees both rooms
}
