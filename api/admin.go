package api

import (
	"sort"
	"strings"
	"time"
	"unicode"

	"github.com/gofiber/fiber/v2"
	"go.temporal.io/api/enums/v1"
	"go.temporal.io/api/workflowservice/v1"

	"github.com/chatflow/chatflow"
)

// Admin endpoints (requireAdmin): counts and the list of sign-up sagas.

func (s *Server) adminStats(c *fiber.Ctx) error {
	ctx := c.UserContext()
	days, has, err := queryInt(c, "days")
	if err != nil {
		return err
	}
	if !has {
		days = defaultStatsDays
	}
	if days < 1 || days > maxStatsDays {
		return chatflow.Errorf(chatflow.ECodeValidation, "days must be 1-%d", maxStatsDays)
	}
	perDay, err := s.Queries.AdminDailyStats(ctx, int32(days))
	if err != nil {
		return err
	}
	users, err := s.Queries.CountUsers(ctx)
	if err != nil {
		return err
	}
	rooms, err := s.Queries.CountRooms(ctx)
	if err != nil {
		return err
	}
	msgs, err := s.Queries.CountMessages(ctx)
	if err != nil {
		return err
	}
	return c.JSON(fiber.Map{
		"users": users, "rooms": rooms, "messages": msgs,
		"connections":      s.chat.Connections(ctx),
		"node_connections": s.rt.Metrics().Connections(),
		"days":             perDay,
	})
}

// The per-day stats cover the last days UTC days, today included.
const (
	defaultStatsDays = 7
	maxStatsDays     = 90
)

func (s *Server) adminSignups(c *fiber.Ctx) error {
	ctx := c.UserContext()
	resp, err := s.Temporal.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{
		PageSize: 50,
		// No ORDER BY: SQL visibility stores (the dev server's SQLite, MySQL,
		// Postgres) reject it. They list running executions first, then by
		// close time, newest first; the page is sorted by start time below.
		Query: "WorkflowType = '" + chatflow.WorkflowSignup + "'",
	})
	if err != nil {
		return chatflow.Errorf(chatflow.ECodeUnavailable, "Temporal visibility is not available: %v", err)
	}
	type signupRow struct {
		WorkflowID string     `json:"workflow_id"`
		RunID      string     `json:"run_id"`
		Username   string     `json:"username"`
		Status     string     `json:"status"`
		StartedAt  time.Time  `json:"started_at"`
		ClosedAt   *time.Time `json:"closed_at,omitempty"`
	}
	out := []signupRow{}
	for _, e := range resp.Executions {
		r := signupRow{
			WorkflowID: e.Execution.WorkflowId, RunID: e.Execution.RunId,
			Username:  strings.TrimPrefix(e.Execution.WorkflowId, "signup-"),
			Status:    executionStatus(e.Status),
			StartedAt: e.StartTime.AsTime().UTC(),
		}
		if e.CloseTime != nil && e.CloseTime.IsValid() && e.CloseTime.AsTime().Unix() > 0 {
			t := e.CloseTime.AsTime().UTC()
			r.ClosedAt = &t
		}
		out = append(out, r)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].StartedAt.After(out[j].StartedAt) })
	return c.JSON(fiber.Map{"signups": out})
}

// executionStatus names a workflow execution status in snake_case
// ("timed_out", "continued_as_new"); the enum's own String is CamelCase.
func executionStatus(st enums.WorkflowExecutionStatus) string {
	if _, known := enums.WorkflowExecutionStatus_name[int32(st)]; !known || st == enums.WORKFLOW_EXECUTION_STATUS_UNSPECIFIED {
		return "unknown"
	}
	var b strings.Builder
	for i, r := range st.String() {
		if i > 0 && unicode.IsUpper(r) {
			b.WriteByte('_')
		}
		b.WriteRune(unicode.ToLower(r))
	}
	return b.String()
}
