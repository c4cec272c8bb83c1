package chaos

import (
	"strings"
	"testing"
	"time"
)

const roomA, roomB = "aaaaaaaa-0000-0000-0000-000000000000", "bbbbbbbb-0000-0000-0000-000000000000"

// world builds a consistent room: n text rows, every one acked, seen by a
// member and published once to Kafka.
func world(room string, n int) ([]PGRow, []AckRec, []SeenRec, []KafkaRec) {
	var rows []PGRow
	var acks []AckRec
	var seen []SeenRec
	var kafka []KafkaRec
	for s := int64(1); s <= int64(n); s++ {
		id := room[:8] + "-id-" + string(rune('a'+s))
		cmid := room[:4] + "-c" + string(rune('a'+s))
		rows = append(rows, PGRow{Room: room, Seq: s, ID: id, Sender: "u1", ClientMsgID: cmid})
		acks = append(acks, AckRec{Sender: "u1", ClientMsgID: cmid, Room: room, Seq: s, MessageID: id})
		seen = append(seen, SeenRec{Room: room, Seq: s, MessageID: id, ClientMsgID: cmid})
		kafka = append(kafka, KafkaRec{Room: room, Seq: s, MessageID: id})
	}
	return rows, acks, seen, kafka
}

func TestVerifyClean(t *testing.T) {
	rows, acks, seen, kafka := world(roomA, 5)
	c := Verify([]string{roomA, roomB}, rows, acks, seen, kafka)
	if c.Failed() || c.Acked != 5 || c.Tombstones != 0 || c.KafkaDups != 0 {
		t.Fatalf("clean world: %+v", c)
	}
}

func TestVerifyAckedMissingAndHole(t *testing.T) {
	rows, acks, seen, kafka := world(roomA, 5)
	rows = append(rows[:2], rows[3:]...) // seq 3 lost
	c := Verify([]string{roomA}, rows, acks, seen, kafka)
	if c.AckedMissing != 1 || c.Holes != 1 || c.SeenMissing != 1 || c.WrongSeqID != 0 {
		t.Fatalf("lost seq 3: %+v", c)
	}
	if !c.Failed() || len(c.Examples) == 0 {
		t.Fatal("a loss must fail and be explained")
	}
}

func TestVerifyTrailingLossIsAHole(t *testing.T) {
	rows, acks, seen, kafka := world(roomA, 5)
	c := Verify([]string{roomA}, rows[:3], acks, seen, kafka)
	if c.AckedMissing != 2 || c.Holes != 2 {
		t.Fatalf("seqs 4,5 acked but not persisted: %+v", c)
	}
}

func TestVerifyTombstoneIsNoHole(t *testing.T) {
	rows, acks, seen, kafka := world(roomA, 5)
	rows[2] = PGRow{Room: roomA, Seq: 3, ID: "gap-3", Kind: "gap"}
	acks = append(acks[:2], acks[3:]...) // seq 3 was never acked (nor seen)
	seen = append(seen[:2], seen[3:]...)
	kafka = append(kafka[:2], kafka[3:]...) // and tombstones need no Kafka record
	c := Verify([]string{roomA}, rows, acks, seen, kafka)
	if c.Failed() || c.Tombstones != 1 || c.Holes != 0 {
		t.Fatalf("tombstone: %+v", c)
	}
}

func TestVerifySeqReissued(t *testing.T) {
	// Redis lost its counter: seq 4 was acked to message X, then handed to Y,
	// and Postgres kept Y. X is missing and seen X is not what history shows.
	rows, acks, seen, kafka := world(roomA, 5)
	rows[3] = PGRow{Room: roomA, Seq: 4, ID: "other", Sender: "u2", ClientMsgID: "y"}
	kafka[3].MessageID = "other"
	c := Verify([]string{roomA}, rows, acks, seen, kafka)
	if c.AckedMissing != 1 || c.SeenMissing != 1 || c.Holes != 0 || c.KafkaMissing != 0 {
		t.Fatalf("reissued seq: %+v", c)
	}
	if !strings.Contains(strings.Join(c.Examples, "\n"), "seq held by other") {
		t.Fatalf("examples should name the row holding the seq: %q", c.Examples)
	}
}

func TestVerifyWrongSeqAndConflictingAcks(t *testing.T) {
	rows, acks, seen, kafka := world(roomA, 5)
	acks[1].Seq = 9                                                                                                  // acked at 9, persisted at 2
	acks = append(acks, AckRec{Sender: "u1", ClientMsgID: acks[4].ClientMsgID, Room: roomA, Seq: 7, MessageID: "x"}) // acked twice, differently
	acks = append(acks, acks[0])                                                                                     // the same ack twice is fine
	c := Verify([]string{roomA}, rows, acks, seen, kafka)
	if c.WrongSeqID != 2 || c.AckedMissing != 0 {
		t.Fatalf("wrong seq: %+v", c)
	}
}

func TestVerifyDuplicateRow(t *testing.T) {
	rows, acks, seen, kafka := world(roomA, 3)
	// the same message id again at seq 4 (a resend that got a new seq)
	rows = append(rows, PGRow{Room: roomA, Seq: 4, ID: rows[0].ID, Sender: "u1", ClientMsgID: "other-cmid"})
	c := Verify([]string{roomA}, rows, acks, seen, kafka)
	if c.WrongSeqID != 1 {
		t.Fatalf("message twice in Postgres: %+v", c)
	}
}

