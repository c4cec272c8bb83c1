package tests

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/chatflow/chatflow"
	"github.com/chatflow/chatflow/internal/testenv"
)

type badCase struct {
	name         string
	method, path string
	auth         bool
	body         any
	status       int
	code         string
}

func runBadCases(t *testing.T, n *testenv.Node, tok string, cases []badCase) {
	t.Helper()
	for _, c := range cases {
		bearer := ""
		if c.auth {
			bearer = tok
		}
		r := acctCall(t, n, c.method, c.path, bearer, c.body, nil)
		wantProblem(t, c.name+" ("+c.method+" "+c.path+")", r, c.status, c.code)
	}
}

func TestValidationProblems(t *testing.T) {
	env := testenv.Open(t)
	env.Worker(t, nil)
	n := env.StartNode(t, testenv.NodeConfig{})
	u := n.SignUp(t, "va")

	// A real, known sign-up id for the bad-wait cases.
	var started struct {
		SignupID string `json:"signup_id"`
	}
	name := "vawait_" + testenv.Unique()
	if r := acctCall(t, n, "POST", "/api/v1/signup", "", signupBody(name, name+"@example.test"), &started); r.Status != 202 {
		t.Fatalf("signup: %d %s", r.Status, r.Body)
	}

	const V, NF, UA = 422, 404, 401
	val, nf := chatflow.ECodeValidation, chatflow.ECodeNotFound
	okSignup := func(mod func(m map[string]any)) map[string]any {
		m := map[string]any{"username": "va_" + testenv.Unique(), "email": "ok@example.test", "password": "password-ok", "display_name": "OK"}
		mod(m)
		return m
	}
	cursor := func(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

	runBadCases(t, n, u.Access, []badCase{
		// sign-up
		{"invalid JSON", "POST", "/api/v1/signup", false, `{"username":`, V, val},
		{"empty body", "POST", "/api/v1/signup", false, "", V, val},
		{"array body", "POST", "/api/v1/signup", false, `[]`, V, val},
		{"username not a string", "POST", "/api/v1/signup", false, `{"username":5,"email":"a@b.co","password":"password-ok"}`, V, val},
		{"password not a string", "POST", "/api/v1/signup", false, `{"username":"abc","email":"a@b.co","password":12345678}`, V, val},
		{"username too short", "POST", "/api/v1/signup", false, okSignup(func(m map[string]any) { m["username"] = "ab" }), V, val},
		{"username too long", "POST", "/api/v1/signup", false, okSignup(func(m map[string]any) { m["username"] = strings.Repeat("a", 33) }), V, val},
		{"username upper case", "POST", "/api/v1/signup", false, okSignup(func(m map[string]any) { m["username"] = "Va_" + testenv.Unique() }), V, val},
		{"username hyphen", "POST", "/api/v1/signup", false, okSignup(func(m map[string]any) { m["username"] = "va-" + testenv.Unique() }), V, val},
		{"username non-ASCII", "POST", "/api/v1/signup", false, okSignup(func(m map[string]any) { m["username"] = "vä_" + testenv.Unique() }), V, val},
		{"username missing", "POST", "/api/v1/signup", false, okSignup(func(m map[string]any) { delete(m, "username") }), V, val},
		{"password 7", "POST", "/api/v1/signup", false, okSignup(func(m map[string]any) { m["password"] = "1234567" }), V, val},
		{"password missing", "POST", "/api/v1/signup", false, okSignup(func(m map[string]any) { delete(m, "password") }), V, val},
		{"password too long", "POST", "/api/v1/signup", false, okSignup(func(m map[string]any) { m["password"] = strings.Repeat("p", 73) }), V, val},
		{"bad email", "POST", "/api/v1/signup", false, okSignup(func(m map[string]any) { m["email"] = "not-an-email" }), V, val},
		{"email without domain dot", "POST", "/api/v1/signup", false, okSignup(func(m map[string]any) { m["email"] = "a@b" }), V, val},
		{"email with space", "POST", "/api/v1/signup", false, okSignup(func(m map[string]any) { m["email"] = "a b@c.de" }), V, val},
		{"display name too long", "POST", "/api/v1/signup", false, okSignup(func(m map[string]any) { m["display_name"] = strings.Repeat("x", 65) }), V, val},

		// sign-up status
		{"signup id not a uuid", "GET", "/api/v1/signup/not-a-uuid", false, nil, NF, nf},
		{"unknown signup id", "GET", "/api/v1/signup/" + uuid.NewString(), false, nil, NF, nf},
		{"wait not a duration", "GET", "/api/v1/signup/" + started.SignupID + "?wait=abc", false, nil, V, val},
		{"wait negative", "GET", "/api/v1/signup/" + started.SignupID + "?wait=-1s", false, nil, V, val},
		{"wait without unit", "GET", "/api/v1/signup/" + started.SignupID + "?wait=5", false, nil, V, val},

		// login, refresh, logout
		{"login invalid JSON", "POST", "/api/v1/auth/login", false, `{`, V, val},
		{"login empty body", "POST", "/api/v1/auth/login", false, "", V, val},
		{"login wrong type", "POST", "/api/v1/auth/login", false, `{"username":["x"],"password":"y"}`, V, val},
		{"login missing password", "POST", "/api/v1/auth/login", false, map[string]string{"username": u.Username}, V, val},
		{"refresh invalid JSON", "POST", "/api/v1/auth/refresh", false, `nope`, V, val},
		{"refresh missing token", "POST", "/api/v1/auth/refresh", false, `{}`, V, val},
		{"refresh wrong type", "POST", "/api/v1/auth/refresh", false, `{"refresh_token":1}`, V, val},
		{"refresh garbage token", "POST", "/api/v1/auth/refresh", false, `{"refresh_token":"x.y.z"}`, UA, chatflow.ECodeInvalidToken},
		{"logout without token", "POST", "/api/v1/auth/logout", false, nil, UA, chatflow.ECodeUnauthorized},

		// me
		{"me without token", "GET", "/api/v1/me", false, nil, UA, chatflow.ECodeUnauthorized},
		{"patch me invalid JSON", "PATCH", "/api/v1/me", true, `{"display_name"`, V, val},
		{"patch me empty body", "PATCH", "/api/v1/me", true, "", V, val},
		{"patch me wrong type", "PATCH", "/api/v1/me", true, `{"display_name":42}`, V, val},
		{"patch me empty display name", "PATCH", "/api/v1/me", true, `{"display_name":"   "}`, V, val},
		{"patch me display name 65", "PATCH", "/api/v1/me", true, map[string]string{"display_name": strings.Repeat("é", 65)}, V, val},
		{"patch me status 201", "PATCH", "/api/v1/me", true, map[string]string{"status_message": strings.Repeat("s", 201)}, V, val},

		// users
		{"users without q", "GET", "/api/v1/users", true, nil, V, val},
		{"users empty q", "GET", "/api/v1/users?q=", true, nil, V, val},
		{"users blank q", "GET", "/api/v1/users?q=%20%20", true, nil, V, val},
		{"users q too long", "GET", "/api/v1/users?q=" + strings.Repeat("a", 65), true, nil, V, val},
		{"users bad limit", "GET", "/api/v1/users?q=a&limit=abc", true, nil, V, val},
		{"users negative limit", "GET", "/api/v1/users?q=a&limit=-1", true, nil, V, val},
		{"users without token", "GET", "/api/v1/users?q=a", false, nil, UA, chatflow.ECodeUnauthorized},

		// friends
		{"friend invalid JSON", "POST", "/api/v1/friends", true, `{"username":}`, V, val},
		{"friend wrong type", "POST", "/api/v1/friends", true, `{"username":true}`, V, val},
		{"friend bad username", "POST", "/api/v1/friends", true, `{"username":"A!"}`, V, val},
		{"friend missing username", "POST", "/api/v1/friends", true, `{}`, V, val},
		{"friend unknown user", "POST", "/api/v1/friends", true, map[string]string{"username": "nobody_" + testenv.Unique()}, NF, nf},
		{"friend self", "POST", "/api/v1/friends", true, map[string]string{"username": u.Username}, V, chatflow.ECodeCannotAddSelf},
		{"friend request empty", "POST", "/api/v1/friends/requests", true, `{}`, V, val},
		{"friend request both fields", "POST", "/api/v1/friends/requests", true, map[string]string{"user_id": u.ID, "username": u.Username}, V, val},
		{"friend request bad id", "POST", "/api/v1/friends/requests", true, map[string]string{"user_id": "not-a-uuid"}, V, val},
		{"friend request id wrong type", "POST", "/api/v1/friends/requests", true, `{"user_id":7}`, V, val},
		{"friend request bad username", "POST", "/api/v1/friends/requests", true, map[string]string{"username": ""}, V, val},
		{"friend request self", "POST", "/api/v1/friends/requests", true, map[string]string{"user_id": u.ID}, V, chatflow.ECodeCannotAddSelf},
		{"friend requests bad direction", "GET", "/api/v1/friends/requests?direction=sideways", true, nil, V, val},
		{"accept not a uuid", "POST", "/api/v1/friends/requests/not-a-uuid/accept", true, nil, NF, nf},
		{"accept unknown", "POST", "/api/v1/friends/requests/" + uuid.NewString() + "/accept", true, nil, NF, nf},
		{"decline unknown", "POST", "/api/v1/friends/requests/" + uuid.NewString() + "/decline", true, nil, NF, nf},
		{"cancel unknown", "DELETE", "/api/v1/friends/requests/" + uuid.NewString(), true, nil, NF, nf},
		{"friend requests without token", "GET", "/api/v1/friends/requests", false, nil, UA, chatflow.ECodeUnauthorized},
		{"unfriend not a uuid", "DELETE", "/api/v1/friends/not-a-uuid", true, nil, NF, nf},
		{"unfriend stranger", "DELETE", "/api/v1/friends/" + uuid.NewString(), true, nil, NF, nf},
		{"friends without token", "GET", "/api/v1/friends", false, nil, UA, chatflow.ECodeUnauthorized},

		// deposits
		{"deposit invalid JSON", "POST", "/api/v1/me/account/deposits", true, `{"amount":`, V, val},
		{"deposit empty body", "POST", "/api/v1/me/account/deposits", true, "", V, val},
		{"deposit amount string", "POST", "/api/v1/me/account/deposits", true, `{"amount":"10","idempotency_key":"k"}`, V, val},
		{"deposit amount fraction", "POST", "/api/v1/me/account/deposits", true, `{"amount":1.5,"idempotency_key":"k"}`, V, val},
		{"deposit amount zero", "POST", "/api/v1/me/account/deposits", true, `{"amount":0,"idempotency_key":"k"}`, V, val},
		{"deposit amount negative", "POST", "/api/v1/me/account/deposits", true, `{"amount":-5,"idempotency_key":"k"}`, V, val},
		{"deposit amount huge", "POST", "/api/v1/me/account/deposits", true, `{"amount":1000000000000,"idempotency_key":"k"}`, V, val},
		{"deposit amount overflow", "POST", "/api/v1/me/account/deposits", true, `{"amount":99999999999999999999999,"idempotency_key":"k"}`, V, val},
		{"deposit missing key", "POST", "/api/v1/me/account/deposits", true, `{"amount":10}`, V, val},
		{"deposit key too long", "POST", "/api/v1/me/account/deposits", true, map[string]any{"amount": 10, "idempotency_key": strings.Repeat("k", 129)}, V, val},
		{"deposit without token", "POST", "/api/v1/me/account/deposits", false, `{"amount":10,"idempotency_key":"k"}`, UA, chatflow.ECodeUnauthorized},

		// transactions
		{"transactions cursor not base64", "GET", "/api/v1/me/account/transactions?cursor=!!!", true, nil, V, val},
		{"transactions cursor no separator", "GET", "/api/v1/me/account/transactions?cursor=" + cursor("2024-01-01T00:00:00Z"), true, nil, V, val},
		{"transactions cursor bad time", "GET", "/api/v1/me/account/transactions?cursor=" + cursor("yesterday|"+uuid.NewString()), true, nil, V, val},
		{"transactions cursor bad id", "GET", "/api/v1/me/account/transactions?cursor=" + cursor("2024-01-01T00:00:00Z|nope"), true, nil, V, val},
		{"transactions bad limit", "GET", "/api/v1/me/account/transactions?limit=x", true, nil, V, val},
		{"transactions negative limit", "GET", "/api/v1/me/account/transactions?limit=-3", true, nil, V, val},

		// poison text: NUL and C0 controls, invalid UTF-8 and lone surrogates are
		// refused in every text field, never rewritten and never a 500
		{"NUL in username", "POST", "/api/v1/signup", false, `{"username":"va\u0000x","email":"a@b.co","password":"password-ok","display_name":"x"}`, V, val},
		{"NUL in email", "POST", "/api/v1/signup", false, `{"username":"va_nul1","email":"a\u0000@b.co","password":"password-ok","display_name":"x"}`, V, val},
		{"NUL in password", "POST", "/api/v1/signup", false, `{"username":"va_nul2","email":"a@b.co","password":"password\u0000ok","display_name":"x"}`, V, val},
		{"C0 in display name", "POST", "/api/v1/signup", false, `{"username":"va_nul3","email":"a@b.co","password":"password-ok","display_name":"a\u0007b"}`, V, val},
		{"lone surrogate in display name", "POST", "/api/v1/signup", false, `{"username":"va_nul4","email":"a@b.co","password":"password-ok","display_name":"a\ud800b"}`, V, val},
		{"invalid UTF-8 in display name", "POST", "/api/v1/signup", false, "{\"username\":\"va_nul5\",\"email\":\"a@b.co\",\"password\":\"password-ok\",\"display_name\":\"a\xffb\"}", V, val},
		{"NUL in login", "POST", "/api/v1/auth/login", false, `{"username":"va\u0000","password":"password-ok"}`, V, val},
		{"NUL in status message", "PATCH", "/api/v1/me", true, `{"status_message":"hi\u0000"}`, V, val},
		{"newline in display name", "PATCH", "/api/v1/me", true, `{"display_name":"a\nb"}`, V, val},
		{"NUL in room name", "POST", "/api/v1/rooms", true, `{"name":"r\u0000","member_ids":[]}`, V, val},
		{"C0 in room name", "POST", "/api/v1/rooms", true, `{"name":"r\u001b[31m","member_ids":[]}`, V, val},
		{"NUL in idempotency key", "POST", "/api/v1/me/account/deposits", true, `{"amount":10,"idempotency_key":"k\u0000"}`, V, val},
		{"NUL in search q", "GET", "/api/v1/users?q=" + url.QueryEscape("va\x00"), true, nil, V, val},
		{"C0 in search after", "GET", "/api/v1/users?q=va&after=" + url.QueryEscape("a\x01"), true, nil, V, val},
		{"invalid UTF-8 in search q", "GET", "/api/v1/users?q=%ff%fe", true, nil, V, val},
		{"NUL in transactions cursor", "GET", "/api/v1/me/account/transactions?cursor=" + url.QueryEscape("\x00"), true, nil, V, val},

		// unknown routes and methods
		{"unknown route", "GET", "/nope", false, nil, NF, nf},
		{"unknown api route", "GET", "/api/v1/nope", true, nil, NF, nf},
		{"unknown api version", "GET", "/api/v2/me", true, nil, NF, nf},
		{"wrong method on signup, with token", "DELETE", "/api/v1/signup", true, nil, NF, nf},
		{"wrong method on me", "PUT", "/api/v1/me", true, `{}`, NF, nf},
	})

	// Nothing above created a user or moved money.
	var me meJSON
	if r := acctCall(t, n, "GET", "/api/v1/me", u.Access, nil, &me); r.Status != 200 || me.DisplayName != "VA" || *me.Account.Balance != 0 {
		t.Errorf("me after bad requests: %d %s", r.Status, r.Body)
	}
	var ledger struct {
		Transactions []json.RawMessage `json:"transactions"`
	}
	if acctCall(t, n, "GET", "/api/v1/me/account/transactions", u.Access, nil, &ledger); len(ledger.Transactions) != 0 {
		t.Errorf("bad deposits left %d transactions", len(ledger.Transactions))
	}
}

// TestValidationUnknownRouteAnonymous: an unknown path under /api/v1 is
// "not found" for everybody, not an authentication challenge.
// A group-level auth middleware would turn these into 401s.
func TestValidationUnknownRouteAnonymous(t *testing.T) {
	env := testenv.Open(t)
	n := env.StartNode(t, testenv.NodeConfig{})
	for _, c := range []struct{ method, path string }{
		{"GET", "/api/v1/nope"}, {"DELETE", "/api/v1/signup"}, {"PUT", "/api/v1/auth/login"},
	} {
		r := acctCall(t, n, c.method, c.path, "", nil, nil)
		wantProblem(t, "anonymous "+c.method+" "+c.path, r, 404, chatflow.ECodeNotFound)
	}
}

type txJSON struct {
	TransactionID  string    `json:"transaction_id"`
	Amount         int64     `json:"amount"`
	BalanceAfter   int64     `json:"balance_after"`
	Kind           string    `json:"kind"`
	IdempotencyKey string    `json:"idempotency_key"`
	CreatedAt      time.Time `json:"created_at"`
}

func balanceOf(t testing.TB, n *testenv.Node, u testenv.User) int64 {
	t.Helper()
	var me meJSON
	if r := acctCall(t, n, "GET", "/api/v1/me", u.Access, nil, &me); r.Status != 200 || me.Account == nil || me.Account.Balance == nil {
		t.Fatalf("me: %d %s", r.Status, r.Body)
	}
	return *me.Account.Balance
}

func TestAccountDeposits(t *testing.T) {
	env := testenv.Open(t)
	env.Worker(t, nil)
	n := env.StartNode(t, testenv.NodeConfig{})
	u := n.SignUp(t, "vadep")

	var tx txJSON
	r := acctCall(t, n, "POST", "/api/v1/me/account/deposits", u.Access, map[string]any{"amount": 250, "idempotency_key": "first"}, &tx)
	if r.Status != 201 {
		t.Fatalf("deposit: %d %s", r.Status, r.Body)
	}
	if _, err := uuid.Parse(tx.TransactionID); err != nil || tx.Amount != 250 || tx.BalanceAfter != 250 || tx.Kind != "deposit" ||
		tx.IdempotencyKey != "first" || time.Since(tx.CreatedAt) > time.Minute {
		t.Errorf("deposit answer %s", r.Body)
	}
	if b := balanceOf(t, n, u); b != 250 {
		t.Errorf("balance %d, want 250", b)
	}

	// Repeating the key returns the first transaction and credits nothing.
	var again txJSON
	r = acctCall(t, n, "POST", "/api/v1/me/account/deposits", u.Access, map[string]any{"amount": 250, "idempotency_key": "first"}, &again)
	if r.Status != 200 && r.Status != 201 {
		t.Fatalf("repeated deposit: %d %s", r.Status, r.Body)
	}
	if again != tx {
		t.Errorf("repeated deposit = %+v, want the first %+v", again, tx)
	}
	if b := balanceOf(t, n, u); b != 250 {
		t.Errorf("balance after a repeated key %d, want 250", b)
	}
	// The same key with another amount is a conflict, not a second credit.
	r = acctCall(t, n, "POST", "/api/v1/me/account/deposits", u.Access, map[string]any{"amount": 999, "idempotency_key": "first"}, nil)
	wantProblem(t, "key reused with another amount", r, 409, chatflow.ECodeConflict)

	// Ten concurrent deposits with one key: exactly one credit.
	const N = 10
	ids := make([]string, N)
	statuses := make([]int, N)
	errs := make([]error, N)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range N {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			r, err := acctDo(n, "POST", "/api/v1/me/account/deposits", u.Access, map[string]any{"amount": 40, "idempotency_key": "burst"})
			if err != nil {
				errs[i] = err
				return
			}
			var tx txJSON
			errs[i] = json.Unmarshal(r.Body, &tx)
			ids[i], statuses[i] = tx.TransactionID, r.Status
		}()
	}
	close(start)
	wg.Wait()
	created := 0
	for i := range N {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		switch statuses[i] {
		case 201:
			created++
		case 200:
		default:
			t.Errorf("concurrent deposit %d: status %d", i, statuses[i])
		}
		if ids[i] != ids[0] || ids[i] == "" {
			t.Errorf("concurrent deposits returned different transactions: %v", ids)
			break
		}
	}
	if created != 1 {
		t.Errorf("%d concurrent deposits answered 201, want exactly 1", created)
	}
	if b := balanceOf(t, n, u); b != 290 {
		t.Errorf("balance after the burst %d, want 290", b)
	}
	var rows int
	if err := env.Pool.QueryRow(context.Background(), `SELECT count(*) FROM customer.transactions WHERE user_id = $1 AND idempotency_key = 'burst'`,
		uuid.MustParse(u.ID)).Scan(&rows); err != nil {
		t.Fatal(err)
	}
	if rows != 1 {
		t.Errorf("%d ledger rows for one idempotency key", rows)
	}

	// Keys are per user: another user may use "first" too.
	v := n.SignUp(t, "vadep2")
	if r := acctCall(t, n, "POST", "/api/v1/me/account/deposits", v.Access, map[string]any{"amount": 7, "idempotency_key": "first"}, &tx); r.Status != 201 || tx.BalanceAfter != 7 {
		t.Errorf("other user's deposit with the same key: %d %s", r.Status, r.Body)
	}
	if b := balanceOf(t, n, u); b != 290 {
		t.Errorf("balance moved by another user's deposit: %d", b)
	}
}

