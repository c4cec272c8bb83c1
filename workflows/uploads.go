package workflows

import (
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/chatflow/chatflow/activities"
)

// SweepUploads is one sweep of uploads never attached or set, started by a
// Temporal Schedule (see workers.EnsureSchedules). A sweep the object store
// cannot finish is retried a few times, then left to the next one: the
// uploads it did not reach stay expired, with their objects, until then.
func SweepUploads(ctx workflow.Context) (activities.SweepResult, error) {
	var a *activities.Activities
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 10 * time.Minute,
		HeartbeatTimeout:    time.Minute,
		RetryPolicy:         &temporal.RetryPolicy{InitialInterval: 5 * time.Second, MaximumAttempts: 3},
		Summary:             "expire uploads never attached or set; delete the objects of those expired earlier",
	})
	var res activities.SweepResult
	err := workflow.ExecuteActivity(ctx, a.SweepUploads).Get(ctx, &res)
	return res, err
}
