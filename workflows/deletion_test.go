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

// Deletion activity names as the mocks record them, in step order.
var delSteps = []string{
	"RevokeAllSessions", "LeaveAllRooms", "RemoveSocialGraph", "CloseCustomerAccount",
	"AnonymizeProfile", "PublishUserDeleted", "DeleteUserCredentials",
}

const (
	actReactivateUser       = "ReactivateUser"
	actRecordDeletionFailed = "RecordDeletionFailed"
	// delPivot is the index of the first forward-only step.
	delPivot = 4
)

// delHarness runs DeleteUser in the offline test environment with every
// activity mocked; each mock records its call and returns what the test's
// failFuncs say.
type delHarness struct {
	t   *testing.T
	env *testsuite.TestWorkflowEnvironment
	in  chatflow.DeletionInput

	mu       sync.Mutex
	calls    []string
	attempts map[string]int
	failures []chatflow.DeletionFailure
}

func newDelHarness(t *testing.T, fail map[string]failFunc, slow map[string]time.Duration) *delHarness {
	t.Helper()
	var s testsuite.WorkflowTestSuite
	h := &delHarness{
		t:   t,
		env: s.NewTestWorkflowEnvironment(),
		in: chatflow.DeletionInput{
			DeletionID: uuid.New(), UserID: uuid.New(), Username: "bob_" + uuid.NewString()[:8],
			RequestedAt: time.Date(2026, 3, 2, 12, 0, 0, 0, time.UTC),
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
	var a *activities.Activities
	fns := map[string]any{
		delSteps[0]: a.RevokeAllSessions, delSteps[1]: a.LeaveAllRooms, delSteps[2]: a.RemoveSocialGraph,
		delSteps[3]: a.CloseCustomerAccount, delSteps[4]: a.AnonymizeProfile, delSteps[5]: a.PublishUserDeleted,
		delSteps[6]: a.DeleteUserCredentials, actReactivateUser: a.ReactivateUser,
	}
	for name, fn := range fns {
		c := h.env.OnActivity(fn, mock.Anything, mock.Anything)
		if d, ok := slow[name]; ok {
			c = c.After(d)
		}
		c.Return(func(_ context.Context, got chatflow.DeletionInput) error {
			assert.Equal(t, h.in, got, "%s argument", name)
			return record(name)
		})
	}
	h.env.OnActivity(a.RecordDeletionFailed, mock.Anything, mock.Anything).Return(
		func(_ context.Context, f chatflow.DeletionFailure) error {
			assert.Equal(t, h.in, f.Input, "RecordDeletionFailed input")
			if err := record(actRecordDeletionFailed); err != nil {
				return err
			}
			h.mu.Lock()
			h.failures = append(h.failures, f)
			h.mu.Unlock()
			return nil
		})
	return h
}

func (h *delHarness) run() {
	h.t.Helper()
	h.env.ExecuteWorkflow(DeleteUser, h.in)
	require.True(h.t, h.env.IsWorkflowCompleted(), "workflow did not complete")
}

func (h *delHarness) recorded() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.calls...)
}

func (h *delHarness) attemptsOf(name string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.attempts[name]
}

func (h *delHarness) progress() chatflow.DeletionProgress {
	h.t.Helper()
	v, err := h.env.QueryWorkflow(chatflow.QueryDeletionProgress)
	require.NoError(h.t, err)
	var p chatflow.DeletionProgress
	require.NoError(h.t, v.Get(&p))
	return p
}

// failure returns the workflow's failure: its application error and the
// final progress in its details.
func (h *delHarness) failure() (*temporal.ApplicationError, chatflow.DeletionProgress) {
	h.t.Helper()
	werr := h.env.GetWorkflowError()
	require.Error(h.t, werr)
	var app *temporal.ApplicationError
	require.True(h.t, errors.As(werr, &app), "workflow error %v does not wrap an ApplicationError", werr)
	var p chatflow.DeletionProgress
	require.True(h.t, app.HasDetails(), "failure has no progress details")
	require.NoError(h.t, app.Details(&p))
	return app, p
}

func refusal(code string) failFunc {
	return func(int) error { return temporal.NewNonRetryableApplicationError(code+" refused", code, nil) }
}

