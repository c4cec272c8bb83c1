package chatflow

import (
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
)

// Money: the ledger's sign convention, transfers and their saga's payloads.
//
// Sign convention: every ledger entry's amount is signed. Credits
// (deposit, transfer_in, the sender's transfer_refund) are positive, debits
// (withdrawal, transfer_out, the recipient's reversal, also of kind
// transfer_refund) negative, so that down an account's ledger
// balance_after[n] = balance_after[n-1] + amount[n]. Requests always carry
// positive amounts; the kind gives the sign.

// Ledger entry kinds (customer.transactions.kind).
const (
	TxDeposit        = "deposit"
	TxWithdrawal     = "withdrawal"
	TxTransferOut    = "transfer_out"
	TxTransferIn     = "transfer_in"
	TxTransferRefund = "transfer_refund"
)

// Limits of money requests.
const (
	MaxAmount    = 1_000_000_000 // one deposit, withdrawal or transfer
	MaxMemoChars = 200           // a transfer's memo, in characters
)

// TransferKeyPrefix starts the idempotency keys of the transfer saga's
// ledger entries ("transfer:<id>:out" ...). Clients share the same key
// space (one UNIQUE per account), so their keys may not start with it.
const TransferKeyPrefix = "transfer:"

// TransferKey is the idempotency key of one leg of a transfer in the ledger:
// "out" (sender's debit), "in" (recipient's credit), "refund" (the sender's
// refund) and "in-reversal" (the recipient's credit taken back).
func TransferKey(id uuid.UUID, leg string) string { return TransferKeyPrefix + id.String() + ":" + leg }

// Transfer ledger legs.
const (
	LegOut        = "out"
	LegIn         = "in"
	LegRefund     = "refund"
	LegInReversal = "in-reversal"
)

// ValidAmount checks a requested amount: 1 to MaxAmount.
func ValidAmount(n int64) error {
	if n <= 0 || n > MaxAmount {
		return Errorf(ECodeValidation, "amount must be 1-%d", MaxAmount)
	}
	return nil
}

// ValidMemo checks a transfer memo: 0–200 characters of valid UTF-8 on one
// line.
func ValidMemo(s string) error {
	if err := ValidText("memo", s, false); err != nil {
		return err
	}
	if utf8.RuneCountInString(s) > MaxMemoChars {
		return Errorf(ECodeValidation, "memo must be at most %d characters", MaxMemoChars)
	}
	return nil
}

// ValidClientKey checks an idempotency key a client chose: a valid key
// outside the prefix the transfer saga keeps for itself.
func ValidClientKey(k string) error {
	if err := ValidIdempotencyKey(k); err != nil {
		return err
	}
	if len(k) >= len(TransferKeyPrefix) && k[:len(TransferKeyPrefix)] == TransferKeyPrefix {
		return Errorf(ECodeValidation, "idempotency_key must not start with %q", TransferKeyPrefix)
	}
	return nil
}

// WorkflowTransfer is the registered name of the transfer saga; it runs on
// the sign-up task queue (the sagas' pool).
const WorkflowTransfer = "Transfer"

// WorkflowResumeTransfers is the registered name of the scheduled pass that
// starts the sagas of transfers left pending (workflows.ResumeTransfers).
const WorkflowResumeTransfers = "ResumeTransfers"

// TransferWorkflowID derives the transfer saga's workflow ID from the
// transfer id, so a repeated start runs it once; it reads well in the Web UI.
func TransferWorkflowID(id uuid.UUID) string { return "transfer-" + id.String() }

// TransferClientMsgID is the client_msg_id of a transfer's room message: a
// retried post is deduplicated like any resend.
func TransferClientMsgID(id uuid.UUID) string { return "transfer-" + id.String() }

// Transfer saga step names, in execution order.
const (
	StepTransferDebit    = "customer.debit_sender"
	StepTransferCredit   = "customer.credit_recipient"
	StepTransferMessage  = "chat.post_transfer"
	StepTransferEvent    = "kafka.transfer_completed"
	StepTransferComplete = "customer.complete_transfer"
)

// TransferSteps lists the transfer saga's steps in order.
var TransferSteps = []string{StepTransferDebit, StepTransferCredit, StepTransferMessage, StepTransferEvent, StepTransferComplete}

// TransferInput is the transfer saga's input: the customer.transfers row
// the api inserted (pending) before starting the saga.
type TransferInput struct {
	TransferID  uuid.UUID `json:"transfer_id"`
	FromID      uuid.UUID `json:"from_user_id"`
	ToID        uuid.UUID `json:"to_user_id"`
	RoomID      uuid.UUID `json:"room_id"`
	Amount      int64     `json:"amount"`
	Memo        string    `json:"memo"`
	RequestedAt time.Time `json:"requested_at"`
}

// TransferOutcome is the final state the saga records on the transfer's
// row: status completed, failed (nothing moved) or compensated (moved and
// moved back), with the domain code and text of the failure.
type TransferOutcome struct {
	TransferID uuid.UUID `json:"transfer_id"`
	Status     string    `json:"status"`
	ErrorCode  string    `json:"error_code,omitempty"`
	Error      string    `json:"error,omitempty"`
}

// TransferProgress is what the transfer saga's progress query and result
// carry: the outcome so far and every step's status.
type TransferProgress struct {
	TransferID string       `json:"transfer_id"`
	Status     string       `json:"status"`
	Steps      []StepStatus `json:"steps"`
	MessageSeq int64        `json:"message_seq,omitempty"`
	ErrorCode  string       `json:"error_code,omitempty"`
	Error      string       `json:"error,omitempty"`
}

// TransferBody is the body of a transfer's room message (kind transfer).
type TransferBody struct {
	TransferID string `json:"transfer_id"`
	FromUserID string `json:"from_user_id"`
	ToUserID   string `json:"to_user_id"`
	Amount     int64  `json:"amount"`
	Memo       string `json:"memo"`
}

// TransferCompleted is the event published on the transfer.events topic
// once a transfer's money has moved and its message is in the room.
type TransferCompleted struct {
	Type       string    `json:"type"` // "transfer.completed"
	EventID    string    `json:"event_id"`
	TransferID string    `json:"transfer_id"`
	FromUserID string    `json:"from_user_id"`
	ToUserID   string    `json:"to_user_id"`
	RoomID     string    `json:"room_id"`
	Amount     int64     `json:"amount"`
	Memo       string    `json:"memo"`
	MessageSeq int64     `json:"message_seq,omitempty"`
	OccurredAt time.Time `json:"occurred_at"`
}

// TopicTransferEvents carries transfer.completed, keyed by the sender's user
// id (at least once; consumers dedupe on event_id).
const TopicTransferEvents = "transfer.events"
