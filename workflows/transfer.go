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

// QueryTransferProgress is the query name that returns a transfer's
// TransferProgress (the same name as the sign-up saga's query).
const QueryTransferProgress = chatflow.QuerySignupProgress

// TransferRetry is the retry policy of every step of the transfer saga,
// forward or compensation: unlimited attempts with a bounded backoff, so an
// outage (Postgres, Redis, Kafka away) delays a transfer and never cuts it
// between a debit and its refund. Only a verdict (a domain refusal such as
// insufficient_funds) ends a step early.
var TransferRetry = &temporal.RetryPolicy{
	InitialInterval:    200 * time.Millisecond,
	BackoffCoefficient: 2,
	MaximumInterval:    10 * time.Second,
	MaximumAttempts:    0, // unlimited
}

// transferPivot is the index of the step after which the transfer stands:
// once its message is in the room, nothing is compensated any more.
const transferPivot = 2

// transferSteps is the saga as a table, in chatflow.TransferSteps order.
// The message step stores its seq in seq; the last step records done, the
// outcome of a transfer that stands.
func transferSteps(in chatflow.TransferInput, seq *int64, done *chatflow.TransferOutcome) []sagaStep {
	var a *activities.Activities
	return []sagaStep{
		{name: chatflow.StepTransferDebit, do: call(a.DebitSender, in), undo: call(a.RefundSender, in)},
		{name: chatflow.StepTransferCredit, do: call(a.CreditRecipient, in), undo: call(a.ReverseCredit, in)},
		{name: chatflow.StepTransferMessage, do: func(ctx workflow.Context) error {
			return workflow.ExecuteActivity(ctx, a.PostTransferMessage, in).Get(ctx, seq)
		}},
		{name: chatflow.StepTransferEvent, do: call(a.PublishTransferCompleted, in)},
		{name: chatflow.StepTransferComplete, do: func(ctx workflow.Context) error {
			return workflow.ExecuteActivity(ctx, a.FinishTransfer, *done).Get(ctx, nil)
		}},
	}
}