func TestDeleteUserStepTable(t *testing.T) {
	steps := deletionSteps()
	require.Len(t, steps, len(chatflow.DeletionSteps))
	for i, st := range steps {
		assert.Equal(t, chatflow.DeletionSteps[i], st.name, "step %d", i)
		assert.Equal(t, i == delPivot, st.pivot, "step %d (%s) pivot", i, st.name)
	}
}

func TestDeleteUserSucceeds(t *testing.T) {
	h := newDelHarness(t, nil, nil)
	h.run()

	require.NoError(t, h.env.GetWorkflowError())
	var res chatflow.DeletionProgress
	require.NoError(t, h.env.GetWorkflowResult(&res))
	assert.Equal(t, chatflow.StatusCompleted, res.Status)
	assert.Equal(t, delSteps, h.recorded(), "every step runs once, in order; nothing compensated or recorded as failed")

	p := h.progress()
	assert.Equal(t, chatflow.StatusCompleted, p.Status)
	assert.Equal(t, h.in.DeletionID.String(), p.DeletionID)
	assert.Equal(t, chatflow.DelStepDeleteCredentials, p.Step)
	assert.False(t, p.Reactivated)
	for i, s := range p.Steps {
		assert.Equal(t, chatflow.DeletionSteps[i], s.Name)
		assert.Equal(t, chatflow.StatusCompleted, s.Status, "step %d (%s)", i, s.Name)
	}
}

// A verdict at any step ends the saga failed with the step's code and
// records it; before the pivot the user is reactivated, from the pivot on
// nothing is undone.
func TestDeleteUserFailureAtEachStep(t *testing.T) {
	for failAt, failing := range delSteps {
		t.Run(fmt.Sprintf("step%d_%s", failAt+1, failing), func(t *testing.T) {
			code := chatflow.ECodeConflict
			if failAt == 3 {
				code = chatflow.ECodeBalanceNotZero
			}
			h := newDelHarness(t, map[string]failFunc{failing: refusal(code)}, nil)
			h.run()

			app, fp := h.failure()
			assert.Equal(t, code, app.Type())
			assert.Equal(t, chatflow.StatusFailed, fp.Status)
			assert.Equal(t, code, fp.ErrorCode)
			assert.Equal(t, chatflow.DeletionSteps[failAt], fp.Step)

			compensable := failAt < delPivot
			want := append([]string(nil), delSteps[:failAt+1]...)
			if compensable {
				want = append(want, actReactivateUser)
			}
			want = append(want, actRecordDeletionFailed)
			assert.Equal(t, want, h.recorded())
			assert.Equal(t, 1, h.attemptsOf(failing), "a verdict is not retried")
			assert.Equal(t, compensable, fp.Reactivated)

			require.Len(t, h.failures, 1)
			f := h.failures[0]
			assert.Equal(t, chatflow.DeletionSteps[failAt], f.Step)
			assert.Equal(t, code, f.ErrorCode)
			assert.Equal(t, code+" refused", f.Error)

			for i, s := range fp.Steps {
				switch {
				case i == 0 && failAt > 0 && compensable:
					assert.Equal(t, chatflow.StatusCompensated, s.Status, "step 1 undone")
				case i < failAt:
					assert.Equal(t, chatflow.StatusCompleted, s.Status, "step %d", i+1)
				case i == failAt:
					assert.Equal(t, chatflow.StatusFailed, s.Status, "step %d", i+1)
				default:
					assert.Equal(t, chatflow.StatusPending, s.Status, "step %d", i+1)
				}
			}
		})
	}
}

// The brief's case: the balance is not zero when the saga checks it. The
// saga fails with balance_not_zero and the account is usable again.
func TestDeleteUserBalanceNotZeroReactivates(t *testing.T) {
	h := newDelHarness(t, map[string]failFunc{"CloseCustomerAccount": refusal(chatflow.ECodeBalanceNotZero)}, nil)
	h.run()
	app, fp := h.failure()
	assert.Equal(t, chatflow.ECodeBalanceNotZero, app.Type())
	assert.True(t, fp.Reactivated)
	assert.Equal(t, 1, h.attemptsOf(actReactivateUser))
	assert.Zero(t, h.attemptsOf("AnonymizeProfile"), "no step past the refusal runs")
	require.Len(t, h.failures, 1)
	assert.Equal(t, chatflow.ECodeBalanceNotZero, h.failures[0].ErrorCode)
}

