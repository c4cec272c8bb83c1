// Package workflows holds chatflow's Temporal workflows: the sign-up saga and
// the batched message persistence. Workflow code is deterministic; all I/O
// happens in activities.
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

// Task queues; each has its own worker pool so they scale independently.
const (
	SignupTaskQueue   = chatflow.SignupTaskQueue
	MessagesTaskQueue = chatflow.MessagesTaskQueue
)

// QueryProgress is the query name that returns a sign-up's SignupProgress.
const QueryProgress = chatflow.QuerySignupProgress

// SignupWorkflowID derives the workflow ID from the username, which makes a
// second concurrent sign-up for the same name impossible.
func SignupWorkflowID(username string) string { return chatflow.SignupWorkflowID(username) }

// SignupRetry is the retry policy of each forward step of the saga. It is
// bounded on purpose: an outage that outlasts it fails the saga into its
// compensations instead of leaving the sign-up hanging.
var SignupRetry = &temporal.RetryPolicy{
	InitialInterval:    200 * time.Millisecond,
	BackoffCoefficient: 2,
	MaximumInterval:    5 * time.Second,
	MaximumAttempts:    5,
}

// CompensationRetry is the retry policy of every compensation (and of the
// activation check): unlimited attempts with a bounded backoff and no
// schedule-to-close limit, so a compensation outlasts any outage. Only a
// non-retryable error ends one early; the saga collects and reports it.
var CompensationRetry = &temporal.RetryPolicy{
	InitialInterval:    time.Second,
	BackoffCoefficient: 2,
	MaximumInterval:    time.Minute,
	MaximumAttempts:    0, // unlimited
}

// stepTimeout bounds one attempt of any saga activity.
const stepTimeout = 15 * time.Second

// sagaStep is one row of the sign-up saga: what it does, what undoes it.
type sagaStep struct {
	name string
	do   func(workflow.Context) error
	// undo reverses do; nil when there is nothing to undo.
	undo func(workflow.Context) error
	// undoUncertain also undoes a do that failed without a verdict (retries
	// exhausted, timed out, cancelled): one of its attempts may have
	// committed. Only for steps whose undo is harmless if do did nothing.
	undoUncertain bool
	// tookEffect, if set, asks whether a do that failed without a verdict
	// committed after all; if so the step counts as completed. It makes the
	// last step a pivot: a user found active is never rolled back.
	tookEffect func(workflow.Context) (bool, error)
}

// call returns a step action that runs one activity.
func call(fn, arg any) func(workflow.Context) error {
	return func(ctx workflow.Context) error {
		return workflow.ExecuteActivity(ctx, fn, arg).Get(ctx, nil)
	}
}

// signupSteps is the saga as a table, in chatflow.SignupSteps order:
// credentials → chat profile → customer account → user.created → activation.
func signupSteps(in chatflow.SignupInput) []sagaStep {
	var a *activities.Activities
	return []sagaStep{
		{name: chatflow.StepCredentials, do: call(a.CreateCredentials, in), undo: call(a.DeleteCredentials, in.UserID), undoUncertain: true},
		{name: chatflow.StepProfile, do: call(a.CreateProfile, in), undo: call(a.DeleteProfile, in.UserID), undoUncertain: true},
		{name: chatflow.StepAccount, do: call(a.OpenAccount, in.UserID), undo: call(a.CloseAccount, in.UserID), undoUncertain: true},
		// A publish that never got its ack is not rolled back: that would
		// need the very broker whose failure is being compensated.
		{name: chatflow.StepEvent, do: call(a.PublishUserCreated, in), undo: call(a.PublishUserRolledBack, in)},
		{name: chatflow.StepActivate, do: call(a.ActivateUser, in.UserID), tookEffect: func(ctx workflow.Context) (bool, error) {
			var active bool
			err := workflow.ExecuteActivity(ctx, a.UserActive, in.UserID).Get(ctx, &active)
			return active, err
		}},
	}
}

