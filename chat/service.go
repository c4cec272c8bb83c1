// Package chat is the message core: accepting, deduplicating and sequencing
// messages in Redis, reading ranges back, membership and presence state, and
// the group commit of accepted messages into Temporal. It knows nothing of
// HTTP or WebSockets; api/ and realtime/ drive it.
package chat

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"
	"go.temporal.io/sdk/client"

	"github.com/chatflow/chatflow"
	"github.com/chatflow/chatflow/db"
	"github.com/chatflow/chatflow/roomlog"
)

// Config tunes the message core.
type Config struct {
	// NodeID names this node in logs and batch workflow ids.
	NodeID string
	// BatchLinger is how long a message batch waits for company. Each batch
	// is a workflow, and a workflow's cost is fixed (BENCHMARKS.md: 100 ms
	// cost the Temporal dev server 0.31 cores at 1,000 msg/s, 1 s 0.06), so
	// the linger trades Postgres freshness (search, unread counts, not the
	// ack or delivery) for CPU.
	BatchLinger time.Duration
	// BatchMax caps messages per batch workflow; maxBatchBytes caps its
	// payload first when bodies are long.
	BatchMax int
	// BatchInflight caps concurrent batch workflow starts.
	BatchInflight int
	// SendPipelines is how many Redis pipelines carry send scripts at once.
	SendPipelines int
	// MessagesTaskQueue is where batch workflows run.
	MessagesTaskQueue string
	// MaxBacklog bounds a room's accepted messages that Postgres does not
	// hold yet; past it sends are refused (unavailable) before sequencing.
	MaxBacklog int64
	// SeqFence is how far a room's seq moves when Redis may have lost its
	// last writes (restart from disk, failover), so no seq is handed out twice.
	SeqFence int64
	// RedisMemoryLimit refuses sends while Redis uses more bytes than this.
	RedisMemoryLimit int64
	// StartRetry is how long a batch workflow start is retried before the
	// batch is left to the reconciler (the messages stay in the log).
	StartRetry time.Duration
	// RoomIdleTTL is how long a room's log keys stay in Redis once
	// everything in them is persisted (0: for good); see roomlog.Seed.
	RoomIdleTTL time.Duration
	// PresenceHeartbeat is how often the node renews the presence of its
	// users; PresenceTTL is how long that lasts without renewal, so the
	// users of a node that died show offline after at most PresenceTTL.
	PresenceHeartbeat time.Duration
	PresenceTTL       time.Duration
}

// DefaultConfig is the configuration `make dev` runs with.
func DefaultConfig() Config {
	return Config{
		NodeID:            "node",
		BatchLinger:       time.Second,
		BatchMax:          10000,
		BatchInflight:     1,
		SendPipelines:     2,
		MessagesTaskQueue: chatflow.MessagesTaskQueue,
		MaxBacklog:        20000,
		SeqFence:          100,
		RedisMemoryLimit:  2 << 30,
		StartRetry:        2 * time.Second,
		RoomIdleTTL:       roomlog.DefaultIdleTTL,
		PresenceHeartbeat: 10 * time.Second,
		PresenceTTL:       25 * time.Second,
	}
}

// Store is the part of Postgres the message core reads.
type Store interface {
	GetRoom(ctx context.Context, id uuid.UUID) (db.ChatRoom, error)
	RoomMemberIDs(ctx context.Context, roomID uuid.UUID) ([]uuid.UUID, error)
	RoomLogHead(ctx context.Context, roomID uuid.UUID) (db.RoomLogHeadRow, error)
	ListMessagesRange(ctx context.Context, arg db.ListMessagesRangeParams) ([]db.ChatMessage, error)
	LastMessages(ctx context.Context, roomIds []uuid.UUID) ([]db.ChatMessage, error)
	MarkRead(ctx context.Context, arg db.MarkReadParams) (db.MarkReadRow, error)
	UserRoomIDs(ctx context.Context, userID uuid.UUID) ([]uuid.UUID, error)
	MessageOverlay(ctx context.Context, arg db.MessageOverlayParams) ([]db.MessageOverlayRow, error)
	InsertMessageReactions(ctx context.Context, arg db.InsertMessageReactionsParams) error
	InsertMessageEdits(ctx context.Context, arg db.InsertMessageEditsParams) error
	ClearEditedBodies(ctx context.Context, arg db.ClearEditedBodiesParams) error
	ApplyMessageEdits(ctx context.Context, arg db.ApplyMessageEditsParams) error
}

// WorkflowStarter starts workflows; a Temporal client is one.
type WorkflowStarter interface {
	ExecuteWorkflow(ctx context.Context, options client.StartWorkflowOptions, workflow any, args ...any) (client.WorkflowRun, error)
}

// Service is the message core of one api node.
type Service struct {
	cfg     Config
	rdb     redis.UniversalClient
	store   Store
	log     *slog.Logger
	pipe    *pipeliner
	batcher *batcher
	metrics *Metrics
	// redisFull is set while Redis holds more than RedisMemoryLimit.
	redisFull atomic.Bool
	presence  *presence
	// sharded is set on a Redis Cluster: events go out with SPUBLISH
	// (sharded pub/sub), each on its channel's slot.
	sharded bool
}

// Sharded reports whether rdb is a Redis Cluster client, on which chatflow
// uses sharded pub/sub (SPUBLISH/SSUBSCRIBE) instead of PUBLISH/SUBSCRIBE.
func Sharded(rdb redis.UniversalClient) bool {
	_, ok := rdb.(*redis.ClusterClient)
	return ok
}

