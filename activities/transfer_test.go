package activities

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"
	"go.temporal.io/sdk/temporal"

	"github.com/chatflow/chatflow"
	"github.com/chatflow/chatflow/chat"
	"github.com/chatflow/chatflow/db"
	"github.com/chatflow/chatflow/ledger"
)

// verdictCode returns the domain code of a non-retryable activity error,
// "" for nil and "retryable" for anything else.
func verdictCode(err error) string {
	var app *temporal.ApplicationError
	switch {
	case err == nil:
		return ""
	case errors.As(err, &app) && app.NonRetryable():
		return app.Type()
	default:
		return "retryable"
	}
}

// newTransfer opens accounts for two fresh users (the sender with balance
// fund), records a pending transfer of amount between them and returns it.
func newTransfer(t *testing.T, a *Activities, fund, amount int64) chatflow.TransferInput {
	t.Helper()
	ctx := context.Background()
	in := chatflow.TransferInput{TransferID: uuid.New(), FromID: uuid.New(), ToID: uuid.New(), RoomID: uuid.New(), Amount: amount, Memo: "m"}
	for _, u := range []uuid.UUID{in.FromID, in.ToID} {
		if err := a.Queries.OpenAccount(ctx, u); err != nil {
			t.Fatal(err)
		}
	}
	if fund > 0 {
		if _, err := ledger.Post(ctx, a.Pool, ledger.Entry{UserID: in.FromID, Amount: fund, Kind: chatflow.TxDeposit, Key: "fund"}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := a.Queries.InsertTransfer(ctx, db.InsertTransferParams{
		ID: in.TransferID, FromID: in.FromID, ToID: in.ToID, RoomID: in.RoomID, Amount: amount, Memo: in.Memo, IdempotencyKey: "k",
	}); err != nil {
		t.Fatal(err)
	}
	return in
}

func balance(t *testing.T, a *Activities, u uuid.UUID) (int64, int64) {
	t.Helper()
	acct, err := a.Queries.GetAccount(context.Background(), u)
	if err != nil {
		t.Fatal(err)
	}
	return acct.Balance, acct.LastEntry
}

func closeAccount(t *testing.T, a *Activities, u uuid.UUID) {
	t.Helper()
	if _, err := a.Pool.Exec(context.Background(), `UPDATE customer.accounts SET closed_at = now() WHERE user_id = $1`, u); err != nil {
		t.Fatal(err)
	}
}

func TestTransferLegsAreIdempotent(t *testing.T) {
	a, _ := testActivities(t)
	ctx := context.Background()
	in := newTransfer(t, a, 100, 60)
	for range 2 { // a retry of a leg that committed moves nothing
		if err := a.DebitSender(ctx, in); err != nil {
			t.Fatal(err)
		}
		if err := a.CreditRecipient(ctx, in); err != nil {
			t.Fatal(err)
		}
	}
	if b, e := balance(t, a, in.FromID); b != 40 || e != 2 {
		t.Errorf("sender: balance %d, last entry %d; want 40, 2", b, e)
	}
	if b, e := balance(t, a, in.ToID); b != 60 || e != 1 {
		t.Errorf("recipient: balance %d, last entry %d; want 60, 1", b, e)
	}
	for range 2 {
		if err := a.ReverseCredit(ctx, in); err != nil {
			t.Fatal(err)
		}
		if err := a.RefundSender(ctx, in); err != nil {
			t.Fatal(err)
		}
	}
	if b, _ := balance(t, a, in.FromID); b != 100 {
		t.Errorf("sender after refund: %d", b)
	}
	if b, _ := balance(t, a, in.ToID); b != 0 {
		t.Errorf("recipient after reversal: %d", b)
	}
	tx, err := a.Queries.GetTransactionByKey(ctx, db.GetTransactionByKeyParams{UserID: in.ToID, IdempotencyKey: chatflow.TransferKey(in.TransferID, chatflow.LegInReversal)})
	if err != nil || tx.Amount != -60 || tx.Kind != chatflow.TxTransferRefund || ledger.ID(tx.CounterpartyID) != in.FromID || ledger.ID(tx.TransferID) != in.TransferID {
		t.Errorf("reversal entry %+v, %v", tx, err)
	}
}

func TestTransferLegsRefuse(t *testing.T) {
	a, _ := testActivities(t)
	ctx := context.Background()

	// Not enough money: a verdict, and nothing written.
	in := newTransfer(t, a, 50, 60)
	if c := verdictCode(a.DebitSender(ctx, in)); c != chatflow.ECodeInsufficientFunds {
		t.Errorf("debit over the balance: %q", c)
	}
	if b, e := balance(t, a, in.FromID); b != 50 || e != 1 {
		t.Errorf("refused debit moved the account: %d, %d", b, e)
	}

	// A closed recipient refuses the credit; the sender's refund lands even
	// on a closed account (the money goes back where it came from).
	in = newTransfer(t, a, 100, 60)
	if err := a.DebitSender(ctx, in); err != nil {
		t.Fatal(err)
	}
	closeAccount(t, a, in.ToID)
	if c := verdictCode(a.CreditRecipient(ctx, in)); c != chatflow.ECodeAccountClosed {
		t.Errorf("credit into a closed account: %q", c)
	}
	closeAccount(t, a, in.FromID)
	if err := a.RefundSender(ctx, in); err != nil {
		t.Errorf("refund into a closed account: %v", err)
	}
	if b, _ := balance(t, a, in.FromID); b != 100 {
		t.Errorf("sender after the refund: %d", b)
	}

	// A missing account is a verdict too.
	in = newTransfer(t, a, 100, 60)
	in.ToID = uuid.New()
	if c := verdictCode(a.CreditRecipient(ctx, in)); c != chatflow.ECodeNotFound {
		t.Errorf("credit into no account: %q", c)
	}

	// A credit already spent cannot be taken back: no balance goes negative.
	in = newTransfer(t, a, 100, 60)
	if err := a.DebitSender(ctx, in); err != nil {
		t.Fatal(err)
	}
	if err := a.CreditRecipient(ctx, in); err != nil {
		t.Fatal(err)
	}
	if _, err := ledger.Post(ctx, a.Pool, ledger.Entry{UserID: in.ToID, Amount: -30, Kind: chatflow.TxWithdrawal, Key: "spend"}); err != nil {
		t.Fatal(err)
	}
	if c := verdictCode(a.ReverseCredit(ctx, in)); c != chatflow.ECodeInsufficientFunds {
		t.Errorf("reversal of a spent credit: %q", c)
	}
	if b, _ := balance(t, a, in.ToID); b != 30 {
		t.Errorf("recipient after a refused reversal: %d", b)
	}
}

// fakeRooms is a RoomPoster answering from a script.
type fakeRooms struct {
	calls int
	err   error
	last  struct {
		sender                 uuid.UUID
		room, cmid, kind, body string
	}
}

func (f *fakeRooms) AcceptKind(_ context.Context, sender uuid.UUID, room, cmid, kind, body string) (chat.Accepted, error) {
	f.calls++
	f.last.sender, f.last.room, f.last.cmid, f.last.kind, f.last.body = sender, room, cmid, kind, body
	if f.err != nil {
		return chat.Accepted{}, f.err
	}
	return chat.Accepted{Msg: chatflow.Message{Seq: 7}}, nil
}

func TestPostTransferMessage(t *testing.T) {
	a, _ := testActivities(t)
	ctx := context.Background()
	rooms := &fakeRooms{}
	a.Rooms = rooms
	in := newTransfer(t, a, 0, 25)
	for range 2 {
		seq, err := a.PostTransferMessage(ctx, in)
		if err != nil || seq != 7 {
			t.Fatalf("post: %d, %v", seq, err)
		}
	}
	if rooms.calls != 1 {
		t.Errorf("a transfer with its seq recorded posted again (%d calls)", rooms.calls)
	}
	l := rooms.last
	if l.sender != in.FromID || l.room != in.RoomID.String() || l.cmid != chatflow.TransferClientMsgID(in.TransferID) || l.kind != chatflow.KindTransfer ||
		l.body != `{"transfer_id":"`+in.TransferID.String()+`","from_user_id":"`+in.FromID.String()+`","to_user_id":"`+in.ToID.String()+`","amount":25,"memo":"m"}` {
		t.Errorf("posted %+v", l)
	}
	tr, err := a.Queries.GetTransfer(ctx, in.TransferID)
	if err != nil || tr.MessageSeq == nil || *tr.MessageSeq != 7 {
		t.Errorf("message_seq not recorded: %+v %v", tr, err)
	}

	in = newTransfer(t, a, 0, 25)
	rooms.err = chatflow.Errorf(chatflow.ECodeNotMember, "left")
	if _, err := a.PostTransferMessage(ctx, in); verdictCode(err) != chatflow.ECodeNotMember {
		t.Errorf("sender not a member: %v", err)
	}
	rooms.err = chatflow.Errorf(chatflow.ECodeUnavailable, "redis away")
	if _, err := a.PostTransferMessage(ctx, in); verdictCode(err) != "retryable" {
		t.Errorf("redis away: %v", err)
	}
}

func TestFinishTransferOnce(t *testing.T) {
	a, _ := testActivities(t)
	ctx := context.Background()
	in := newTransfer(t, a, 0, 25)
	out := chatflow.TransferOutcome{TransferID: in.TransferID, Status: chatflow.StatusCompensated, ErrorCode: chatflow.ECodeAccountClosed, Error: "closed"}
	for range 2 {
		if err := a.FinishTransfer(ctx, out); err != nil {
			t.Fatal(err)
		}
	}
	tr, err := a.Queries.GetTransfer(ctx, in.TransferID)
	if err != nil || tr.Status != out.Status || tr.ErrorCode != out.ErrorCode || tr.Error != "closed" || tr.FinishedAt == nil || time.Since(*tr.FinishedAt) > time.Minute {
		t.Errorf("finished transfer %+v %v", tr, err)
	}
	out.Status = chatflow.StatusCompleted
	if c := verdictCode(a.FinishTransfer(ctx, out)); c != chatflow.ECodeConflict {
		t.Errorf("finishing again otherwise: %q", c)
	}
	out.TransferID = uuid.New()
	if c := verdictCode(a.FinishTransfer(ctx, out)); c != chatflow.ECodeNotFound {
		t.Errorf("finishing no transfer: %q", c)
	}
}
