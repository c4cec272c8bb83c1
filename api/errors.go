package api

import (
	"errors"
	"strconv"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/requestid"
	"github.com/gofiber/fiber/v2/utils"

	"github.com/chatflow/chatflow"
	"github.com/chatflow/chatflow/ratelimit"
)

// statusOf maps a stable error code to its HTTP status. It is the one place
// where domain codes meet HTTP.
func statusOf(code string) int {
	switch code {
	case chatflow.ECodeValidation:
		return fiber.StatusUnprocessableEntity
	case chatflow.ECodeUsernameTaken, chatflow.ECodeEmailTaken, chatflow.ECodeConflict:
		return fiber.StatusConflict
	case chatflow.ECodeInvalidCredentials, chatflow.ECodeInvalidToken, chatflow.ECodeTokenReused, chatflow.ECodeUnauthorized:
		return fiber.StatusUnauthorized
	case chatflow.ECodeForbidden, chatflow.ECodeNotMember:
		return fiber.StatusForbidden
	case chatflow.ECodeNotFound:
		return fiber.StatusNotFound
	case chatflow.ECodeRateLimited:
		return fiber.StatusTooManyRequests
	case chatflow.ECodeBadFrame:
		return fiber.StatusBadRequest
	case chatflow.ECodeTooLarge:
		return fiber.StatusRequestEntityTooLarge
	case chatflow.ECodeUnavailable:
		return fiber.StatusServiceUnavailable
	default:
		return fiber.StatusInternalServerError
	}
}

// Problem is an RFC 9457 problem details body with chatflow's stable code.
type Problem struct {
	Type      string `json:"type"`
	Title     string `json:"title"`
	Status    int    `json:"status"`
	Detail    string `json:"detail"`
	Code      string `json:"code"`
	Instance  string `json:"instance,omitempty"`
	RequestID string `json:"request_id,omitempty"`
}

// fiberCode translates Fiber's own errors (routing, body limit, bad requests).
func fiberCode(fe *fiber.Error) string {
	switch fe.Code {
	case fiber.StatusNotFound:
		return chatflow.ECodeNotFound
	case fiber.StatusRequestEntityTooLarge:
		return chatflow.ECodeTooLarge
	case fiber.StatusUnauthorized:
		return chatflow.ECodeUnauthorized
	case fiber.StatusTooManyRequests:
		return chatflow.ECodeRateLimited
	case fiber.StatusServiceUnavailable:
		return chatflow.ECodeUnavailable
	case fiber.StatusInternalServerError:
		return chatflow.ECodeInternal
	default:
		return chatflow.ECodeValidation
	}
}

func (s *Server) errorHandler(c *fiber.Ctx, err error) error {
	code, detail := chatflow.ErrorCode(err), chatflow.ErrorDetail(err)
	status := statusOf(code)
	var fe *fiber.Error
	if errors.As(err, &fe) {
		code, detail, status = fiberCode(fe), fe.Message, fe.Code
		if status == fiber.StatusMethodNotAllowed {
			code = chatflow.ECodeNotFound
		}
	}
	rid, _ := c.Locals(requestid.ConfigDefault.ContextKey).(string)
	if status >= 500 {
		s.Log.Error("request failed", "method", c.Method(), "path", c.Path(), "request_id", rid, "error", err)
	}
	c.Status(status)
	if wait, ok := ratelimit.RetryAfter(err); ok {
		c.Set(fiber.HeaderRetryAfter, strconv.Itoa(ratelimit.Seconds(wait)))
	}
	c.Set(fiber.HeaderContentType, "application/problem+json")
	return c.JSON(Problem{
		Type: "https://chatflow.dev/problems/" + code, Title: titleOf(status), Status: status,
		Detail: detail, Code: code, Instance: c.Path(), RequestID: rid,
	}, "application/problem+json")
}

func titleOf(status int) string {
	if t := utils.StatusMessage(status); t != "" {
		return t
	}
	return "Error"
}
