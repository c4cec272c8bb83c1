package workflows

import (
	"context"
	"errors"
	"strings"
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

// Transfer activity names as the mocks record them.
const (
	actDebit   = "DebitSender"
	actCredit  = "CreditRecipient"
	actRefund  = "RefundSender"
	actReverse = "ReverseCredit"
	actPost    = "PostTransferMessage"
	actPublish = "PublishTransferCompleted"
	actFinish  = "FinishTransfer"
)

// transferHarness runs the Transfer workflow offline with every activity
// mocked: each records its call, checks its argument and fails as the
// test's failFuncs say. FinishTransfer records the outcomes it was given.
type transferHarness struct {
	t   *testing.T
	env *testsuite.TestWorkflowEnvironment
	in  chatflow.TransferInput

	mu       sync.Mutex
	calls    []string
	attempts map[string]int
	outcomes []chatflow.TransferOutcome
}

const testSeq = 42

func newTransferHarness(t *testing.T, fail map[string]failFunc) *transferHarness {
	t.Helper()
	var s testsuite.WorkflowTestSuite
	h := &transferHarness{
		t:   t,
		env: s.NewTestWorkflowEnvironment(),
		in: chatflow.TransferInput{
			TransferID: uuid.New(), FromID: uuid.New(), ToID: uuid.New(), RoomID: uuid.New(),
			Amount: 500, Memo: "lunch", RequestedAt: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC),
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
	withInput := func(name string) func(context.Context, chatflow.TransferInput) error {
		return func(_ context.Context, got chatflow.TransferInput) error {
			assert.Equal(t, h.in, got, "%s argument", name)
			return record(name)
		}
	}
	var a *activities.Activities
	h.env.OnActivity(a.DebitSender, mock.Anything, mock.Anything).Return(withInput(actDebit))
	h.env.OnActivity(a.CreditRecipient, mock.Anything, mock.Anything).Return(withInput(actCredit))
	h.env.OnActivity(a.RefundSender, mock.Anything, mock.Anything).Return(withInput(actRefund))
	h.env.OnActivity(a.ReverseCredit, mock.Anything, mock.Anything).Return(withInput(actReverse))
	h.env.OnActivity(a.PublishTransferCompleted, mock.Anything, mock.Anything).Return(withInput(actPublish))
	h.env.OnActivity(a.PostTransferMessage, mock.Anything, mock.Anything).Return(
		func(_ context.Context, got chatflow.TransferInput) (int64, error) {
			assert.Equal(t, h.in, got, "%s argument", actPost)
			if err := record(actPost); err != nil {
				return 0, err
			}
			return testSeq, nil
		})
	h.env.OnActivity(a.FinishTransfer, mock.Anything, mock.Anything).Return(
		func(_ context.Context, out chatflow.TransferOutcome) error {
			assert.Equal(t, h.in.TransferID, out.TransferID)
			if err := record(actFinish); err != nil {
				return err
			}
			h.mu.Lock()
			h.outcomes = append(h.outcomes, out)
			h.mu.Unlock()
			return nil
		})
	return h
}

func (h *transferHarness) run() {
	h.t.Helper()
	h.env.ExecuteWorkflow(Transfer, h.in)
	require.True(h.t, h.env.IsWorkflowCompleted(), "workflow did not complete")
}

func (h *transferHarness) recorded() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.calls...)
}

// outcome is the one outcome the saga recorded on the transfer's row.
func (h *transferHarness) outcome() chatflow.TransferOutcome {
	h.t.Helper()
	h.mu.Lock()
	defer h.mu.Unlock()
	require.Len(h.t, h.outcomes, 1, "the outcome is recorded exactly once")
	return h.outcomes[0]
}

// final returns the saga's final progress: its result, or the details of
// the failure it ended with (then also checking the failure's type).
func (h *transferHarness) final(wantFail bool, code string) chatflow.TransferProgress {
	h.t.Helper()
	var p chatflow.TransferProgress
	werr := h.env.GetWorkflowError()
	if !wantFail {
		require.NoError(h.t, werr)
		require.NoError(h.t, h.env.GetWorkflowResult(&p))
		return p
	}
	require.Error(h.t, werr)
	var app *temporal.ApplicationError
	require.True(h.t, errors.As(werr, &app), "workflow error %v does not wrap an ApplicationError", werr)
	assert.Equal(h.t, code, app.Type())
	require.True(h.t, app.HasDetails())
	require.NoError(h.t, app.Details(&p))
	return p
}

