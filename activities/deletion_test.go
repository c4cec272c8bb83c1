package activities

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"go.temporal.io/sdk/temporal"

	"github.com/chatflow/chatflow"
	"github.com/chatflow/chatflow/chat"
	"github.com/chatflow/chatflow/db"
)

// These tests run the deletion steps against the local Postgres, with the
// message core and the token store replaced by fakes that keep a room's
// cached member set the way Redis would.

// fakeCore is a RoomPoster, RoomLeaver and SessionRevoker in one.
type fakeCore struct {
	mu      sync.Mutex
	left    map[uuid.UUID]bool // rooms whose cached set no longer holds the user
	posts   map[string]int     // room → system messages accepted (deduped by cmid)
	seen    map[string]bool    // room|cmid
	leaves  int
	removed int
	revoked []string
}

func newFakeCore() *fakeCore {
	return &fakeCore{left: map[uuid.UUID]bool{}, posts: map[string]int{}, seen: map[string]bool{}}
}

func (f *fakeCore) AcceptKind(_ context.Context, _ uuid.UUID, roomID, cmid, kind, body string) (chat.Accepted, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.left[uuid.MustParse(roomID)] {
		return chat.Accepted{}, chatflow.Errorf(chatflow.ECodeNotMember, "not a member")
	}
	if kind != chatflow.KindSystem || body == "" {
		return chat.Accepted{}, errors.New("unexpected kind or body")
	}
	if !f.seen[roomID+"|"+cmid] {
		f.seen[roomID+"|"+cmid] = true
		f.posts[roomID]++
	}
	return chat.Accepted{}, nil
}

func (f *fakeCore) Leave(_ context.Context, room, _ uuid.UUID) (int64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.left[room] = true
	f.leaves++
	return 0, nil
}

func (f *fakeCore) MemberRemoved(_ context.Context, room, _ uuid.UUID) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.left[room] = true
	f.removed++
	return nil
}

func (f *fakeCore) RevokeUser(_ context.Context, userID, keep string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.revoked = append(f.revoked, userID+"|"+keep)
	return nil
}

// deletionFixture is a user being deleted: active credentials marked
// 'deleting', a running deletion, a profile, an empty account, two rooms
// shared with a friend, a friend request, a pending invitation and a block.
type deletionFixture struct {
	a      *Activities
	core   *fakeCore
	pub    *recordingPublisher
	in     chatflow.DeletionInput
	friend uuid.UUID
	rooms  []uuid.UUID
}

func newDeletionFixture(t *testing.T) *deletionFixture {
	t.Helper()
	a, pub := testActivities(t)
	core := newFakeCore()
	a.Rooms, a.Members, a.Sessions = core, core, core
	ctx := context.Background()
	mk := func() chatflow.SignupInput {
		in := newInput()
		forward(t, a, in)
		if err := a.ActivateUser(ctx, in.UserID); err != nil {
			t.Fatal(err)
		}
		return in
	}
	user, friend := mk(), mk()
	f := &deletionFixture{a: a, core: core, pub: pub, friend: friend.UserID, in: chatflow.DeletionInput{
		DeletionID: uuid.New(), UserID: user.UserID, Username: user.Username, RequestedAt: time.Now().UTC(),
	}}
	if n, err := a.Queries.MarkUserDeleting(ctx, user.UserID); err != nil || n != 1 {
		t.Fatalf("mark deleting: %d %v", n, err)
	}
	if _, err := a.Queries.CreateDeletion(ctx, db.CreateDeletionParams{ID: f.in.DeletionID, UserID: user.UserID, Username: user.Username}); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		r, err := a.Queries.CreateRoom(ctx, db.CreateRoomParams{ID: uuid.New(), Name: "del", CreatedBy: user.UserID})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := a.Queries.AddMembers(ctx, db.AddMembersParams{RoomID: r.ID, UserIds: []uuid.UUID{user.UserID, friend.UserID}}); err != nil {
			t.Fatal(err)
		}
		f.rooms = append(f.rooms, r.ID)
	}
	other, err := a.Queries.CreateRoom(ctx, db.CreateRoomParams{ID: uuid.New(), Name: "other", CreatedBy: friend.UserID})
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`INSERT INTO chat.friends (user_id, friend_id) VALUES ($1, $2), ($2, $1)`,
		`INSERT INTO chat.friend_requests (from_id, to_id) VALUES ($2, $1)`,
		`INSERT INTO chat.blocks (user_id, blocked_id) VALUES ($1, $2)`,
	} {
		if _, err := a.Pool.Exec(ctx, q, user.UserID, friend.UserID); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := a.Queries.CreateInvitations(ctx, db.CreateInvitationsParams{RoomID: other.ID, InviterID: friend.UserID, UserIds: []uuid.UUID{user.UserID}}); err != nil {
		t.Fatal(err)
	}
	return f
}

