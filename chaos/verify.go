package chaos

import (
	"fmt"
	"sort"
	"strings"
	"time"
)

// The records the verification works on. They are plain values so that the
// checks can be tested on synthetic data (verify_test.go).

// PGRow is one row of chat.messages of a test room.
type PGRow struct {
	Room        string
	Seq         int64
	ID          string
	Sender      string
	ClientMsgID string
	Kind        string // "" when the column does not exist; "gap" is a tombstone
}

// AckRec is one ack a client received for its own send.
type AckRec struct {
	Sender      string
	ClientMsgID string
	Room        string
	Seq         int64
	MessageID   string
}

// SeenRec is one message frame a client received, live or in a sync replay.
type SeenRec struct {
	Room        string
	Seq         int64
	MessageID   string
	ClientMsgID string
}

// KafkaRec is one record of the chat.messages topic.
type KafkaRec struct {
	Room      string
	Seq       int64
	MessageID string
	Kind      string
}

// Counts is what the verification found; every field but Acked,
// Tombstones and KafkaDups is a failure when non-zero.
type Counts struct {
	Acked        int // distinct acked messages (sender, client_msg_id)
	AckedMissing int // acked, but no row of that message in Postgres
	WrongSeqID   int // in Postgres, but not at its acked seq / with its acked id, more than once, or acked twice differently
	Holes        int // seqs 1..max of a room with no row, tombstones excepted
	Tombstones   int // rows of kind 'gap'
	SeenMissing  int // (room, seq, id) seen by a member with no such row in Postgres
	KafkaMissing int // persisted non-gap rows with no Kafka record
	KafkaDups    int // Kafka records beyond the first of a message
	// Examples of failures, for the notes under the table.
	Examples []string
}

type seqKey struct {
	room string
	seq  int64
}

type msgKey struct {
	room, sender, cmid string
}

const maxExamples = 3

func (c *Counts) example(format string, args ...any) {
	if len(c.Examples) < maxExamples {
		c.Examples = append(c.Examples, fmt.Sprintf(format, args...))
	}
}