func transferStatuses(p chatflow.TransferProgress) []string {
	out := make([]string, len(p.Steps))
	for i, s := range p.Steps {
		out[i] = s.Status
	}
	return out
}

func verdict(code, msg string) failFunc {
	return func(int) error { return temporal.NewNonRetryableApplicationError(msg, code, nil) }
}

const (
	done   = chatflow.StatusCompleted
	undone = chatflow.StatusCompensated
	fail   = chatflow.StatusFailed
	pend   = chatflow.StatusPending
)

func TestTransferSucceeds(t *testing.T) {
	h := newTransferHarness(t, nil)
	h.run()
	p := h.final(false, "")
	assert.Equal(t, []string{actDebit, actCredit, actPost, actPublish, actFinish}, h.recorded())
	assert.Equal(t, chatflow.TransferOutcome{TransferID: h.in.TransferID, Status: done}, h.outcome())
	assert.Equal(t, done, p.Status)
	assert.EqualValues(t, testSeq, p.MessageSeq)
	assert.Empty(t, p.ErrorCode)
	require.Len(t, p.Steps, len(chatflow.TransferSteps))
	for i, s := range p.Steps {
		assert.Equal(t, chatflow.TransferSteps[i], s.Name)
		assert.Equal(t, done, s.Status, s.Name)
	}
}

// A sender without the money: nothing moved, nothing to compensate.
func TestTransferDebitRefusedFails(t *testing.T) {
	h := newTransferHarness(t, map[string]failFunc{actDebit: verdict(chatflow.ECodeInsufficientFunds, "balance 10 is less than 500")})
	h.run()
	p := h.final(true, chatflow.ECodeInsufficientFunds)
	assert.Equal(t, []string{actDebit, actFinish}, h.recorded())
	out := h.outcome()
	assert.Equal(t, fail, out.Status)
	assert.Equal(t, chatflow.ECodeInsufficientFunds, out.ErrorCode)
	assert.Equal(t, "balance 10 is less than 500", out.Error)
	assert.Equal(t, []string{fail, pend, pend, pend, pend}, transferStatuses(p))
	assert.Equal(t, fail, p.Status)
}

// A recipient whose account is closed: the sender is refunded.
func TestTransferCreditRefusedRefundsSender(t *testing.T) {
	h := newTransferHarness(t, map[string]failFunc{actCredit: verdict(chatflow.ECodeAccountClosed, "account closed")})
	h.run()
	p := h.final(true, chatflow.ECodeAccountClosed)
	assert.Equal(t, []string{actDebit, actCredit, actRefund, actFinish}, h.recorded())
	out := h.outcome()
	assert.Equal(t, undone, out.Status)
	assert.Equal(t, chatflow.ECodeAccountClosed, out.ErrorCode)
	assert.Equal(t, []string{undone, fail, pend, pend, pend}, transferStatuses(p))
	assert.Equal(t, undone, p.Status)
}

// A message that cannot be posted (the sender left the room): the credit
// is taken back, then the sender refunded; no message, no event.
func TestTransferMessageRefusedReversesBothMoves(t *testing.T) {
	h := newTransferHarness(t, map[string]failFunc{actPost: verdict(chatflow.ECodeNotMember, "not a member")})
	h.run()
	p := h.final(true, chatflow.ECodeNotMember)
	assert.Equal(t, []string{actDebit, actCredit, actPost, actReverse, actRefund, actFinish}, h.recorded())
	out := h.outcome()
	assert.Equal(t, undone, out.Status)
	assert.Equal(t, chatflow.ECodeNotMember, out.ErrorCode)
	assert.Equal(t, []string{undone, undone, fail, pend, pend}, transferStatuses(p))
	assert.Zero(t, p.MessageSeq)
}

