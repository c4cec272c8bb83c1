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

func batchOf(n int) activities.MessageBatch {
	b := activities.MessageBatch{Node: "n1"}
	for i := 1; i <= n; i++ {
		b.Messages = append(b.Messages, chatflow.Message{Seq: int64(i), Body: "m", SentAt: time.Unix(0, 0).UTC()})
	}
	return b
}

// TestPersistBatchWritesThenPublishes: Postgres first, Kafka second, the same batch to both.
func TestPersistBatchWritesThenPublishes(t *testing.T) {
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	var a *activities.Activities
	env.RegisterActivity(a)
	var order []string
	in := batchOf(3)
	env.OnActivity(a.PersistMessages, mock.Anything, in).Return(func(_ context.Context, b activities.MessageBatch) (int64, error) {
		order = append(order, "persist")
		return int64(len(b.Messages)), nil
	})
	env.OnActivity(a.PublishMessages, mock.Anything, in).Return(func(_ context.Context, b activities.MessageBatch) error {
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
	if res.Inserted != 3 {
		t.Fatalf("inserted %d, want 3", res.Inserted)
	}
	if len(order) != 2 || order[0] != "persist" || order[1] != "publish" {
		t.Fatalf("order %v, want [persist publish]", order)
	}
}

// TestPersistBatchRetriesUntilDurable: acknowledged messages must never be
// dropped, so transient failures of either step are retried, not surfaced.
func TestPersistBatchRetriesUntilDurable(t *testing.T) {
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	var a *activities.Activities
	env.RegisterActivity(a)
	persistCalls, publishCalls := 0, 0
	env.OnActivity(a.PersistMessages, mock.Anything, mock.Anything).Return(func(_ context.Context, b activities.MessageBatch) (int64, error) {
		persistCalls++
		if persistCalls < 4 {
			return 0, errors.New("postgres unavailable")
		}
		return int64(len(b.Messages)), nil
	})
	env.OnActivity(a.PublishMessages, mock.Anything, mock.Anything).Return(func(_ context.Context, b activities.MessageBatch) error {
		publishCalls++
		if publishCalls < 3 {
			return errors.New("kafka unavailable")
		}
		return nil
	})
	env.ExecuteWorkflow(workflows.PersistBatch, batchOf(2))
	if err := env.GetWorkflowError(); err != nil {
		t.Fatalf("batch failed instead of retrying: %v", err)
	}
	if persistCalls != 4 || publishCalls != 3 {
		t.Fatalf("persist called %d times (want 4), publish %d (want 3)", persistCalls, publishCalls)
	}
}