// Verify checks the clients' records against Postgres and Kafka. rooms are
// the test rooms; a room with no row and no record has max seq 0.
func Verify(rooms []string, rows []PGRow, acks []AckRec, seen []SeenRec, kafka []KafkaRec) Counts {
	var c Counts
	bySeq := make(map[seqKey]PGRow, len(rows))
	byMsg := map[msgKey][]PGRow{}
	byID := map[string][]PGRow{}
	maxSeq := map[string]int64{}
	for _, r := range rows {
		bySeq[seqKey{r.Room, r.Seq}] = r
		maxSeq[r.Room] = max(maxSeq[r.Room], r.Seq)
		if r.Kind == "gap" {
			c.Tombstones++
			continue
		}
		byMsg[msgKey{r.Room, r.Sender, r.ClientMsgID}] = append(byMsg[msgKey{r.Room, r.Sender, r.ClientMsgID}], r)
		byID[r.ID] = append(byID[r.ID], r)
	}

	// (a) every acked message exactly once, at its acked seq with its acked id
	type ackKey struct{ sender, cmid string }
	first := map[ackKey]AckRec{}
	conflict := map[ackKey]bool{}
	var order []ackKey
	for _, a := range acks {
		k := ackKey{a.Sender, a.ClientMsgID}
		if p, ok := first[k]; ok {
			if p.Seq != a.Seq || p.MessageID != a.MessageID || p.Room != a.Room {
				conflict[k] = true
			}
			continue
		}
		first[k] = a
		order = append(order, k)
		maxSeq[a.Room] = max(maxSeq[a.Room], a.Seq)
	}
	c.Acked = len(order)
	for _, k := range order {
		a := first[k]
		found := map[string]PGRow{} // rows carrying this message, by (room, seq)
		for _, r := range byMsg[msgKey{a.Room, a.Sender, a.ClientMsgID}] {
			found[fmt.Sprint(r.Room, r.Seq)] = r
		}
		for _, r := range byID[a.MessageID] {
			found[fmt.Sprint(r.Room, r.Seq)] = r
		}
		switch {
		case len(found) == 0:
			c.AckedMissing++
			other := "no row at that seq"
			if r, ok := bySeq[seqKey{a.Room, a.Seq}]; ok {
				other = fmt.Sprintf("seq held by %s (%s)", short(r.ID), kindOr(r.Kind))
			}
			c.example("acked missing: room %s seq %d id %s cmid %q: %s", short(a.Room), a.Seq, short(a.MessageID), a.ClientMsgID, other)
		case len(found) > 1:
			c.WrongSeqID++
			c.example("acked %s present %d times", short(a.MessageID), len(found))
		case conflict[k]:
			c.WrongSeqID++
			c.example("cmid %q acked twice with different seq/id", a.ClientMsgID)
		default:
			for _, r := range found {
				if r.Seq != a.Seq || r.ID != a.MessageID {
					c.WrongSeqID++
					c.example("acked seq %d id %s, Postgres has seq %d id %s", a.Seq, short(a.MessageID), r.Seq, short(r.ID))
				}
			}
		}
	}

	// (c) every message a member saw is in Postgres with that seq and id
	type seenKey struct {
		room string
		seq  int64
		id   string
	}
	done := map[seenKey]bool{}
	for _, s := range seen {
		k := seenKey{s.Room, s.Seq, s.MessageID}
		if done[k] {
			continue
		}
		done[k] = true
		maxSeq[s.Room] = max(maxSeq[s.Room], s.Seq)
		r, ok := bySeq[seqKey{s.Room, s.Seq}]
		if !ok || r.ID != s.MessageID {
			c.SeenMissing++
			what := "no row"
			if ok {
				what = "row has id " + short(r.ID)
			}
			c.example("seen room %s seq %d id %s: %s", short(s.Room), s.Seq, short(s.MessageID), what)
		}
	}

	// (b) no hole in 1..max that is not a tombstone
	sort.Strings(rooms)
	for _, room := range rooms {
		var holes int
		var firstHole int64
		for s := int64(1); s <= maxSeq[room]; s++ {
			if _, ok := bySeq[seqKey{room, s}]; !ok {
				if holes == 0 {
					firstHole = s
				}
				holes++
			}
		}
		if holes > 0 {
			c.Holes += holes
			c.example("room %s: %d holes in 1..%d, first at %d", short(room), holes, maxSeq[room], firstHole)
		}
	}

	// (d) Kafka holds every persisted non-gap row; duplicates counted
	inRoom := map[string]bool{}
	for _, r := range rooms {
		inRoom[r] = true
	}
	count := map[string]int{}
	for _, k := range kafka {
		if inRoom[k.Room] && k.Kind != "gap" {
			count[k.MessageID]++
		}
	}
	for _, r := range rows {
		if r.Kind == "gap" {
			continue
		}
		switch n := count[r.ID]; {
		case n == 0:
			c.KafkaMissing++
		case n > 1:
			c.KafkaDups += n - 1
		}
	}
	if c.KafkaMissing > 0 {
		c.example("%d persisted messages have no Kafka record", c.KafkaMissing)
	}
	return c
}

// Failed reports whether the counts break the promise.
func (c Counts) Failed() bool {
	return c.AckedMissing+c.WrongSeqID+c.Holes+c.SeenMissing+c.KafkaMissing > 0
}

// short abbreviates an id to its last 8 characters: message ids are
// UUIDv7, whose first characters are a timestamp shared by neighbours.
func short(id string) string {
	if len(id) > 8 {
		return "…" + id[len(id)-8:]
	}
	return id
}

func kindOr(k string) string {
	if k == "" {
		return "text"
	}
	return k
}

// MaxGap is the longest stretch in [from, to] with no ack: the gaps between
// consecutive ack times, from and to included as bounds. Acks after to
// extend the window (the drain after the senders stop).
func MaxGap(from, to time.Time, acks []time.Time) time.Duration {
	ts := make([]time.Time, 0, len(acks)+2)
	ts = append(ts, from)
	end := to
	for _, t := range acks {
		if t.Before(from) {
			continue
		}
		ts = append(ts, t)
		if t.After(end) {
			end = t
		}
	}
	ts = append(ts, end)
	sort.Slice(ts, func(i, j int) bool { return ts[i].Before(ts[j]) })
	var gap time.Duration
	for i := 1; i < len(ts); i++ {
		gap = max(gap, ts[i].Sub(ts[i-1]))
	}
	return gap
}

// FormatCodes renders error counts by code, most frequent first.
func FormatCodes(m map[string]int) string {
	if len(m) == 0 {
		return "-"
	}
	codes := make([]string, 0, len(m))
	for k := range m {
		codes = append(codes, k)
	}
	sort.Slice(codes, func(i, j int) bool {
		if m[codes[i]] != m[codes[j]] {
			return m[codes[i]] > m[codes[j]]
		}
		return codes[i] < codes[j]
	})
	parts := make([]string, len(codes))
	for i, k := range codes {
		parts[i] = fmt.Sprintf("%s %d", k, m[k])
	}
	return strings.Join(parts, ", ")
}
