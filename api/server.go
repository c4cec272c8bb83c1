// Package api is the HTTP and WebSocket node: Fiber REST handlers, the /ws
// endpoint, Redis fan-out across nodes and the group commit of messages into
// Temporal. Handlers hang off Server; there are no globals.
package api

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/recover"
	"github.com/gofiber/fiber/v2/middleware/requestid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"
	"go.temporal.io/sdk/client"

	"github.com/chatflow/chatflow"
	"github.com/chatflow/chatflow/api/docs"
	"github.com/chatflow/chatflow/db"
	"github.com/chatflow/chatflow/token"
	"github.com/chatflow/chatflow/web"
	"github.com/chatflow/chatflow/workflows"
)

// Config tunes a node.
type Config struct {
	// NodeID names this node in logs and batch workflow ids.
	NodeID string
	// AdminUsernames get the admin role at login.
	AdminUsernames []string
	// BcryptCost is the password hashing cost.
	BcryptCost int
	// BatchLinger is how long a message batch waits for company.
	BatchLinger time.Duration
	// BatchMax caps messages per batch workflow (payload stays far below 2 MB).
	BatchMax int
	// BatchInflight caps concurrent batch workflow starts.
	BatchInflight int
	// WSSendRate and WSSendBurst limit frames per second per connection.
	WSSendRate  float64
	WSSendBurst int
	// WSQueue is the per-connection outbound queue; a reader that lets it
	// fill up is disconnected.
	WSQueue int
	// HistoryCap is the length of each room's recent-history stream in Redis.
	HistoryCap int
	// KafkaBrokers is checked by /readyz.
	KafkaBrokers string
	// SignupTaskQueue and MessagesTaskQueue default to the workflows package's names.
	SignupTaskQueue   string
	MessagesTaskQueue string
}

func (c *Config) defaults() {
	if c.NodeID == "" {
		c.NodeID = "node"
	}
	if c.BcryptCost == 0 {
		c.BcryptCost = 10
	}
	if c.BatchLinger == 0 {
		c.BatchLinger = 100 * time.Millisecond
	}
	if c.BatchMax == 0 {
		c.BatchMax = 2000
	}
	if c.BatchInflight == 0 {
		c.BatchInflight = 1
	}
	if c.WSSendRate == 0 {
		c.WSSendRate = 50
	}
	if c.WSSendBurst == 0 {
		c.WSSendBurst = 100
	}
	if c.WSQueue == 0 {
		c.WSQueue = 1024
	}
	if c.HistoryCap == 0 {
		c.HistoryCap = 1000
	}
	if c.SignupTaskQueue == "" {
		c.SignupTaskQueue = workflows.SignupTaskQueue
	}
	if c.MessagesTaskQueue == "" {
		c.MessagesTaskQueue = workflows.MessagesTaskQueue
	}
}

// Server is one api node.
type Server struct {
	Pool     *pgxpool.Pool
	Queries  *db.Queries
	Redis    redis.UniversalClient
	Temporal client.Client
	Tokens   *token.Service
	Log      *slog.Logger
	Cfg      Config

	app     *fiber.App
	pipe    *Pipeliner
	hub     *Hub
	batcher *Batcher
	metrics *Metrics
	// stop ends the node's background loops.
	stop context.CancelFunc
	done chan struct{}
}

// New wires a node; call Listen to serve.
func New(pool *pgxpool.Pool, rdb redis.UniversalClient, tc client.Client, tokens *token.Service, log *slog.Logger, cfg Config) *Server {
	cfg.defaults()
	s := &Server{
		Pool: pool, Queries: db.New(pool), Redis: rdb, Temporal: tc, Tokens: tokens, Log: log, Cfg: cfg,
		done: make(chan struct{}),
	}
	s.metrics = newMetrics()
	s.hub = newHub(s)
	s.pipe = newPipeliner(rdb)
	s.batcher = newBatcher(s)
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
	return s
}

// App exposes the Fiber app, for tests that drive it in-process.
func (s *Server) App() *fiber.App { return s.app }

