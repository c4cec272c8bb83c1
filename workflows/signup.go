// Package workflows holds chatflow's Temporal workflows: the sign-up saga and
// the batched message persistence. Workflow code is deterministic; all I/O
// happens in activities.
package workflows

import (
	"errors"
	"fmt"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/chatflow/chatflow"
	"github.com/chatflow/chatflow/activities"
)

// Task queues; each has its own worker pool so they scale independently.
const (
	SignupTaskQueue   = "chatflow-signup"
	MessagesTaskQueue = "chatflow-messages"
)

// QueryProgress is the query name that returns a sign-up's SignupProgress.
const QueryProgress = "progress"

// SignupWorkflowID derives the workflow ID from the username, which makes a
// second concurrent sign-up for the same name impossible.
func SignupWorkflowID(username string) string { return "signup-" + username }

// SignupResult is what a completed sign-up returns.
type SignupResult struct {
	UserID string `json:"user_id"`
}

// SignupRetry is the retry policy of each saga step; exposed so tests and
// operators see one definition.
var SignupRetry = &temporal.RetryPolicy{
	InitialInterval:    200 * time.Millisecond,
	BackoffCoefficient: 2,
	MaximumInterval:    5 * time.Second,
	MaximumAttempts:    5,
}

// Signup is the sign-up saga: credentials → chat profile → customer account →
// user.created event → activation. Each step registers its compensation as
// soon as it succeeds; on failure they run in reverse order.
func Signup(ctx workflow.Context, in activities.SignupInput) (res SignupResult, err error) {
	p := chatflow.SignupProgress{SignupID: in.SignupID, Status: chatflow.StatusRunning, UserID: in.UserID.String()}
	for _, name := range chatflow.SignupSteps {
		p.Steps = append(p.Steps, chatflow.StepStatus{Name: name, Status: chatflow.StatusPending})
	}
	if err := workflow.SetQueryHandler(ctx, QueryProgress, func() (chatflow.SignupProgress, error) {
		return p, nil
	}); err != nil {
		return res, err
	}
	var a *activities.Activities
	log := workflow.GetLogger(ctx)

	// run executes step i and keeps the progress (query + Web UI details) current.
	run := func(i int, fn any, arg any) error {
		p.Steps[i].Status = chatflow.StatusRunning
		workflow.SetCurrentDetails(ctx, progressDetails(p))
		actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
			StartToCloseTimeout: 15 * time.Second,
			RetryPolicy:         SignupRetry,
			Summary:             fmt.Sprintf("step %d/%d: %s", i+1, len(p.Steps), p.Steps[i].Name),
		})
		if err := workflow.ExecuteActivity(actx, fn, arg).Get(actx, nil); err != nil {
			p.Steps[i].Status = chatflow.StatusFailed
			p.Steps[i].Error = errorMessage(err)
			return err
		}
		p.Steps[i].Status = chatflow.StatusCompleted
		workflow.SetCurrentDetails(ctx, progressDetails(p))
		return nil
	}
	// compensate undoes step i; it runs on a disconnected context so that a
	// cancelled saga still cleans up, and it never stops the other undos.
	compensate := func(i int, fn any, arg any) {
		dctx, _ := workflow.NewDisconnectedContext(ctx)
		dctx = workflow.WithActivityOptions(dctx, workflow.ActivityOptions{
			StartToCloseTimeout: 15 * time.Second,
			RetryPolicy:         &temporal.RetryPolicy{InitialInterval: time.Second, MaximumInterval: 30 * time.Second, MaximumAttempts: 20},
			Summary:             "undo " + p.Steps[i].Name,
		})
		if cerr := workflow.ExecuteActivity(dctx, fn, arg).Get(dctx, nil); cerr != nil {
			log.Error("compensation failed", "step", p.Steps[i].Name, "error", cerr)
			return
		}
		p.Steps[i].Status = chatflow.StatusCompensated
		workflow.SetCurrentDetails(ctx, progressDetails(p))
	}
	defer func() {
		if err != nil {
			p.Status = chatflow.StatusFailed
			p.Error = errorMessage(err)
			p.ErrorCode = errorCode(err)
			workflow.SetCurrentDetails(ctx, progressDetails(p))
			// The failure carries the final progress, so a finished saga's
			// status can be read from history without a query (and a worker).
			err = temporal.NewNonRetryableApplicationError(p.Error, p.ErrorCode, err, p)
		}
	}()

	if err = run(0, a.CreateCredentials, in); err != nil {
		return res, err
	}
	defer func() {
		if err != nil {
			compensate(0, a.DeleteCredentials, in.UserID)
		}
	}()
	if err = run(1, a.CreateProfile, in); err != nil {
		return res, err
	}
	defer func() {
		if err != nil {
			compensate(1, a.DeleteProfile, in.UserID)
		}
	}()
	if err = run(2, a.OpenAccount, in.UserID); err != nil {
		return res, err
	}
	defer func() {
		if err != nil {
			compensate(2, a.CloseAccount, in.UserID)
		}
	}()
	if err = run(3, a.PublishUserCreated, in); err != nil {
		return res, err
	}
	defer func() {
		if err != nil {
			compensate(3, a.PublishUserRolledBack, in)
		}
	}()
	if err = run(4, a.ActivateUser, in.UserID); err != nil {
		return res, err
	}
	p.Status = chatflow.StatusCompleted
	workflow.SetCurrentDetails(ctx, progressDetails(p))
	return SignupResult{UserID: in.UserID.String()}, nil
}

// progressDetails renders the saga's state as markdown for the Web UI.
func progressDetails(p chatflow.SignupProgress) string {
	s := fmt.Sprintf("**sign-up %s**: %s\n\n", p.SignupID, p.Status)
	for i, st := range p.Steps {
		s += fmt.Sprintf("%d. `%s` — %s", i+1, st.Name, st.Status)
		if st.Error != "" {
			s += " (" + st.Error + ")"
		}
		s += "\n"
	}
	return s
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
