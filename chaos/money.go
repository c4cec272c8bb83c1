package chaos

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// Money is the transfer traffic of one scenario, beside its chat load: the
// members of each room send each other small amounts in turn through the
// transfer saga (debit, credit, the transfer message in the room), so
// every fault of the suite also lands in the middle of sagas. Each request
// is retried with its idempotency key until it gets an answer, as a client
// is told to; afterwards every transfer is checked against the ledger, the
// balances and the room's messages in Postgres (CheckMoney).
type Money struct {
	base  string
	hc    *http.Client
	rooms []moneyRoom
	every time.Duration // between two new transfers, all rooms together
	retry time.Duration // how long one request is retried, at most

	mu    sync.Mutex
	reqs  []*moneyReq
	codes map[string]int // answers that were not 2xx, per try, by code ("conn" without an answer)
	five  int            // answers with a 5xx other than 503: a store being down is 503 unavailable

	stop   atomic.Bool
	wg     sync.WaitGroup
	cancel context.CancelFunc
}

type moneyRoom struct {
	id      string
	members []User
	next    int
}

// moneyReq is one transfer as its sender asked for it.
type moneyReq struct {
	key, room  string
	from, to   User
	amount     int64
	first      time.Time // when it was first sent
	id         string    // transfer_id of the 2xx answer; "" without one
	refusedFor string    // code of a 4xx answer
}

// moneyFund is what every member deposits before the load; the amounts
// sent are 1–20, so no member runs out in a scenario's few dozen transfers.
const moneyFund = 10_000

// NewMoney funds every member of the rooms (one deposit each).
func NewMoney(ctx context.Context, base string, rooms map[string][]User, perSecond float64, retry time.Duration) (*Money, error) {
	m := &Money{base: base, hc: newHTTPClient(), every: time.Duration(float64(time.Second) / perSecond), retry: retry, codes: map[string]int{}}
	for id, members := range rooms {
		m.rooms = append(m.rooms, moneyRoom{id: id, members: members})
		for _, u := range members {
			if err := httpJSON(ctx, m.hc, "POST", base+"/api/v1/me/account/deposits", u.Access,
				map[string]any{"amount": moneyFund, "idempotency_key": "chaos-fund"}, nil); err != nil {
				return nil, fmt.Errorf("fund %s: %w", u.Username, err)
			}
		}
	}
	return m, nil
}

// Start sends transfers until StopNew, round-robin over the rooms, each
// room's members in turn.
func (m *Money) Start(ctx context.Context) {
	ctx, m.cancel = context.WithCancel(ctx)
	m.wg.Go(func() {
		t := time.NewTicker(m.every)
		defer t.Stop()
		for i := 0; ; i++ {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			if m.stop.Load() {
				return
			}
			r := &m.rooms[i%len(m.rooms)]
			from := r.members[r.next%len(r.members)]
			to := r.members[(r.next+1)%len(r.members)]
			r.next++
			q := &moneyReq{key: fmt.Sprintf("chaos-t-%d", i), room: r.id, from: from, to: to, amount: 1 + rand.Int64N(20)}
			m.mu.Lock()
			m.reqs = append(m.reqs, q)
			m.mu.Unlock()
			// one goroutine per request: a request hanging in a fault must
			// not hold the next ones back
			m.wg.Go(func() { m.send(ctx, q) })
		}
	})
}

// send posts one transfer until it is answered: 2xx (accepted or replayed)
// or a 4xx other than 429. Without an answer, or with a 5xx or 429, it
// tries again a second later with the same key, for up to m.retry. A 5xx
// other than 503 is counted apart: a fault of a dependency must read as
// "unavailable, retry", never as an internal error.
func (m *Money) send(ctx context.Context, q *moneyReq) {
	raw, _ := json.Marshal(map[string]any{"to_user_id": q.to.ID, "amount": q.amount, "idempotency_key": q.key, "memo": "chaos"})
	m.mu.Lock()
	q.first = time.Now()
	m.mu.Unlock()
	deadline := q.first.Add(m.retry)
	for {
		var out struct {
			TransferID string `json:"transfer_id"`
		}
		st, body, _ := httpDo(ctx, m.hc, "POST", m.base+"/api/v1/rooms/"+q.room+"/transfers", q.from.Access, raw, &out)
		switch {
		case st >= 200 && st < 300:
			m.mu.Lock()
			q.id = out.TransferID
			m.mu.Unlock()
			return
		case st >= 400 && st < 500 && st != http.StatusTooManyRequests:
			m.mu.Lock()
			q.refusedFor = problemCode(st, body)
			m.codes[q.refusedFor]++
			m.mu.Unlock()
			return
		}
		code := "conn"
		if st != 0 {
			code = problemCode(st, body)
		}
		m.mu.Lock()
		m.codes[code]++
		if st >= 500 && st != http.StatusServiceUnavailable {
			m.five++
		}
		m.mu.Unlock()
		if time.Now().After(deadline) || sleepCtx(ctx, time.Second) != nil {
			return
		}
	}
}