// The recipient spent the credit before it could be taken back: no balance
// may go negative, so the transfer stands (completed, the post's error
// recorded) and the sender is not refunded: no money made or lost.
func TestTransferSpentCreditStands(t *testing.T) {
	h := newTransferHarness(t, map[string]failFunc{
		actPost:    verdict(chatflow.ECodeNotMember, "not a member"),
		actReverse: verdict(chatflow.ECodeInsufficientFunds, "balance 0 is less than 500"),
	})
	h.run()
	p := h.final(false, "")
	assert.Equal(t, []string{actDebit, actCredit, actPost, actReverse, actPublish, actFinish}, h.recorded())
	out := h.outcome()
	assert.Equal(t, done, out.Status)
	assert.Equal(t, chatflow.ECodeNotMember, out.ErrorCode)
	assert.Contains(t, out.Error, "already spent")
	assert.Equal(t, done, p.Status)
	assert.Equal(t, []string{done, done, fail, done, done}, transferStatuses(p))
}

// After the pivot (the message is posted) nothing is compensated: a
// verdict in a later step is recorded, and the transfer completes.
func TestTransferAfterPivotNeverCompensates(t *testing.T) {
	for _, failing := range []string{actPublish, actFinish} {
		t.Run(failing, func(t *testing.T) {
			h := newTransferHarness(t, map[string]failFunc{failing: verdict(chatflow.ECodeConflict, failing+" refused")})
			h.run()
			p := h.final(false, "")
			for _, c := range h.recorded() {
				assert.NotContains(t, []string{actRefund, actReverse}, c, "no compensation after the pivot")
			}
			assert.Equal(t, done, p.Status)
			assert.Contains(t, p.Error, failing+" refused", "the verdict is collected")
			assert.EqualValues(t, testSeq, p.MessageSeq)
		})
	}
}

// Transient errors (an outage) are retried past the SDK's own attempt cap
// without compensating: the transfer completes once the outage ends.
func TestTransferRetriesTransientErrorsUntilDone(t *testing.T) {
	for _, failing := range []string{actDebit, actCredit, actPost, actPublish, actFinish} {
		t.Run(failing, func(t *testing.T) {
			const failures = 25
			h := newTransferHarness(t, map[string]failFunc{failing: func(n int) error {
				if n <= failures {
					return errors.New("connection refused")
				}
				return nil
			}})
			h.run()
			p := h.final(false, "")
			assert.Equal(t, done, p.Status)
			h.mu.Lock()
			assert.Equal(t, failures+1, h.attempts[failing])
			h.mu.Unlock()
			for _, c := range h.recorded() {
				assert.NotContains(t, []string{actRefund, actReverse}, c, "a transient error is not a failure")
			}
		})
	}
}

// Compensations retry through an outage; one that gives up (the sender's
// account is gone) is collected: the transfer is 'failed', not
// 'compensated', and the error names the undo.
func TestTransferCompensationErrorsCollected(t *testing.T) {
	h := newTransferHarness(t, map[string]failFunc{
		actPost: verdict(chatflow.ECodeNotMember, "not a member"),
		actReverse: func(n int) error {
			if n <= 12 {
				return errors.New("postgres down")
			}
			return nil
		},
		actRefund: verdict(chatflow.ECodeNotFound, "account gone"),
	})
	h.run()
	p := h.final(true, chatflow.ECodeNotMember)
	out := h.outcome()
	assert.Equal(t, fail, out.Status)
	assert.Contains(t, out.Error, "undo "+chatflow.StepTransferDebit+": account gone")
	assert.Equal(t, []string{chatflow.StatusCompensationFailed, undone, fail, pend, pend}, transferStatuses(p))
	h.mu.Lock()
	assert.Equal(t, 13, h.attempts[actReverse])
	h.mu.Unlock()
}

func TestTransferDetailsRender(t *testing.T) {
	p := chatflow.TransferProgress{TransferID: "t1", Status: undone, ErrorCode: chatflow.ECodeNotMember, Error: "a\nb",
		Steps: []chatflow.StepStatus{{Name: chatflow.StepTransferDebit, Status: undone}, {Name: chatflow.StepTransferCredit, Status: fail, Error: "x"}}}
	d := transferDetails(p)
	for _, want := range []string{"**transfer t1**: compensated", "1. `customer.debit_sender` — compensated", "(x)", "error (not_member): a; b"} {
		assert.True(t, strings.Contains(d, want), "details lack %q:\n%s", want, d)
	}
}
