package tests

import (
	"context"
	"fmt"
	"net/url"
	"sync"
	"testing"

	"github.com/google/uuid"

	"github.com/chatflow/chatflow"
	"github.com/chatflow/chatflow/internal/testenv"
)

// ledgerTx is one ledger entry with every field the ledger view has.
type ledgerTx struct {
	TransactionID  string `json:"transaction_id"`
	Entry          int64  `json:"entry"`
	Amount         int64  `json:"amount"`
	BalanceAfter   int64  `json:"balance_after"`
	Kind           string `json:"kind"`
	IdempotencyKey string `json:"idempotency_key"`
	Counterparty   *struct {
		UserID   string `json:"user_id"`
		Username string `json:"username"`
	} `json:"counterparty"`
	TransferID string `json:"transfer_id"`
	Memo       string `json:"memo"`
}

// fullLedger reads u's whole ledger, newest first, in pages of 7.
func fullLedger(t testing.TB, n *testenv.Node, u testenv.User) []ledgerTx {
	t.Helper()
	var all []ledgerTx
	cur := ""
	for page := 0; ; page++ {
		if page > 1000 {
			t.Fatal("ledger paging does not end")
		}
		path := "/api/v1/me/account/transactions?limit=7"
		if cur != "" {
			path += "&cursor=" + url.QueryEscape(cur)
		}
		var p struct {
			Transactions []ledgerTx `json:"transactions"`
			NextCursor   string     `json:"next_cursor"`
		}
		if r := acctCall(t, n, "GET", path, u.Access, nil, &p); r.Status != 200 {
			t.Fatalf("ledger of %s: %d %s", u.Username, r.Status, r.Body)
		}
		all = append(all, p.Transactions...)
		if p.NextCursor == "" {
			return all
		}
		cur = p.NextCursor
	}
}

// checkLedger checks a whole ledger, newest first, against the account's
// balance: entries numbered N..1 without a gap, each balance_after the one
// below plus the entry's amount (from 0), none negative, the newest equal to
// the balance.
func checkLedger(t testing.TB, who string, l []ledgerTx, balance int64) {
	t.Helper()
	bad := 0
	for i, tx := range l {
		below := int64(0)
		if i+1 < len(l) {
			below = l[i+1].BalanceAfter
		}
		if tx.Entry != int64(len(l)-i) || tx.BalanceAfter != below+tx.Amount || tx.BalanceAfter < 0 || tx.Amount == 0 {
			if bad++; bad <= 5 {
				t.Errorf("%s ledger[%d] = entry %d, amount %d, balance_after %d (entry below: balance_after %d; want entry %d)",
					who, i, tx.Entry, tx.Amount, tx.BalanceAfter, below, len(l)-i)
			}
		}
	}
	if bad > 0 {
		t.Errorf("%s: %d of %d ledger entries out of order or inconsistent", who, bad, len(l))
	}
	top := int64(0)
	if len(l) > 0 {
		top = l[0].BalanceAfter
	}
	if top != balance {
		t.Errorf("%s: newest balance_after %d, account balance %d", who, top, balance)
	}
}

// move posts a deposit or withdrawal.
func move(t testing.TB, n *testenv.Node, u testenv.User, kind string, amount int64, key string, out any) acctResp {
	t.Helper()
	return acctCall(t, n, "POST", "/api/v1/me/account/"+kind, u.Access, map[string]any{"amount": amount, "idempotency_key": key}, out)
}

// TestLedgerOrderConcurrent: deposits and withdrawals of one user at the
// same time; the ledger, newest first over many pages, still has strictly
// decreasing entries whose balance_after follow each other exactly.
func TestLedgerOrderConcurrent(t *testing.T) {
	env := testenv.Open(t)
	env.Worker(t, nil)
	n := env.StartNode(t, testenv.NodeConfig{})
	u := n.SignUp(t, "ledord")
	if r := move(t, n, u, "deposits", 1000, "seed", nil); r.Status != 201 {
		t.Fatalf("seed deposit: %d %s", r.Status, r.Body)
	}
	const deposits, withdrawals = 24, 16
	var wg sync.WaitGroup
	start := make(chan struct{})
	statuses := make([]int, deposits+withdrawals)
	for i := range deposits + withdrawals {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			kind, amount := "deposits", int64(10+i)
			if i >= deposits {
				kind, amount = "withdrawals", int64(40+i)
			}
			r, err := acctDo(n, "POST", "/api/v1/me/account/"+kind, u.Access, map[string]any{"amount": amount, "idempotency_key": fmt.Sprintf("c%d", i)})
			if err == nil {
				statuses[i] = r.Status
			}
		}()
	}
	close(start)
	wg.Wait()
	want := int64(1000)
	for i, st := range statuses {
		if st != 201 {
			t.Errorf("concurrent move %d: status %d", i, st)
		}
		if i < deposits {
			want += int64(10 + i)
		} else {
			want -= int64(40 + i)
		}
	}
	bal := balanceOf(t, n, u)
	if bal != want {
		t.Errorf("balance %d, want %d", bal, want)
	}
	l := fullLedger(t, n, u)
	if len(l) != 1+deposits+withdrawals {
		t.Fatalf("ledger has %d entries, want %d", len(l), 1+deposits+withdrawals)
	}
	checkLedger(t, u.Username, l, bal)
	for _, tx := range l {
		if (tx.Kind == chatflow.TxWithdrawal) != (tx.Amount < 0) {
			t.Errorf("entry %d: kind %s with amount %d (debits are negative)", tx.Entry, tx.Kind, tx.Amount)
		}
	}
}