// problemCode is the problem+json code of an answer, or its status.
func problemCode(st int, body []byte) string {
	var p struct {
		Code string `json:"code"`
	}
	if json.Unmarshal(body, &p) == nil && p.Code != "" {
		return p.Code
	}
	return fmt.Sprint(st)
}

// StopNew stops starting transfers and waits for the requests in flight
// (each retries for up to m.retry).
func (m *Money) StopNew() {
	m.stop.Store(true)
	m.wg.Wait()
}

// Close ends everything at once.
func (m *Money) Close() {
	m.stop.Store(true)
	if m.cancel != nil {
		m.cancel()
	}
	m.wg.Wait()
}

// MoneyCounts is what CheckMoney found.
type MoneyCounts struct {
	Requested, Accepted, Unanswered, Refused int
	Completed, Failed, Compensated, Pending  int
	Spanning                                 int      // asked for before the fault ended, finished after it began
	Problems                                 []string // each a broken guarantee
}

// CheckMoney waits (up to limit) until no transfer of the run is pending
// and Postgres holds the message of every completed one, then checks in
// Postgres that:
//   - every accepted transfer exists as it was asked for, and no transfer
//     exists that the run did not ask for (one per key, and one ledger leg
//     per key, is the schema's unique keys, so not checked again here);
//   - each transfer moved money exactly as its final status says: a
//     completed one took its amount from the sender and gave it to the
//     recipient once, a failed or compensated one moved nothing in sum;
//   - every member's balance is the fund plus the completed transfers in,
//     minus those out, and equals the sum of the member's ledger;
//   - every completed transfer has its message in the room at its
//     recorded seq, and the rooms hold no other transfer message.
//
// Spanning counts the transfers first asked for before the fault ended
// that finished after it began: the requests and sagas the fault hit.
func (m *Money) CheckMoney(ctx context.Context, pool *pgxpool.Pool, faultStart, faultEnd time.Time, limit time.Duration, logf func(string, ...any)) (MoneyCounts, error) {
	var c MoneyCounts
	m.mu.Lock()
	reqs := append([]*moneyReq(nil), m.reqs...)
	m.mu.Unlock()
	var users []string
	var rooms []string
	for _, r := range m.rooms {
		rooms = append(rooms, r.id)
		for _, u := range r.members {
			users = append(users, u.ID)
		}
	}
	c.Requested = len(reqs)
	for _, q := range reqs {
		switch {
		case q.id != "":
			c.Accepted++
		case q.refusedFor != "":
			c.Refused++
		default:
			c.Unanswered++
		}
	}
	problem := func(format string, args ...any) {
		if len(c.Problems) < 20 {
			c.Problems = append(c.Problems, fmt.Sprintf(format, args...))
		}
	}

	// A saga ends once its message is in the room's log (Redis); Postgres
	// gets the message with the batch after. Wait for both.
	deadline := time.Now().Add(limit)
	for {
		var pending, unpersisted int
		if err := pool.QueryRow(ctx, `SELECT count(*) FILTER (WHERE status = 'pending'),
       count(*) FILTER (WHERE status = 'completed' AND message_seq IS NOT NULL AND NOT EXISTS (
           SELECT 1 FROM chat.messages m WHERE m.room_id = t.room_id AND m.seq = t.message_seq))
FROM customer.transfers t WHERE from_id = ANY($1::uuid[])`, users).Scan(&pending, &unpersisted); err != nil {
			return c, err
		}
		if pending == 0 && unpersisted == 0 {
			break
		}
		if time.Now().After(deadline) {
			c.Pending = pending
			if pending > 0 {
				problem("%d transfers still pending after %s", pending, limit)
			}
			break // a message still missing is reported below
		}
		logf("transfers: %d pending, %d messages of completed ones not in Postgres yet", pending, unpersisted)
		if err := sleepCtx(ctx, 2*time.Second); err != nil {
			return c, err
		}
	}

	type row struct {
		id, from, to, room, key, status string
		amount                          int64
		seq                             *int64
		finished                        *time.Time
	}
	rows, err := pool.Query(ctx, `SELECT id::text, from_id::text, to_id::text, room_id::text, idempotency_key, status, amount, message_seq, finished_at
FROM customer.transfers WHERE from_id = ANY($1::uuid[])`, users)
	if err != nil {
		return c, err
	}
	got := map[string]row{} // by id; one per (sender, key): the schema's unique key
	for rows.Next() {
		var r row
		if err := rows.Scan(&r.id, &r.from, &r.to, &r.room, &r.key, &r.status, &r.amount, &r.seq, &r.finished); err != nil {
			return c, err
		}
		got[r.id] = r
	}
	if err := rows.Err(); err != nil {
		return c, err
	}
	asked := map[string]*moneyReq{}
	for _, q := range reqs {
		asked[q.from.ID+"/"+q.key] = q
		if q.id == "" {
			continue
		}
		r, ok := got[q.id]
		switch {
		case !ok:
			problem("accepted transfer %s (%s) is not in Postgres", q.id, q.key)
		case r.key != q.key || r.to != q.to.ID || r.room != q.room || r.amount != q.amount:
			problem("transfer %s is not what was asked: %+v", q.id, r)
		case !q.first.After(faultEnd) && (r.finished == nil || !r.finished.Before(faultStart)):
			c.Spanning++
		}
	}
	for _, r := range got {
		if asked[r.from+"/"+r.key] == nil {
			problem("transfer %s under key %s was never asked for", r.id, r.key)
		}
		switch r.status {
		case "completed":
			c.Completed++
		case "failed":
			c.Failed++
		case "compensated":
			c.Compensated++
		}
	}

	// the ledger: every leg of every transfer, and every member's entries
	legs := map[string]map[string]int64{} // transfer id → user → net amount
	ledger := map[string]int64{}          // user → sum of entries
	lrows, err := pool.Query(ctx, `SELECT user_id::text, idempotency_key, amount FROM customer.transactions WHERE user_id = ANY($1::uuid[])`, users)
	if err != nil {
		return c, err
	}
	// a leg appears once per user: (user_id, idempotency_key) is unique
	for lrows.Next() {
		var user, key string
		var amount int64
		if err := lrows.Scan(&user, &key, &amount); err != nil {
			return c, err
		}
		ledger[user] += amount
		if !strings.HasPrefix(key, "transfer:") {
			continue
		}
		parts := strings.Split(key, ":")
		if len(parts) != 3 {
			problem("ledger key %q", key)
			continue
		}
		if legs[parts[1]] == nil {
			legs[parts[1]] = map[string]int64{}
		}
		legs[parts[1]][user] += amount
	}
	if err := lrows.Err(); err != nil {
		return c, err
	}
	want := map[string]int64{} // user → expected balance
	for _, u := range users {
		want[u] = moneyFund
	}
	for id, r := range got {
		var from, to int64 // what the transfer should have moved in sum
		if r.status == "completed" {
			from, to = -r.amount, r.amount
			want[r.from] -= r.amount
			want[r.to] += r.amount
		}
		if n := legs[id][r.from]; n != from {
			problem("transfer %s (%s): sender's ledger moved %d, want %d", id, r.status, n, from)
		}
		if n := legs[id][r.to]; n != to {
			problem("transfer %s (%s): recipient's ledger moved %d, want %d", id, r.status, n, to)
		}
		delete(legs, id)
	}
	for id := range legs {
		problem("ledger entries of transfer %s, which is not among the run's transfers", id)
	}
	brows, err := pool.Query(ctx, `SELECT user_id::text, balance FROM customer.accounts WHERE user_id = ANY($1::uuid[])`, users)
	if err != nil {
		return c, err
	}
	balances := map[string]int64{}
	for brows.Next() {
		var u string
		var b int64
		if err := brows.Scan(&u, &b); err != nil {
			return c, err
		}
		balances[u] = b
	}
	if err := brows.Err(); err != nil {
		return c, err
	}
	for _, u := range users {
		if balances[u] != want[u] || ledger[u] != want[u] {
			problem("user %s: balance %d, ledger sum %d, want %d", u, balances[u], ledger[u], want[u])
		}
	}

	// the transfer messages: one per completed transfer, at its seq
	var msgs int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM chat.messages WHERE room_id = ANY($1::uuid[]) AND kind = 'transfer'`, rooms).Scan(&msgs); err != nil {
		return c, err
	}
	withMsg := 0
	for id, r := range got {
		if r.status != "completed" {
			continue
		}
		if r.seq == nil {
			problem("completed transfer %s has no message seq", id)
			continue
		}
		withMsg++
		var kind string
		err := pool.QueryRow(ctx, `SELECT kind FROM chat.messages WHERE room_id = $1 AND seq = $2`, r.room, *r.seq).Scan(&kind)
		if err != nil || kind != "transfer" {
			problem("completed transfer %s: the message at seq %d is %q (%v)", id, *r.seq, kind, err)
		}
	}
	if msgs != withMsg {
		problem("%d transfer messages in the rooms, %d completed transfers with one", msgs, withMsg)
	}
	return c, nil
}

// Internal counts the answers with a 5xx other than 503.
func (m *Money) Internal() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.five
}

// Codes returns the non-2xx answers by code.
func (m *Money) Codes() map[string]int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return maps.Clone(m.codes)
}
