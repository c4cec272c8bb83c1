package tests

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"
	"go.temporal.io/sdk/client"

	"github.com/chatflow/chatflow"
	"github.com/chatflow/chatflow/internal/testenv"
	"github.com/chatflow/chatflow/workflows"
)

// runResume runs one pass of the transfer resume, as its schedule does.
func runResume(t *testing.T, env *testenv.Env) workflows.ResumeResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	run, err := env.Temporal.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID: "resume-transfers-test-" + uuid.NewString(), TaskQueue: testenv.SignupTaskQueue,
	}, chatflow.WorkflowResumeTransfers)
	if err != nil {
		t.Fatal(err)
	}
	var res workflows.ResumeResult
	if err := run.Get(ctx, &res); err != nil {
		t.Fatalf("resume pass: %v", err)
	}
	return res
}

// A transfer the api recorded but could not start (Temporal unreachable:
// 503, and the sender never repeated the request) is started by the
// transfer resume and completes; one whose saga already ran is not run
// again, so its money moves once.
func TestTransferResume(t *testing.T) {
	env := testenv.Open(t)
	env.Worker(t, nil)
	n := env.StartNode(t, testenv.NodeConfig{})
	a, b := n.SignUp(t, "trra"), n.SignUp(t, "trrb")
	room := n.CreateRoom(t, a, b)
	if r := move(t, n, a, "deposits", 1000, "seed", nil); r.Status != 201 {
		t.Fatalf("deposit: %d %s", r.Status, r.Body)
	}
	ctx := context.Background()

	// What createTransfer writes before it starts the saga, two minutes
	// ago; then the start "failed".
	stranded := uuid.New()
	if _, err := env.Pool.Exec(ctx, `INSERT INTO customer.transfers (id, from_id, to_id, room_id, amount, memo, idempotency_key, created_at)
VALUES ($1, $2, $3, $4, 120, 'stranded', 'stranded-1', now() - interval '2 minutes')`, stranded, a.ID, b.ID, room); err != nil {
		t.Fatal(err)
	}
	// A transfer that ran to its end, then set back to pending and aged:
	// what a saga looks like that the resume must not run twice.
	var done transferJSON
	if r := postTransfer(t, n, a, room, b.ID, 30, "done-1", "", &done); r.Status != 202 {
		t.Fatalf("transfer: %d %s", r.Status, r.Body)
	}
	if got := awaitTransfer(t, n, a, done.TransferID); got.Status != chatflow.StatusCompleted {
		t.Fatalf("transfer %+v", got)
	}
	if _, err := env.Pool.Exec(ctx, `UPDATE customer.transfers SET status = 'pending', finished_at = NULL, created_at = now() - interval '2 minutes' WHERE id = $1`, done.TransferID); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_, _ = env.Pool.Exec(context.Background(), `UPDATE customer.transfers SET status = 'completed', finished_at = now() WHERE id = $1 AND status = 'pending'`, done.TransferID)
	})

	res := runResume(t, env)
	// Other pending transfers of the shared database may be found too, and
	// the schedule's own pass may have started the stranded one first;
	// both must be among those found, and nobody else starts the stranded
	// one (it completing below is the proof that a pass did).
	if res.Found < 2 || res.Started+res.Running < 2 || res.Running < 1 {
		t.Fatalf("first pass %+v: want both transfers found, the finished one already started", res)
	}
	got := awaitTransfer(t, n, b, stranded.String())
	if got.Status != chatflow.StatusCompleted || got.MessageSeq == nil {
		t.Fatalf("stranded transfer after the resume: %+v", got)
	}
	if ba, bb := balanceOf(t, n, a), balanceOf(t, n, b); ba != 1000-30-120 || bb != 30+120 {
		t.Errorf("balances %d / %d, want %d / %d: each transfer moved once", ba, bb, 1000-30-120, 30+120)
	}
	la := fullLedger(t, n, a)
	checkLedger(t, a.Username, la, 1000-30-120)
	if e := entriesOf(la, done.TransferID); len(e) != 1 || e[chatflow.LegOut].Amount != -30 {
		t.Errorf("the finished transfer's entries after the resume: %+v", e)
	}
	if msgs := transferMessages(t, n, a, room); len(msgs) != 2 {
		t.Errorf("transfer messages %+v, want one per transfer", msgs)
	}

	// A second pass finds the stranded transfer ended.
	res = runResume(t, env)
	var status string
	if err := env.Pool.QueryRow(ctx, `SELECT status FROM customer.transfers WHERE id = $1`, stranded).Scan(&status); err != nil || status != chatflow.StatusCompleted {
		t.Fatalf("stranded transfer %q %v after a second pass %+v", status, err, res)
	}
}
