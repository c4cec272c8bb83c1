package codec

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/sdk/converter"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/chatflow/chatflow"
)

type batch struct {
	Node string   `json:"node"`
	Msgs []string `json:"msgs"`
}

// Large payloads are stored compressed and come back equal; small ones stay
// plain JSON (readable in the Web UI); payloads written before the codec, or
// by a process that compresses nothing, still decode.
func TestLargeRoundTrip(t *testing.T) {
	dc := DataConverter(16 << 10)
	big := batch{Node: "n1"}
	for i := range 2000 {
		big.Msgs = append(big.Msgs, strings.Repeat("hello 서울 ", 5)+string(rune('a'+i%26)))
	}
	small := batch{Node: "n2", Msgs: []string{"hi"}}

	p, err := dc.ToPayload(big)
	if err != nil {
		t.Fatal(err)
	}
	if enc := string(p.Metadata[converter.MetadataEncoding]); enc != "binary/zlib" {
		t.Fatalf("large payload encoding %q, want binary/zlib", enc)
	}
	plain, _ := converter.GetDefaultDataConverter().ToPayload(big)
	if len(p.Data)*3 > len(plain.Data) {
		t.Fatalf("compressed %d bytes from %d: want at least 3× smaller for repetitive text", len(p.Data), len(plain.Data))
	}
	var back batch
	if err := dc.FromPayload(p, &back); err != nil || back.Node != big.Node || len(back.Msgs) != len(big.Msgs) || back.Msgs[1999] != big.Msgs[1999] {
		t.Fatalf("round trip: %v, %d messages", err, len(back.Msgs))
	}

	ps, err := dc.ToPayload(small)
	if err != nil {
		t.Fatal(err)
	}
	if enc := string(ps.Metadata[converter.MetadataEncoding]); enc != "json/plain" {
		t.Fatalf("small payload encoding %q, want json/plain", enc)
	}

	// written without the codec, or by a process with Over = 0: read as is
	for _, src := range []converter.DataConverter{converter.GetDefaultDataConverter(), DataConverter(0)} {
		p, err := src.ToPayload(big)
		if err != nil {
			t.Fatal(err)
		}
		if enc := string(p.Metadata[converter.MetadataEncoding]); enc != "json/plain" {
			t.Fatalf("Over 0 encoded the payload as %q", enc)
		}
		var got batch
		if err := dc.FromPayload(p, &got); err != nil || len(got.Msgs) != len(big.Msgs) {
			t.Fatalf("plain payload through the codec: %v", err)
		}
	}
	// and a compressing writer's payload is read by a process that compresses nothing
	var got batch
	if err := DataConverter(0).FromPayload(p, &got); err != nil || len(got.Msgs) != len(big.Msgs) {
		t.Fatalf("compressed payload read with Over 0: %v", err)
	}
}

// The Web UI's codec endpoint turns a compressed batch back into its JSON,
// and answers a browser's preflight only for the allowed origins.
func TestHandlerDecodesForTheWebUI(t *testing.T) {
	srv := httptest.NewServer(Handler([]string{"http://127.0.0.1:8233"}))
	defer srv.Close()
	big := batch{Node: "n1"}
	for i := range 2000 {
		big.Msgs = append(big.Msgs, "hello "+strconv.Itoa(i))
	}
	p, err := DataConverter(16 << 10).ToPayload(big)
	if err != nil {
		t.Fatal(err)
	}
	if enc := string(p.Metadata[converter.MetadataEncoding]); enc != "binary/zlib" {
		t.Fatalf("encoding %q, want binary/zlib", enc)
	}
	body, _ := protojson.Marshal(&commonpb.Payloads{Payloads: []*commonpb.Payload{p}})
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/codec/decode", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Origin", "http://127.0.0.1:8233")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusOK || res.Header.Get("Access-Control-Allow-Origin") != "http://127.0.0.1:8233" {
		t.Fatalf("decode: %d, allow-origin %q: %s", res.StatusCode, res.Header.Get("Access-Control-Allow-Origin"), raw)
	}
	var out commonpb.Payloads
	if err := protojson.Unmarshal(raw, &out); err != nil || len(out.Payloads) != 1 {
		t.Fatalf("decode answer %s: %v", raw, err)
	}
	if enc := string(out.Payloads[0].Metadata[converter.MetadataEncoding]); enc != "json/plain" {
		t.Fatalf("decoded encoding %q, want json/plain", enc)
	}
	var back batch
	if err := json.Unmarshal(out.Payloads[0].Data, &back); err != nil || back.Node != "n1" || len(back.Msgs) != 2000 || back.Msgs[1999] != "hello 1999" {
		t.Fatalf("decoded payload: %v, %d messages", err, len(back.Msgs))
	}

	for origin, want := range map[string]string{"http://127.0.0.1:8233": "http://127.0.0.1:8233", "https://evil.example": ""} {
		pre, _ := http.NewRequest(http.MethodOptions, srv.URL+"/codec/decode", nil)
		pre.Header.Set("Origin", origin)
		pre.Header.Set("Access-Control-Request-Method", "POST")
		res, err := http.DefaultClient.Do(pre)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if got := res.Header.Get("Access-Control-Allow-Origin"); got != want {
			t.Fatalf("preflight from %s: allow-origin %q, want %q", origin, got, want)
		}
	}
}

// benchBatch is a batch as the bench's chat load makes one: rooms of 5,
// bodies of the sender's clock and padding.
func benchBatch(n int) chatflow.MessageBatch {
	b := chatflow.MessageBatch{Node: "api-1"}
	rooms := make([]string, n/25+1)
	for i := range rooms {
		rooms[i] = uuid.NewString()
	}
	users := make([]string, len(rooms)*5)
	for i := range users {
		users[i] = uuid.NewString()
	}
	now := time.Now().UTC()
	for i := range n {
		b.Messages = append(b.Messages, chatflow.Message{
			MessageID: uuid.Must(uuid.NewV7()).String(), RoomID: rooms[i%len(rooms)], Seq: int64(1000 + i/len(rooms)),
			SenderID: users[i%len(users)], ClientMsgID: users[i%len(users)][:8] + "-" + strconv.Itoa(i),
			Body:   strconv.FormatInt(now.UnixNano()+int64(i), 10) + " " + strings.Repeat("x", 60),
			SentAt: now.Add(time.Duration(i) * time.Microsecond),
		})
	}
	return b
}

// BenchmarkBatchPayload is what the api spends turning one second of
// 1,000 msg/s into a batch workflow's input: JSON, then (over the threshold)
// zlib. `go test ./codec -run '^$' -bench BatchPayload -benchmem`
func BenchmarkBatchPayload(b *testing.B) {
	batch := benchBatch(1000)
	for _, c := range []struct {
		name string
		over int
	}{{"json", 0}, {"json+zlib", 16 << 10}} {
		dc := DataConverter(c.over)
		b.Run(c.name, func(b *testing.B) {
			var size int
			for b.Loop() {
				p, err := dc.ToPayload(batch)
				if err != nil {
					b.Fatal(err)
				}
				size = len(p.Data)
			}
			b.ReportMetric(float64(size), "bytes")
		})
	}
}
