package workflows

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/chatflow/chatflow"
	"github.com/chatflow/chatflow/activities"
)

// Activity names as the mocks record them.
const (
	actCreateCredentials     = "CreateCredentials"
	actDeleteCredentials     = "DeleteCredentials"
	actCreateProfile         = "CreateProfile"
	actDeleteProfile         = "DeleteProfile"
	actOpenAccount           = "OpenAccount"
	actCloseAccount          = "CloseAccount"
	actPublishUserCreated    = "PublishUserCreated"
	actPublishUserRolledBack = "PublishUserRolledBack"
	actActivateUser          = "ActivateUser"
	actUserActive            = "UserActive"
)

// sagaSteps mirrors chatflow.SignupSteps: the forward activity of each step
// and its compensation ("" for the last step, which needs none).
var sagaSteps = []struct{ do, undo string }{
	{actCreateCredentials, actDeleteCredentials},
	{actCreateProfile, actDeleteProfile},
	{actOpenAccount, actCloseAccount},
	{actPublishUserCreated, actPublishUserRolledBack},
	{actActivateUser, ""},
}

// failFunc decides the outcome of the attempt-th call (1-based) of an activity.
type failFunc func(attempt int) error

// sagaHarness runs the Signup workflow in the offline test environment with
// every activity mocked; each mock records its call in order, checks its
// argument and returns what the test's failFuncs say.
type sagaHarness struct {
	t   *testing.T
	env *testsuite.TestWorkflowEnvironment
	in  chatflow.SignupInput

	mu       sync.Mutex
	calls    []string
	attempts map[string]int
	// active is what the UserActive check answers.
	active bool
}

// newSagaHarness mocks every activity; fail maps activity names to their
// outcomes (default: success) and slow, if given, delays activities on the
// workflow clock.
func newSagaHarness(t *testing.T, fail map[string]failFunc, slow ...map[string]time.Duration) *sagaHarness {
	t.Helper()
	var s testsuite.WorkflowTestSuite
	h := &sagaHarness{
		t:   t,
		env: s.NewTestWorkflowEnvironment(),
		in: chatflow.SignupInput{
			SignupID:     "su-" + uuid.NewString(),
			UserID:       uuid.New(),
			Username:     "alice_" + uuid.NewString()[:8],
			Email:        "alice@example.com",
			PasswordHash: "$2a$10$abcdefghijklmnopqrstuv",
			DisplayName:  "Alice",
			RequestedAt:  time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC),
		},
		attempts: map[string]int{},
	}
	record := func(name string) error {
		h.mu.Lock()
		h.calls = append(h.calls, name)
		h.attempts[name]++
		n := h.attempts[name]
		h.mu.Unlock()
		if f := fail[name]; f != nil {
			return f(n)
		}
		return nil
	}
	withInput := func(name string) func(context.Context, chatflow.SignupInput) error {
		return func(_ context.Context, got chatflow.SignupInput) error {
			assert.Equal(t, h.in, got, "%s argument", name)
			return record(name)
		}
	}
	withUserID := func(name string) func(context.Context, uuid.UUID) error {
		return func(_ context.Context, got uuid.UUID) error {
			assert.Equal(t, h.in.UserID, got, "%s argument", name)
			return record(name)
		}
	}

	delay := map[string]time.Duration{}
	for _, m := range slow {
		for k, v := range m {
			delay[k] = v
		}
	}
	on := func(name string, fn any, ret any) {
		c := h.env.OnActivity(fn, mock.Anything, mock.Anything)
		if d, ok := delay[name]; ok {
			c = c.After(d)
		}
		c.Return(ret)
	}
	var a *activities.Activities
	on(actCreateCredentials, a.CreateCredentials, withInput(actCreateCredentials))
	on(actDeleteCredentials, a.DeleteCredentials, withUserID(actDeleteCredentials))
	on(actCreateProfile, a.CreateProfile, withInput(actCreateProfile))
	on(actDeleteProfile, a.DeleteProfile, withUserID(actDeleteProfile))
	on(actOpenAccount, a.OpenAccount, withUserID(actOpenAccount))
	on(actCloseAccount, a.CloseAccount, withUserID(actCloseAccount))
	on(actPublishUserCreated, a.PublishUserCreated, withInput(actPublishUserCreated))
	on(actPublishUserRolledBack, a.PublishUserRolledBack, withInput(actPublishUserRolledBack))
	on(actActivateUser, a.ActivateUser, withUserID(actActivateUser))
	on(actUserActive, a.UserActive, func(_ context.Context, got uuid.UUID) (bool, error) {
		assert.Equal(t, h.in.UserID, got, "%s argument", actUserActive)
		if err := record(actUserActive); err != nil {
			return false, err
		}
		h.mu.Lock()
		defer h.mu.Unlock()
		return h.active, nil
	})
	return h
}

