package workflows_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"go.temporal.io/sdk/testsuite"

	"github.com/chatflow/chatflow"
	"github.com/chatflow/chatflow/activities"
	"github.com/chatflow/chatflow/workflows"
)

func batchOf(n int) chatflow.MessageBatch {
	b := chatflow.MessageBatch{Node: "n1"}
	for i := 1; i <= n; i++ {
		b.Messages = append(b.Messages, chatflow.Message{RoomID: "r1", Seq: int64(i), Body: "m", SentAt: time.Unix(0, 0).UTC()})
	}
	return b
}

// TestPersistBatchWritesThenPublishes: Postgres first, then Kafka for the batch's rooms.
func TestPersistBatchWritesThenPublishes(t *testing.T) {
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	var a *activities.Activities
	env.RegisterActivity(a)
	var order []string
	in := batchOf(3)
	env.OnActivity(a.PersistMessages, mock.Anything, in).Return(func(_ context.Context, b chatflow.MessageBatch) (int64, error) {
		order = append(order, "persist")
		return int64(len(b.Messages)), nil
	})
	env.OnActivity(a.PublishRooms, mock.Anything, []string{"r1"}).Return(func(_ context.Context, rooms []string) error {
		order = append(order, "publish")
		return nil
	})
	env.ExecuteWorkflow(workflows.PersistBatch, in)
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	var res workflows.PersistResult
	if err := env.GetWorkflowResult(&res); err != nil {
		t.Fatal(err)
	}
	if res.Inserted != 3 || res.PublishDeferred {
		t.Fatalf("result %+v, want 3 inserted and published", res)
	}
	if len(order) != 2 || order[0] != "persist" || order[1] != "publish" {
		t.Fatalf("order %v, want [persist publish]", order)
	}
}

// TestPersistBatchOutlivesLongOutage: a Postgres outage far past the old
// 23 s cut-off (here 30 simulated minutes) is retried, never surfaced, and
// the backoff between attempts stays bounded.
func TestPersistBatchOutlivesLongOutage(t *testing.T) {
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	var a *activities.Activities
	env.RegisterActivity(a)
	var calls []time.Time
	outageEnds := env.Now().Add(30 * time.Minute)
	env.OnActivity(a.PersistMessages, mock.Anything, mock.Anything).Return(func(_ context.Context, b chatflow.MessageBatch) (int64, error) {
		calls = append(calls, env.Now())
		if env.Now().Before(outageEnds) {
			return 0, errors.New("postgres unavailable")
		}
		return int64(len(b.Messages)), nil
	})
	env.OnActivity(a.PublishRooms, mock.Anything, mock.Anything).Return(nil)
	env.ExecuteWorkflow(workflows.PersistBatch, batchOf(2))
	if err := env.GetWorkflowError(); err != nil {
		t.Fatalf("batch failed instead of retrying: %v", err)
	}
	if len(calls) < 150 {
		t.Fatalf("only %d attempts over a 30-minute outage", len(calls))
	}
	for i := 1; i < len(calls); i++ {
		if gap := calls[i].Sub(calls[i-1]); gap > 11*time.Second {
			t.Fatalf("attempt %d waited %v after the previous one; backoff must stay bounded", i, gap)
		}
	}
}

// TestPersistBatchKafkaDoesNotBlock: a Kafka failure leaves publishing to
// the reconciler; the batch (already in Postgres) completes.
func TestPersistBatchKafkaDoesNotBlock(t *testing.T) {
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	var a *activities.Activities
	env.RegisterActivity(a)
	env.OnActivity(a.PersistMessages, mock.Anything, mock.Anything).Return(int64(2), nil)
	publishCalls := 0
	env.OnActivity(a.PublishRooms, mock.Anything, mock.Anything).Return(func(context.Context, []string) error {
		publishCalls++
		return errors.New("kafka unavailable")
	})
	env.ExecuteWorkflow(workflows.PersistBatch, batchOf(2))
	if err := env.GetWorkflowError(); err != nil {
		t.Fatalf("batch failed on Kafka: %v", err)
	}
	var res workflows.PersistResult
	if err := env.GetWorkflowResult(&res); err != nil {
		t.Fatal(err)
	}
	if !res.PublishDeferred || publishCalls != 1 {
		t.Fatalf("result %+v after %d publish calls; want deferred after one", res, publishCalls)
	}
}

// TestReconcileRunsOnePass: the scheduled workflow runs the reconciler
// activity and reports its result.
func TestReconcileRunsOnePass(t *testing.T) {
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	var a *activities.Activities
	env.RegisterActivity(a)
	want := activities.ReconcileResult{Rooms: 2, Persisted: 7, Tombstones: 1}
	env.OnActivity(a.Reconcile, mock.Anything).Return(want, nil)
	env.ExecuteWorkflow(workflows.Reconcile)
	var got activities.ReconcileResult
	if err := env.GetWorkflowResult(&got); err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Fatalf("result %+v, want %+v", got, want)
	}
}

// TestSweepUploadsRetriesThenGivesUp: a sweep whose activity keeps failing
// (the object store down) is tried three times and then fails, leaving the
// rest to the next scheduled sweep; one that succeeds reports its result.
func TestSweepUploadsRetriesThenGivesUp(t *testing.T) {
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	var a *activities.Activities
	env.RegisterActivity(a)
	calls := 0
	env.OnActivity(a.SweepUploads, mock.Anything).Return(func(context.Context) (activities.SweepResult, error) {
		calls++
		return activities.SweepResult{}, errors.New("store down")
	})
	env.ExecuteWorkflow(workflows.SweepUploads)
	if err := env.GetWorkflowError(); err == nil || calls != 3 {
		t.Fatalf("error %v after %d attempts, want an error after 3", err, calls)
	}

	env = s.NewTestWorkflowEnvironment()
	env.RegisterActivity(a)
	want := activities.SweepResult{Expired: 3, Deleted: 2, Objects: 4}
	env.OnActivity(a.SweepUploads, mock.Anything).Return(want, nil)
	env.ExecuteWorkflow(workflows.SweepUploads)
	var got activities.SweepResult
	if err := env.GetWorkflowResult(&got); err != nil || got != want {
		t.Fatalf("result %+v %v, want %+v", got, err, want)
	}
}
