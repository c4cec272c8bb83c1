// Package activities holds the Temporal activities: the sign-up saga's steps
// and their compensations, and the batched message persistence. Every
// activity is idempotent, so Temporal's retries never duplicate anything.
package activities

import (
	"context"
	"errors"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"
	"go.temporal.io/sdk/temporal"

	"github.com/chatflow/chatflow"
	"github.com/chatflow/chatflow/chat"
	"github.com/chatflow/chatflow/db"
	"github.com/chatflow/chatflow/events"
	"github.com/chatflow/chatflow/roomlog"
)

// Publisher is the part of the Kafka publisher the activities need.
type Publisher interface {
	Publish(ctx context.Context, recs ...events.Record) error
}

// RoomPoster is the part of the message core the sagas need: posting a
// message of a given kind on a member's behalf, deduplicated by cmid.
type RoomPoster interface {
	AcceptKind(ctx context.Context, sender uuid.UUID, roomID, cmid, kind, body string) (chat.Accepted, error)
}

// SessionRevoker ends every session of a user but keep ("" for all).
type SessionRevoker interface {
	RevokeUser(ctx context.Context, userID, keep string) error
}

// Activities holds the dependencies of every activity. Workflows call the
// methods through a nil *Activities; the worker registers a real one.
type Activities struct {
	Pool    *pgxpool.Pool
	Queries *db.Queries
	Events  Publisher
	Metrics *Metrics
	// Redis holds the rooms' message logs; nil in tests of the Postgres
	// side alone (watermarks then move in Postgres only).
	Redis redis.UniversalClient
	Cfg   Config
	// Rooms posts the sagas' events into rooms' sequences (a transfer, a
	// member who left); Sessions revokes a user's sessions.
	Rooms    RoomPoster
	Sessions SessionRevoker
	// Members takes a deleted user out of rooms' cached member sets.
	Members RoomLeaver
	// Objects deletes a deleted user's avatar from the object store (nil:
	// the object stays, unreferenced).
	Objects ObjectDeleter
	// kafkaDownUntil makes batches skip Kafka after a failed write (unix ns).
	kafkaDownUntil atomic.Int64
}

// Config tunes message persistence.
type Config struct {
	// HistoryCap is how many persisted messages a room's log keeps for reads.
	HistoryCap int
	// ReconcileAfter is how old an unpersisted message must be before the
	// reconciler takes it from the log (batches normally get there first).
	ReconcileAfter time.Duration
	// HoleGrace is how long a seq may be missing from both the log and
	// Postgres before it becomes a gap tombstone.
	HoleGrace time.Duration
	// PublishTimeout bounds one Kafka write of the outbox.
	PublishTimeout time.Duration
	// RoomIdleTTL is how long a room's log keys stay in Redis once
	// everything in them is persisted (0: for good); see roomlog.Advance.
	RoomIdleTTL time.Duration
	// UploadPendingTTL is how long an upload (file or avatar) may wait to
	// be attached or set before a sweep expires it; UploadSweepGrace is how
	// long an expired upload keeps its objects (longer than any request
	// that read it as pending can still run).
	UploadPendingTTL time.Duration
	UploadSweepGrace time.Duration
	// TransferResumeAfter is how long a transfer stays pending before
	// ResumeTransfers starts its saga (much longer than the api takes to
	// start it after recording it).
	TransferResumeAfter time.Duration
}

// DefaultConfig is the configuration `make dev` runs with.
func DefaultConfig() Config {
	return Config{
		HistoryCap: 1000, ReconcileAfter: 5 * time.Second, HoleGrace: time.Minute, PublishTimeout: 5 * time.Second, RoomIdleTTL: roomlog.DefaultIdleTTL,
		UploadPendingTTL: 24 * time.Hour, UploadSweepGrace: 10 * time.Minute, TransferResumeAfter: time.Minute,
	}
}

// New wires the activities to a Postgres pool and a Kafka publisher.
func New(pool *pgxpool.Pool, pub Publisher) *Activities {
	return &Activities{Pool: pool, Queries: db.New(pool), Events: pub, Metrics: NewMetrics(), Cfg: DefaultConfig()}
}

// domainFailure turns a domain error into a non-retryable application error
// whose type is the stable code, so the workflow can report it to clients.
func domainFailure(err *chatflow.Error) error {
	return temporal.NewNonRetryableApplicationError(err.Detail, err.Code, nil)
}

// uniqueViolation returns the violated constraint's name, if err is one.
func uniqueViolation(err error) (string, bool) {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "23505" {
		return pgErr.ConstraintName, true
	}
	return "", false
}
