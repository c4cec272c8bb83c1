package tests

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"

	"github.com/google/uuid"

	"github.com/chatflow/chatflow"
	"github.com/chatflow/chatflow/internal/testenv"
)

// TestTransferConcurrentBothWays: 50 transfers at once between two users in
// both directions with balances too small for all of them. No balance ever
// goes negative (every ledger entry's balance_after, in order), the sum is
// conserved, and each transfer ends completed or failed with
// insufficient_funds, with ledger entries and a room message exactly for
// the completed ones.
func TestTransferConcurrentBothWays(t *testing.T) {
	env := testenv.Open(t)
	env.Worker(t, nil)
	n := env.StartNode(t, testenv.NodeConfig{})
	a, b := n.SignUp(t, "tca"), n.SignUp(t, "tcb")
	room := n.CreateRoom(t, a, b)
	move(t, n, a, "deposits", 200, "seed", nil)
	move(t, n, b, "deposits", 100, "seed", nil)

	const N = 50
	ids := make([]string, N)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range N {
		wg.Add(1)
		go func() {
			defer wg.Done()
			from, to := a, b
			if i%2 == 1 {
				from, to = b, a
			}
			<-start
			r, err := acctDo(n, "POST", "/api/v1/rooms/"+room+"/transfers", from.Access,
				map[string]any{"to_user_id": to.ID, "amount": 60 + 7*(i%10), "idempotency_key": fmt.Sprintf("k%d", i)})
			var tr transferJSON
			if err == nil && r.Status == 202 && json.Unmarshal(r.Body, &tr) == nil {
				ids[i] = tr.TransferID
			} else {
				t.Errorf("transfer %d: %v %d %s", i, err, r.Status, r.Body)
			}
		}()
	}
	close(start)
	wg.Wait()

	completed, failed := map[string]bool{}, 0
	for i, id := range ids {
		if id == "" {
			continue
		}
		u := a
		if i%2 == 1 {
			u = b
		}
		tr := awaitTransfer(t, n, u, id)
		switch {
		case tr.Status == chatflow.StatusCompleted && tr.ErrorCode == "":
			completed[id] = true
		case tr.Status == chatflow.StatusFailed && tr.ErrorCode == chatflow.ECodeInsufficientFunds:
			failed++
		default:
			t.Errorf("transfer %d ended %s %s: %s", i, tr.Status, tr.ErrorCode, tr.Error)
		}
	}
	t.Logf("%d completed, %d failed with insufficient_funds", len(completed), failed)
	if len(completed) == 0 || failed == 0 {
		t.Errorf("%d completed, %d failed: the test should exercise both", len(completed), failed)
	}

	ba, bb := balanceOf(t, n, a), balanceOf(t, n, b)
	if ba+bb != 300 || ba < 0 || bb < 0 {
		t.Errorf("balances %d + %d, want a sum of 300", ba, bb)
	}
	la, lb := fullLedger(t, n, a), fullLedger(t, n, b)
	checkLedger(t, a.Username, la, ba)
	checkLedger(t, b.Username, lb, bb)
	for i, id := range ids {
		from, to := la, lb
		if i%2 == 1 {
			from, to = lb, la
		}
		eo, ei := entriesOf(from, id), entriesOf(to, id)
		if completed[id] != (len(eo) == 1 && eo[chatflow.LegOut].Amount < 0) || completed[id] != (len(ei) == 1 && ei[chatflow.LegIn].Amount > 0) {
			t.Errorf("transfer %d (completed %v): sender entries %v, recipient entries %v", i, completed[id], eo, ei)
		}
	}
	msgs := transferMessages(t, n, a, room)
	seen := map[string]bool{}
	for _, m := range msgs {
		var body chatflow.TransferBody
		_ = json.Unmarshal([]byte(m.Body), &body)
		if !completed[body.TransferID] || seen[body.TransferID] {
			t.Errorf("room message for transfer %s (completed %v, seen %v)", body.TransferID, completed[body.TransferID], seen[body.TransferID])
		}
		seen[body.TransferID] = true
	}
	if len(seen) != len(completed) {
		t.Errorf("%d transfer messages for %d completed transfers", len(seen), len(completed))
	}
}

