package workflows

import (
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/chatflow/chatflow/activities"
)

// PersistResult reports what a batch did.
type PersistResult struct {
	Inserted int64 `json:"inserted"`
}

// PersistBatch makes one group commit of accepted messages durable: write
// them to Postgres, then publish them to Kafka. The messages were already
// acknowledged to senders when this workflow started, so both steps retry
// until they succeed.
//
// The steps are local activities: they run on the worker that picked up the
// workflow task, so a batch costs one workflow task and two small markers in
// history instead of two activity dispatches that would each copy the whole
// batch into history again. A worker that dies mid-batch leaves the workflow
// task to time out; another worker replays it and re-runs the (idempotent) steps.
func PersistBatch(ctx workflow.Context, b activities.MessageBatch) (PersistResult, error) {
	var a *activities.Activities
	ctx = workflow.WithLocalActivityOptions(ctx, workflow.LocalActivityOptions{
		StartToCloseTimeout: 30 * time.Second,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval: 100 * time.Millisecond, BackoffCoefficient: 2, MaximumInterval: 10 * time.Second,
		},
	})
	var res PersistResult
	if err := workflow.ExecuteLocalActivity(ctx, a.PersistMessages, b).Get(ctx, &res.Inserted); err != nil {
		return res, err
	}
	if err := workflow.ExecuteLocalActivity(ctx, a.PublishMessages, b).Get(ctx, nil); err != nil {
		return res, err
	}
	return res, nil
}
