package tests

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/segmentio/kafka-go"

	"github.com/chatflow/chatflow"
	"github.com/chatflow/chatflow/internal/testenv"
)

// transferJSON is a transfer as the api answers it.
type transferJSON struct {
	TransferID     string `json:"transfer_id"`
	Status         string `json:"status"`
	FromUserID     string `json:"from_user_id"`
	ToUserID       string `json:"to_user_id"`
	RoomID         string `json:"room_id"`
	Amount         int64  `json:"amount"`
	Memo           string `json:"memo"`
	IdempotencyKey string `json:"idempotency_key"`
	MessageSeq     *int64 `json:"message_seq"`
	ErrorCode      string `json:"error_code"`
	Error          string `json:"error"`
}

// kindMessage is a history message with its kind.
type kindMessage struct {
	Seq      int64  `json:"seq"`
	SenderID string `json:"sender_id"`
	Kind     string `json:"kind"`
	Body     string `json:"body"`
}

func postTransfer(t testing.TB, n *testenv.Node, from testenv.User, room, to string, amount int64, key, memo string, out any) acctResp {
	t.Helper()
	return acctCall(t, n, "POST", "/api/v1/rooms/"+room+"/transfers", from.Access,
		map[string]any{"to_user_id": to, "amount": amount, "idempotency_key": key, "memo": memo}, out)
}

// awaitTransfer long-polls the transfer's status as u until it is no longer
// pending.
func awaitTransfer(t testing.TB, n *testenv.Node, u testenv.User, id string) transferJSON {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for {
		var tr transferJSON
		if r := acctCall(t, n, "GET", "/api/v1/transfers/"+id+"?wait=10s", u.Access, nil, &tr); r.Status != 200 {
			t.Fatalf("transfer %s status: %d %s", id, r.Status, r.Body)
		}
		if tr.Status != chatflow.StatusPending {
			return tr
		}
		if time.Now().After(deadline) {
			t.Fatalf("transfer %s still pending", id)
		}
	}
}

// transferMessages returns the room's messages of kind transfer.
func transferMessages(t testing.TB, n *testenv.Node, u testenv.User, room string) []kindMessage {
	t.Helper()
	var out []kindMessage
	after := int64(0)
	for {
		var h struct {
			Messages []kindMessage `json:"messages"`
			HasMore  bool          `json:"has_more"`
		}
		if r := acctCall(t, n, "GET", fmt.Sprintf("/api/v1/rooms/%s/messages?after_seq=%d&limit=200", room, after), u.Access, nil, &h); r.Status != 200 {
			t.Fatalf("history: %d %s", r.Status, r.Body)
		}
		for _, m := range h.Messages {
			after = m.Seq
			if m.Kind == chatflow.KindTransfer {
				out = append(out, m)
			}
		}
		if !h.HasMore || len(h.Messages) == 0 {
			return out
		}
	}
}

// entriesOf returns the ledger entries of one transfer.
func entriesOf(l []ledgerTx, transferID string) map[string]ledgerTx {
	out := map[string]ledgerTx{}
	for _, tx := range l {
		if tx.TransferID == transferID {
			out[tx.IdempotencyKey[strings.LastIndex(tx.IdempotencyKey, ":")+1:]] = tx
		}
	}
	return out
}

