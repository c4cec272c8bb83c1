package codec

import (
	"strings"
	"testing"

	"go.temporal.io/sdk/converter"
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
