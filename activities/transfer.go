package activities

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"go.temporal.io/sdk/temporal"

	"github.com/chatflow/chatflow"
	"github.com/chatflow/chatflow/db"
	"github.com/chatflow/chatflow/events"
	"github.com/chatflow/chatflow/ledger"
)

// The transfer saga's steps. Each ledger leg is one ledger.Post keyed by
// chatflow.TransferKey(id, leg): a retry of a leg that committed finds its
// entry and moves nothing. Domain refusals (insufficient_funds,
// account_closed, not_found, not_member) are non-retryable verdicts: the
// step did nothing and the saga decides what follows; anything else
// (Postgres, Redis away) is retried without limit.

// DebitSender takes the amount from the sender (a transfer_out entry).
func (a *Activities) DebitSender(ctx context.Context, in chatflow.TransferInput) error {
	return a.transferLeg(ctx, in, chatflow.LegOut, ledger.Entry{
		UserID: in.FromID, Amount: -in.Amount, Kind: chatflow.TxTransferOut, CounterpartyID: in.ToID,
	})
}

// CreditRecipient gives the amount to the recipient (a transfer_in entry);
// a closed or missing account refuses it.
func (a *Activities) CreditRecipient(ctx context.Context, in chatflow.TransferInput) error {
	return a.transferLeg(ctx, in, chatflow.LegIn, ledger.Entry{
		UserID: in.ToID, Amount: in.Amount, Kind: chatflow.TxTransferIn, CounterpartyID: in.FromID,
	})
}

// RefundSender compensates DebitSender: the amount goes back to the sender
// (a positive transfer_refund entry), even if the account was closed since.
func (a *Activities) RefundSender(ctx context.Context, in chatflow.TransferInput) error {
	return a.transferLeg(ctx, in, chatflow.LegRefund, ledger.Entry{
		UserID: in.FromID, Amount: in.Amount, Kind: chatflow.TxTransferRefund, CounterpartyID: in.ToID, IntoClosed: true,
	})
}

// ReverseCredit compensates CreditRecipient: the amount is taken back from
// the recipient (a negative transfer_refund entry). It is refused with
// insufficient_funds when the recipient has already spent it: no balance
// goes negative, and the saga then lets the transfer stand.
func (a *Activities) ReverseCredit(ctx context.Context, in chatflow.TransferInput) error {
	return a.transferLeg(ctx, in, chatflow.LegInReversal, ledger.Entry{
		UserID: in.ToID, Amount: -in.Amount, Kind: chatflow.TxTransferRefund, CounterpartyID: in.FromID,
	})
}

func (a *Activities) transferLeg(ctx context.Context, in chatflow.TransferInput, leg string, e ledger.Entry) error {
	e.Key, e.TransferID, e.Memo = chatflow.TransferKey(in.TransferID, leg), in.TransferID, in.Memo
	res, err := ledger.Post(ctx, a.Pool, e)
	var de *chatflow.Error
	if errors.As(err, &de) {
		return domainFailure(de)
	}
	if err != nil {
		return err
	}
	if res.Replayed && ledger.ID(res.Tx.TransferID) != in.TransferID {
		// Clients cannot choose keys with the transfer prefix, so this is
		// not expected; moving nothing is the safe answer.
		return domainFailure(chatflow.Errorf(chatflow.ECodeConflict, "ledger key %s belongs to another entry", e.Key))
	}
	return nil
}

// PostTransferMessage posts the transfer into its room's sequence as a
// message of kind transfer sent by the sender, through the normal message
// path (live on sockets, in history, after sync), and records its seq on
// the transfer. The client_msg_id is derived from the transfer, so a retry
// returns the first message; a transfer that has its seq already posts
// nothing. A sender who is no longer a member gets not_member (a verdict).
func (a *Activities) PostTransferMessage(ctx context.Context, in chatflow.TransferInput) (int64, error) {
	t, err := a.Queries.GetTransfer(ctx, in.TransferID)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, temporal.NewNonRetryableApplicationError(fmt.Sprintf("transfer %s not found", in.TransferID), chatflow.ECodeNotFound, nil)
	}
	if err != nil {
		return 0, err
	}
	if t.MessageSeq != nil {
		return *t.MessageSeq, nil
	}
	body, err := json.Marshal(chatflow.TransferBody{
		TransferID: in.TransferID.String(), FromUserID: in.FromID.String(), ToUserID: in.ToID.String(),
		Amount: in.Amount, Memo: in.Memo,
	})
	if err != nil {
		return 0, err
	}
	acc, err := a.Rooms.AcceptKind(ctx, in.FromID, in.RoomID.String(), chatflow.TransferClientMsgID(in.TransferID), chatflow.KindTransfer, string(body))
	var de *chatflow.Error
	if errors.As(err, &de) && de.Code != chatflow.ECodeUnavailable && de.Code != chatflow.ECodeInternal {
		return 0, domainFailure(de)
	}
	if err != nil {
		return 0, err
	}
	if _, err := a.Queries.SetTransferMessageSeq(ctx, db.SetTransferMessageSeqParams{ID: in.TransferID, MessageSeq: &acc.Msg.Seq}); err != nil {
		return 0, err
	}
	return acc.Msg.Seq, nil
}