func (h *sagaHarness) run() {
	h.t.Helper()
	h.env.ExecuteWorkflow(Signup, h.in)
	require.True(h.t, h.env.IsWorkflowCompleted(), "workflow did not complete")
}

func (h *sagaHarness) recorded() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.calls...)
}

func (h *sagaHarness) attemptsOf(name string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.attempts[name]
}

func (h *sagaHarness) progress() chatflow.SignupProgress {
	h.t.Helper()
	v, err := h.env.QueryWorkflow(QueryProgress)
	require.NoError(h.t, err, "query %q", QueryProgress)
	var p chatflow.SignupProgress
	require.NoError(h.t, v.Get(&p))
	return p
}

// stepStatuses returns just the status of every step, in order.
func stepStatuses(p chatflow.SignupProgress) []string {
	out := make([]string, len(p.Steps))
	for i, s := range p.Steps {
		out[i] = s.Status
	}
	return out
}

func assertStepNames(t *testing.T, p chatflow.SignupProgress) {
	t.Helper()
	require.Len(t, p.Steps, len(chatflow.SignupSteps))
	for i, s := range p.Steps {
		assert.Equal(t, chatflow.SignupSteps[i], s.Name, "step %d name", i)
	}
}

func TestSignupSucceeds(t *testing.T) {
	h := newSagaHarness(t, nil)
	h.run()

	require.NoError(t, h.env.GetWorkflowError())
	var res chatflow.SignupResult
	require.NoError(t, h.env.GetWorkflowResult(&res))
	assert.Equal(t, h.in.UserID.String(), res.UserID)
	require.NotNil(t, res.Progress, "the result carries the final progress")
	assert.Equal(t, chatflow.StatusCompleted, res.Progress.Status)

	assert.Equal(t, []string{
		actCreateCredentials, actCreateProfile, actOpenAccount, actPublishUserCreated, actActivateUser,
	}, h.recorded(), "every step runs once, in order, and nothing is compensated")

	p := h.progress()
	assert.Equal(t, chatflow.StatusCompleted, p.Status)
	assert.Equal(t, h.in.SignupID, p.SignupID)
	assert.Equal(t, h.in.UserID.String(), p.UserID)
	assert.Empty(t, p.Error)
	assert.Empty(t, p.ErrorCode)
	assertStepNames(t, p)
	for i, s := range p.Steps {
		assert.Equal(t, chatflow.StatusCompleted, s.Status, "step %d (%s)", i, s.Name)
		assert.Empty(t, s.Error, "step %d (%s)", i, s.Name)
	}
}

