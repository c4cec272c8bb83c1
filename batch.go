package chatflow

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

// WorkflowSweepUploads is the registered name of the upload sweep's
// workflow (uploads never attached, avatar uploads never set).
const WorkflowSweepUploads = "SweepUploads"

// MessageBatch is one group commit of accepted messages from an api node.
type MessageBatch struct {
	Node     string    `json:"node"`
	Messages []Message `json:"messages"`
}
