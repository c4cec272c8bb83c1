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
func PersistBatch(ctx workflow.Context, b activities.MessageBatch) (PersistResult, error) {
	var a *activities.Activities
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 30 * time.Second,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval: 100 * time.Millisecond, BackoffCoefficient: 2, MaximumInterval: 10 * time.Second,
		},
	})
	var res PersistResult
	if err := workflow.ExecuteActivity(ctx, a.PersistMessages, b).Get(ctx, &res.Inserted); err != nil {
		return res, err
	}
	if err := workflow.ExecuteActivity(ctx, a.PublishMessages, b).Get(ctx, nil); err != nil {
		return res, err
	}
	return res, nil
}
