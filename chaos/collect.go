package chaos

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/segmentio/kafka-go"
)

const messagesTopic = "chat.messages"

// pgRows reads every row of the rooms from chat.messages. hasKind tells
// whether the kind column (tombstones are kind 'gap') exists.
func pgRows(ctx context.Context, pool *pgxpool.Pool, rooms []string) (rows []PGRow, hasKind bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	err = pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM information_schema.columns
		WHERE table_schema = 'chat' AND table_name = 'messages' AND column_name = 'kind')`).Scan(&hasKind)
	if err != nil {
		return nil, false, err
	}
	kind := `''`
	if hasKind {
		kind = `coalesce(kind::text, '')`
	}
	res, err := pool.Query(ctx, `SELECT room_id::text, seq, id::text, sender_id::text, client_msg_id, `+kind+`
		FROM chat.messages WHERE room_id = ANY($1::uuid[])`, rooms)
	if err != nil {
		return nil, hasKind, err
	}
	defer res.Close()
	for res.Next() {
		var r PGRow
		if err := res.Scan(&r.Room, &r.Seq, &r.ID, &r.Sender, &r.ClientMsgID, &r.Kind); err != nil {
			return nil, hasKind, err
		}
		rows = append(rows, r)
	}
	return rows, hasKind, res.Err()
}

// waitPostgres polls Postgres until every acked message is there and no
// hole is left, and returns the last rows read. It gives up after limit, or
// when nothing changed for stall (a loss that will not heal), and grants
// holes alone holeGrace once the acked messages are all there (a
// reconciler may still be filling them).
func waitPostgres(ctx context.Context, pool *pgxpool.Pool, rooms []string, acks []AckRec, seen []SeenRec,
	limit, stall, holeGrace time.Duration, logf func(string, ...any)) (rows []PGRow, hasKind bool, err error) {
	start := time.Now()
	lastChange, lastCount := start, -1
	var ackedSince time.Time
	for {
		rows, hasKind, err = pgRows(ctx, pool, rooms)
		if err == nil {
			c := Verify(rooms, rows, acks, seen, nil)
			if len(rows) != lastCount {
				lastCount, lastChange = len(rows), time.Now()
			}
			acked := c.AckedMissing == 0 && c.SeenMissing == 0
			if acked && c.Holes == 0 {
				return rows, hasKind, nil
			}
			if acked && ackedSince.IsZero() {
				ackedSince = time.Now()
			}
			switch {
			case acked && time.Since(ackedSince) > holeGrace:
				logf("Postgres: %d holes left %s after every acked message arrived", c.Holes, holeGrace)
				return rows, hasKind, nil
			case time.Since(lastChange) > stall:
				logf("Postgres: no new row for %s (%d acked missing, %d holes); verifying as is", stall, c.AckedMissing, c.Holes)
				return rows, hasKind, nil
			}
		} else {
			logf("Postgres: %v", err)
		}
		if time.Since(start) > limit {
			logf("Postgres: not complete after %s; verifying as is", limit)
			return rows, hasKind, err
		}
		if err := sleepCtx(ctx, time.Second); err != nil {
			return rows, hasKind, err
		}
	}
}

// kafkaTail reads chat.messages from the start of every partition and
// keeps reading from where it stopped on the next poll.
type kafkaTail struct {
	addr  string
	rooms map[string]bool
	next  map[int]int64
	recs  []KafkaRec
	other int // records of other rooms
}

func newKafkaTail(addr string, rooms []string) *kafkaTail {
	k := &kafkaTail{addr: addr, rooms: map[string]bool{}, next: map[int]int64{}}
	for _, r := range rooms {
		k.rooms[r] = true
	}
	return k
}

// poll reads every partition up to its current end.
func (k *kafkaTail) poll(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	conn, err := kafka.DialContext(ctx, "tcp", k.addr)
	if err != nil {
		return err
	}
	parts, err := conn.ReadPartitions(messagesTopic)
	conn.Close()
	if err != nil {
		return err
	}
	for _, p := range parts {
		if err := k.pollPartition(ctx, p.ID); err != nil {
			return fmt.Errorf("partition %d: %w", p.ID, err)
		}
	}
	return nil
}

func (k *kafkaTail) pollPartition(ctx context.Context, part int) error {
	conn, err := kafka.DialLeader(ctx, "tcp", k.addr, messagesTopic, part)
	if err != nil {
		return err
	}
	defer conn.Close()
	deadline, _ := ctx.Deadline()
	_ = conn.SetDeadline(deadline)
	first, last, err := conn.ReadOffsets()
	if err != nil {
		return err
	}
	off := max(k.next[part], first)
	for off < last {
		if _, err := conn.Seek(off, kafka.SeekAbsolute|kafka.SeekDontCheck); err != nil {
			return err
		}
		b := conn.ReadBatchWith(kafka.ReadBatchConfig{MinBytes: 1, MaxBytes: 8 << 20, MaxWait: time.Second})
		start := off
		for {
			m, err := b.ReadMessage()
			if err != nil {
				break
			}
			off = m.Offset + 1
			var v struct {
				MessageID string `json:"message_id"`
				RoomID    string `json:"room_id"`
				Seq       int64  `json:"seq"`
				Kind      string `json:"kind"`
			}
			if json.Unmarshal(m.Value, &v) != nil || !k.rooms[v.RoomID] {
				k.other++
				continue
			}
			k.recs = append(k.recs, KafkaRec{Room: v.RoomID, Seq: v.Seq, MessageID: v.MessageID, Kind: v.Kind})
		}
		if err := b.Close(); err != nil && off == start {
			return err
		}
		if off == start {
			return fmt.Errorf("no progress at offset %d of %d", off, last)
		}
	}
	k.next[part] = off
	return nil
}

// waitKafka polls until every persisted non-gap row has a Kafka record,
// for up to limit, or until nothing new arrived for stall.
func waitKafka(ctx context.Context, k *kafkaTail, rooms []string, rows []PGRow, limit, stall time.Duration, logf func(string, ...any)) error {
	start := time.Now()
	lastChange, lastCount := start, -1
	var err error
	for {
		if err = k.poll(ctx); err == nil {
			c := Verify(rooms, rows, nil, nil, k.recs)
			if c.KafkaMissing == 0 {
				return nil
			}
			if len(k.recs) != lastCount {
				lastCount, lastChange = len(k.recs), time.Now()
			}
			if time.Since(lastChange) > stall {
				logf("Kafka: nothing new for %s, %d persisted messages without a record; verifying as is", stall, c.KafkaMissing)
				return nil
			}
		} else {
			logf("Kafka: %v", err)
		}
		if time.Since(start) > limit {
			logf("Kafka: incomplete after %s; verifying as is", limit)
			return err
		}
		if err := sleepCtx(ctx, 2*time.Second); err != nil {
			return err
		}
	}
}