func TestTransferEndToEnd(t *testing.T) {
	env := testenv.Open(t)
	env.Worker(t, nil)
	n := env.StartNode(t, testenv.NodeConfig{})
	a, b, c := n.SignUp(t, "tra"), n.SignUp(t, "trb"), n.SignUp(t, "trc")
	room := n.CreateRoom(t, a, b)
	if r := move(t, n, a, "deposits", 1000, "seed", nil); r.Status != 201 {
		t.Fatalf("deposit: %d %s", r.Status, r.Body)
	}
	wb := connect(t, n, b)

	memo := "lunch 🍜 on me"
	var tr transferJSON
	r := postTransfer(t, n, a, room, b.ID, 300, "pay-1", memo, &tr)
	if r.Status != 202 || tr.Status != chatflow.StatusPending || tr.Amount != 300 || tr.FromUserID != a.ID || tr.ToUserID != b.ID ||
		tr.RoomID != room || tr.Memo != memo || tr.IdempotencyKey != "pay-1" || r.Header.Get("Location") != "/api/v1/transfers/"+tr.TransferID {
		t.Fatalf("transfer: %d %s", r.Status, r.Body)
	}

	// Live: the recipient's socket gets the transfer message.
	f := wb.must(30*time.Second, func(f testenv.Frame) bool { return f.Type() == "message" && f.Str("kind") == chatflow.KindTransfer }, "transfer message")
	var body chatflow.TransferBody
	if err := json.Unmarshal([]byte(f.Str("body")), &body); err != nil {
		t.Fatalf("transfer message body %q: %v", f.Str("body"), err)
	}
	if body != (chatflow.TransferBody{TransferID: tr.TransferID, FromUserID: a.ID, ToUserID: b.ID, Amount: 300, Memo: memo}) ||
		f.Str("sender_id") != a.ID || f.Str("room_id") != room {
		t.Errorf("transfer message %v", f)
	}

	done := awaitTransfer(t, n, b, tr.TransferID)
	if done.Status != chatflow.StatusCompleted || done.MessageSeq == nil || *done.MessageSeq != f.Int("seq") || done.ErrorCode != "" {
		t.Fatalf("final transfer %+v (message seq %d)", done, f.Int("seq"))
	}
	if done.IdempotencyKey != "" {
		t.Errorf("the recipient sees the sender's key %q", done.IdempotencyKey)
	}
	if ba, bb := balanceOf(t, n, a), balanceOf(t, n, b); ba != 700 || bb != 300 {
		t.Errorf("balances %d / %d, want 700 / 300", ba, bb)
	}

	// Both ledgers show it, with the counterparty, the transfer and the memo.
	la, lb := fullLedger(t, n, a), fullLedger(t, n, b)
	checkLedger(t, a.Username, la, 700)
	checkLedger(t, b.Username, lb, 300)
	out, in := la[0], lb[0]
	if out.Kind != chatflow.TxTransferOut || out.Amount != -300 || out.TransferID != tr.TransferID || out.Memo != memo ||
		out.Counterparty == nil || out.Counterparty.UserID != b.ID || out.Counterparty.Username != b.Username {
		t.Errorf("sender's entry %+v", out)
	}
	if in.Kind != chatflow.TxTransferIn || in.Amount != 300 || in.TransferID != tr.TransferID || in.Memo != memo ||
		in.Counterparty == nil || in.Counterparty.UserID != a.ID || in.Counterparty.Username != a.Username {
		t.Errorf("recipient's entry %+v", in)
	}

	// History and sync show the same message.
	hist := transferMessages(t, n, a, room)
	if len(hist) != 1 || hist[0].Seq != *done.MessageSeq || hist[0].SenderID != a.ID {
		t.Errorf("history transfer messages %+v", hist)
	}
	ws := connect(t, n, b)
	ws.send(map[string]any{"type": "sync", "rooms": map[string]int64{room: *done.MessageSeq - 1}})
	if f := ws.must(10*time.Second, msgIn(room), "synced message"); f.Int("seq") != *done.MessageSeq || f.Str("kind") != chatflow.KindTransfer {
		t.Errorf("sync replayed %v", f)
	}

	// transfer.completed on Kafka.
	m := findRecord(t, env.KafkaBrokers, chatflow.TopicTransferEvents, 30*time.Second, func(m kafka.Message) bool {
		var ev chatflow.TransferCompleted
		return json.Unmarshal(m.Value, &ev) == nil && ev.TransferID == tr.TransferID
	}, "transfer.completed of "+tr.TransferID)
	var ev chatflow.TransferCompleted
	_ = json.Unmarshal(m.Value, &ev)
	if ev.Type != "transfer.completed" || ev.Amount != 300 || ev.FromUserID != a.ID || ev.ToUserID != b.ID || ev.MessageSeq != *done.MessageSeq ||
		string(m.Key) != a.ID {
		t.Errorf("transfer.completed %s (key %s)", m.Value, m.Key)
	}

	// Replays: the same key answers the same transfer and moves nothing;
	// the key with another amount or recipient is a conflict.
	var again transferJSON
	r = postTransfer(t, n, a, room, b.ID, 300, "pay-1", memo, &again)
	if r.Status != 200 || r.Header.Get("Idempotent-Replayed") != "true" || again.TransferID != tr.TransferID || again.Status != chatflow.StatusCompleted {
		t.Errorf("replayed transfer: %d %s", r.Status, r.Body)
	}
	wantProblem(t, "key with another amount", postTransfer(t, n, a, room, b.ID, 301, "pay-1", memo, nil), 409, chatflow.ECodeConflict)
	wantProblem(t, "key with another memo", postTransfer(t, n, a, room, b.ID, 300, "pay-1", "", nil), 409, chatflow.ECodeConflict)
	wantProblem(t, "key with another recipient", postTransfer(t, n, a, room, c.ID, 300, "pay-1", memo, nil), 409, chatflow.ECodeConflict)
	if ba := balanceOf(t, n, a); ba != 700 {
		t.Errorf("replays moved money: %d", ba)
	}
	// Keys are per sender: b may use "pay-1" too.
	var back transferJSON
	if r := postTransfer(t, n, b, room, a.ID, 50, "pay-1", "", &back); r.Status != 202 {
		t.Errorf("another sender's key: %d %s", r.Status, r.Body)
	} else if got := awaitTransfer(t, n, a, back.TransferID); got.Status != chatflow.StatusCompleted {
		t.Errorf("transfer back: %+v", got)
	}

	// Status is for the two parties only; both list it.
	wantProblem(t, "status for a stranger", acctCall(t, n, "GET", "/api/v1/transfers/"+tr.TransferID, c.Access, nil, nil), 404, chatflow.ECodeNotFound)
	wantProblem(t, "status of nothing", acctCall(t, n, "GET", "/api/v1/transfers/"+uuid.NewString(), a.Access, nil, nil), 404, chatflow.ECodeNotFound)
	wantProblem(t, "status bad wait", acctCall(t, n, "GET", "/api/v1/transfers/"+tr.TransferID+"?wait=soon", a.Access, nil, nil), 422, chatflow.ECodeValidation)
	for _, u := range []testenv.User{a, b} {
		var list struct {
			Transfers []transferJSON `json:"transfers"`
		}
		if r := acctCall(t, n, "GET", "/api/v1/me/transfers", u.Access, nil, &list); r.Status != 200 || len(list.Transfers) != 2 ||
			list.Transfers[0].TransferID != back.TransferID || list.Transfers[1].TransferID != tr.TransferID {
			t.Errorf("%s's transfers: %d %s", u.Username, r.Status, r.Body)
		}
	}

	// Refusals before anything starts.
	wantProblem(t, "to oneself", postTransfer(t, n, a, room, a.ID, 5, "v1", "", nil), 422, chatflow.ECodeCannotAddSelf)
	wantProblem(t, "to a non-member", postTransfer(t, n, a, room, c.ID, 5, "v2", "", nil), 403, chatflow.ECodeNotMember)
	wantProblem(t, "from a non-member", postTransfer(t, n, c, room, a.ID, 5, "v3", "", nil), 403, chatflow.ECodeNotMember)
	wantProblem(t, "in no room", postTransfer(t, n, a, uuid.NewString(), b.ID, 5, "v4", "", nil), 404, chatflow.ECodeNotFound)
	for name, body := range map[string]any{
		"zero amount":   map[string]any{"to_user_id": b.ID, "amount": 0, "idempotency_key": "v"},
		"huge amount":   map[string]any{"to_user_id": b.ID, "amount": 1_000_000_001, "idempotency_key": "v"},
		"no key":        map[string]any{"to_user_id": b.ID, "amount": 5},
		"bad recipient": map[string]any{"to_user_id": "bob", "amount": 5, "idempotency_key": "v"},
		"long memo":     map[string]any{"to_user_id": b.ID, "amount": 5, "idempotency_key": "v", "memo": strings.Repeat("é", 201)},
		"memo newline":  map[string]any{"to_user_id": b.ID, "amount": 5, "idempotency_key": "v", "memo": "a\nb"},
		"memo NUL":      `{"to_user_id":"` + b.ID + `","amount":5,"idempotency_key":"v","memo":"a\u0000"}`,
	} {
		wantProblem(t, name, acctCall(t, n, "POST", "/api/v1/rooms/"+room+"/transfers", a.Access, body, nil), 422, chatflow.ECodeValidation)
	}
}
