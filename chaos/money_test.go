package chaos

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/chatflow/chatflow/internal/testenv"
)

// moneyWorld writes, into the real local Postgres, what a run of two
// members and one completed transfer of 5 leaves behind, with fresh ids:
// both funds, the two legs, the balances, the transfer and its message.
type moneyWorld struct {
	pool           *pgxpool.Pool
	m              *Money
	a, b, room, id uuid.UUID
}

func newMoneyWorld(t *testing.T) *moneyWorld {
	t.Helper()
	env := testenv.Open(t)
	w := &moneyWorld{pool: env.Pool, a: uuid.New(), b: uuid.New(), room: uuid.New(), id: uuid.New()}
	a, b := User{ID: w.a.String(), Username: "a"}, User{ID: w.b.String(), Username: "b"}
	w.m = &Money{codes: map[string]int{}, rooms: []moneyRoom{{id: w.room.String(), members: []User{a, b}}},
		reqs: []*moneyReq{{key: "chaos-t-0", room: w.room.String(), from: a, to: b, amount: 5, id: w.id.String(), first: time.Now().Add(-time.Minute)}}}
	w.exec(t, `INSERT INTO chat.rooms (id, name, created_by) VALUES ($1, 'money check', $2)`, w.room, w.a)
	w.exec(t, `INSERT INTO customer.accounts (user_id, balance) VALUES ($1, $2), ($3, $4)`, w.a, moneyFund-5, w.b, moneyFund+5)
	for _, e := range []struct {
		user      uuid.UUID
		entry     int
		amount    int64
		kind, key string
	}{
		{w.a, 1, moneyFund, "deposit", "chaos-fund"}, {w.b, 1, moneyFund, "deposit", "chaos-fund"},
		{w.a, 2, -5, "transfer_out", "transfer:" + w.id.String() + ":out"}, {w.b, 2, 5, "transfer_in", "transfer:" + w.id.String() + ":in"},
	} {
		w.exec(t, `INSERT INTO customer.transactions (id, user_id, entry, amount, balance_after, kind, idempotency_key) VALUES ($1, $2, $3, $4, 0, $5, $6)`,
			uuid.New(), e.user, e.entry, e.amount, e.kind, e.key)
	}
	w.exec(t, `INSERT INTO customer.transfers (id, from_id, to_id, room_id, amount, idempotency_key, status, message_seq)
VALUES ($1, $2, $3, $4, 5, 'chaos-t-0', 'completed', 1)`, w.id, w.a, w.b, w.room)
	w.exec(t, `INSERT INTO chat.messages (id, room_id, seq, sender_id, client_msg_id, body, sent_at, kind) VALUES ($1, $2, 1, $3, 'tx', '{}', now(), 'transfer')`,
		uuid.New(), w.room, w.a)
	t.Cleanup(func() {
		ctx := context.Background()
		for _, q := range []string{
			`DELETE FROM chat.messages WHERE room_id = $1`, `DELETE FROM chat.rooms WHERE id = $1`,
		} {
			_, _ = env.Pool.Exec(ctx, q, w.room)
		}
		for _, q := range []string{
			`DELETE FROM customer.transfers WHERE from_id = $1 OR to_id = $1`, `DELETE FROM customer.accounts WHERE user_id = $1`,
		} {
			_, _ = env.Pool.Exec(ctx, q, w.a)
			_, _ = env.Pool.Exec(ctx, q, w.b)
		}
	})
	return w
}

func (w *moneyWorld) exec(t *testing.T, q string, args ...any) {
	t.Helper()
	if _, err := w.pool.Exec(context.Background(), q, args...); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

func (w *moneyWorld) check(t *testing.T) MoneyCounts {
	t.Helper()
	c, err := w.m.CheckMoney(context.Background(), w.pool, time.Now().Add(-time.Hour), time.Now(), 2*time.Second, func(string, ...any) {})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestCheckMoneyClean(t *testing.T) {
	w := newMoneyWorld(t)
	c := w.check(t)
	if len(c.Problems) != 0 || c.Completed != 1 || c.Accepted != 1 || c.Spanning != 1 {
		t.Fatalf("a consistent run: %+v", c)
	}
}

// Each way a saga or the ledger could go wrong under a fault must be found.
func TestCheckMoneyFindsEachBreak(t *testing.T) {
	for _, tc := range []struct {
		name, want string
		mutate     func(t *testing.T, w *moneyWorld)
	}{
		{"credit missing", "recipient's ledger moved 0, want 5", func(t *testing.T, w *moneyWorld) {
			w.exec(t, `DELETE FROM customer.transactions WHERE user_id = $1 AND idempotency_key LIKE 'transfer:%'`, w.b)
			w.exec(t, `UPDATE customer.accounts SET balance = $2 WHERE user_id = $1`, w.b, moneyFund)
		}},
		{"debited twice under another leg", "sender's ledger moved -10, want -5", func(t *testing.T, w *moneyWorld) {
			w.exec(t, `INSERT INTO customer.transactions (id, user_id, entry, amount, balance_after, kind, idempotency_key) VALUES ($1, $2, 3, -5, 0, 'transfer_refund', $3)`,
				uuid.New(), w.a, "transfer:"+w.id.String()+":refund")
			w.exec(t, `UPDATE customer.accounts SET balance = balance - 5 WHERE user_id = $1`, w.a)
		}},
		{"balance off its ledger", "balance 9994, ledger sum 9995, want 9995", func(t *testing.T, w *moneyWorld) {
			w.exec(t, `UPDATE customer.accounts SET balance = balance - 1 WHERE user_id = $1`, w.a)
		}},
		{"failed but moved", "sender's ledger moved -5, want 0", func(t *testing.T, w *moneyWorld) {
			w.exec(t, `UPDATE customer.transfers SET status = 'failed' WHERE id = $1`, w.id)
		}},
		{"message lost", "the message at seq 1", func(t *testing.T, w *moneyWorld) {
			w.exec(t, `DELETE FROM chat.messages WHERE room_id = $1`, w.room)
		}},
		{"message twice", "2 transfer messages in the rooms, 1 completed", func(t *testing.T, w *moneyWorld) {
			w.exec(t, `INSERT INTO chat.messages (id, room_id, seq, sender_id, client_msg_id, body, sent_at, kind) VALUES ($1, $2, 2, $3, 'tx2', '{}', now(), 'transfer')`,
				uuid.New(), w.room, w.a)
		}},
		{"stuck pending", "1 transfers still pending", func(t *testing.T, w *moneyWorld) {
			w.exec(t, `UPDATE customer.transfers SET status = 'pending' WHERE id = $1`, w.id)
		}},
		{"accepted but gone", "is not in Postgres", func(t *testing.T, w *moneyWorld) {
			w.m.reqs[0].id = uuid.NewString()
		}},
		{"never asked for", "was never asked for", func(t *testing.T, w *moneyWorld) {
			w.m.reqs[0].key = "chaos-t-other"
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newMoneyWorld(t)
			tc.mutate(t, w)
			c := w.check(t)
			if !strings.Contains(strings.Join(c.Problems, "\n"), tc.want) {
				t.Fatalf("want a problem %q, got %q", tc.want, c.Problems)
			}
		})
	}
}