func TestAccountLedgerPaging(t *testing.T) {
	env := testenv.Open(t)
	env.Worker(t, nil)
	n := env.StartNode(t, testenv.NodeConfig{})
	u := n.SignUp(t, "valed")

	const N = 7
	var made []txJSON
	for i := range N {
		var tx txJSON
		if r := acctCall(t, n, "POST", "/api/v1/me/account/deposits", u.Access, map[string]any{"amount": i + 1, "idempotency_key": fmt.Sprintf("k%d", i)}, &tx); r.Status != 201 {
			t.Fatalf("deposit %d: %d %s", i, r.Status, r.Body)
		}
		made = append(made, tx)
	}
	if made[N-1].BalanceAfter != N*(N+1)/2 {
		t.Errorf("final balance_after %d", made[N-1].BalanceAfter)
	}

	// Whole ledger, newest first.
	var all struct {
		Transactions []txJSON `json:"transactions"`
		NextCursor   string   `json:"next_cursor"`
	}
	if r := acctCall(t, n, "GET", "/api/v1/me/account/transactions", u.Access, nil, &all); r.Status != 200 {
		t.Fatalf("ledger: %d %s", r.Status, r.Body)
	}
	if len(all.Transactions) != N {
		t.Fatalf("ledger has %d entries, want %d", len(all.Transactions), N)
	}
	for i, tx := range all.Transactions {
		if tx != made[N-1-i] {
			t.Errorf("ledger[%d] = %+v, want %+v", i, tx, made[N-1-i])
		}
	}
	if all.NextCursor != "" {
		t.Errorf("a complete page carries next_cursor %q", all.NextCursor)
	}

	// Pages of 3 walk the same list without gaps or repeats.
	var got []txJSON
	cur := ""
	for page := 0; ; page++ {
		if page > N {
			t.Fatalf("paging does not end")
		}
		path := "/api/v1/me/account/transactions?limit=3"
		if cur != "" {
			path += "&cursor=" + url.QueryEscape(cur)
		}
		var p struct {
			Transactions []txJSON `json:"transactions"`
			NextCursor   string   `json:"next_cursor"`
		}
		if r := acctCall(t, n, "GET", path, u.Access, nil, &p); r.Status != 200 {
			t.Fatalf("ledger page %d: %d %s", page, r.Status, r.Body)
		}
		if len(p.Transactions) > 3 {
			t.Fatalf("page of %d entries with limit=3", len(p.Transactions))
		}
		got = append(got, p.Transactions...)
		if p.NextCursor == "" {
			break
		}
		cur = p.NextCursor
	}
	if len(got) != N {
		t.Fatalf("paged ledger has %d entries, want %d", len(got), N)
	}
	for i := range got {
		if got[i] != all.Transactions[i] {
			t.Errorf("paged[%d] = %+v, want %+v", i, got[i], all.Transactions[i])
		}
	}

	// Another user's ledger is separate.
	v := n.SignUp(t, "valed2")
	var other struct {
		Transactions []txJSON `json:"transactions"`
	}
	if r := acctCall(t, n, "GET", "/api/v1/me/account/transactions", v.Access, nil, &other); r.Status != 200 || len(other.Transactions) != 0 || other.Transactions == nil {
		t.Errorf("a new user's ledger: %d %s", r.Status, r.Body)
	}
}