func TestSignupFailureCompensatesCompletedStepsInReverse(t *testing.T) {
	for failAt := range sagaSteps {
		failing := sagaSteps[failAt].do
		t.Run(fmt.Sprintf("step%d_%s", failAt, failing), func(t *testing.T) {
			msg, code := failing+" refused", ""
			if failAt == 0 {
				msg, code = "email is already registered", chatflow.ECodeEmailTaken
			}
			h := newSagaHarness(t, map[string]failFunc{
				failing: func(int) error { return temporal.NewNonRetryableApplicationError(msg, code, nil) },
			})
			h.run()

			// The workflow fails with the activity's error.
			werr := h.env.GetWorkflowError()
			require.Error(t, werr)
			var app *temporal.ApplicationError
			require.True(t, errors.As(werr, &app), "workflow error %v does not wrap an ApplicationError", werr)
			assert.Equal(t, msg, app.Message())
			wantCode := code
			if wantCode == "" {
				wantCode = chatflow.ECodeInternal
			}
			assert.Equal(t, wantCode, app.Type())
			// The failure carries the final progress for readers without a worker.
			var fp chatflow.SignupProgress
			require.True(t, app.HasDetails(), "failure has no progress details")
			require.NoError(t, app.Details(&fp))
			assert.Equal(t, chatflow.StatusFailed, fp.Status)
			assert.Equal(t, chatflow.StatusFailed, fp.Steps[failAt].Status)
			if failAt > 0 {
				assert.Equal(t, chatflow.StatusCompensated, fp.Steps[0].Status)
			}

			// Steps 0..failAt ran once each (non-retryable: no retry), then the
			// compensations of steps failAt-1..0 ran, and nothing else.
			var want []string
			for i := 0; i <= failAt; i++ {
				want = append(want, sagaSteps[i].do)
			}
			for i := failAt - 1; i >= 0; i-- {
				want = append(want, sagaSteps[i].undo)
			}
			assert.Equal(t, want, h.recorded())
			assert.Equal(t, 1, h.attemptsOf(failing), "a non-retryable failure must not be retried")

			p := h.progress()
			assert.Equal(t, chatflow.StatusFailed, p.Status)
			assert.Equal(t, msg, p.Error)
			assertStepNames(t, p)
			wantStatuses := make([]string, len(sagaSteps))
			for i := range wantStatuses {
				switch {
				case i < failAt:
					wantStatuses[i] = chatflow.StatusCompensated
				case i == failAt:
					wantStatuses[i] = chatflow.StatusFailed
				default:
					wantStatuses[i] = chatflow.StatusPending
				}
			}
			assert.Equal(t, wantStatuses, stepStatuses(p))
			assert.Equal(t, msg, p.Steps[failAt].Error)
			if failAt == 0 {
				assert.Equal(t, chatflow.ECodeEmailTaken, p.ErrorCode)
			} else {
				assert.Equal(t, chatflow.ECodeInternal, p.ErrorCode, "an error without a domain code reports internal")
			}
		})
	}
}

func TestSignupRetryableFailureRecoversWithoutCompensation(t *testing.T) {
	h := newSagaHarness(t, map[string]failFunc{
		actOpenAccount: func(attempt int) error {
			if attempt == 1 {
				return errors.New("connection reset by peer")
			}
			return nil
		},
	})
	h.run()

	require.NoError(t, h.env.GetWorkflowError())
	var res chatflow.SignupResult
	require.NoError(t, h.env.GetWorkflowResult(&res))
	assert.Equal(t, h.in.UserID.String(), res.UserID)
	assert.Equal(t, 2, h.attemptsOf(actOpenAccount))
	assert.Equal(t, []string{
		actCreateCredentials, actCreateProfile, actOpenAccount, actOpenAccount, actPublishUserCreated, actActivateUser,
	}, h.recorded())

	p := h.progress()
	assert.Equal(t, chatflow.StatusCompleted, p.Status)
	for i, s := range p.Steps {
		assert.Equal(t, chatflow.StatusCompleted, s.Status, "step %d (%s)", i, s.Name)
	}
}

// A step that keeps failing with a retryable error is tried
// SignupRetry.MaximumAttempts times, then the saga compensates. The error is
// not a domain error, so the reported code is internal (never a Go type name).
func TestSignupRetriesExhaustedCompensates(t *testing.T) {
	h := newSagaHarness(t, map[string]failFunc{
		actPublishUserCreated: func(int) error {
			return fmt.Errorf("kafka: %w", errors.New("leader not available"))
		},
	})
	h.run()

	require.Error(t, h.env.GetWorkflowError())
	require.EqualValues(t, SignupRetry.MaximumAttempts, h.attemptsOf(actPublishUserCreated))
	var want []string
	want = append(want, actCreateCredentials, actCreateProfile, actOpenAccount)
	for i := int32(0); i < SignupRetry.MaximumAttempts; i++ {
		want = append(want, actPublishUserCreated)
	}
	want = append(want, actCloseAccount, actDeleteProfile, actDeleteCredentials)
	assert.Equal(t, want, h.recorded())

	p := h.progress()
	assert.Equal(t, chatflow.StatusFailed, p.Status)
	assert.Equal(t, chatflow.ECodeInternal, p.ErrorCode)
	assert.Equal(t, []string{
		chatflow.StatusCompensated, chatflow.StatusCompensated, chatflow.StatusCompensated,
		chatflow.StatusFailed, chatflow.StatusPending,
	}, stepStatuses(p))
}