// social counts what is left of the user's social graph.
func (f *deletionFixture) social(t *testing.T) (members, friends, requests, pendingInvites, blocks int) {
	t.Helper()
	if err := f.a.Pool.QueryRow(context.Background(), `SELECT
		(SELECT count(*) FROM chat.members WHERE user_id = $1),
		(SELECT count(*) FROM chat.friends WHERE user_id = $1 OR friend_id = $1),
		(SELECT count(*) FROM chat.friend_requests WHERE from_id = $1 OR to_id = $1),
		(SELECT count(*) FROM chat.invitations WHERE (invitee_id = $1 OR inviter_id = $1) AND status = 'pending'),
		(SELECT count(*) FROM chat.blocks WHERE user_id = $1 OR blocked_id = $1)`, f.in.UserID).
		Scan(&members, &friends, &requests, &pendingInvites, &blocks); err != nil {
		t.Fatal(err)
	}
	return
}

func (f *deletionFixture) steps() []func(context.Context, chatflow.DeletionInput) error {
	a := f.a
	return []func(context.Context, chatflow.DeletionInput) error{
		a.RevokeAllSessions, a.LeaveAllRooms, a.RemoveSocialGraph, a.CloseCustomerAccount,
		a.AnonymizeProfile, a.PublishUserDeleted, a.DeleteUserCredentials,
	}
}

func isVerdictCode(err error, code string) bool {
	var app *temporal.ApplicationError
	return errors.As(err, &app) && app.NonRetryable() && app.Type() == code
}

// Every step run twice in a row (a retry after a lost answer) ends in the
// same state as once: one system message per room, one leave per room.
func TestDeletionStepsTwiceEach(t *testing.T) {
	f := newDeletionFixture(t)
	ctx := context.Background()
	for i, step := range f.steps() {
		for round := 0; round < 2; round++ {
			if err := step(ctx, f.in); err != nil {
				t.Fatalf("step %d round %d: %v", i+1, round+1, err)
			}
		}
		if i == 0 {
			if got := f.core.revoked; len(got) != 2 || got[0] != f.in.UserID.String()+"|" {
				t.Fatalf("revocations %v", got)
			}
		}
	}
	for _, r := range f.rooms {
		if n := f.core.posts[r.String()]; n != 1 {
			t.Fatalf("room %s got %d member_left messages", r, n)
		}
	}
	if f.core.leaves != len(f.rooms) {
		t.Fatalf("%d cached-set leaves for %d rooms", f.core.leaves, len(f.rooms))
	}
	if m, fr, rq, inv, bl := f.social(t); m+fr+rq+inv+bl != 0 {
		t.Fatalf("left: members %d friends %d requests %d invitations %d blocks %d", m, fr, rq, inv, bl)
	}
	p, err := f.a.Queries.GetProfile(ctx, f.in.UserID)
	if err != nil {
		t.Fatal(err)
	}
	if p.DisplayName != chatflow.DeletedDisplayName || p.Username != chatflow.DeletedUsername(f.in.UserID) || p.DeletedAt == nil || p.StatusMessage != "" {
		t.Fatalf("profile not anonymized: %+v", p)
	}
	acct, err := f.a.Queries.GetAccount(ctx, f.in.UserID)
	if err != nil || acct.ClosedAt == nil {
		t.Fatalf("account not closed: %+v %v", acct, err)
	}
	if _, err := f.a.Queries.GetUserByID(ctx, f.in.UserID); !errors.Is(err, pgx.ErrNoRows) {
		t.Fatalf("credentials still there: %v", err)
	}
	d, err := f.a.Queries.GetDeletion(ctx, f.in.DeletionID)
	if err != nil || d.Status != chatflow.StatusCompleted || d.Step != chatflow.DelStepDeleteCredentials || d.FinishedAt == nil {
		t.Fatalf("deletion %+v %v", d, err)
	}
	if n := len(f.pub.recs); n != 2 || string(f.pub.recs[0].Key) != f.in.UserID.String() || f.pub.recs[0].Topic != chatflow.TopicUserEvents {
		t.Fatalf("published %d records: %+v", n, f.pub.recs)
	}
}