// Transient errors never end a step: each step here fails 12 times (past
// the test environment's cap of 10 attempts on "unlimited" policies) and
// the saga still completes without compensating anything.
func TestDeleteUserRetriesThroughOutages(t *testing.T) {
	fail := map[string]failFunc{}
	for _, name := range delSteps {
		fail[name] = func(attempt int) error {
			if attempt <= 12 {
				return errors.New("connection refused")
			}
			return nil
		}
	}
	h := newDelHarness(t, fail, nil)
	h.run()
	require.NoError(t, h.env.GetWorkflowError())
	for _, name := range delSteps {
		assert.Equal(t, 13, h.attemptsOf(name), name)
	}
	assert.Zero(t, h.attemptsOf(actReactivateUser))
	assert.Zero(t, h.attemptsOf(actRecordDeletionFailed))
}

// A compensation that fails with a verdict is collected into the error;
// the failure is still recorded.
func TestDeleteUserCompensationErrorsCollected(t *testing.T) {
	h := newDelHarness(t, map[string]failFunc{
		"RemoveSocialGraph": refusal(chatflow.ECodeConflict),
		actReactivateUser:   func(int) error { return temporal.NewNonRetryableApplicationError("users table gone", "", nil) },
	}, nil)
	h.run()
	app, fp := h.failure()
	assert.Equal(t, chatflow.ECodeConflict, app.Type())
	assert.False(t, fp.Reactivated)
	assert.Contains(t, fp.Error, "conflict refused")
	assert.Contains(t, fp.Error, "undo auth.revoke_sessions: users table gone")
	assert.Equal(t, chatflow.StatusCompensationFailed, fp.Steps[0].Status)
	require.Len(t, h.failures, 1)
	assert.Contains(t, h.failures[0].Error, "users table gone")
}

// A compensation retries through outages too.
func TestDeleteUserCompensationRetriesUntilDone(t *testing.T) {
	h := newDelHarness(t, map[string]failFunc{
		"LeaveAllRooms": refusal(chatflow.ECodeValidation),
		actReactivateUser: func(attempt int) error {
			if attempt <= 12 {
				return errors.New("postgres is restarting")
			}
			return nil
		},
	}, nil)
	h.run()
	_, fp := h.failure()
	assert.True(t, fp.Reactivated)
	assert.Equal(t, 13, h.attemptsOf(actReactivateUser))
}

// A cancel request before the pivot stops the saga and reactivates the
// user; one after the pivot cannot stop it.
func TestDeleteUserCancel(t *testing.T) {
	t.Run("before the pivot", func(t *testing.T) {
		h := newDelHarness(t, nil, map[string]time.Duration{"RemoveSocialGraph": time.Minute})
		h.env.RegisterDelayedCallback(h.env.CancelWorkflow, 30*time.Second)
		h.run()
		_, fp := h.failure()
		assert.Equal(t, chatflow.StatusFailed, fp.Status)
		assert.True(t, fp.Reactivated)
		assert.Zero(t, h.attemptsOf("CloseCustomerAccount"))
		assert.Equal(t, 1, h.attemptsOf(actRecordDeletionFailed))
	})
	t.Run("after the pivot", func(t *testing.T) {
		h := newDelHarness(t, nil, map[string]time.Duration{"PublishUserDeleted": time.Minute})
		h.env.RegisterDelayedCallback(h.env.CancelWorkflow, 30*time.Second)
		h.run()
		require.NoError(t, h.env.GetWorkflowError())
		assert.Equal(t, delSteps, h.recorded())
	})
}

func TestDeleteUserDetails(t *testing.T) {
	in := chatflow.DeletionInput{DeletionID: uuid.New(), UserID: uuid.New(), Username: "carol"}
	p := chatflow.DeletionProgress{DeletionID: in.DeletionID.String(), UserID: in.UserID.String(), Status: chatflow.StatusFailed,
		Steps:     []chatflow.StepStatus{{Name: chatflow.DelStepRevokeSessions, Status: chatflow.StatusCompensated}, {Name: chatflow.DelStepCloseAccount, Status: chatflow.StatusFailed, Error: "a\nb"}},
		ErrorCode: chatflow.ECodeBalanceNotZero, Error: "a\nb", Reactivated: true}
	d := deletionDetails(in, p)
	assert.Contains(t, d, "`carol`")
	assert.Contains(t, d, "1. `auth.revoke_sessions` — compensated")
	assert.Contains(t, d, "2. `customer.close_account` — failed (a; b)")
	assert.Contains(t, d, "reactivated")
}
