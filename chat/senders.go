package chat

import (
	"bytes"
	"context"
	"encoding/json"

	"github.com/google/uuid"

	"github.com/chatflow/chatflow/db"
)

// SenderNamer is the part of the store that maps users to their display
// names (chat.profiles, deleted users and former members included). A
// store without it names nobody.
type SenderNamer interface {
	DisplayNames(ctx context.Context, userIds []uuid.UUID) ([]db.DisplayNamesRow, error)
}

// WithSenders returns the message frames of one sync page, each with a
// "senders" object {sender_id: display_name} naming its sender, so a client
// shows replayed messages without looking members up. The names of the whole
// page come from one Postgres query; frames are copied, never changed in
// place. When the names cannot be read (Postgres down) the frames go out as
// they are: a sync is not refused for want of names. Live frames do not pass
// here (the send path stays as it is).
func (s *Service) WithSenders(ctx context.Context, frames []json.RawMessage) []json.RawMessage {
	namer, ok := s.store.(SenderNamer)
	if !ok || len(frames) == 0 {
		return frames
	}
	senders := make([]uuid.UUID, len(frames))
	seen := map[uuid.UUID]bool{}
	var ids []uuid.UUID
	for i, f := range frames {
		var m struct {
			SenderID string `json:"sender_id"`
		}
		if json.Unmarshal(f, &m) != nil {
			continue
		}
		id, err := uuid.Parse(m.SenderID)
		if err != nil {
			continue
		}
		senders[i] = id
		if !seen[id] {
			seen[id] = true
			ids = append(ids, id)
		}
	}
	if len(ids) == 0 {
		return frames
	}
	rows, err := namer.DisplayNames(ctx, ids)
	if err != nil {
		s.log.Warn("sync: sender names not read; frames go without them", "error", err)
		return frames
	}
	names := make(map[uuid.UUID][]byte, len(rows))
	for _, r := range rows {
		if b, err := json.Marshal(map[string]string{r.UserID.String(): r.DisplayName}); err == nil {
			names[r.UserID] = b
		}
	}
	out := make([]json.RawMessage, len(frames))
	for i, f := range frames {
		out[i] = f
		named, ok := names[senders[i]]
		body := bytes.TrimRight(f, " \t\r\n")
		if !ok || len(body) < 2 || body[len(body)-1] != '}' {
			continue
		}
		b := make([]byte, 0, len(body)+len(named)+12)
		b = append(b, body[:len(body)-1]...)
		b = append(b, `,"senders":`...)
		b = append(b, named...)
		out[i] = append(b, '}')
	}
	return out
}
