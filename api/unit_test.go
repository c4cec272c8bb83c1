package api

import (
	"testing"

	"go.temporal.io/api/enums/v1"
)

func TestExecutionStatusNames(t *testing.T) {
	for st, want := range map[enums.WorkflowExecutionStatus]string{
		enums.WORKFLOW_EXECUTION_STATUS_TIMED_OUT:        "timed_out",
		enums.WORKFLOW_EXECUTION_STATUS_CONTINUED_AS_NEW: "continued_as_new",
		enums.WORKFLOW_EXECUTION_STATUS_COMPLETED:        "completed",
	} {
		if got := executionStatus(st); got != want {
			t.Errorf("%v: %q, want %q", st, got, want)
		}
	}
}
