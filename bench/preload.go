package bench

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// preloadRoomSize is how many messages each filler room of a preload holds.
const preloadRoomSize = 1000

// preloadMessages makes chat.messages hold at least n rows, so the read
// scenarios measure history and search against a large table rather than an
// empty one. The missing rows are COPYed straight into Postgres, in filler
// rooms of preloadRoomSize text messages that no bench user belongs to, with
// bodies drawn from the search vocabulary: every search term then matches a
// large share of the table, and the GIN index's posting lists are as long
// as they would be in a real deployment with that vocabulary, while the
// membership filter must throw those rows away. Going through the api
// instead would take ~10 minutes per million messages on this machine and
// measure the write path, which the chat scenario already does. The rows are
// left in place, so later runs reuse them.
func preloadMessages(ctx context.Context, url string, n int, r *Result) error {
	if n <= 0 {
		return nil
	}
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	var have int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM chat.messages`).Scan(&have); err != nil {
		return err
	}
	r.Metrics["preload_rows_before"] = float64(have)
	start := time.Now()
	const chunk = 10000
	cols := []string{"id", "room_id", "seq", "sender_id", "client_msg_id", "body", "sent_at", "kind"}
	var room, sender uuid.UUID
	sent := time.Now().Add(-30 * 24 * time.Hour)
	for left := n - have; left > 0; {
		rows := make([][]any, 0, min(chunk, left))
		for range min(chunk, left) {
			seq := int64(len(rows)%preloadRoomSize) + 1
			if seq == 1 {
				room, sender = uuid.New(), uuid.New()
			}
			body := searchWords[rand.IntN(len(searchWords))] + " " + searchWords[rand.IntN(len(searchWords))] + " filler " + strconv.FormatInt(seq, 10)
			sent = sent.Add(time.Millisecond)
			rows = append(rows, []any{uuid.Must(uuid.NewV7()), room, seq, sender, "p" + strconv.FormatInt(seq, 10), body, sent, "text"})
		}
		if _, err := conn.CopyFrom(ctx, pgx.Identifier{"chat", "messages"}, cols, pgx.CopyFromRows(rows)); err != nil {
			return fmt.Errorf("preload: %w", err)
		}
		left -= len(rows)
		fmt.Printf("[preload] %d rows to go\n", max(left, 0))
	}
	if have < n {
		if _, err := conn.Exec(ctx, `ANALYZE chat.messages`); err != nil {
			return err
		}
		r.Metrics["preload_seconds"] = time.Since(start).Seconds()
	}
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM chat.messages`).Scan(&have); err != nil {
		return err
	}
	r.Metrics["messages_stored"] = float64(have)
	return nil
}