// Transfer is the transfer saga: money from one member of a room to another,
// then a transfer message in the room and transfer.completed on Kafka. Its
// workflow id is transfer-<transfer_id>.
//
// Order, and why. Steps: debit the sender → credit the recipient → post the
// message → publish → mark completed. Each money step is one ledger entry
// under the account's row lock, so no balance ever goes negative.
//
//   - The debit comes first: a sender without the money ends the saga
//     'failed' with insufficient_funds and nothing moved. Its compensation,
//     a refund, only adds money, so it can always run.
//   - The credit comes before the message, so a recipient whose account is
//     closed or gone (the one way a credit fails for good) leaves no
//     message in the room: the sender is refunded, 'compensated'.
//   - The message is the pivot. It comes after both money moves, so the
//     room never shows a transfer whose money did not move; once it is
//     posted the transfer stands, and the steps after it (publish, mark
//     completed) only go forward.
//   - A message that cannot be posted for good (the sender left the room)
//     compensates both moves: the credit is taken back (a negative
//     transfer_refund on the recipient) and the sender refunded. Taking the
//     credit back may find it spent already; a balance must not go negative,
//     so then the reversal is refused and the saga goes forward instead: the
//     transfer stands, completed without its room message, with the post's
//     error recorded. Money is never created or destroyed either way.
//
// Every step retries without limit (TransferRetry) until it succeeds or its
// activity gives a verdict; compensations run on a disconnected context and
// their failures (verdicts) are collected into the outcome, not only logged.
// The outcome is written to customer.transfers (the status route reads it)
// and returned; a transfer that did not complete also fails the workflow
// (its type the domain code, its details the final TransferProgress), so
// the Web UI shows which transfers did not go through.
func Transfer(ctx workflow.Context, in chatflow.TransferInput) (chatflow.TransferProgress, error) {
	var seq int64
	done := chatflow.TransferOutcome{TransferID: in.TransferID, Status: chatflow.StatusCompleted}
	steps := transferSteps(in, &seq, &done)
	p := chatflow.TransferProgress{TransferID: in.TransferID.String(), Status: chatflow.StatusRunning}
	for _, st := range steps {
		p.Steps = append(p.Steps, chatflow.StepStatus{Name: st.name, Status: chatflow.StatusPending})
	}
	if err := workflow.SetQueryHandler(ctx, QueryTransferProgress, func() (chatflow.TransferProgress, error) {
		return p, nil
	}); err != nil {
		return p, err
	}
	show := func() { workflow.SetCurrentDetails(ctx, transferDetails(p)) }
	// Compensations run on a disconnected context: a cancelled saga still
	// returns the money.
	dctx, _ := workflow.NewDisconnectedContext(ctx)
	run := func(c workflow.Context, i int, what string, fn func(workflow.Context) error) error {
		summary := fmt.Sprintf("step %d/%d: %s", i+1, len(steps), what)
		actx := workflow.WithActivityOptions(c, workflow.ActivityOptions{
			StartToCloseTimeout: stepTimeout, RetryPolicy: TransferRetry, Summary: summary,
		})
		return untilVerdict(ctx, actx, summary, TransferRetry.MaximumInterval, fn, nil)
	}
	// forward runs the steps from the given one on. A verdict up to the
	// pivot stops it (failedAt); after the pivot the transfer stands, so a
	// verdict there (not expected: publishing and recording only retry) is
	// collected and the saga goes on.
	var notes []string
	forward := func(from int) (failedAt int, err error) {
		for i := from; i < len(steps); i++ {
			p.Steps[i].Status = chatflow.StatusRunning
			show()
			if err := run(ctx, i, steps[i].name, steps[i].do); err != nil {
				p.Steps[i].Status, p.Steps[i].Error = chatflow.StatusFailed, errorMessage(err)
				show()
				if i <= transferPivot {
					return i, err
				}
				notes = append(notes, steps[i].name+": "+errorMessage(err))
				continue
			}
			p.Steps[i].Status = chatflow.StatusCompleted
			if i == transferPivot {
				p.MessageSeq = seq
			}
			show()
		}
		return -1, nil
	}
	stands := func() (chatflow.TransferProgress, error) {
		p.Status, p.ErrorCode, p.Error = chatflow.StatusCompleted, done.ErrorCode, joinMessages(done.Error, strings.Join(notes, "\n"))
		show()
		return p, nil
	}

	failedAt, err := forward(0)
	if failedAt < 0 {
		return stands()
	}
	code, msg := errorCode(err), errorMessage(err)
	status := chatflow.StatusCompensated
	if failedAt == 0 {
		status = chatflow.StatusFailed // nothing moved
	}
	var undoErrs []error
	for i := failedAt - 1; i >= 0; i-- {
		st := steps[i]
		uerr := run(dctx, i, "undo "+st.name, st.undo)
		if uerr == nil {
			p.Steps[i].Status = chatflow.StatusCompensated
			show()
			continue
		}
		if i == 1 && errorCode(uerr) == chatflow.ECodeInsufficientFunds {
			// The recipient has spent the credit: the transfer stands
			// without its message (see the doc comment).
			workflow.GetLogger(ctx).Warn("credit spent before its reversal: the transfer stands", "transfer_id", in.TransferID, "error", msg)
			p.Steps[i].Error = "undo refused: " + errorMessage(uerr)
			done.ErrorCode = code
			done.Error = fmt.Sprintf("the transfer message could not be posted (%s); the recipient had already spent the credit, so the transfer stands", msg)
			forward(transferPivot + 1)
			return stands()
		}
		workflow.GetLogger(ctx).Error("compensation failed", "transfer_id", in.TransferID, "step", st.name, "error", uerr)
		undoErrs = append(undoErrs, fmt.Errorf("undo %s: %s", st.name, errorMessage(uerr)))
		p.Steps[i].Status = chatflow.StatusCompensationFailed
		p.Steps[i].Error = joinMessages(p.Steps[i].Error, "undo: "+errorMessage(uerr))
		show()
	}
	if undoErr := errors.Join(undoErrs...); undoErr != nil {
		// Money taken could not be returned: not 'compensated'.
		status, msg = chatflow.StatusFailed, joinMessages(msg, undoErr.Error())
	}

	// The row records the outcome; the workflow fails with it.
	var a *activities.Activities
	out := chatflow.TransferOutcome{TransferID: in.TransferID, Status: status, ErrorCode: code, Error: msg}
	if ferr := run(dctx, len(steps)-1, "record "+status, call(a.FinishTransfer, out)); ferr != nil {
		workflow.GetLogger(ctx).Error("transfer outcome not recorded", "transfer_id", in.TransferID, "error", ferr)
		msg = joinMessages(msg, "record outcome: "+errorMessage(ferr))
	}
	p.Status, p.ErrorCode, p.Error = status, code, msg
	show()
	return p, temporal.NewNonRetryableApplicationError(msg, code, nil, p)
}

// transferDetails renders the saga's state as markdown for the Web UI.
func transferDetails(p chatflow.TransferProgress) string {
	var b strings.Builder
	fmt.Fprintf(&b, "**transfer %s**: %s\n\n", p.TransferID, p.Status)
	for i, st := range p.Steps {
		fmt.Fprintf(&b, "%d. `%s` — %s", i+1, st.Name, st.Status)
		if st.Error != "" {
			fmt.Fprintf(&b, " (%s)", strings.ReplaceAll(st.Error, "\n", "; "))
		}
		b.WriteString("\n")
	}
	if p.MessageSeq != 0 {
		fmt.Fprintf(&b, "\nroom message seq %d\n", p.MessageSeq)
	}
	if p.Error != "" {
		fmt.Fprintf(&b, "\nerror (%s): %s\n", p.ErrorCode, strings.ReplaceAll(p.Error, "\n", "; "))
	}
	return b.String()
}