// A compensation that fails for good does not stop the remaining ones, and
// its step is not reported as compensated.
func TestSignupFailedCompensationDoesNotStopOthers(t *testing.T) {
	h := newSagaHarness(t, map[string]failFunc{
		actActivateUser: func(int) error { return temporal.NewNonRetryableApplicationError("user vanished", "", nil) },
		actDeleteProfile: func(int) error {
			return temporal.NewNonRetryableApplicationError("profile store down", "", nil)
		},
	})
	h.run()

	require.Error(t, h.env.GetWorkflowError())
	assert.Equal(t, []string{
		actCreateCredentials, actCreateProfile, actOpenAccount, actPublishUserCreated, actActivateUser,
		actPublishUserRolledBack, actCloseAccount, actDeleteProfile, actDeleteCredentials,
	}, h.recorded())

	p := h.progress()
	assert.Equal(t, chatflow.StatusFailed, p.Status)
	st := stepStatuses(p)
	assert.Equal(t, chatflow.StatusCompensated, st[0])
	assert.NotEqual(t, chatflow.StatusCompensated, st[1], "a failed compensation must not report compensated")
	assert.Equal(t, chatflow.StatusCompensated, st[2])
	assert.Equal(t, chatflow.StatusCompensated, st[3])
	assert.Equal(t, chatflow.StatusFailed, st[4])
}

// Cancelling the saga mid-way still runs the compensations of the completed
// steps (they use a disconnected context).
func TestSignupCancelledCompensates(t *testing.T) {
	// Make OpenAccount slow (on the workflow clock) and cancel while it runs.
	h := newSagaHarness(t, nil, map[string]time.Duration{actOpenAccount: time.Minute})
	h.env.RegisterDelayedCallback(h.env.CancelWorkflow, 10*time.Second)
	h.run()

	werr := h.env.GetWorkflowError()
	require.Error(t, werr)
	var canceled *temporal.CanceledError
	assert.True(t, errors.As(werr, &canceled), "want a cancellation, got %v", werr)
	got := h.recorded()
	require.GreaterOrEqual(t, len(got), 2, "calls: %v", got)
	assert.Equal(t, []string{actCreateCredentials, actCreateProfile}, got[:2])
	assert.Equal(t, []string{actDeleteProfile, actDeleteCredentials}, got[len(got)-2:],
		"the completed steps are undone in reverse order")
	assert.NotContains(t, got, actPublishUserCreated)
	assert.NotContains(t, got, actActivateUser)
}

// The saga's table names the public steps, in order, and undoes every step
// the tests' mirror says it undoes.
func TestSignupStepTable(t *testing.T) {
	steps := signupSteps(chatflow.SignupInput{})
	require.Len(t, steps, len(chatflow.SignupSteps))
	for i, st := range steps {
		assert.Equal(t, chatflow.SignupSteps[i], st.name, "step %d", i)
		assert.NotNil(t, st.do, "step %d has no action", i)
		assert.Equal(t, sagaSteps[i].undo != "", st.undo != nil, "step %d (%s) undo", i, st.name)
	}
}

