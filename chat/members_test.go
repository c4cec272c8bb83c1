package chat

import (
	"context"
	"io"
	"log/slog"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"

	"github.com/chatflow/chatflow"
	"github.com/chatflow/chatflow/db"
	"github.com/chatflow/chatflow/roomlog"
)

// memberStore is a Postgres stand-in whose member reads can be held: a read
// takes its snapshot when called and returns it once released, which is a
// rebuild that read Postgres just before a change committed.
type memberStore struct {
	mu      sync.Mutex
	members []uuid.UUID
	hold    chan struct{} // non-nil: reads wait for it after taking their snapshot
	reading chan struct{} // signalled when a held read has its snapshot
}

func (m *memberStore) set(ids ...uuid.UUID) {
	m.mu.Lock()
	m.members = slices.Clone(ids)
	m.mu.Unlock()
}

func (m *memberStore) GetRoom(context.Context, uuid.UUID) (db.ChatRoom, error) {
	return db.ChatRoom{}, nil
}

func (m *memberStore) RoomMemberIDs(ctx context.Context, _ uuid.UUID) ([]uuid.UUID, error) {
	m.mu.Lock()
	snap, hold, reading := slices.Clone(m.members), m.hold, m.reading
	m.hold = nil // only the first read is held
	m.mu.Unlock()
	if hold != nil {
		reading <- struct{}{}
		<-hold
	}
	return snap, nil
}

func (m *memberStore) RoomLogHead(context.Context, uuid.UUID) (db.RoomLogHeadRow, error) {
	return db.RoomLogHeadRow{}, nil
}

func (m *memberStore) ListMessagesRange(context.Context, db.ListMessagesRangeParams) ([]db.ChatMessage, error) {
	return nil, nil
}

func (m *memberStore) LastMessages(context.Context, []uuid.UUID) ([]db.ChatMessage, error) {
	return nil, nil
}

func (m *memberStore) MarkRead(context.Context, db.MarkReadParams) (db.MarkReadRow, error) {
	return db.MarkReadRow{}, nil
}

func (m *memberStore) UserRoomIDs(context.Context, uuid.UUID) ([]uuid.UUID, error) { return nil, nil }

// raceService is a message core on the local Redis with the store above.
func raceService(t *testing.T) (*Service, *memberStore) {
	t.Helper()
	addr := os.Getenv("REDIS_ADDR")
	if addr == "" {
		addr = "127.0.0.1:16379"
	}
	rdb := redis.NewClient(&redis.Options{Addr: addr})
	if err := rdb.Ping(context.Background()).Err(); err != nil {
		t.Fatalf("redis at %s is not reachable (%v): start the local services", addr, err)
	}
	t.Cleanup(func() { _ = rdb.Close() })
	st := &memberStore{}
	s := New(DefaultConfig(), rdb, st, &fakeTemporal{}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	s.pipe.run(ctx, 1)
	return s, st
}

// holdNextRead makes the next member read take its snapshot and wait;
// release lets it return.
func (m *memberStore) holdNextRead() (reading <-chan struct{}, release func()) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.hold, m.reading = make(chan struct{}), make(chan struct{}, 1)
	h := m.hold
	return m.reading, func() { close(h) }
}

