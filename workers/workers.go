// Package workers runs the Temporal worker pools: one for sign-up sagas and
// one for message batches. More `chatflow worker` processes add capacity.
package workers

import (
	"context"
	"errors"
	"fmt"
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
	// SweepEvery is the upload sweep's schedule.
	SweepEvery time.Duration
	// ResumeEvery is the transfer resume's schedule.
	ResumeEvery time.Duration
}

// DefaultConfig is the configuration `make dev` runs with.
func DefaultConfig() Config {
	return Config{
		SignupConcurrency: 32, MessagesConcurrency: 64,
		SignupTaskQueue: chatflow.SignupTaskQueue, MessagesTaskQueue: chatflow.MessagesTaskQueue,
		ReconcileEvery: 5 * time.Second, SweepEvery: 10 * time.Minute, ResumeEvery: time.Minute,
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
	// So does the upload sweep: housekeeping of what users uploaded.
	sw.RegisterWorkflowWithOptions(workflows.SweepUploads, workflow.RegisterOptions{Name: chatflow.WorkflowSweepUploads})
	// And the transfer resume, next to the transfer sagas it starts.
	sw.RegisterWorkflowWithOptions(workflows.ResumeTransfers, workflow.RegisterOptions{Name: chatflow.WorkflowResumeTransfers})
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

// SweepScheduleID names the upload sweep's schedule of a task queue.
func SweepScheduleID(taskQueue string) string { return "sweep-uploads-" + taskQueue }

// ResumeScheduleID names the transfer resume's schedule of a task queue.
func ResumeScheduleID(taskQueue string) string { return "resume-transfers-" + taskQueue }

// schedule is one of the worker's periodic workflows.
type schedule struct {
	id, name, what  string // name and what: for errors and the Web UI's memo
	workflow, queue string
	every, timeout  time.Duration
}

func schedules(cfg Config) []schedule {
	return []schedule{
		{ReconcileScheduleID(cfg.MessagesTaskQueue), "reconciler",
			"persists and publishes whatever the rooms' logs hold beyond Postgres and Kafka",
			chatflow.WorkflowReconcile, cfg.MessagesTaskQueue, cfg.ReconcileEvery, 10 * time.Minute},
		{SweepScheduleID(cfg.SignupTaskQueue), "upload sweep",
			"expires uploads never attached and avatar uploads never set, then deletes their objects",
			chatflow.WorkflowSweepUploads, cfg.SignupTaskQueue, cfg.SweepEvery, 30 * time.Minute},
		{ResumeScheduleID(cfg.SignupTaskQueue), "transfer resume",
			"starts the sagas of transfers recorded but left pending (their start failed and the sender did not retry)",
			chatflow.WorkflowResumeTransfers, cfg.SignupTaskQueue, cfg.ResumeEvery, 10 * time.Minute},
	}
}

// ScheduleIDs names every schedule EnsureSchedules sets up for cfg.
func ScheduleIDs(cfg Config) []string {
	var ids []string
	for _, s := range schedules(cfg) {
		ids = append(ids, s.id)
	}
	return ids
}

// EnsureSchedules creates the Temporal Schedules of the worker's periodic
// workflows (visible in the Web UI under Schedules), or updates the
// interval of those that exist: the reconciler on the messages task queue,
// the upload sweep and the transfer resume on the sagas' one. Overlapping
// runs are skipped, so a slow pass never piles up, and a run that cannot
// start (no worker) is dropped rather than queued.
func EnsureSchedules(ctx context.Context, c client.Client, cfg Config) error {
	for _, s := range schedules(cfg) {
		err := ensureSchedule(ctx, c, s.id, s.every, &client.ScheduleWorkflowAction{
			ID: s.id, Workflow: s.workflow, TaskQueue: s.queue, WorkflowRunTimeout: s.timeout,
		}, s.what)
		if err != nil {
			return fmt.Errorf("%s schedule: %w", s.name, err)
		}
	}
	return nil
}

func ensureSchedule(ctx context.Context, c client.Client, id string, every time.Duration, action *client.ScheduleWorkflowAction, what string) error {
	spec := client.ScheduleSpec{Intervals: []client.ScheduleIntervalSpec{{Every: every}}}
	_, err := c.ScheduleClient().Create(ctx, client.ScheduleOptions{
		ID:      id,
		Spec:    spec,
		Overlap: enums.SCHEDULE_OVERLAP_POLICY_SKIP,
		Action:  action,
		Memo:    map[string]any{"what": what},
	})
	if errors.Is(err, temporal.ErrScheduleAlreadyRunning) {
		return c.ScheduleClient().GetHandle(ctx, id).Update(ctx, client.ScheduleUpdateOptions{
			DoUpdate: func(in client.ScheduleUpdateInput) (*client.ScheduleUpdate, error) {
				// every worker start comes here: write only when the
				// interval changed (a write is slow on a busy server)
				if old := in.Description.Schedule.Spec; old != nil && len(old.Intervals) == 1 &&
					old.Intervals[0].Every == every && old.Intervals[0].Offset == 0 {
					return nil, temporal.ErrSkipScheduleUpdate
				}
				in.Description.Schedule.Spec = &spec
				return &client.ScheduleUpdate{Schedule: &in.Description.Schedule}, nil
			},
		})
	}
	return err
}
