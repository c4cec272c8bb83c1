package workflows

import (
	"fmt"
	"time"

	"go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/chatflow/chatflow"
	"github.com/chatflow/chatflow/activities"
)

// ResumeResult reports one pass of ResumeTransfers: the stale pending
// transfers found, the sagas it started, and those that had started
// already (running, or ended without recording it).
type ResumeResult struct {
	Found   int `json:"found"`
	Started int `json:"started"`
	Running int `json:"running"`
}

// ResumeTransfers starts the saga of every transfer still pending a while
// after it was recorded (activities.StaleTransfers), started by a Temporal
// Schedule (see workers.EnsureSchedules). The api records a transfer
// before it starts the saga; when the start fails (Temporal unreachable)
// the sender is told to repeat the request, and a sender who never does
// would leave the transfer pending for good. Each saga is started as a
// child under the transfer's own workflow id, which Temporal never reuses
// (REJECT_DUPLICATE), so a saga that already started, even one that has
// ended, is not started twice; the child is abandoned, not waited for.
func ResumeTransfers(ctx workflow.Context) (ResumeResult, error) {
	var res ResumeResult
	var a *activities.Activities
	actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: time.Minute,
		RetryPolicy:         &temporal.RetryPolicy{InitialInterval: 5 * time.Second, MaximumAttempts: 3},
		Summary:             "list transfers still pending a while after they were recorded",
	})
	var ins []chatflow.TransferInput
	if err := workflow.ExecuteActivity(actx, a.StaleTransfers).Get(actx, &ins); err != nil {
		return res, err
	}
	res.Found = len(ins)
	futures := make([]workflow.ChildWorkflowFuture, len(ins))
	for i, in := range ins {
		cctx := workflow.WithChildOptions(ctx, workflow.ChildWorkflowOptions{
			WorkflowID:            chatflow.TransferWorkflowID(in.TransferID),
			ParentClosePolicy:     enums.PARENT_CLOSE_POLICY_ABANDON,
			WorkflowIDReusePolicy: enums.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE,
			StaticSummary:         fmt.Sprintf("transfer of %d, started by the transfer resume", in.Amount),
			StaticDetails:         fmt.Sprintf("transfer_id `%s`, room `%s`, from `%s`, to `%s`", in.TransferID, in.RoomID, in.FromID, in.ToID),
			Memo:                  map[string]any{"transfer_id": in.TransferID.String()},
		})
		futures[i] = workflow.ExecuteChildWorkflow(cctx, chatflow.WorkflowTransfer, in)
	}
	for _, f := range futures {
		err := f.GetChildWorkflowExecution().Get(ctx, nil)
		switch {
		case err == nil:
			res.Started++
		case temporal.IsWorkflowExecutionAlreadyStartedError(err):
			res.Running++
		default:
			return res, err
		}
	}
	return res, nil
}
