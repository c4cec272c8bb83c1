package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/redis/go-redis/v9"
	"go.temporal.io/api/serviceerror"

	"github.com/chatflow/chatflow"
)

// redisReply is an error reply of Redis as go-redis hands it out (its own
// type is internal); go-redis' Error interface is what the handler checks.
type redisReply string

func (e redisReply) Error() string { return string(e) }
func (redisReply) RedisError()     {}

// deadErrors are real errors of stores that are not there: Postgres and
// Redis on a port nobody listens on.
func deadErrors(t *testing.T) (pg, rd error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, pg = pgx.Connect(ctx, "postgres://postgres@127.0.0.1:1/chatflow?sslmode=disable&connect_timeout=2")
	rc := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", MaxRetries: -1})
	defer rc.Close()
	rd = rc.Ping(ctx).Err()
	if pg == nil || rd == nil {
		t.Fatalf("expected connection errors, got %v / %v", pg, rd)
	}
	return pg, rd
}

func TestDependencyDown(t *testing.T) {
	pg, rd := deadErrors(t)
	for name, tc := range map[string]struct {
		err  error
		want bool
	}{
		"postgres refused":             {pg, true},
		"redis refused":                {rd, true},
		"redis refused, wrapped":       {fmt.Errorf("revocation check: %w", rd), true},
		"redis loading":                {fmt.Errorf("revocation check: %w", redisReply("LOADING Redis is loading the dataset in memory")), true},
		"redis script error":           {redisReply("ERR Error running script"), false},
		"postgres starting up":         {&pgconn.PgError{Code: "57P03"}, true},
		"postgres admin shutdown":      {&pgconn.PgError{Code: "57P01"}, true},
		"postgres connection failure":  {&pgconn.PgError{Code: "08006"}, true},
		"postgres unique violation":    {&pgconn.PgError{Code: "23505"}, false},
		"temporal unavailable":         {serviceerror.NewUnavailable("frontend down"), true},
		"temporal deadline":            {serviceerror.NewDeadlineExceeded("slow"), true},
		"temporal already started":     {serviceerror.NewWorkflowExecutionAlreadyStarted("x", "", ""), false},
		"dropped connection":           {fmt.Errorf("read: %w", io.ErrUnexpectedEOF), true},
		"request deadline":             {context.DeadlineExceeded, true},
		"a bug":                        {errors.New("index out of range"), false},
		"a domain error stays its own": {chatflow.Errorf(chatflow.ECodeValidation, "bad"), false},
	} {
		if got := dependencyDown(tc.err); got != tc.want {
			t.Errorf("%s (%v): %v, want %v", name, tc.err, got, tc.want)
		}
	}
}

// A request that meets a store that is down is answered 503 unavailable
// with Retry-After, not 500 internal; a bug stays a 500.
func TestErrorHandlerStoreDown(t *testing.T) {
	pg, _ := deadErrors(t)
	s := &Server{Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	app := fiber.New(fiber.Config{ErrorHandler: s.errorHandler})
	app.Get("/down", func(c *fiber.Ctx) error { return fmt.Errorf("load room: %w", pg) })
	app.Get("/bug", func(c *fiber.Ctx) error { return errors.New("nil map") })
	for path, want := range map[string]struct {
		status     int
		code, wait string
	}{
		"/down": {503, chatflow.ECodeUnavailable, "1"},
		"/bug":  {500, chatflow.ECodeInternal, ""},
	} {
		resp, err := app.Test(httptest.NewRequest("GET", path, nil))
		if err != nil {
			t.Fatal(err)
		}
		var p Problem
		_ = json.NewDecoder(resp.Body).Decode(&p)
		if resp.StatusCode != want.status || p.Code != want.code || resp.Header.Get("Retry-After") != want.wait {
			t.Errorf("%s: %d %q Retry-After %q, want %d %q %q (detail %q)", path, resp.StatusCode, p.Code,
				resp.Header.Get("Retry-After"), want.status, want.code, want.wait, p.Detail)
		}
		if p.Code == chatflow.ECodeUnavailable && p.Detail == "internal error" {
			t.Errorf("%s: detail %q", path, p.Detail)
		}
	}
}