func TestProfileUpdate(t *testing.T) {
	env := testenv.Open(t)
	env.Worker(t, nil)
	n := env.StartNode(t, testenv.NodeConfig{})
	u := n.SignUp(t, "vaprof")

	var v struct {
		UserID        string `json:"user_id"`
		Username      string `json:"username"`
		DisplayName   string `json:"display_name"`
		StatusMessage string `json:"status_message"`
	}
	r := acctCall(t, n, "PATCH", "/api/v1/me", u.Access, map[string]string{"display_name": "  Zoë Q  ", "status_message": "on a boat ⛵"}, &v)
	if r.Status != 200 {
		t.Fatalf("patch me: %d %s", r.Status, r.Body)
	}
	if v.UserID != u.ID || v.Username != u.Username || v.DisplayName != "Zoë Q" || v.StatusMessage != "on a boat ⛵" {
		t.Errorf("patch answer %s", r.Body)
	}
	var me meJSON
	acctCall(t, n, "GET", "/api/v1/me", u.Access, nil, &me)
	if me.DisplayName != "Zoë Q" || me.StatusMessage != "on a boat ⛵" {
		t.Errorf("me after patch %+v", me)
	}
	// Fields left out stay as they are.
	r = acctCall(t, n, "PATCH", "/api/v1/me", u.Access, map[string]string{"status_message": ""}, &v)
	if r.Status != 200 || v.DisplayName != "Zoë Q" || v.StatusMessage != "" {
		t.Errorf("patch status only: %d %s", r.Status, r.Body)
	}
	r = acctCall(t, n, "PATCH", "/api/v1/me", u.Access, `{}`, &v)
	if r.Status != 200 || v.DisplayName != "Zoë Q" {
		t.Errorf("empty patch: %d %s", r.Status, r.Body)
	}
	// 64 characters is the limit, counted in characters, not bytes.
	long := strings.Repeat("é", 64)
	if r := acctCall(t, n, "PATCH", "/api/v1/me", u.Access, map[string]string{"display_name": long}, &v); r.Status != 200 || v.DisplayName != long {
		t.Errorf("64-character display name: %d %s", r.Status, r.Body)
	}
}