// TestTransferCreditFailsCompensated: the recipient's account is closed
// when the saga credits it; the sender is refunded, both balances end as
// before, the sender's ledger shows the debit and the refund, no message
// reaches the room, and both parties see the transfer compensated.
func TestTransferCreditFailsCompensated(t *testing.T) {
	env := testenv.Open(t)
	env.Worker(t, nil)
	n := env.StartNode(t, testenv.NodeConfig{})
	a, b := n.SignUp(t, "tfa"), n.SignUp(t, "tfb")
	room := n.CreateRoom(t, a, b)
	move(t, n, a, "deposits", 400, "seed", nil)
	move(t, n, b, "deposits", 20, "seed", nil)
	ctx := context.Background()
	if _, err := env.Pool.Exec(ctx, `UPDATE customer.accounts SET closed_at = now() WHERE user_id = $1`, uuid.MustParse(b.ID)); err != nil {
		t.Fatal(err)
	}
	var tr transferJSON
	if r := postTransfer(t, n, a, room, b.ID, 150, "k", "rent", &tr); r.Status != 202 {
		t.Fatalf("transfer: %d %s", r.Status, r.Body)
	}
	got := awaitTransfer(t, n, a, tr.TransferID)
	if got.Status != chatflow.StatusCompensated || got.ErrorCode != chatflow.ECodeAccountClosed || got.MessageSeq != nil {
		t.Fatalf("transfer ended %+v", got)
	}
	if ba, bb := balanceOf(t, n, a), balanceOf(t, n, b); ba != 400 || bb != 20 {
		t.Errorf("balances %d / %d, want 400 / 20", ba, bb)
	}
	la := fullLedger(t, n, a)
	checkLedger(t, a.Username, la, 400)
	e := entriesOf(la, tr.TransferID)
	if len(e) != 2 || e[chatflow.LegOut].Amount != -150 || e[chatflow.LegRefund].Amount != 150 || e[chatflow.LegRefund].Kind != chatflow.TxTransferRefund ||
		e[chatflow.LegRefund].Counterparty == nil || e[chatflow.LegRefund].Counterparty.UserID != b.ID || la[0].Kind != chatflow.TxTransferRefund {
		t.Errorf("sender's entries of the transfer: %+v", e)
	}
	lb := fullLedger(t, n, b)
	checkLedger(t, b.Username, lb, 20)
	if len(entriesOf(lb, tr.TransferID)) != 0 {
		t.Errorf("the closed account got entries: %+v", lb)
	}
	if m := transferMessages(t, n, a, room); len(m) != 0 {
		t.Errorf("a compensated transfer posted %+v", m)
	}
	var seen transferJSON
	if r := acctCall(t, n, "GET", "/api/v1/transfers/"+tr.TransferID, b.Access, nil, &seen); r.Status != 200 || seen.Status != chatflow.StatusCompensated {
		t.Errorf("recipient's view: %d %s", r.Status, r.Body)
	}
}

// TestTransferMessageFailsCompensated: the sender leaves the room after the
// api accepted the transfer and before the saga runs (no worker meanwhile):
// the money moves, the message cannot be posted (not_member), so the credit
// is taken back and the sender refunded. Both ledgers show it.
func TestTransferMessageFailsCompensated(t *testing.T) {
	env := testenv.Open(t)
	stop := env.Worker(t, nil)
	n := env.StartNode(t, testenv.NodeConfig{})
	a, b := n.SignUp(t, "tma"), n.SignUp(t, "tmb")
	room := n.CreateRoom(t, a, b)
	move(t, n, a, "deposits", 400, "seed", nil)
	stop()

	var tr transferJSON
	if r := postTransfer(t, n, a, room, b.ID, 150, "k", "", &tr); r.Status != 202 {
		t.Fatalf("transfer: %d %s", r.Status, r.Body)
	}
	if r := acctCall(t, n, "DELETE", "/api/v1/rooms/"+room+"/members/me", a.Access, nil, nil); r.Status != 204 {
		t.Fatalf("leave: %d %s", r.Status, r.Body)
	}
	env.Worker(t, nil)
	got := awaitTransfer(t, n, a, tr.TransferID)
	if got.Status != chatflow.StatusCompensated || got.ErrorCode != chatflow.ECodeNotMember {
		t.Fatalf("transfer ended %+v", got)
	}
	if ba, bb := balanceOf(t, n, a), balanceOf(t, n, b); ba != 400 || bb != 0 {
		t.Errorf("balances %d / %d, want 400 / 0", ba, bb)
	}
	la, lb := fullLedger(t, n, a), fullLedger(t, n, b)
	checkLedger(t, a.Username, la, 400)
	checkLedger(t, b.Username, lb, 0)
	ea, eb := entriesOf(la, tr.TransferID), entriesOf(lb, tr.TransferID)
	if len(ea) != 2 || ea[chatflow.LegOut].Amount != -150 || ea[chatflow.LegRefund].Amount != 150 {
		t.Errorf("sender's entries: %+v", ea)
	}
	if len(eb) != 2 || eb[chatflow.LegIn].Amount != 150 || eb[chatflow.LegInReversal].Amount != -150 || eb[chatflow.LegInReversal].Kind != chatflow.TxTransferRefund {
		t.Errorf("recipient's entries: %+v", eb)
	}
	if m := transferMessages(t, n, b, room); len(m) != 0 {
		t.Errorf("a compensated transfer posted %+v", m)
	}
}