// Start launches the node's background loops (fan-out subscriber, batcher).
func (s *Server) Start(ctx context.Context) {
	ctx, s.stop = context.WithCancel(ctx)
	s.pipe.run(ctx, 2)
	go func() {
		defer close(s.done)
		done := make(chan struct{})
		go func() { s.hub.run(ctx); close(done) }()
		s.batcher.run(ctx)
		<-done
	}()
}

// Listen serves HTTP and WebSocket on addr until Shutdown.
func (s *Server) Listen(addr string) error { return s.app.Listen(addr) }

// Shutdown stops accepting requests, closes WebSocket connections, and
// flushes pending message batches into Temporal before returning.
func (s *Server) Shutdown(ctx context.Context) error {
	s.hub.closeAll()
	err := s.app.ShutdownWithContext(ctx)
	if s.stop != nil {
		s.stop()
		select {
		case <-s.done:
		case <-ctx.Done():
		}
	}
	return err
}

func (s *Server) routes() {
	s.app.Get("/healthz", s.healthz)
	s.app.Get("/readyz", s.readyz)
	s.app.Get("/metrics", s.metricsHandler)
	s.app.Get("/openapi.json", func(c *fiber.Ctx) error {
		c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSONCharsetUTF8)
		return c.Send(docs.OpenAPI)
	})
	s.app.Get("/docs", func(c *fiber.Ctx) error {
		c.Set(fiber.HeaderContentType, fiber.MIMETextHTMLCharsetUTF8)
		return c.Send(docs.Page)
	})

	v1 := s.app.Group("/api/v1")
	v1.Post("/signup", s.signup)
	v1.Get("/signup/:id", s.signupStatus)
	v1.Post("/auth/login", s.login)
	v1.Post("/auth/refresh", s.refresh)

	// requireAuth goes on each route, not on a group: a group middleware would
	// answer 401 for unknown paths under /api/v1 instead of 404.
	auth := s.requireAuth
	v1.Post("/auth/logout", auth, s.logout)
	v1.Get("/me", auth, s.me)
	v1.Patch("/me", auth, s.updateMe)
	v1.Get("/me/account/transactions", auth, s.transactions)
	v1.Post("/me/account/deposits", auth, s.deposit)
	v1.Get("/users", auth, s.searchUsers)
	v1.Get("/friends", auth, s.listFriends)
	v1.Post("/friends", auth, s.addFriend)
	v1.Delete("/friends/:user_id", auth, s.removeFriend)
	v1.Get("/admin/stats", auth, s.requireAdmin, s.adminStats)
	v1.Get("/admin/signups", auth, s.requireAdmin, s.adminSignups)

	v1.Post("/rooms", auth, s.createRoom)
	v1.Get("/rooms", auth, s.listRooms)
	v1.Get("/rooms/:room_id", auth, s.getRoom)
	v1.Post("/rooms/:room_id/members", auth, s.invite)
	v1.Delete("/rooms/:room_id/members/me", auth, s.leave)
	v1.Get("/rooms/:room_id/messages", auth, s.history)
	v1.Post("/rooms/:room_id/messages", auth, s.postMessage)
	v1.Post("/rooms/:room_id/read", auth, s.postRead)

	s.app.Get("/ws", s.wsUpgrade, s.wsHandler())
	s.app.Get("/", web.Index)
	s.app.Use("/static", web.Static())
	s.app.Use(func(c *fiber.Ctx) error {
		return chatflow.Errorf(chatflow.ECodeNotFound, "no route for %s %s", c.Method(), c.Path())
	})
}

// decode parses a JSON request body, answering validation_failed on garbage.
func decode(c *fiber.Ctx, v any) error {
	body := c.Body()
	if len(body) == 0 {
		return chatflow.Errorf(chatflow.ECodeValidation, "request body must be a JSON object")
	}
	if err := json.Unmarshal(body, v); err != nil {
		var ute *json.UnmarshalTypeError
		if errors.As(err, &ute) {
			return chatflow.Errorf(chatflow.ECodeValidation, "field %q has the wrong type", ute.Field)
		}
		return chatflow.Errorf(chatflow.ECodeValidation, "request body is not valid JSON")
	}
	return nil
}

func (s *Server) healthz(c *fiber.Ctx) error {
	return c.JSON(fiber.Map{"status": "ok", "node": s.Cfg.NodeID})
}
