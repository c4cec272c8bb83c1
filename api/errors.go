package api

import (
	"context"
	"errors"
	"io"
	"net"
	"strconv"
	"strings"
	"syscall"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/requestid"
	"github.com/gofiber/fiber/v2/utils"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/redis/go-redis/v9"
	"go.temporal.io/api/serviceerror"

	"github.com/chatflow/chatflow"
	"github.com/chatflow/chatflow/ratelimit"
)

// statuses maps each stable error code to its HTTP status; a code not
// listed (internal, or one this table has not learnt yet) is a 500. It is
// the one place where domain codes meet HTTP.
var statuses = map[string]int{
	chatflow.ECodeValidation:         fiber.StatusUnprocessableEntity,
	chatflow.ECodeUsernameTaken:      fiber.StatusConflict,
	chatflow.ECodeEmailTaken:         fiber.StatusConflict,
	chatflow.ECodeConflict:           fiber.StatusConflict,
	chatflow.ECodeInvalidCredentials: fiber.StatusUnauthorized,
	chatflow.ECodeInvalidToken:       fiber.StatusUnauthorized,
	chatflow.ECodeTokenReused:        fiber.StatusUnauthorized,
	chatflow.ECodeUnauthorized:       fiber.StatusUnauthorized,
	chatflow.ECodeForbidden:          fiber.StatusForbidden,
	chatflow.ECodeNotMember:          fiber.StatusForbidden,
	chatflow.ECodeNotFound:           fiber.StatusNotFound,
	chatflow.ECodeRateLimited:        fiber.StatusTooManyRequests,
	chatflow.ECodeBadFrame:           fiber.StatusBadRequest,
	chatflow.ECodeTooLarge:           fiber.StatusRequestEntityTooLarge,
	chatflow.ECodeUnavailable:        fiber.StatusServiceUnavailable,
	chatflow.ECodeCannotAddSelf:      fiber.StatusUnprocessableEntity,
	chatflow.ECodeAlreadyFriends:     fiber.StatusConflict,
	chatflow.ECodeRequestPending:     fiber.StatusConflict,
	chatflow.ECodeAccountDisabled:    fiber.StatusForbidden,
	chatflow.ECodeInsufficientFunds:  fiber.StatusConflict,
	chatflow.ECodeBalanceNotZero:     fiber.StatusConflict,
	chatflow.ECodeDeletionInProgress: fiber.StatusConflict,
	chatflow.ECodeAccountClosed:      fiber.StatusConflict,
	chatflow.ECodeMessageDeleted:     fiber.StatusConflict,
	chatflow.ECodeInvalidReply:       fiber.StatusUnprocessableEntity,
}

// statusOf maps a stable error code to its HTTP status.
func statusOf(code string) int {
	if st, ok := statuses[code]; ok {
		return st
	}
	return fiber.StatusInternalServerError
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

// fiberCodes names the code of Fiber's own errors (routing, body limit, bad
// requests) by their status; any other status is validation_failed.
var fiberCodes = map[int]string{
	fiber.StatusNotFound:              chatflow.ECodeNotFound,
	fiber.StatusRequestEntityTooLarge: chatflow.ECodeTooLarge,
	fiber.StatusUnauthorized:          chatflow.ECodeUnauthorized,
	fiber.StatusTooManyRequests:       chatflow.ECodeRateLimited,
	fiber.StatusServiceUnavailable:    chatflow.ECodeUnavailable,
	fiber.StatusInternalServerError:   chatflow.ECodeInternal,
}

// fiberCode translates one of Fiber's own errors.
func fiberCode(fe *fiber.Error) string {
	if code, ok := fiberCodes[fe.Code]; ok {
		return code
	}
	return chatflow.ECodeValidation
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
	if code == chatflow.ECodeInternal && dependencyDown(err) {
		// Postgres, Redis or Temporal did not answer: the request may
		// succeed a moment later, which a 500 would not tell the client.
		code, status = chatflow.ECodeUnavailable, fiber.StatusServiceUnavailable
		detail = "a service this request needs is unreachable right now; retry shortly (with the same idempotency_key, where the request has one)"
		c.Set(fiber.HeaderRetryAfter, "1")
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

// dependencyDown reports whether err says a store or Temporal could not be
// reached or is not serving yet (connection refused or dropped, a server
// shutting down or starting, Redis loading its dataset, a timeout), as
// opposed to a fault of this request or of chatflow itself.
func dependencyDown(err error) bool {
	var (
		connErr *pgconn.ConnectError
		pgErr   *pgconn.PgError
		opErr   *net.OpError
		redErr  redis.Error
		tUnav   *serviceerror.Unavailable
		tDead   *serviceerror.DeadlineExceeded
	)
	switch {
	case errors.As(err, &connErr), errors.As(err, &opErr), errors.As(err, &tUnav), errors.As(err, &tDead):
		return true
	case errors.As(err, &pgErr):
		// class 08: connection exception; 57P01-03: shutting down,
		// crashed, starting up; 53300: too many connections
		return strings.HasPrefix(pgErr.Code, "08") || pgErr.Code == "57P01" || pgErr.Code == "57P02" ||
			pgErr.Code == "57P03" || pgErr.Code == "53300"
	case errors.As(err, &redErr):
		msg := redErr.Error()
		for _, p := range []string{"LOADING ", "MASTERDOWN ", "TRYAGAIN ", "CLUSTERDOWN ", "BUSY "} {
			if strings.HasPrefix(msg, p) {
				return true
			}
		}
		return false
	}
	return pgconn.Timeout(err) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, redis.ErrClosed) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) ||
		errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF)
}

func titleOf(status int) string {
	if t := utils.StatusMessage(status); t != "" {
		return t
	}
	return "Error"
}
