package workflows

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/chatflow/chatflow"
	"github.com/chatflow/chatflow/activities"
)

// DeletionRetry is the retry policy of every deletion step and
// compensation: unlimited attempts with a bounded backoff, so a step waits
// out any outage (Postgres, Redis, Kafka, a killed worker) and the saga
// never stops halfway. Only a verdict (a non-retryable application error:
// balance_not_zero, a conflict) ends a step early.
var DeletionRetry = &temporal.RetryPolicy{
	InitialInterval:    500 * time.Millisecond,
	BackoffCoefficient: 2,
	MaximumInterval:    30 * time.Second,
	MaximumAttempts:    0, // unlimited
}

// deletionStep is one row of the deletion saga.
type deletionStep struct {
	name string
	// act is the activity; it takes the saga's DeletionInput.
	act any
	// undo compensates the step when the saga fails before its point of no
	// return; nil when nothing can or need be undone.
	undo any
	// undoOnFailure also runs undo when this very step fails with a verdict
	// (its precondition is the api's 'deleting' mark, not its own effect).
	undoOnFailure bool
	// pivot is the point of no return: once it starts, no compensation runs
	// and the saga only goes forward, even when cancelled.
	pivot bool
	// long steps (one unit of work per room) heartbeat, so a killed worker
	// is noticed in HeartbeatTimeout rather than StartToCloseTimeout.
	long bool
}

// deletionSteps is the saga as a table, in chatflow.DeletionSteps order.
//
//	step                       on a verdict (retries never end a step)
//	1 auth.revoke_sessions     compensated: the user is reactivated
//	2 chat.leave_rooms         compensated (reactivation); rooms stay left
//	3 chat.remove_friendships  compensated (reactivation); friendships stay removed
//	4 customer.close_account   compensated (reactivation): balance_not_zero lands here
//	5 chat.anonymize_profile   pivot: forward only from here
//	6 kafka.user_deleted       forward only
//	7 auth.delete_credentials  forward only; marks the deletion completed
//
// Left rooms and removed friendships are not restored by a compensation:
// the member_left messages are in the rooms' histories for good, and
// friendships need both sides' consent again. The user gets a working
// account back and can rejoin through invitations and friend requests.
func deletionSteps() []deletionStep {
	var a *activities.Activities
	return []deletionStep{
		{name: chatflow.DelStepRevokeSessions, act: a.RevokeAllSessions, undo: a.ReactivateUser, undoOnFailure: true},
		{name: chatflow.DelStepLeaveRooms, act: a.LeaveAllRooms, long: true},
		{name: chatflow.DelStepRemoveSocial, act: a.RemoveSocialGraph, long: true},
		{name: chatflow.DelStepCloseAccount, act: a.CloseCustomerAccount},
		{name: chatflow.DelStepAnonymize, act: a.AnonymizeProfile, pivot: true},
		{name: chatflow.DelStepEvent, act: a.PublishUserDeleted},
		{name: chatflow.DelStepDeleteCredentials, act: a.DeleteUserCredentials},
	}
}

// Step timeouts: one attempt of a step; a long step heartbeats per room.
const (
	longStepTimeout  = 10 * time.Minute
	heartbeatTimeout = 30 * time.Second
)

