// Package api is the HTTP side of an api node: routes, handlers,
// problem+json errors, OpenAPI and the metrics endpoint. Messages go through
// the message core (chat); /ws connections are handed to realtime.
package api

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/recover"
	"github.com/gofiber/fiber/v2/middleware/requestid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"
	"go.temporal.io/sdk/client"
	"golang.org/x/crypto/bcrypt"

	"github.com/chatflow/chatflow"
	"github.com/chatflow/chatflow/chat"
	"github.com/chatflow/chatflow/db"
	"github.com/chatflow/chatflow/ratelimit"
	"github.com/chatflow/chatflow/realtime"
	"github.com/chatflow/chatflow/token"
)

// Config tunes the HTTP side of a node.
type Config struct {
	// NodeID names this node in logs and /healthz.
	NodeID string
	// WSOrigins are the browser origins (scheme://host[:port]) allowed to
	// open /ws besides the node's own host; see wsOriginAllowed.
	WSOrigins []string
	// BcryptCost is the password hashing cost.
	BcryptCost int
	// SignupTaskQueue is where sign-up sagas run.
	SignupTaskQueue string
	// MaxAvatarBytes is the largest avatar original a user may upload.
	MaxAvatarBytes int64
}

// DefaultConfig is the configuration `make dev` runs with.
func DefaultConfig() Config {
	return Config{NodeID: "node", BcryptCost: bcrypt.DefaultCost, SignupTaskQueue: chatflow.SignupTaskQueue, MaxAvatarBytes: 2 << 20}
}

// Check is one dependency /readyz probes.
type Check struct {
	Name string
	Ping func(context.Context) error
}

// Deps are what a node's handlers use.
type Deps struct {
	Pool     *pgxpool.Pool
	Redis    redis.UniversalClient
	Temporal client.Client
	Tokens   *token.Service
	Chat     *chat.Service
	Realtime *realtime.Node
	Log      *slog.Logger
	// Limits are the abuse limits (nil: none).
	Limits *ratelimit.Limiter
	// Ready lists the dependencies /readyz checks.
	Ready []Check
	// Objects is the attachment store (nil: attachments answer 503).
	Objects ObjectStore
}

// Server is the HTTP side of one api node.
type Server struct {
	Pool     *pgxpool.Pool
	Queries  db.Querier // sqlc's queries on Pool; a transaction uses db.New(tx)
	Redis    redis.UniversalClient
	Temporal client.Client
	Tokens   *token.Service
	Log      *slog.Logger
	Cfg      Config

	chat    *chat.Service
	rt      *realtime.Node
	limits  *ratelimit.Limiter
	ready   []Check
	objects ObjectStore
	app     *fiber.App
	metrics *Metrics
	// dummyHash keeps login time the same whether or not the username
	// exists; it has the configured cost, as real hashes do.
	dummyHash []byte
}

// New wires the HTTP side of a node.
func New(d Deps, cfg Config) (*Server, error) {
	dummy, err := bcrypt.GenerateFromPassword([]byte("chatflow-dummy-password"), cfg.BcryptCost)
	if err != nil {
		return nil, fmt.Errorf("bcrypt cost %d: %w", cfg.BcryptCost, err)
	}
	s := &Server{
		Pool: d.Pool, Queries: db.New(d.Pool), Redis: d.Redis, Temporal: d.Temporal, Tokens: d.Tokens, Log: d.Log, Cfg: cfg,
		chat: d.Chat, rt: d.Realtime, limits: d.Limits, ready: d.Ready, objects: d.Objects, dummyHash: dummy,
	}
	if d.Tokens != nil {
		d.Realtime.SetAuth(wsAuth{s})
	}
	s.metrics = newMetrics()
	s.Register(d.Chat.Metrics().Collectors()...)
	s.Register(d.Realtime.Metrics().Collectors()...)
	s.Register(d.Limits.Collectors()...)
	s.app = fiber.New(fiber.Config{
		AppName:               "chatflow",
		DisableStartupMessage: true,
		ErrorHandler:          s.errorHandler,
		BodyLimit:             64 << 10,
		ReadTimeout:           30 * time.Second,
		WriteTimeout:          30 * time.Second,
		IdleTimeout:           120 * time.Second,
		JSONEncoder:           json.Marshal,
		JSONDecoder:           json.Unmarshal,
	})
	s.app.Use(recover.New(recover.Config{EnableStackTrace: true, StackTraceHandler: func(c *fiber.Ctx, e any) {
		s.Log.Error("panic in handler", "path", c.Path(), "panic", e, "request_id", c.Locals(requestid.ConfigDefault.ContextKey))
	}}))
	s.app.Use(requestid.New())
	s.app.Use(s.observe)
	s.routes()
	return s, nil
}

// App exposes the Fiber app, for tests that drive it in-process.
func (s *Server) App() *fiber.App { return s.app }

// Serve serves HTTP and WebSocket on ln until Shutdown.
func (s *Server) Serve(ln net.Listener) error { return s.app.Listener(ln) }

// Shutdown closes WebSocket connections (clients reconnect elsewhere and
// sync) and stops serving, waiting for requests in flight.
func (s *Server) Shutdown(ctx context.Context) error {
	s.rt.CloseAll()
	return s.app.ShutdownWithContext(ctx)
}

func (s *Server) healthz(c *fiber.Ctx) error {
	return c.JSON(fiber.Map{"status": "ok", "node": s.Cfg.NodeID})
}