// An attempt that died after the cached member set dropped the user (the
// message posted) but before Postgres did: the retry posts nothing more,
// and finishes the leave in Postgres and in the cache.
func TestDeletionLeaveResumesAfterCrash(t *testing.T) {
	f := newDeletionFixture(t)
	ctx := context.Background()
	crashed := f.rooms[0]
	if err := f.a.leaveRoom(ctx, f.in, crashed); err != nil { // the whole leave, then undo its Postgres part
		t.Fatal(err)
	}
	if _, err := f.a.Pool.Exec(ctx, `INSERT INTO chat.members (room_id, user_id) VALUES ($1, $2)`, crashed, f.in.UserID); err != nil {
		t.Fatal(err)
	}
	leaves, removed := f.core.leaves, f.core.removed
	if err := f.a.LeaveAllRooms(ctx, f.in); err != nil {
		t.Fatal(err)
	}
	if n := f.core.posts[crashed.String()]; n != 1 {
		t.Fatalf("crashed room got %d messages", n)
	}
	if got := f.core.leaves - leaves; got != 1 {
		t.Fatalf("%d leaves with events on the retry, want 1 (the other room only)", got)
	}
	if got := f.core.removed - removed; got != 2 {
		t.Fatalf("%d cache removals after Postgres, want 2", got)
	}
	if m, _, _, _, _ := f.social(t); m != 0 {
		t.Fatalf("still a member of %d rooms", m)
	}
}

// A balance above zero is a verdict at step 4; the compensation gives the
// account back and the failure is recorded.
func TestDeletionBalanceNotZero(t *testing.T) {
	f := newDeletionFixture(t)
	ctx := context.Background()
	if _, err := f.a.Queries.CreditAccount(ctx, db.CreditAccountParams{UserID: f.in.UserID, Amount: 5}); err != nil {
		t.Fatal(err)
	}
	err := f.a.CloseCustomerAccount(ctx, f.in)
	if !isVerdictCode(err, chatflow.ECodeBalanceNotZero) {
		t.Fatalf("close with a balance: %v", err)
	}
	if acct, _ := f.a.Queries.GetAccount(ctx, f.in.UserID); acct.ClosedAt != nil {
		t.Fatal("account closed despite its balance")
	}
	for range 2 {
		if err := f.a.ReactivateUser(ctx, f.in); err != nil {
			t.Fatal(err)
		}
		if err := f.a.RecordDeletionFailed(ctx, chatflow.DeletionFailure{Input: f.in, Step: chatflow.DelStepCloseAccount,
			ErrorCode: chatflow.ECodeBalanceNotZero, Error: "the account still holds 5"}); err != nil {
			t.Fatal(err)
		}
	}
	u, err := f.a.Queries.GetUserByID(ctx, f.in.UserID)
	if err != nil || u.Status != "active" {
		t.Fatalf("user %+v %v, want active", u, err)
	}
	d, _ := f.a.Queries.GetDeletion(ctx, f.in.DeletionID)
	if d.Status != chatflow.StatusFailed || d.ErrorCode != chatflow.ECodeBalanceNotZero || d.Step != chatflow.DelStepCloseAccount {
		t.Fatalf("deletion %+v", d)
	}
	// The next steps of a saga the api gave up on stop at step 1.
	if err := f.a.RevokeAllSessions(ctx, f.in); !isVerdictCode(err, chatflow.ECodeConflict) {
		t.Fatalf("step 1 of a failed deletion: %v", err)
	}
}

// A compensation of an older deletion never reactivates a user whose
// newer deletion runs.
func TestDeletionReactivateSparesANewerDeletion(t *testing.T) {
	f := newDeletionFixture(t)
	ctx := context.Background()
	if _, err := f.a.Queries.FailDeletion(ctx, db.FailDeletionParams{ID: f.in.DeletionID, ErrorCode: "x"}); err != nil {
		t.Fatal(err)
	}
	newer := f.in
	newer.DeletionID = uuid.New()
	if _, err := f.a.Queries.CreateDeletion(ctx, db.CreateDeletionParams{ID: newer.DeletionID, UserID: f.in.UserID, Username: f.in.Username}); err != nil {
		t.Fatal(err)
	}
	if err := f.a.ReactivateUser(ctx, f.in); err != nil {
		t.Fatal(err)
	}
	if u, _ := f.a.Queries.GetUserByID(ctx, f.in.UserID); u.Status != "deleting" {
		t.Fatalf("user %s while a newer deletion runs", u.Status)
	}
	if err := f.a.RevokeAllSessions(ctx, newer); err != nil {
		t.Fatalf("the newer deletion's step 1: %v", err)
	}
}

// The short anonymous username held by a real user: the long form is used.
func TestDeletionAnonymizeNameTaken(t *testing.T) {
	f := newDeletionFixture(t)
	ctx := context.Background()
	squatter := newInput()
	squatter.Username = chatflow.DeletedUsername(f.in.UserID)
	forward(t, f.a, squatter)
	t.Cleanup(func() { compensate(t, f.a, squatter) })
	for range 2 {
		if err := f.a.AnonymizeProfile(ctx, f.in); err != nil {
			t.Fatal(err)
		}
	}
	p, _ := f.a.Queries.GetProfile(ctx, f.in.UserID)
	if p.Username != chatflow.DeletedUsernameLong(f.in.UserID) {
		t.Fatalf("username %q", p.Username)
	}
	if chatflow.ValidUsername(p.Username) {
		t.Fatalf("%q is a username a user could choose", p.Username)
	}
}