func TestWithdrawals(t *testing.T) {
	env := testenv.Open(t)
	env.Worker(t, nil)
	n := env.StartNode(t, testenv.NodeConfig{})
	u := n.SignUp(t, "wd")
	if r := move(t, n, u, "deposits", 300, "in", nil); r.Status != 201 {
		t.Fatalf("deposit: %d %s", r.Status, r.Body)
	}

	var tx ledgerTx
	r := move(t, n, u, "withdrawals", 120, "out1", &tx)
	if r.Status != 201 || tx.Amount != -120 || tx.BalanceAfter != 180 || tx.Kind != chatflow.TxWithdrawal || tx.Entry != 2 {
		t.Fatalf("withdrawal: %d %s", r.Status, r.Body)
	}
	// A replay returns the first entry, moves nothing and says so.
	var again ledgerTx
	r = move(t, n, u, "withdrawals", 120, "out1", &again)
	if r.Status != 200 || r.Header.Get("Idempotent-Replayed") != "true" || again.TransactionID != tx.TransactionID {
		t.Errorf("replayed withdrawal: %d %q %s", r.Status, r.Header.Get("Idempotent-Replayed"), r.Body)
	}
	// The same key for another amount, or for a deposit: keys are per user
	// across every kind.
	wantProblem(t, "withdrawal key with another amount", move(t, n, u, "withdrawals", 121, "out1", nil), 409, chatflow.ECodeConflict)
	wantProblem(t, "withdrawal key reused by a deposit", move(t, n, u, "deposits", 120, "out1", nil), 409, chatflow.ECodeConflict)
	wantProblem(t, "deposit key reused by a withdrawal", move(t, n, u, "withdrawals", 300, "in", nil), 409, chatflow.ECodeConflict)
	if b := balanceOf(t, n, u); b != 180 {
		t.Errorf("balance after replays and conflicts %d, want 180", b)
	}

	// Never below zero: the exact balance goes, one more is refused.
	wantProblem(t, "withdrawal over the balance", move(t, n, u, "withdrawals", 181, "out2", nil), 409, chatflow.ECodeInsufficientFunds)
	if r := move(t, n, u, "withdrawals", 180, "out3", &tx); r.Status != 201 || tx.BalanceAfter != 0 {
		t.Errorf("withdraw everything: %d %s", r.Status, r.Body)
	}
	wantProblem(t, "withdrawal from zero", move(t, n, u, "withdrawals", 1, "out4", nil), 409, chatflow.ECodeInsufficientFunds)
	// A refused key is not used up: it works once there is money.
	move(t, n, u, "deposits", 500, "in2", nil)
	if r := move(t, n, u, "withdrawals", 181, "out2", &tx); r.Status != 201 {
		t.Errorf("refused key used again: %d %s", r.Status, r.Body)
	}

	// Ten concurrent withdrawals of 100 from 319: exactly three succeed.
	var wg sync.WaitGroup
	var mu sync.Mutex
	got := map[int]int{}
	for i := range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := acctDo(n, "POST", "/api/v1/me/account/withdrawals", u.Access, map[string]any{"amount": 100, "idempotency_key": fmt.Sprintf("race%d", i)})
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			got[r.Status]++
			mu.Unlock()
		}()
	}
	wg.Wait()
	if got[201] != 3 || got[409] != 7 {
		t.Errorf("concurrent withdrawals: %v, want 3×201 and 7×409", got)
	}
	bal := balanceOf(t, n, u)
	if bal != 19 {
		t.Errorf("balance %d, want 19", bal)
	}
	checkLedger(t, u.Username, fullLedger(t, n, u), bal)

	// Bad input.
	for _, c := range []struct {
		name string
		body any
	}{
		{"zero", map[string]any{"amount": 0, "idempotency_key": "v"}},
		{"negative", map[string]any{"amount": -5, "idempotency_key": "v"}},
		{"huge", map[string]any{"amount": 1_000_000_001, "idempotency_key": "v"}},
		{"no key", map[string]any{"amount": 5}},
		{"reserved key", map[string]any{"amount": 5, "idempotency_key": "transfer:" + uuid.NewString() + ":out"}},
		{"string amount", `{"amount":"5","idempotency_key":"v"}`},
	} {
		wantProblem(t, "withdrawal "+c.name, acctCall(t, n, "POST", "/api/v1/me/account/withdrawals", u.Access, c.body, nil), 422, chatflow.ECodeValidation)
	}
	wantProblem(t, "deposit with a reserved key",
		move(t, n, u, "deposits", 5, "transfer:"+uuid.NewString()+":refund", nil), 422, chatflow.ECodeValidation)
	wantProblem(t, "withdrawal without a token", acctCall(t, n, "POST", "/api/v1/me/account/withdrawals", "", map[string]any{"amount": 5, "idempotency_key": "v"}, nil),
		401, chatflow.ECodeUnauthorized)

	// A closed account moves no money either way; replays still answer.
	if _, err := env.Pool.Exec(context.Background(), `UPDATE customer.accounts SET closed_at = now() WHERE user_id = $1`, uuid.MustParse(u.ID)); err != nil {
		t.Fatal(err)
	}
	wantProblem(t, "withdrawal from a closed account", move(t, n, u, "withdrawals", 1, "closed1", nil), 409, chatflow.ECodeAccountClosed)
	wantProblem(t, "deposit into a closed account", move(t, n, u, "deposits", 1, "closed2", nil), 409, chatflow.ECodeAccountClosed)
	if r := move(t, n, u, "withdrawals", 120, "out1", nil); r.Status != 200 {
		t.Errorf("replay on a closed account: %d %s", r.Status, r.Body)
	}
	if b := balanceOf(t, n, u); b != 19 {
		t.Errorf("closed account's balance moved: %d", b)
	}
}