// A rebuild of the member set that read Postgres before a leave committed
// must not install the leaver back once the leave has returned: the send
// that triggered it, and every later one, is refused.
func TestMembersRebuildRacingLeave(t *testing.T) {
	s, st := raceService(t)
	ctx := context.Background()
	room, owner, leaver := uuid.New(), uuid.New(), uuid.New()
	st.set(owner, leaver)
	reading, release := st.holdNextRead()

	res := make(chan error, 1)
	go func() { // a send that finds no cached set and rebuilds it
		_, err := s.Accept(ctx, leaver, room.String(), "racing", "hello")
		res <- err
	}()
	<-reading // the rebuild holds a snapshot with the leaver in it

	st.set(owner) // the leave commits in Postgres...
	point, err := s.Leave(ctx, room, leaver)
	if err != nil { // ...and is recorded in Redis; the leave returns
		t.Fatal(err)
	}
	release()
	if err := <-res; chatflow.ErrorCode(err) != chatflow.ECodeNotMember {
		t.Fatalf("send racing the leave: %v, want not_member", err)
	}
	if _, err := s.Accept(ctx, leaver, room.String(), "later", "hello"); chatflow.ErrorCode(err) != chatflow.ECodeNotMember {
		t.Fatalf("send after the leave: %v, want not_member", err)
	}
	if err := s.Authorize(ctx, leaver, room); chatflow.ErrorCode(err) != chatflow.ECodeNotMember {
		t.Fatalf("authorize after the leave: %v", err)
	}
	if err := s.Typing(ctx, leaver, room); chatflow.ErrorCode(err) != chatflow.ECodeNotMember {
		t.Fatalf("typing after the leave: %v", err)
	}
	if a, err := s.Accept(ctx, owner, room.String(), "owner", "still here"); err != nil || a.Msg.Seq <= point { // after the leave point (a room seeded from Postgres is fenced first)
		t.Fatalf("owner's send after the leave: %+v, %v (leave point %d)", a.Msg, err, point)
	}
	s.rdb.Del(ctx, roomlog.MembersKey(room.String()), roomlog.MembersVersionKey(room.String()), roomlog.SeqKey(room.String()),
		roomlog.PersistedKey(room.String()), roomlog.StreamKey(room.String()))
}

// A rebuild that read Postgres before an invite committed must not lock the
// invitee out once the invite has returned.
func TestMembersRebuildRacingInvite(t *testing.T) {
	s, st := raceService(t)
	ctx := context.Background()
	room, owner, invitee := uuid.New(), uuid.New(), uuid.New()
	st.set(owner)
	reading, release := st.holdNextRead()

	res := make(chan error, 1)
	go func() {
		_, err := s.Accept(ctx, owner, room.String(), "racing", "hello")
		res <- err
	}()
	<-reading // the rebuild holds a snapshot without the invitee

	st.set(owner, invitee)
	if err := s.MembersAdded(ctx, room, []uuid.UUID{invitee}); err != nil {
		t.Fatal(err)
	}
	release()
	if err := <-res; err != nil {
		t.Fatalf("owner's send racing the invite: %v", err)
	}
	if _, err := s.Accept(ctx, invitee, room.String(), "first", "hi"); err != nil {
		t.Fatalf("invitee's send right after the invite: %v", err)
	}
	if err := s.Typing(ctx, invitee, room); err != nil {
		t.Fatalf("invitee's typing: %v", err)
	}
	s.rdb.Del(ctx, roomlog.MembersKey(room.String()), roomlog.MembersVersionKey(room.String()), roomlog.SeqKey(room.String()),
		roomlog.PersistedKey(room.String()), roomlog.StreamKey(room.String()))
}

// The version survives nothing it does not have to: a rebuild that read
// the version before it expired is refused too (read again), never stale.
func TestMembersRebuildRefusedWhenVersionVanished(t *testing.T) {
	s, st := raceService(t)
	ctx := context.Background()
	room, owner := uuid.New(), uuid.New()
	st.set(owner)
	key := roomlog.MembersVersionKey(room.String())
	s.rdb.Set(ctx, key, "7", time.Minute)
	reading, release := st.holdNextRead()
	res := make(chan error, 1)
	go func() { res <- s.cacheMembers(ctx, room) }()
	<-reading
	s.rdb.Del(ctx, key)
	release()
	if err := <-res; err != errMembersMoved {
		t.Fatalf("rebuild across a vanished version: %v, want errMembersMoved", err)
	}
	if n, _ := s.rdb.Exists(ctx, roomlog.MembersKey(room.String())).Result(); n != 0 {
		t.Fatal("the refused rebuild cached a set")
	}
}

func (m *memberStore) MessageOverlay(context.Context, db.MessageOverlayParams) ([]db.MessageOverlayRow, error) {
	return nil, nil
}
func (m *memberStore) InsertMessageReactions(context.Context, db.InsertMessageReactionsParams) error {
	return nil
}
func (m *memberStore) InsertMessageEdits(context.Context, db.InsertMessageEditsParams) error {
	return nil
}
func (m *memberStore) ClearEditedBodies(context.Context, db.ClearEditedBodiesParams) error {
	return nil
}
func (m *memberStore) ApplyMessageEdits(context.Context, db.ApplyMessageEditsParams) error {
	return nil
}
