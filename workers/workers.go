// Package workers runs the Temporal worker pools: one for sign-up sagas and
// one for message batches. More `chatflow worker` processes add capacity.
package workers

import (
	"context"
	"errors"
	"time"

	"go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/chatflow/chatflow"
	"github.com/chatflow/chatflow/activities"
	"github.com/chatflow/chatflow/workflows"
)

// Config sizes the pools.
type Config struct {
	SignupConcurrency   int
	MessagesConcurrency int
	SignupTaskQueue     string
	MessagesTaskQueue   string
	// ReconcileEvery is the reconciler's schedule.
	ReconcileEvery time.Duration
}

// DefaultConfig is the configuration `make dev` runs with.
func DefaultConfig() Config {
	return Config{
		SignupConcurrency: 32, MessagesConcurrency: 64,
		SignupTaskQueue: chatflow.SignupTaskQueue, MessagesTaskQueue: chatflow.MessagesTaskQueue,
		ReconcileEvery: 5 * time.Second,
	}
}

// New builds both workers with every workflow and activity registered.
func New(c client.Client, acts *activities.Activities, cfg Config) []worker.Worker {
	sw := worker.New(c, cfg.SignupTaskQueue, worker.Options{
		MaxConcurrentActivityExecutionSize:     cfg.SignupConcurrency,
		MaxConcurrentWorkflowTaskExecutionSize: cfg.SignupConcurrency,
	})
	sw.RegisterWorkflow(workflows.Signup)
	// The transfer saga shares the sagas' pool and task queue.
	sw.RegisterWorkflowWithOptions(workflows.Transfer, workflow.RegisterOptions{Name: chatflow.WorkflowTransfer})
	// Account deletions run on the sign-up pool: both are account sagas.
	sw.RegisterWorkflowWithOptions(workflows.DeleteUser, workflow.RegisterOptions{Name: chatflow.WorkflowDeleteUser})
	sw.RegisterActivity(acts)

	mw := worker.New(c, cfg.MessagesTaskQueue, worker.Options{
		MaxConcurrentActivityExecutionSize:     cfg.MessagesConcurrency,
		MaxConcurrentWorkflowTaskExecutionSize: cfg.MessagesConcurrency,
		MaxConcurrentActivityTaskPollers:       4,
		MaxConcurrentWorkflowTaskPollers:       4,
	})
	mw.RegisterWorkflowWithOptions(workflows.PersistBatch, workflow.RegisterOptions{Name: chatflow.WorkflowPersistBatch})
	mw.RegisterWorkflowWithOptions(workflows.Reconcile, workflow.RegisterOptions{Name: chatflow.WorkflowReconcile})
	mw.RegisterActivity(acts)
	return []worker.Worker{sw, mw}
}

// ReconcileScheduleID names the reconciler's schedule of a task queue.
func ReconcileScheduleID(taskQueue string) string { return "reconcile-" + taskQueue }

// EnsureReconcileSchedule creates the Temporal Schedule that runs the
// reconciler on the messages task queue (visible in the Web UI under
// Schedules), or updates its interval if it exists. Overlapping runs are
// skipped, so a slow pass never piles up.
func EnsureReconcileSchedule(ctx context.Context, c client.Client, cfg Config) error {
	id := ReconcileScheduleID(cfg.MessagesTaskQueue)
	spec := client.ScheduleSpec{Intervals: []client.ScheduleIntervalSpec{{Every: cfg.ReconcileEvery}}}
	_, err := c.ScheduleClient().Create(ctx, client.ScheduleOptions{
		ID:      id,
		Spec:    spec,
		Overlap: enums.SCHEDULE_OVERLAP_POLICY_SKIP,
		Action: &client.ScheduleWorkflowAction{
			ID: "reconcile-" + cfg.MessagesTaskQueue, Workflow: chatflow.WorkflowReconcile, TaskQueue: cfg.MessagesTaskQueue,
			// a pass that cannot run (no worker) is dropped, not queued up
			WorkflowRunTimeout: 10 * time.Minute,
		},
		Memo: map[string]any{"what": "persists and publishes whatever the rooms' logs hold beyond Postgres and Kafka"},
	})
	if errors.Is(err, temporal.ErrScheduleAlreadyRunning) {
		return c.ScheduleClient().GetHandle(ctx, id).Update(ctx, client.ScheduleUpdateOptions{
			DoUpdate: func(in client.ScheduleUpdateInput) (*client.ScheduleUpdate, error) {
				in.Description.Schedule.Spec = &spec
				return &client.ScheduleUpdate{Schedule: &in.Description.Schedule}, nil
			},
		})
	}
	return err
}
