package chatflow

import "slices"

// Task queues; each has its own worker pool so they scale independently.
const (
	SignupTaskQueue   = "chatflow-signup"
	MessagesTaskQueue = "chatflow-messages"
)

// WorkflowPersistBatch is the registered name of the batch persistence
// workflow; api nodes start it by name so they do not link the worker code.
const WorkflowPersistBatch = "PersistBatch"

// WorkflowReconcile is the registered name of the reconciler's workflow.
const WorkflowReconcile = "Reconcile"

// SeqRange is a run of one room's seqs, From <= seq <= To.
type SeqRange struct {
	Room string `json:"room"`
	From int64  `json:"from"`
	To   int64  `json:"to"`
}

// Len is the number of seqs in r.
func (r SeqRange) Len() int64 { return r.To - r.From + 1 }

// MessageBatch is one group commit of accepted messages from an api node.
type MessageBatch struct {
	Node string `json:"node"`
	// Ranges name the batch's messages by room and seq; the worker reads
	// them from the rooms' logs, which hold every accepted message until
	// Postgres has it. A batch stays a few hundred bytes whatever the
	// bodies, in the api, in Temporal's history and in its store.
	Ranges []SeqRange `json:"ranges,omitempty"`
	// Messages carries the messages themselves: batches started by builds
	// before ranges (still replayed after an upgrade) and direct callers.
	Messages []Message `json:"messages,omitempty"`
}

// Rooms lists the rooms of the batch, sorted, each once.
func (b MessageBatch) Rooms() []string {
	seen := map[string]bool{}
	var rooms []string
	add := func(r string) {
		if !seen[r] {
			seen[r] = true
			rooms = append(rooms, r)
		}
	}
	for _, r := range b.Ranges {
		add(r.Room)
	}
	for _, m := range b.Messages {
		add(m.RoomID)
	}
	slices.Sort(rooms)
	return rooms
}
