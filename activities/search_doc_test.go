package activities

import (
	"context"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
)

// Migration 0015 gave chat.search_doc a fast path for bodies without Hangul.
// The GIN index of chat.messages holds documents built by the definition
// before it, so the new definition must return the very same document for
// every body, or old rows and new rows would disagree and searches would
// miss. The bodies mix English, Hangul syllables and jamo, the code points
// just inside and just outside hangul_bigrams' ranges, stop words only,
// punctuation, emoji and empty strings.
func TestSearchDocFastPathSameDocument(t *testing.T) {
	a, _ := testActivities(t)
	ctx := context.Background()
	bodies := []string{
		"", " ", "the", "a an the of", "running runs ran", "hello 43 from 3",
		"1764385000123456789 " + strings.Repeat("x", 60),
		"서울에서 만나요", "서", "ㄱ", "ㆎ", "가", "힣", "카페 cafe 앞에서 running",
		"\uABFF\uD7A4\u3130\u318F", "\u1100\u1161", "😀 emoji only", "é café naïve",
		"tab\tand\nnewline", "o'clock - dash -- double", "한국어English섞임", "ㄱㄴㄷ abc",
	}
	pieces := []string{
		"hello", "running", "the", "meeting", "cafe", " ", " ", ".", ",", "?", "42", "-",
		"서울", "에서", "만나", "요", "ㄱ", "ㅎ", "ㆎ", "\uAC00", "\uD7A3", "\u3131", "\u318E",
		"\uABFF", "\uD7A4", "\u3130", "\u318F", "\u1100", "😀", "é", "\t", "'",
	}
	rng := rand.New(rand.NewPCG(13, 15))
	for range 3000 {
		var b strings.Builder
		for n := rng.IntN(12); n > 0; n-- {
			b.WriteString(pieces[rng.IntN(len(pieces))])
		}
		bodies = append(bodies, b.String())
	}
	rows, err := a.Pool.Query(ctx, `SELECT b, chat.search_doc(b)::text,
		(to_tsvector('english'::regconfig, b) || to_tsvector('simple'::regconfig, chat.hangul_bigrams(b)))::text,
		b ~ '[\uAC00-\uD7A3\u3131-\u318E]'
		FROM unnest($1::text[]) AS b`, bodies)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var hangul, plain int
	for rows.Next() {
		var body, got, want string
		var hasHangul bool
		if err := rows.Scan(&body, &got, &want, &hasHangul); err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("search_doc(%q) = %s, the index was built with %s", body, got, want)
		}
		if hasHangul {
			hangul++
		} else {
			plain++
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if hangul < 100 || plain < 100 {
		t.Fatalf("bodies with Hangul %d, without %d: both paths need trying", hangul, plain)
	}
	var isNull bool
	if err := a.Pool.QueryRow(ctx, `SELECT chat.search_doc(NULL) IS NULL`).Scan(&isNull); err != nil || !isNull {
		t.Fatalf("search_doc(NULL) IS NULL = %v (%v); want true, as the STRICT definition gave", isNull, err)
	}
	// The saving exists only if Postgres inlines the function into the index
	// expression; a STRICT definition with a CASE body is not inlined and
	// runs as a function call per row (slower than no fast path).
	prow, err := a.Pool.Query(ctx, `EXPLAIN (VERBOSE, COSTS OFF) SELECT chat.search_doc(b) FROM (VALUES ('x'), ('y')) AS v(b)`)
	if err != nil {
		t.Fatal(err)
	}
	lines, err := pgx.CollectRows(prow, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	plan := strings.Join(lines, "\n")
	if !strings.Contains(plan, "CASE WHEN") || strings.Contains(plan, "search_doc(") {
		t.Fatalf("chat.search_doc is not inlined with its fast path:\n%s", plan)
	}
}