// New wires the message core; Run starts its background loops.
func New(cfg Config, rdb redis.UniversalClient, store Store, starter WorkflowStarter, log *slog.Logger) *Service {
	s := &Service{cfg: cfg, rdb: rdb, store: store, log: log, metrics: newMetrics(), presence: newPresence(cfg.NodeID), sharded: Sharded(rdb)}
	s.pipe = newPipeliner(rdb)
	s.pipe.observe = func(n int) { s.metrics.pipelineScripts.Observe(float64(n)) }
	s.batcher = newBatcher(cfg, starter, log, s.metrics)
	return s
}

// Metrics returns the core's Prometheus metrics.
func (s *Service) Metrics() *Metrics { return s.metrics }

// Redis is the client the core uses, for the other Redis users of a node
// (token store, pub/sub).
func (s *Service) Redis() redis.UniversalClient { return s.rdb }

// Run runs the send pipeline, the Redis memory watch, the presence
// heartbeat and the batcher until
// ctx ends, then flushes the batches still pending into Temporal before it
// returns.
func (s *Service) Run(ctx context.Context) {
	s.pipe.run(ctx, max(1, s.cfg.SendPipelines))
	go s.watchMemory(ctx)
	go s.runPresence(ctx)
	s.batcher.run(ctx)
}

// watchMemory keeps redisFull current: the log must never push Redis into
// evicting or refusing writes half-way through a send.
func (s *Service) watchMemory(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		used, err := s.usedMemory(ctx)
		if err == nil {
			full := s.cfg.RedisMemoryLimit > 0 && used > s.cfg.RedisMemoryLimit
			if full != s.redisFull.Swap(full) {
				s.log.Warn("redis memory limit", "used", used, "limit", s.cfg.RedisMemoryLimit, "refusing_sends", full)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// usedMemory is Redis's used_memory; on a cluster, the largest of its
// masters' (the one that fills up first refuses writes first).
func (s *Service) usedMemory(ctx context.Context) (int64, error) {
	cc, ok := s.rdb.(*redis.ClusterClient)
	if !ok {
		info, err := s.rdb.Info(ctx, "memory").Result()
		return infoInt(info, "used_memory"), err
	}
	var most atomic.Int64
	err := cc.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error {
		info, err := c.Info(ctx, "memory").Result()
		if err != nil {
			return err
		}
		for used := infoInt(info, "used_memory"); ; {
			cur := most.Load()
			if used <= cur || most.CompareAndSwap(cur, used) {
				break
			}
		}
		return nil
	})
	return most.Load(), err
}

// infoInt reads one integer field of an INFO answer.
func infoInt(info, field string) int64 {
	for _, line := range strings.Split(info, "\r\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			n, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			return n
		}
	}
	return 0
}

// Subscribe opens a pub/sub connection with no channels yet.
func (s *Service) Subscribe(ctx context.Context) *redis.PubSub { return s.rdb.Subscribe(ctx) }

// Publish sends an event to a channel, for every node.
func (s *Service) Publish(ctx context.Context, channel string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return s.publish(ctx, s.rdb, channel, b).Err()
}

// publish is PUBLISH, or SPUBLISH on a Redis Cluster.
func (s *Service) publish(ctx context.Context, rdb redis.Cmdable, channel string, msg any) *redis.IntCmd {
	if s.sharded {
		return rdb.SPublish(ctx, channel, msg)
	}
	return rdb.Publish(ctx, channel, msg)
}

// SessionRevoked closes the sockets of a revoked session family on every
// node: each gets a "session revoked" frame, then closes. It is the token
// store's OnRevoke hook, on api nodes and workers alike.
func (s *Service) SessionRevoked(ctx context.Context, userID, family string) {
	if err := s.Publish(ctx, UserChannel(userID), RoomEvent{Type: "session", Event: "revoked", Family: family}); err != nil {
		s.log.Warn("session revoked: publish", "user", userID, "error", err)
	}
}

// UserRooms lists the rooms a user belongs to.
func (s *Service) UserRooms(ctx context.Context, user uuid.UUID) ([]string, error) {
	ids, err := s.store.UserRoomIDs(ctx, user)
	if err != nil {
		return nil, err
	}
	rooms := make([]string, len(ids))
	for i, id := range ids {
		rooms[i] = id.String()
	}
	return rooms, nil
}

// MarkRead moves a read marker forward, capped at the room's last seq, and
// tells the room when it moved.
func (s *Service) MarkRead(ctx context.Context, user, room uuid.UUID, seq int64) (int64, error) {
	cur, err := s.CurrentSeq(ctx, room)
	if err != nil {
		return 0, err
	}
	r, err := s.store.MarkRead(ctx, db.MarkReadParams{RoomID: room, UserID: user, Seq: min(seq, cur)})
	if isNotFound(err) {
		return 0, chatflow.Errorf(chatflow.ECodeNotMember, "you are not a member of room %s", room)
	}
	if err != nil {
		return 0, err
	}
	if r.LastReadSeq > r.PrevSeq { // a marker that did not move tells nobody anything
		_ = s.Publish(ctx, RoomChannel(room.String()), map[string]any{"type": "read", "room_id": room.String(), "user_id": user.String(), "seq": r.LastReadSeq})
	}
	return r.LastReadSeq, nil
}

func isNotFound(err error) bool { return err != nil && errors.Is(err, pgx.ErrNoRows) }