// PublishTransferCompleted publishes transfer.completed on
// chatflow.TopicTransferEvents, keyed by the sender. The event id is derived
// from the transfer, so consumers drop the copies a retry may produce.
func (a *Activities) PublishTransferCompleted(ctx context.Context, in chatflow.TransferInput) error {
	t, err := a.Queries.GetTransfer(ctx, in.TransferID)
	if err != nil {
		return err
	}
	ev := chatflow.TransferCompleted{
		Type: "transfer.completed", EventID: in.TransferID.String() + ":transfer.completed", TransferID: in.TransferID.String(),
		FromUserID: in.FromID.String(), ToUserID: in.ToID.String(), RoomID: in.RoomID.String(), Amount: in.Amount,
		Memo: in.Memo, OccurredAt: time.Now().UTC(),
	}
	if t.MessageSeq != nil {
		ev.MessageSeq = *t.MessageSeq
	}
	raw, err := json.Marshal(ev)
	if err != nil {
		return err
	}
	return a.Events.Publish(ctx, events.Record{Topic: chatflow.TopicTransferEvents, Key: []byte(in.FromID.String()), Value: raw})
}

// FinishTransfer records the saga's outcome on the transfer's row, once: a
// row already finished the same way is a retry's success; one finished
// otherwise, or missing, is a verdict.
func (a *Activities) FinishTransfer(ctx context.Context, out chatflow.TransferOutcome) error {
	n, err := a.Queries.FinishTransfer(ctx, db.FinishTransferParams{
		ID: out.TransferID, Status: out.Status, ErrorCode: out.ErrorCode, Error: out.Error,
	})
	if err != nil || n > 0 {
		return err
	}
	t, err := a.Queries.GetTransfer(ctx, out.TransferID)
	if errors.Is(err, pgx.ErrNoRows) {
		return temporal.NewNonRetryableApplicationError(fmt.Sprintf("transfer %s not found", out.TransferID), chatflow.ECodeNotFound, nil)
	}
	if err != nil {
		return err
	}
	if t.Status != out.Status {
		return temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("transfer %s is already %s", out.TransferID, t.Status), chatflow.ECodeConflict, nil)
	}
	return nil
}

// StaleTransfers lists, oldest first and at most 500, the transfers of the
// last week still pending TransferResumeAfter after they were recorded, as
// the inputs of their sagas: those the api recorded but could not start
// (it answered 503 and the sender did not repeat the request), and those
// whose saga is simply still running, which ResumeTransfers finds started
// already. A saga terminated from outside leaves its transfer pending; the
// week's bound keeps such rows from filling every pass for good.
func (a *Activities) StaleTransfers(ctx context.Context) ([]chatflow.TransferInput, error) {
	now := time.Now()
	rows, err := a.Queries.ListStalePendingTransfers(ctx, db.ListStalePendingTransfersParams{
		Before: now.Add(-a.Cfg.TransferResumeAfter), Since: now.Add(-7 * 24 * time.Hour), Lim: 500,
	})
	if err != nil {
		return nil, err
	}
	out := make([]chatflow.TransferInput, len(rows))
	for i, t := range rows {
		out[i] = chatflow.TransferInput{
			TransferID: t.ID, FromID: t.FromID, ToID: t.ToID, RoomID: t.RoomID, Amount: t.Amount, Memo: t.Memo,
			RequestedAt: t.CreatedAt.UTC(),
		}
	}
	return out, nil
}
