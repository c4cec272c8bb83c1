package postgres

import (
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgtype"
)

func uuids(n int) []uuid.UUID {
	out := make([]uuid.UUID, n)
	for i := range out {
		out[i] = uuid.New()
	}
	return out
}

// The registered plan must produce the very bytes pgx's own path does, for
// single values and arrays, in both formats.
func TestRegisterUUIDSameEncoding(t *testing.T) {
	plain, fast := pgtype.NewMap(), pgtype.NewMap()
	RegisterUUID(fast)
	ids := uuids(5)
	cases := []struct {
		oid   uint32
		value any
	}{
		{pgtype.UUIDOID, ids[0]},
		{pgtype.UUIDArrayOID, ids},
		{pgtype.UUIDArrayOID, []uuid.UUID{}},
	}
	for _, c := range cases {
		for _, format := range []int16{pgtype.BinaryFormatCode, pgtype.TextFormatCode} {
			want, err := plain.Encode(c.oid, format, c.value, nil)
			if err != nil {
				t.Fatalf("pgx's own encoding of %T: %v", c.value, err)
			}
			got, err := fast.Encode(c.oid, format, c.value, nil)
			if err != nil {
				t.Fatalf("registered encoding of %T: %v", c.value, err)
			}
			if string(got) != string(want) {
				t.Fatalf("%T format %d: %x, want %x", c.value, format, got, want)
			}
		}
	}
	// and it decodes back to the same values
	enc, _ := fast.Encode(pgtype.UUIDArrayOID, pgtype.BinaryFormatCode, ids, nil)
	var back []uuid.UUID
	if err := fast.Scan(pgtype.UUIDArrayOID, pgtype.BinaryFormatCode, enc, &back); err != nil {
		t.Fatal(err)
	}
	for i := range ids {
		if back[i] != ids[i] {
			t.Fatalf("element %d: %s, want %s", i, back[i], ids[i])
		}
	}
}

func BenchmarkUUIDArrayEncode(b *testing.B) {
	ids := uuids(1000)
	for _, c := range []struct {
		name     string
		register bool
	}{{"pgx-default", false}, {"registered", true}} {
		b.Run(c.name, func(b *testing.B) {
			m := pgtype.NewMap()
			if c.register {
				RegisterUUID(m)
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := m.Encode(pgtype.UUIDArrayOID, pgtype.BinaryFormatCode, ids, nil); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