func TestVerifyKafka(t *testing.T) {
	rows, acks, seen, kafka := world(roomA, 4)
	kafka = append(kafka[1:], kafka[2], kafka[2], KafkaRec{Room: roomB, MessageID: "elsewhere"})
	c := Verify([]string{roomA}, rows, acks, seen, kafka)
	if c.KafkaMissing != 1 || c.KafkaDups != 2 {
		t.Fatalf("kafka: %+v", c)
	}
}

func TestVerifySeenOnlyOnce(t *testing.T) {
	rows, acks, seen, kafka := world(roomA, 3)
	// five members saw an unacked message that never reached Postgres
	for i := 0; i < 5; i++ {
		seen = append(seen, SeenRec{Room: roomA, Seq: 4, MessageID: "ghost"})
	}
	c := Verify([]string{roomA}, rows, acks, seen, kafka)
	if c.SeenMissing != 1 || c.Holes != 1 || c.AckedMissing != 0 {
		t.Fatalf("seen but lost: %+v", c)
	}
}

func TestMaxGap(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }
	acks := []time.Time{at(3), at(1), at(2), at(12), at(13)}
	if g := MaxGap(t0, at(14), acks); g != 9*time.Second {
		t.Fatalf("gap %s, want 9s", g)
	}
	if g := MaxGap(t0, at(30), acks); g != 17*time.Second { // no ack after 13 until the senders stopped
		t.Fatalf("gap %s, want 17s", g)
	}
	if g := MaxGap(t0, at(5), nil); g != 5*time.Second {
		t.Fatalf("no acks: gap %s, want 5s", g)
	}
}

func TestCutSize(t *testing.T) {
	t0 := time.Unix(1000, 0)
	ms := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Millisecond) }
	samples := []aofSample{
		{ms(0), "appendonly.aof.1.incr.aof", 100},
		{ms(500), "appendonly.aof.1.incr.aof", 200},
		{ms(1000), "appendonly.aof.1.incr.aof", 300},
		{ms(1500), "appendonly.aof.2.incr.aof", 10},
		{ms(2000), "appendonly.aof.2.incr.aof", 50},
	}
	if got := CutSize(samples, "appendonly.aof.1.incr.aof", ms(1600), time.Second); got != 200 {
		t.Fatalf("cut %d, want 200", got)
	}
	if got := CutSize(samples, "appendonly.aof.2.incr.aof", ms(2100), time.Second); got != 0 {
		t.Fatalf("file started within the window: cut %d, want 0", got)
	}
	if got := CutSize(samples, "appendonly.aof.2.incr.aof", ms(3100), time.Second); got != 50 {
		t.Fatalf("cut %d, want 50", got)
	}
}

func TestPoisonSummary(t *testing.T) {
	failures, note := summarizePoison([]poisonOutcome{
		{Case: "nul-body", Via: "ws", Result: "refused", Code: "validation_failed"},
		{Case: "nul-body", Via: "rest", Result: "refused", Code: "validation_failed"},
		{Case: "lone-surrogate", Via: "ws", Result: "accepted"},
		{Case: "nul-cmid", Via: "rest", Result: "5xx", Code: "500 internal"},
	})
	if len(failures) != 2 || !strings.Contains(note, "2 refused (validation_failed 2)") || !strings.Contains(note, "lone-surrogate/ws") {
		t.Fatalf("failures %q note %q", failures, note)
	}
	if f, _ := summarizePoison([]poisonOutcome{{Result: "refused", Code: "bad_frame"}}); len(f) != 0 {
		t.Fatalf("all refused must pass: %q", f)
	}
}

func TestRawJSONString(t *testing.T) {
	if got := rawJSONString(`p-1\u0000x`); got != "p-1\x00x" {
		t.Fatalf("%q", got)
	}
}

func TestTableAndSelect(t *testing.T) {
	rows := []Row{
		{Scenario: "api-kill9", Counts: Counts{Acked: 10}, MaxAckGap: 2500 * time.Millisecond},
		{Scenario: "poison", Counts: Counts{Acked: 9, AckedMissing: 1}, Errors: map[string]int{"unavailable": 3, "internal": 5}, Failures: []string{"1 acked missing"}},
	}
	tab := Table(rows)
	lines := strings.Split(strings.TrimSpace(tab), "\n")
	if len(lines) != 4 || !strings.Contains(lines[2], "| PASS") || !strings.Contains(lines[3], "FAIL: 1 acked missing") ||
		!strings.Contains(lines[3], "internal 5, unavailable 3") || !strings.Contains(lines[2], "2.5 s") {
		t.Fatalf("table:\n%s", tab)
	}
	for _, l := range lines[1:] {
		if len(l) != len(lines[0]) {
			t.Fatalf("columns do not line up:\n%s", tab)
		}
	}
	s, err := selectScenarios(true, []string{"worker-kill9", "postgres-stop"})
	if err != nil || len(s) != 2 || s[0].Name != "worker-kill9" {
		t.Fatalf("select: %v %v", s, err)
	}
	if _, err := selectScenarios(false, []string{"nope"}); err == nil {
		t.Fatal("unknown scenario accepted")
	}
	if n := len(Scenarios(true)); n != 3 {
		t.Fatalf("short set has %d scenarios", n)
	}
}