// Signup is the sign-up saga. Its steps run in order; when one fails, the
// compensations of the steps done so far run in reverse order, each retried
// until it succeeds, on a context the saga's cancellation does not reach.
// Compensation errors (non-retryable ones: nothing else ends a compensation)
// do not stop the other compensations; they are collected and reported.
//
// A completed saga returns SignupResult; a failed one fails with a
// non-retryable application error whose type is the domain code of the
// failure and whose details are the final SignupProgress, so that a reader
// of the history needs neither a query nor a worker.
func Signup(ctx workflow.Context, in chatflow.SignupInput) (chatflow.SignupResult, error) {
	legacy := legacyRun(ctx)
	steps := signupSteps(in)
	p := chatflow.SignupProgress{SignupID: in.SignupID, Status: chatflow.StatusRunning, UserID: in.UserID.String()}
	for _, st := range steps {
		p.Steps = append(p.Steps, chatflow.StepStatus{Name: st.name, Status: chatflow.StatusPending})
	}
	if err := workflow.SetQueryHandler(ctx, QueryProgress, func() (chatflow.SignupProgress, error) {
		return p, nil
	}); err != nil {
		return chatflow.SignupResult{}, err
	}
	show := func() { workflow.SetCurrentDetails(ctx, progressDetails(p)) }
	// Compensations and checks run on a disconnected context: a cancelled
	// saga still cleans up.
	dctx, _ := workflow.NewDisconnectedContext(ctx)
	undoCtx := func(summary string) workflow.Context {
		return workflow.WithActivityOptions(dctx, workflow.ActivityOptions{
			StartToCloseTimeout: stepTimeout,
			RetryPolicy:         CompensationRetry,
			Summary:             summary,
		})
	}

	var (
		err    error
		toUndo []int // steps to compensate, in the order they ran
	)
	for i, st := range steps {
		p.Steps[i].Status = chatflow.StatusRunning
		show()
		actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
			StartToCloseTimeout: stepTimeout,
			RetryPolicy:         SignupRetry,
			Summary:             fmt.Sprintf("step %d/%d: %s", i+1, len(steps), st.name),
		})
		if err = st.do(actx); err == nil {
			p.Steps[i].Status = chatflow.StatusCompleted
			toUndo = append(toUndo, i)
			show()
			continue
		}
		uncertain := !legacy && !isVerdict(err)
		if uncertain && st.tookEffect != nil {
			var done bool
			cerr := untilDone(ctx, undoCtx("check "+st.name), "check "+st.name, func(c workflow.Context) (e error) {
				done, e = st.tookEffect(c)
				return e
			})
			if cerr == nil && done {
				workflow.GetLogger(ctx).Warn("step failed but took effect", "step", st.name, "error", err)
				err = nil
				p.Steps[i].Status = chatflow.StatusCompleted
				toUndo = append(toUndo, i)
				show()
				continue
			}
		}
		p.Steps[i].Status = chatflow.StatusFailed
		p.Steps[i].Error = errorMessage(err)
		if uncertain && st.undoUncertain {
			toUndo = append(toUndo, i)
		}
		break
	}
	if err == nil {
		p.Status = chatflow.StatusCompleted
		show()
		final := p
		return chatflow.SignupResult{UserID: in.UserID.String(), Progress: &final}, nil
	}

	var undoErrs []error
	for j := len(toUndo) - 1; j >= 0; j-- {
		i := toUndo[j]
		st := steps[i]
		if st.undo == nil {
			continue
		}
		if uerr := untilDone(ctx, undoCtx("undo "+st.name), "undo "+st.name, st.undo); uerr != nil {
			workflow.GetLogger(ctx).Error("compensation failed", "step", st.name, "error", uerr)
			undoErrs = append(undoErrs, fmt.Errorf("undo %s: %s", st.name, errorMessage(uerr)))
			if p.Steps[i].Status == chatflow.StatusCompleted {
				p.Steps[i].Status = chatflow.StatusCompensationFailed
			}
			p.Steps[i].Error = joinMessages(p.Steps[i].Error, "undo: "+errorMessage(uerr))
		} else if p.Steps[i].Status == chatflow.StatusCompleted {
			p.Steps[i].Status = chatflow.StatusCompensated
		}
		show()
	}

	p.Status = chatflow.StatusFailed
	p.ErrorCode = errorCode(err)
	p.Error = errorMessage(err)
	if undoErr := errors.Join(undoErrs...); undoErr != nil {
		p.Error = joinMessages(p.Error, undoErr.Error())
	}
	show()
	return chatflow.SignupResult{}, temporal.NewNonRetryableApplicationError(p.Error, p.ErrorCode, err, p)
}

