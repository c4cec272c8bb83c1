package chatflow

import "time"

// Kinds of the events that change an earlier message. Each is a message of
// its own in the room's sequence, so members live and clients that sync
// later learn of the change in order; its body is an EditEvent in JSON.
const (
	// KindEdit replaces the body of the message at TargetSeq.
	KindEdit = "edit"
	// KindDelete clears the message at TargetSeq (its body becomes "").
	KindDelete = "delete"
)

// ECodeMessageDeleted: an edit or delete of a message already deleted.
const ECodeMessageDeleted = "message_deleted"

// EditEvent is the body of a KindEdit or KindDelete message.
type EditEvent struct {
	TargetSeq int64  `json:"target_seq"`
	Body      string `json:"body,omitempty"`
}

// MessageState is the current state of an edited or deleted message.
type MessageState struct {
	Body      string
	EditedAt  *time.Time
	DeletedAt *time.Time
}

// Apply puts the state on m: a deleted message keeps no body.
func (st MessageState) Apply(m *Message) {
	m.EditedAt, m.DeletedAt = st.EditedAt, st.DeletedAt
	switch {
	case st.DeletedAt != nil:
		m.Body = ""
	case st.EditedAt != nil:
		m.Body = st.Body
	}
}