func TestUserSearchAndFriends(t *testing.T) {
	env := testenv.Open(t)
	env.Worker(t, nil)
	n := env.StartNode(t, testenv.NodeConfig{})
	prefix := "vs" + testenv.Unique()[:8]
	a, b := n.SignUp(t, prefix), n.SignUp(t, prefix)
	outsider := n.SignUp(t, "vsout")

	type userJSON struct {
		UserID        string `json:"user_id"`
		Username      string `json:"username"`
		DisplayName   string `json:"display_name"`
		StatusMessage string `json:"status_message"`
	}
	type searchJSON struct {
		Users     []userJSON `json:"users"`
		NextAfter string     `json:"next_after"`
	}
	search := func(q string, extra string) searchJSON {
		t.Helper()
		var s searchJSON
		r := acctCall(t, n, "GET", "/api/v1/users?q="+url.QueryEscape(q)+extra, outsider.Access, nil, &s.Users)
		if r.Status != 200 {
			t.Fatalf("search %q: %d %s", q, r.Status, r.Body)
		}
		if !strings.HasPrefix(strings.TrimSpace(string(r.Body)), "[") {
			t.Fatalf("search %q: answer is not a JSON array: %s", q, r.Body)
		}
		s.NextAfter = r.Header.Get("X-Next-After")
		return s
	}
	names := func(s searchJSON) []string {
		var out []string
		for _, u := range s.Users {
			out = append(out, u.Username)
		}
		return out
	}

	// Username prefix: both users, sorted, nobody else.
	s := search(prefix, "")
	want := []string{a.Username, b.Username}
	if want[0] > want[1] {
		want[0], want[1] = want[1], want[0]
	}
	if got := names(s); len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Fatalf("search %q = %v, want %v", prefix, got, want)
	}
	for _, u := range s.Users {
		if (u.Username == a.Username && u.UserID != a.ID) || (u.Username == b.Username && u.UserID != b.ID) || u.DisplayName != strings.ToUpper(prefix) {
			t.Errorf("search row %+v", u)
		}
	}
	// A longer prefix narrows it down to one.
	if got := names(search(a.Username, "")); len(got) != 1 || got[0] != a.Username {
		t.Errorf("search %q = %v", a.Username, got)
	}
	// Paged: limit=1 returns one and a cursor that yields the other.
	p1 := search(prefix, "&limit=1")
	if len(p1.Users) != 1 || p1.Users[0].Username != want[0] || p1.NextAfter == "" {
		t.Fatalf("first page %+v", p1)
	}
	p2 := search(prefix, "&limit=1&after="+url.QueryEscape(p1.NextAfter))
	if len(p2.Users) != 1 || p2.Users[0].Username != want[1] {
		t.Fatalf("second page %+v", p2)
	}
	// Display-name prefix, case-insensitive.
	dn := "Dn" + testenv.Unique()
	if r := acctCall(t, n, "PATCH", "/api/v1/me", b.Access, map[string]string{"display_name": dn + " Person"}, nil); r.Status != 200 {
		t.Fatalf("patch: %d", r.Status)
	}
	if got := names(search(strings.ToLower(dn), "")); len(got) != 1 || got[0] != b.Username {
		t.Errorf("display-name search = %v, want [%s]", got, b.Username)
	}
	// LIKE wildcards are literal: "_" and "%" match only themselves.
	if got := names(search(prefix[:4]+"%", "")); len(got) != 0 {
		t.Errorf("search with %% matched %v", got)
	}
	if got := names(search(strings.Replace(prefix, prefix[2:3], "_", 1), "")); len(got) != 0 {
		t.Errorf("search with _ wildcard matched %v", got)
	}
	if got := search("zz_nobody_"+testenv.Unique(), ""); got.Users == nil || len(got.Users) != 0 {
		t.Errorf("empty search = %+v, want an empty list", got)
	}

	// Friends: mutual, through requests; list, remove.
	type friendsJSON struct {
		Friends []userJSON
	}
	var f friendsJSON
	if r := acctCall(t, n, "GET", "/api/v1/friends", a.Access, nil, &f.Friends); r.Status != 200 || f.Friends == nil || len(f.Friends) != 0 {
		t.Fatalf("initial friends: %d %s", r.Status, r.Body)
	}
	var asked struct {
		User userJSON `json:"user"`
	}
	if r := acctCall(t, n, "POST", "/api/v1/friends/requests", a.Access, map[string]string{"username": b.Username}, &asked); r.Status != 201 || asked.User.UserID != b.ID {
		t.Fatalf("ask b: %d %s", r.Status, r.Body)
	}
	if r := acctCall(t, n, "POST", "/api/v1/friends/requests", a.Access, map[string]string{"username": outsider.Username}, nil); r.Status != 201 {
		t.Fatalf("ask outsider: %d %s", r.Status, r.Body)
	}
	// Asking twice is refused with its own code.
	r := acctCall(t, n, "POST", "/api/v1/friends/requests", a.Access, map[string]string{"username": b.Username}, nil)
	wantProblem(t, "ask twice", r, 409, chatflow.ECodeRequestPending)
	// A request is not a friendship.
	if acctCall(t, n, "GET", "/api/v1/friends", a.Access, nil, &f.Friends); len(f.Friends) != 0 {
		t.Fatalf("friends before acceptance = %+v", f.Friends)
	}
	if r := acctCall(t, n, "POST", "/api/v1/friends/requests/"+a.ID+"/accept", b.Access, nil, nil); r.Status != 200 {
		t.Fatalf("b accepts: %d %s", r.Status, r.Body)
	}
	if r := acctCall(t, n, "POST", "/api/v1/friends/requests/"+a.ID+"/accept", outsider.Access, nil, nil); r.Status != 200 {
		t.Fatalf("outsider accepts: %d %s", r.Status, r.Body)
	}
	acctCall(t, n, "GET", "/api/v1/friends", a.Access, nil, &f.Friends)
	if len(f.Friends) != 2 {
		t.Fatalf("friends = %+v, want 2", f.Friends)
	}
	ids := map[string]bool{f.Friends[0].UserID: true, f.Friends[1].UserID: true}
	if !ids[b.ID] || !ids[outsider.ID] || f.Friends[0].Username > f.Friends[1].Username {
		t.Errorf("friends = %+v", f.Friends)
	}
	// Friendship is mutual: b lists a.
	var fb friendsJSON
	if acctCall(t, n, "GET", "/api/v1/friends", b.Access, nil, &fb.Friends); len(fb.Friends) != 1 || fb.Friends[0].UserID != a.ID {
		t.Errorf("b's friends = %+v", fb.Friends)
	}
	if r := acctCall(t, n, "DELETE", "/api/v1/friends/"+b.ID, a.Access, nil, nil); r.Status != 204 {
		t.Fatalf("remove friend: %d %s", r.Status, r.Body)
	}
	r = acctCall(t, n, "DELETE", "/api/v1/friends/"+a.ID, b.Access, nil, nil)
	wantProblem(t, "remove a removed friend (the other side)", r, 404, chatflow.ECodeNotFound)
	acctCall(t, n, "GET", "/api/v1/friends", a.Access, nil, &f.Friends)
	if len(f.Friends) != 1 || f.Friends[0].UserID != outsider.ID {
		t.Errorf("friends after removal = %+v", f.Friends)
	}
	if acctCall(t, n, "GET", "/api/v1/friends", b.Access, nil, &fb.Friends); len(fb.Friends) != 0 {
		t.Errorf("b's friends after removal = %+v", fb.Friends)
	}
}
