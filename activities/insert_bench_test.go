package activities_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/chatflow/chatflow/internal/testenv"
)

// BenchmarkInsertBatch compares two ways of writing one persistence batch
// into a table shaped and indexed like chat.messages (its search indexes
// included), on the real local Postgres: the unnest statement the worker
// uses (InsertMessages) against COPY into a staging table followed by one
// INSERT … SELECT with the same conflict rule. Issue #13 names both; the
// result is in BENCHMARKS.md (round 9). "unnest-nosearch" is the unnest
// statement into the same table without its two search indexes: what
// indexing for search elsewhere (off the insert) could save at most.
func BenchmarkInsertBatch(b *testing.B) {
	for _, n := range []int{500, 2500} {
		for _, way := range []string{"unnest", "copy-staging", "unnest-nosearch"} {
			b.Run(fmt.Sprintf("%s/rows=%d", way, n), func(b *testing.B) { benchInsert(b, way, n) })
		}
	}
}

func benchInsert(b *testing.B, way string, n int) {
	env := testenv.Open(b)
	ctx := context.Background()
	conn, err := env.Pool.Acquire(ctx)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Release()
	// Temporary tables: private to this connection and gone with it, so the
	// benchmark leaves nothing in the real tables.
	for _, q := range []string{
		`DROP TABLE IF EXISTS pg_temp.bm_messages, pg_temp.bm_stage`,
		`CREATE TEMP TABLE bm_messages (LIKE chat.messages INCLUDING ALL)`,
		`CREATE TEMP TABLE bm_stage (LIKE chat.messages INCLUDING DEFAULTS) ON COMMIT DELETE ROWS`,
	} {
		if _, err := conn.Exec(ctx, q); err != nil {
			b.Fatal(err)
		}
	}
	if way == "unnest-nosearch" {
		var names []string
		rows, err := conn.Query(ctx, `SELECT indexname FROM pg_indexes WHERE tablename = 'bm_messages' AND indexdef LIKE '%search_doc%'`)
		if err == nil {
			names, err = pgx.CollectRows(rows, pgx.RowTo[string])
		}
		if err != nil || len(names) != 1 {
			b.Fatalf("search indexes of the copy: %v %v", names, err)
		}
		for _, n := range names {
			if _, err := conn.Exec(ctx, `DROP INDEX pg_temp.`+pgx.Identifier{n}.Sanitize()); err != nil {
				b.Fatal(err)
			}
		}
	}
	const unnestSQL = `INSERT INTO bm_messages (id, room_id, seq, sender_id, client_msg_id, body, sent_at, kind, reply_to)
SELECT unnest($1::uuid[]), unnest($2::uuid[]), unnest($3::bigint[]), unnest($4::uuid[]), unnest($5::text[]),
       unnest($6::text[]), unnest($7::timestamptz[]), unnest($8::text[]), NULLIF(unnest($9::bigint[]), 0)
ON CONFLICT DO NOTHING`
	cols := []string{"id", "room_id", "seq", "sender_id", "client_msg_id", "body", "sent_at", "kind", "reply_to"}

	// 100 rooms of a few senders, bodies like the load generator's and
	// English sentences alternately.
	rooms := make([]uuid.UUID, 100)
	for i := range rooms {
		rooms[i] = uuid.New()
	}
	senders := make([]uuid.UUID, 500)
	for i := range senders {
		senders[i] = uuid.New()
	}
	seq := make(map[uuid.UUID]int64, len(rooms))
	now := time.Now()

	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		ids, roomIDs, seqs, senderIDs := make([]uuid.UUID, n), make([]uuid.UUID, n), make([]int64, n), make([]uuid.UUID, n)
		cmids, bodies, ats, kinds, replies := make([]string, n), make([]string, n), make([]time.Time, n), make([]string, n), make([]int64, n)
		for i := range n {
			r := rooms[i%len(rooms)]
			seq[r]++
			ids[i], roomIDs[i], seqs[i], senderIDs[i] = uuid.New(), r, seq[r], senders[i%len(senders)]
			cmids[i] = uuid.NewString()
			if i%2 == 0 {
				bodies[i] = fmt.Sprintf("t=%d c=%d n=%d", now.UnixNano()+int64(i), i%500, seq[r])
			} else {
				bodies[i] = fmt.Sprintf("meeting notes for room %d: the release moves to friday, reply %d", i%100, seq[r])
			}
			ats[i], kinds[i] = now, "text"
		}
		b.StartTimer()
		switch way {
		case "unnest", "unnest-nosearch":
			tag, err := conn.Exec(ctx, unnestSQL, ids, roomIDs, seqs, senderIDs, cmids, bodies, ats, kinds, replies)
			if err != nil {
				b.Fatal(err)
			}
			if tag.RowsAffected() != int64(n) {
				b.Fatalf("inserted %d of %d", tag.RowsAffected(), n)
			}
		case "copy-staging":
			err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
				src := pgx.CopyFromSlice(n, func(i int) ([]any, error) {
					var reply any
					if replies[i] != 0 {
						reply = replies[i]
					}
					return []any{ids[i], roomIDs[i], seqs[i], senderIDs[i], cmids[i], bodies[i], ats[i], kinds[i], reply}, nil
				})
				if _, err := tx.CopyFrom(ctx, pgx.Identifier{"bm_stage"}, cols, src); err != nil {
					return err
				}
				tag, err := tx.Exec(ctx, `INSERT INTO bm_messages SELECT * FROM bm_stage ON CONFLICT DO NOTHING`)
				if err != nil {
					return err
				}
				if tag.RowsAffected() != int64(n) {
					return fmt.Errorf("inserted %d of %d", tag.RowsAffected(), n)
				}
				return nil
			})
			if err != nil {
				b.Fatal(err)
			}
		}
	}
}