// A step that failed without a verdict (its retries ran out) may have
// committed on an attempt whose answer was lost; the database steps are
// therefore undone too, first, before the steps that completed. The event is
// not rolled back (no ack: nothing to retract), and the activation step is
// checked instead (see TestSignupActivationThatTookEffectCompletes).
func TestSignupUncertainFailureUndoesTheFailedStep(t *testing.T) {
	for failAt := range sagaSteps {
		failing := sagaSteps[failAt].do
		t.Run(fmt.Sprintf("step%d_%s", failAt, failing), func(t *testing.T) {
			h := newSagaHarness(t, map[string]failFunc{
				failing: func(int) error { return errors.New("i/o timeout") },
			})
			h.run()

			require.Error(t, h.env.GetWorkflowError())
			require.EqualValues(t, SignupRetry.MaximumAttempts, h.attemptsOf(failing))
			var want []string
			for i := 0; i < failAt; i++ {
				want = append(want, sagaSteps[i].do)
			}
			for range SignupRetry.MaximumAttempts {
				want = append(want, failing)
			}
			if failing == actActivateUser {
				want = append(want, actUserActive)
			}
			if failAt <= 2 { // credentials, profile, account
				want = append(want, sagaSteps[failAt].undo)
			}
			for i := failAt - 1; i >= 0; i-- {
				want = append(want, sagaSteps[i].undo)
			}
			assert.Equal(t, want, h.recorded())

			p := h.progress()
			assert.Equal(t, chatflow.StatusFailed, p.Status)
			assert.Equal(t, chatflow.ECodeInternal, p.ErrorCode)
			assert.Equal(t, "i/o timeout", p.Error)
			for i, s := range p.Steps {
				switch {
				case i < failAt:
					assert.Equal(t, chatflow.StatusCompensated, s.Status, "step %d", i)
				case i == failAt:
					assert.Equal(t, chatflow.StatusFailed, s.Status, "step %d", i)
				default:
					assert.Equal(t, chatflow.StatusPending, s.Status, "step %d", i)
				}
			}
		})
	}
}

// Activation is the pivot: when it fails without a verdict but the user
// turns out active, an attempt committed and the saga has completed; nothing
// is rolled back.
func TestSignupActivationThatTookEffectCompletes(t *testing.T) {
	h := newSagaHarness(t, map[string]failFunc{
		actActivateUser: func(int) error { return errors.New("connection reset by peer") },
	})
	h.active = true
	h.run()

	require.NoError(t, h.env.GetWorkflowError())
	var res chatflow.SignupResult
	require.NoError(t, h.env.GetWorkflowResult(&res))
	assert.Equal(t, h.in.UserID.String(), res.UserID)
	got := h.recorded()
	assert.Equal(t, actUserActive, got[len(got)-1])
	for _, undo := range []string{actDeleteCredentials, actDeleteProfile, actCloseAccount, actPublishUserRolledBack} {
		assert.NotContains(t, got, undo)
	}
	p := h.progress()
	assert.Equal(t, chatflow.StatusCompleted, p.Status)
	for i, s := range p.Steps {
		assert.Equal(t, chatflow.StatusCompleted, s.Status, "step %d (%s)", i, s.Name)
	}
}

// A compensation is retried for as long as it takes: here DeleteProfile
// fails 59 times over half an hour of workflow time (beyond any activity or
// workflow timeout the saga ever had, and beyond the test environment's cap
// of 10 attempts per activity) and the saga still compensates fully, in
// order, and ends.
func TestSignupCompensationRetriesUntilDone(t *testing.T) {
	const failures = 59
	h := newSagaHarness(t, map[string]failFunc{
		actActivateUser: func(int) error { return temporal.NewNonRetryableApplicationError("activation refused", "", nil) },
		actDeleteProfile: func(attempt int) error {
			if attempt <= failures {
				return errors.New("profile store unavailable")
			}
			return nil
		},
	})
	start := h.env.Now()
	h.run()

	werr := h.env.GetWorkflowError()
	require.Error(t, werr)
	var app *temporal.ApplicationError
	require.True(t, errors.As(werr, &app))
	assert.Equal(t, "activation refused", app.Message(), "the compensation's eventual success leaves no error behind")

	assert.Equal(t, failures+1, h.attemptsOf(actDeleteProfile))
	elapsed := h.env.Now().Sub(start)
	assert.Greater(t, elapsed, 20*time.Minute, "the retries span a long outage (workflow time %v)", elapsed)

	got := h.recorded()
	var undos []string
	for _, c := range got {
		if c == actPublishUserRolledBack || c == actCloseAccount || c == actDeleteProfile || c == actDeleteCredentials {
			if len(undos) == 0 || undos[len(undos)-1] != c {
				undos = append(undos, c)
			}
		}
	}
	assert.Equal(t, []string{actPublishUserRolledBack, actCloseAccount, actDeleteProfile, actDeleteCredentials}, undos,
		"compensations in reverse; credentials go only after the profile is gone")

	p := h.progress()
	assert.Equal(t, chatflow.StatusFailed, p.Status)
	assert.Equal(t, "activation refused", p.Error)
	assert.Equal(t, []string{
		chatflow.StatusCompensated, chatflow.StatusCompensated, chatflow.StatusCompensated,
		chatflow.StatusCompensated, chatflow.StatusFailed,
	}, stepStatuses(p))
}

