package postgres

import (
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgtype"
)

// RegisterUUID makes m encode google/uuid values as the 16 bytes they are.
// Without it pgx finds no plan of its own for uuid.UUID and falls back to
// its driver.Valuer: a string per UUID, parsed back, after building an
// error for each plan it tried first. A batch insert passes thousands of
// UUIDs in arrays, and that fallback was 38% of a worker's CPU at 5,000
// msg/s (BENCHMARKS.md, "Profiles under load"); BenchmarkUUIDArrayEncode
// measures both.
func RegisterUUID(m *pgtype.Map) {
	m.TryWrapEncodePlanFuncs = append([]pgtype.TryWrapEncodePlanFunc{wrapUUID}, m.TryWrapEncodePlanFuncs...)
}

func wrapUUID(value any) (pgtype.WrappedEncodePlanNextSetter, any, bool) {
	if u, ok := value.(uuid.UUID); ok {
		return &uuidPlan{}, [16]byte(u), true
	}
	return nil, nil, false
}

type uuidPlan struct{ next pgtype.EncodePlan }

func (p *uuidPlan) SetNext(next pgtype.EncodePlan) { p.next = next }

func (p *uuidPlan) Encode(value any, buf []byte) ([]byte, error) {
	return p.next.Encode([16]byte(value.(uuid.UUID)), buf)
}