// untilDone runs fn on ctx until it succeeds or fails with a verdict. The
// activities it runs already retry without limit, so in production one call
// is the whole story; the loop keeps the guarantee wherever a limit comes
// from outside (the SDK's test environment caps "unlimited" at 10 attempts)
// and waits the policy's maximum interval between rounds. log is the
// saga's own context, for the warning.
func untilDone(log, ctx workflow.Context, what string, fn func(workflow.Context) error) error {
	return untilVerdict(log, ctx, what, CompensationRetry.MaximumInterval, fn, func() bool { return legacyRun(log) })
}

// untilVerdict is untilDone's loop: fn runs until it succeeds, fails with a
// verdict or giveUp (may be nil) says so, with pause between rounds.
func untilVerdict(log, ctx workflow.Context, what string, pause time.Duration, fn func(workflow.Context) error, giveUp func() bool) error {
	for round := 1; ; round++ {
		err := fn(ctx)
		if err == nil || isVerdict(err) || giveUp != nil && giveUp() {
			return err
		}
		workflow.GetLogger(log).Warn("still retrying", "what", what, "round", round, "error", err)
		_ = workflow.Sleep(ctx, pause)
	}
}

// legacyRun reports whether this run started before the step table (it then
// replays as it ran: no undo of uncertain steps, no activation check, one
// call per compensation). The version is recorded once, at the start.
func legacyRun(ctx workflow.Context) bool {
	return workflow.GetVersion(ctx, "signup-step-table", workflow.DefaultVersion, 1) == workflow.DefaultVersion
}

// isVerdict reports whether a step's error is the activity's own final word
// (a non-retryable application error such as a domain failure): the step then
// did nothing. Anything else (retries exhausted, a timeout, a cancellation)
// leaves open whether an attempt committed.
func isVerdict(err error) bool {
	var app *temporal.ApplicationError
	return errors.As(err, &app) && app.NonRetryable()
}

func joinMessages(a, b string) string {
	if a == "" {
		return b
	}
	return a + "\n" + b
}

// progressDetails renders the saga's state as markdown for the Web UI.
func progressDetails(p chatflow.SignupProgress) string {
	var b strings.Builder
	fmt.Fprintf(&b, "**sign-up %s**: %s\n\n", p.SignupID, p.Status)
	for i, st := range p.Steps {
		fmt.Fprintf(&b, "%d. `%s` — %s", i+1, st.Name, st.Status)
		if st.Error != "" {
			fmt.Fprintf(&b, " (%s)", strings.ReplaceAll(st.Error, "\n", "; "))
		}
		b.WriteString("\n")
	}
	if p.Error != "" {
		fmt.Fprintf(&b, "\nerror: %s\n", strings.ReplaceAll(p.Error, "\n", "; "))
	}
	return b.String()
}

// errorCode extracts the domain code an activity failed with, if any. Domain
// failures are non-retryable application errors whose type is the code (see
// activities.domainFailure); any other error that exhausted its retries has
// the SDK-derived Go type name as its type ("wrapError", "PgError", ...),
// which must not reach clients as an error code.
func errorCode(err error) string {
	var app *temporal.ApplicationError
	if errors.As(err, &app) && app.NonRetryable() && app.Type() != "" {
		return app.Type()
	}
	return chatflow.ECodeInternal
}

func errorMessage(err error) string {
	var app *temporal.ApplicationError
	if errors.As(err, &app) {
		return app.Message()
	}
	return err.Error()
}