// DeleteUser is the account deletion saga. The api has already marked the
// user 'deleting' (no login, no refresh) and recorded the deletion in
// auth.deletions; the steps revoke sessions, leave rooms, remove the social
// graph, close the customer account, anonymize the profile, publish
// user.deleted and delete the credentials (marking the deletion completed).
// Every step retries until it succeeds or fails with a verdict.
//
// A verdict before the pivot (step 5) fails the saga: the compensations of
// the steps done run in reverse (the user is reactivated), their errors are
// collected, and the failure is recorded in auth.deletions with its code.
// A verdict from the pivot on (no step has one in practice: each would mean
// an operator changed the user meanwhile) is recorded the same way, with
// nothing undone and the user left 'deleting' for the operator.
//
// A failed saga fails with a non-retryable application error whose type is
// the domain code and whose details are the final DeletionProgress.
func DeleteUser(ctx workflow.Context, in chatflow.DeletionInput) (chatflow.DeletionProgress, error) {
	steps := deletionSteps()
	p := chatflow.DeletionProgress{DeletionID: in.DeletionID.String(), UserID: in.UserID.String(), Status: chatflow.StatusRunning}
	for _, st := range steps {
		p.Steps = append(p.Steps, chatflow.StepStatus{Name: st.name, Status: chatflow.StatusPending})
	}
	if err := workflow.SetQueryHandler(ctx, chatflow.QueryDeletionProgress, func() (chatflow.DeletionProgress, error) {
		return p, nil
	}); err != nil {
		return p, err
	}
	show := func() { workflow.SetCurrentDetails(ctx, deletionDetails(in, p)) }
	// Compensations, the failure record and every step from the pivot on
	// run on a disconnected context: a cancel request cannot stop them.
	dctx, _ := workflow.NewDisconnectedContext(ctx)
	opts := func(base workflow.Context, st deletionStep, summary string) workflow.Context {
		o := workflow.ActivityOptions{StartToCloseTimeout: stepTimeout, RetryPolicy: DeletionRetry, Summary: summary}
		if st.long {
			o.StartToCloseTimeout, o.HeartbeatTimeout = longStepTimeout, heartbeatTimeout
		}
		return workflow.WithActivityOptions(base, o)
	}

	var (
		err         error
		failedAt    = -1
		toUndo      []int
		forwardOnly bool // the pivot has started: forward only
	)
	for i, st := range steps {
		if st.pivot {
			forwardOnly = true
		}
		base := ctx
		if forwardOnly {
			base = dctx
		}
		p.Step = st.name
		p.Steps[i].Status = chatflow.StatusRunning
		show()
		actx := opts(base, st, fmt.Sprintf("step %d/%d: %s", i+1, len(steps), st.name))
		err = retryUntilVerdict(ctx, actx, st.name, func(c workflow.Context) error {
			return workflow.ExecuteActivity(c, st.act, in).Get(c, nil)
		})
		if err == nil {
			p.Steps[i].Status = chatflow.StatusCompleted
			toUndo = append(toUndo, i)
			show()
			continue
		}
		failedAt = i
		p.Steps[i].Status = chatflow.StatusFailed
		p.Steps[i].Error = errorMessage(err)
		if st.undoOnFailure {
			toUndo = append(toUndo, i)
		}
		break
	}
	if err == nil {
		p.Status = chatflow.StatusCompleted
		show()
		return p, nil
	}

	var undoErrs []error
	if !forwardOnly {
		for j := len(toUndo) - 1; j >= 0; j-- {
			i := toUndo[j]
			st := steps[i]
			if st.undo == nil {
				continue
			}
			uctx := opts(dctx, st, "undo "+st.name)
			uerr := retryUntilVerdict(ctx, uctx, "undo "+st.name, func(c workflow.Context) error {
				return workflow.ExecuteActivity(c, st.undo, in).Get(c, nil)
			})
			if uerr != nil {
				workflow.GetLogger(ctx).Error("compensation failed", "step", st.name, "error", uerr)
				undoErrs = append(undoErrs, fmt.Errorf("undo %s: %s", st.name, errorMessage(uerr)))
				p.Steps[i].Status = chatflow.StatusCompensationFailed
				p.Steps[i].Error = joinMessages(p.Steps[i].Error, "undo: "+errorMessage(uerr))
			} else {
				if p.Steps[i].Status == chatflow.StatusCompleted {
					p.Steps[i].Status = chatflow.StatusCompensated
				}
				p.Reactivated = p.Reactivated || i == 0
			}
			show()
		}
	}

	p.Status = chatflow.StatusFailed
	p.Step = steps[failedAt].name
	p.ErrorCode = errorCode(err)
	p.Error = errorMessage(err)
	if undoErr := errors.Join(undoErrs...); undoErr != nil {
		p.Error = joinMessages(p.Error, undoErr.Error())
	}
	var a *activities.Activities
	rctx := workflow.WithActivityOptions(dctx, workflow.ActivityOptions{
		StartToCloseTimeout: stepTimeout, RetryPolicy: DeletionRetry, Summary: "record the failure",
	})
	f := chatflow.DeletionFailure{Input: in, Step: p.Step, ErrorCode: p.ErrorCode, Error: p.Error}
	if rerr := retryUntilVerdict(ctx, rctx, "record the failure", func(c workflow.Context) error {
		return workflow.ExecuteActivity(c, a.RecordDeletionFailed, f).Get(c, nil)
	}); rerr != nil {
		p.Error = joinMessages(p.Error, "record: "+errorMessage(rerr))
	}
	show()
	return p, temporal.NewNonRetryableApplicationError(p.Error, p.ErrorCode, err, p)
}

// retryUntilVerdict runs fn until it succeeds or fails with a verdict. The
// activities already retry without limit, so in production one call is the
// whole story; the loop keeps the guarantee where a limit comes from outside
// (the SDK's test environment caps "unlimited" at 10 attempts). A cancelled
// saga (log's context) stops a step that runs on it; steps on the
// disconnected context go on.
func retryUntilVerdict(log, ctx workflow.Context, what string, fn func(workflow.Context) error) error {
	for round := 1; ; round++ {
		err := fn(ctx)
		if err == nil || isVerdict(err) || ctx.Err() != nil {
			return err
		}
		workflow.GetLogger(log).Warn("still retrying", "what", what, "round", round, "error", err)
		_ = workflow.Sleep(ctx, DeletionRetry.MaximumInterval)
	}
}

// deletionDetails renders the saga's state as markdown for the Web UI.
func deletionDetails(in chatflow.DeletionInput, p chatflow.DeletionProgress) string {
	var b strings.Builder
	fmt.Fprintf(&b, "**deletion %s** of `%s` (user `%s`): %s\n\n", p.DeletionID, in.Username, p.UserID, p.Status)
	for i, st := range p.Steps {
		fmt.Fprintf(&b, "%d. `%s` — %s", i+1, st.Name, st.Status)
		if st.Error != "" {
			fmt.Fprintf(&b, " (%s)", strings.ReplaceAll(st.Error, "\n", "; "))
		}
		b.WriteString("\n")
	}
	if p.Reactivated {
		b.WriteString("\nthe account was reactivated\n")
	}
	if p.Error != "" {
		fmt.Fprintf(&b, "\nerror: %s\n", strings.ReplaceAll(p.Error, "\n", "; "))
	}
	return b.String()
}
