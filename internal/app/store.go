package app

import (
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/chatflow/chatflow/chat"
	"github.com/chatflow/chatflow/db"
)

// postgresStore is the message core's view of Postgres.
func postgresStore(pool *pgxpool.Pool) chat.Store { return db.New(pool) }

// The store also records last-seen times (chat finds it by assertion).
var _ chat.SeenRecorder = (*db.Queries)(nil)
