package api

import (
	"context"
	"time"

	"github.com/google/uuid"
)

// lastSeen answers, for each user, when they were last seen (their last
// socket on any node closed), for the users who are offline now: nil for a
// user online (online[i]) or never seen.
func (s *Server) lastSeen(ctx context.Context, ids []uuid.UUID, online []bool) ([]*time.Time, error) {
	out := make([]*time.Time, len(ids))
	var offline []uuid.UUID
	for i, id := range ids {
		if !online[i] {
			offline = append(offline, id)
		}
	}
	if len(offline) == 0 {
		return out, nil
	}
	rows, err := s.Queries.LastSeen(ctx, offline)
	if err != nil {
		return nil, err
	}
	seen := make(map[uuid.UUID]*time.Time, len(rows))
	for _, r := range rows {
		seen[r.ID] = utc(r.LastSeenAt)
	}
	for i, id := range ids {
		if !online[i] {
			out[i] = seen[id]
		}
	}
	return out, nil
}