// Compensations that give up (non-retryable errors) do not stop the others;
// their errors are collected and reported in the progress and the failure,
// next to the error that failed the saga.
func TestSignupCompensationErrorsCollected(t *testing.T) {
	h := newSagaHarness(t, map[string]failFunc{
		actActivateUser: func(int) error { return temporal.NewNonRetryableApplicationError("activation refused", "", nil) },
		actDeleteProfile: func(int) error {
			return temporal.NewNonRetryableApplicationError("profile is referenced", "", nil)
		},
		actCloseAccount: func(int) error {
			return temporal.NewNonRetryableApplicationError("account has a balance", "", nil)
		},
	})
	h.run()

	assert.Equal(t, []string{
		actCreateCredentials, actCreateProfile, actOpenAccount, actPublishUserCreated, actActivateUser,
		actPublishUserRolledBack, actCloseAccount, actDeleteProfile, actDeleteCredentials,
	}, h.recorded())

	wantErr := "activation refused\nundo " + chatflow.StepAccount + ": account has a balance\nundo " + chatflow.StepProfile + ": profile is referenced"
	p := h.progress()
	assert.Equal(t, chatflow.StatusFailed, p.Status)
	assert.Equal(t, wantErr, p.Error)
	assert.Equal(t, chatflow.ECodeInternal, p.ErrorCode)
	assert.Equal(t, []string{
		chatflow.StatusCompensated, chatflow.StatusCompensationFailed, chatflow.StatusCompensationFailed,
		chatflow.StatusCompensated, chatflow.StatusFailed,
	}, stepStatuses(p))
	assert.Equal(t, "undo: profile is referenced", p.Steps[1].Error)
	assert.Equal(t, "undo: account has a balance", p.Steps[2].Error)
	assert.Equal(t, "activation refused", p.Steps[4].Error)

	werr := h.env.GetWorkflowError()
	require.Error(t, werr)
	var app *temporal.ApplicationError
	require.True(t, errors.As(werr, &app))
	assert.Equal(t, wantErr, app.Message())
	var fp chatflow.SignupProgress
	require.NoError(t, app.Details(&fp))
	assert.Equal(t, p, fp, "the failure carries the same final progress")
}

// The Web UI details name every step with its status and the errors.
func TestSignupProgressDetails(t *testing.T) {
	p := chatflow.SignupProgress{SignupID: "s1", Status: chatflow.StatusFailed, Error: "boom\nundo x: y", Steps: []chatflow.StepStatus{
		{Name: chatflow.StepCredentials, Status: chatflow.StatusCompensated},
		{Name: chatflow.StepProfile, Status: chatflow.StatusCompensationFailed, Error: "undo: y"},
	}}
	d := progressDetails(p)
	assert.Contains(t, d, "**sign-up s1**: failed")
	assert.Contains(t, d, "1. `"+chatflow.StepCredentials+"` — compensated")
	assert.Contains(t, d, "2. `"+chatflow.StepProfile+"` — compensation_failed (undo: y)")
	assert.Contains(t, d, "error: boom; undo x: y")
}
