package api

import (
	"testing"

	"github.com/gofiber/fiber/v2"
	"go.temporal.io/api/enums/v1"

	"github.com/chatflow/chatflow"
)

func TestExecutionStatusNames(t *testing.T) {
	for st, want := range map[enums.WorkflowExecutionStatus]string{
		enums.WORKFLOW_EXECUTION_STATUS_TIMED_OUT:        "timed_out",
		enums.WORKFLOW_EXECUTION_STATUS_CONTINUED_AS_NEW: "continued_as_new",
		enums.WORKFLOW_EXECUTION_STATUS_COMPLETED:        "completed",
		enums.WORKFLOW_EXECUTION_STATUS_RUNNING:          "running",
		enums.WORKFLOW_EXECUTION_STATUS_FAILED:           "failed",
		enums.WORKFLOW_EXECUTION_STATUS_CANCELED:         "canceled",
		enums.WORKFLOW_EXECUTION_STATUS_TERMINATED:       "terminated",
		enums.WORKFLOW_EXECUTION_STATUS_UNSPECIFIED:      "unknown",
		enums.WorkflowExecutionStatus(99):                "unknown",
	} {
		if got := executionStatus(st); got != want {
			t.Errorf("%v: %q, want %q", st, got, want)
		}
	}
}

func TestErrorStatuses(t *testing.T) {
	for code, want := range map[string]int{
		chatflow.ECodeValidation: 422, chatflow.ECodeEmailTaken: 409, chatflow.ECodeTokenReused: 401,
		chatflow.ECodeNotMember: 403, chatflow.ECodeBadFrame: 400, chatflow.ECodeTooLarge: 413,
		chatflow.ECodeUnavailable: 503, chatflow.ECodeInternal: 500, "no_such_code": 500,
	} {
		if got := statusOf(code); got != want {
			t.Errorf("statusOf(%q) = %d, want %d", code, got, want)
		}
	}
	for status, want := range map[int]string{
		404: chatflow.ECodeNotFound, 413: chatflow.ECodeTooLarge, 429: chatflow.ECodeRateLimited,
		500: chatflow.ECodeInternal, 400: chatflow.ECodeValidation, 405: chatflow.ECodeValidation,
	} {
		if got := fiberCode(fiber.NewError(status)); got != want {
			t.Errorf("fiberCode(%d) = %q, want %q", status, got, want)
		}
	}
}
