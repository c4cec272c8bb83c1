package activities

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"go.temporal.io/sdk/activity"

	"github.com/chatflow/chatflow"
	"github.com/chatflow/chatflow/db"
	"github.com/chatflow/chatflow/events"
)

// The account deletion saga's steps (workflows/deletion.go). Each one is
// idempotent: Temporal retries it through any outage, and a retry of a
// step that had committed finds nothing left to do. Each records the step
// in auth.deletions first, so the status endpoint shows where it is.

// RoomLeaver is the part of the message core that takes a member out of a
// room's cached member set after Postgres has removed them, as the leave
// route does (chat.Service.Leave, MemberRemoved): never by writing Redis
// keys here.
type RoomLeaver interface {
	// Leave records the removal and tells the room and the user's sockets.
	Leave(ctx context.Context, room, user uuid.UUID) (int64, error)
	// MemberRemoved records the removal without events (a repeat).
	MemberRemoved(ctx context.Context, room, user uuid.UUID) error
}

// deletionStep records in auth.deletions that in's deletion is at step.
func (a *Activities) deletionStep(ctx context.Context, in chatflow.DeletionInput, step string) error {
	_, err := a.Queries.SetDeletionStep(ctx, db.SetDeletionStepParams{ID: in.DeletionID, Step: step})
	return err
}

// RevokeAllSessions is step 1: every session of the user ends (access and
// refresh tokens at once, open sockets on every node). It first checks that
// this deletion is the one running and the user is 'deleting': a saga whose
// start the api gave up on (and recorded as failed) must not go on.
func (a *Activities) RevokeAllSessions(ctx context.Context, in chatflow.DeletionInput) error {
	d, err := a.Queries.GetDeletion(ctx, in.DeletionID)
	if errors.Is(err, pgx.ErrNoRows) {
		return domainFailure(chatflow.Errorf(chatflow.ECodeConflict, "deletion %s is not recorded", in.DeletionID))
	}
	if err != nil {
		return err
	}
	if d.UserID != in.UserID || d.Status != chatflow.StatusRunning {
		return domainFailure(chatflow.Errorf(chatflow.ECodeConflict, "deletion %s is %s", in.DeletionID, d.Status))
	}
	u, err := a.Queries.GetUserByID(ctx, in.UserID)
	if errors.Is(err, pgx.ErrNoRows) {
		return domainFailure(chatflow.Errorf(chatflow.ECodeConflict, "user %s does not exist", in.UserID))
	}
	if err != nil {
		return err
	}
	if u.Status != "deleting" {
		return domainFailure(chatflow.Errorf(chatflow.ECodeConflict, "user %s is %s, not deleting", in.UserID, u.Status))
	}
	if err := a.deletionStep(ctx, in, chatflow.DelStepRevokeSessions); err != nil {
		return err
	}
	return a.Sessions.RevokeUser(ctx, in.UserID.String(), "")
}

// LeaveAllRooms is step 2: the user leaves every room, each leave preceded
// by a system message (kind system, {"event":"member_left",...}) posted as
// the user, so the room's sequence shows it. See leaveRoom for why a retry
// repeats nothing.
func (a *Activities) LeaveAllRooms(ctx context.Context, in chatflow.DeletionInput) error {
	if err := a.deletionStep(ctx, in, chatflow.DelStepLeaveRooms); err != nil {
		return err
	}
	return a.leaveRooms(ctx, in)
}

// leaveRooms leaves every room Postgres lists the user in. A friend may add
// the user to a room while this runs, so the list is read again until it is
// empty.
func (a *Activities) leaveRooms(ctx context.Context, in chatflow.DeletionInput) error {
	for pass := 0; ; pass++ {
		rooms, err := a.Queries.UserRoomIDs(ctx, in.UserID)
		if err != nil {
			return err
		}
		if len(rooms) == 0 {
			return nil
		}
		if pass == 5 {
			return fmt.Errorf("user %s is still added to rooms as fast as they are left (%d now)", in.UserID, len(rooms))
		}
		for _, room := range rooms {
			if err := a.leaveRoom(ctx, in, room); err != nil {
				return fmt.Errorf("leave room %s: %w", room, err)
			}
			if activity.IsActivity(ctx) {
				activity.RecordHeartbeat(ctx, room.String())
			}
		}
	}
}

// leaveRoom takes the user out of one room: (1) the system message,
// deduplicated by a client_msg_id of the deletion's; (2) chat.Leave drops
// the user from the room's cached member set and sends the "left" events;
// (3) Postgres drops the membership; (4) MemberRemoved moves the cached
// set's version once more. The leave route runs (3) before (2); here the
// cache goes first because the room list comes from Postgres: an attempt
// that died after (3) would leave the retry no trace of the room, while one
// that died after (2) leaves the room listed, and the retry's (1) is then
// refused with not_member, which means "posted and left already".
//
// No stale member set survives (4): a cache rebuild reads the set's version
// before Postgres and is refused if the version moved, so a rebuild that read
// Postgres before (3) committed either lands before (4), which removes the
// user again, or is refused (chat/members.go). Between (2) and (4) a rebuild
// may briefly list the user, who holds no session by then (step 1).
func (a *Activities) leaveRoom(ctx context.Context, in chatflow.DeletionInput, room uuid.UUID) error {
	_, err := a.Rooms.AcceptKind(ctx, in.UserID, room.String(), chatflow.DeletionClientMsgID(in.DeletionID),
		chatflow.KindSystem, chatflow.MemberLeftBody(in.UserID))
	left := false // by an earlier attempt
	if err != nil {
		switch chatflow.ErrorCode(err) {
		case chatflow.ECodeNotMember:
			left = true
		case chatflow.ECodeNotFound:
			// the room is gone from Postgres: nothing to post in
		case chatflow.ECodeValidation:
			return domainFailure(chatflow.Errorf(chatflow.ECodeValidation, "system message refused: %s", chatflow.ErrorDetail(err)))
		default:
			return err // unavailable and the like: retried
		}
	}
	if !left {
		if _, err := a.Members.Leave(ctx, room, in.UserID); err != nil {
			return err
		}
	}
	if _, err := a.Queries.RemoveMember(ctx, db.RemoveMemberParams{RoomID: room, UserID: in.UserID}); err != nil {
		return err
	}
	// After Postgres: a cache rebuilt in between from the old membership
	// drops the user again here (the version moves, as in the route).
	return a.Members.MemberRemoved(ctx, room, in.UserID)
}

// RemoveSocialGraph is step 3: the user's friendships (both directions),
// friend requests (both ways) and blocks (both ways) go, and pending
// invitations to or from them are declined. With no friend left, nobody can
// add the user to a room any more; a room a friend added them to while step
// 2 ran is left here too.
func (a *Activities) RemoveSocialGraph(ctx context.Context, in chatflow.DeletionInput) error {
	if err := a.deletionStep(ctx, in, chatflow.DelStepRemoveSocial); err != nil {
		return err
	}
	err := pgx.BeginFunc(ctx, a.Pool, func(tx pgx.Tx) error {
		q := db.New(tx)
		if _, err := q.RemoveUserFriendships(ctx, in.UserID); err != nil {
			return err
		}
		if _, err := q.RemoveUserFriendRequests(ctx, in.UserID); err != nil {
			return err
		}
		if _, err := q.DeclineUserInvitations(ctx, in.UserID); err != nil {
			return err
		}
		_, err := q.RemoveUserBlocks(ctx, in.UserID)
		return err
	})
	if err != nil {
		return err
	}
	return a.leaveRooms(ctx, in)
}

// CloseCustomerAccount is step 4: the customer account is closed (closed_at
// set; the row and its ledger stay as a record). An account holding money
// is refused with balance_not_zero, a verdict: the saga fails and gives the
// user their account back, so they can withdraw it.
func (a *Activities) CloseCustomerAccount(ctx context.Context, in chatflow.DeletionInput) error {
	if err := a.deletionStep(ctx, in, chatflow.DelStepCloseAccount); err != nil {
		return err
	}
	return pgx.BeginFunc(ctx, a.Pool, func(tx pgx.Tx) error {
		q := db.New(tx)
		acct, err := q.GetAccountForUpdate(ctx, in.UserID)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil // no account: nothing to close
		}
		if err != nil {
			return err
		}
		if acct.Balance != 0 {
			return domainFailure(chatflow.Errorf(chatflow.ECodeBalanceNotZero,
				"the account still holds %d; withdraw it before deleting the account", acct.Balance))
		}
		_, err = q.CloseAccountForDeletion(ctx, in.UserID)
		return err
	})
}

// ObjectDeleter removes an object from the object store (a missing one is
// no error); blob.Store is one.
type ObjectDeleter interface {
	Delete(ctx context.Context, key string) error
}

// deleteAvatarObject removes the user's avatar picture from the store
// before the profile forgets its key, so a retry finds the key again. It is
// best effort: the anonymized profile no longer references the object (it is
// never served again), and the deletion does not wait on the object store.
func (a *Activities) deleteAvatarObject(ctx context.Context, user uuid.UUID) {
	if a.Objects == nil {
		return
	}
	p, err := a.Queries.GetProfile(ctx, user)
	if err == nil && p.AvatarKey != nil {
		err = a.Objects.Delete(ctx, *p.AvatarKey)
	}
	if err != nil && !errors.Is(err, pgx.ErrNoRows) && activity.IsActivity(ctx) {
		activity.GetLogger(ctx).Warn("avatar object of a deleted user not removed; it stays unreferenced", "user", user, "error", err)
	}
}

// AnonymizeProfile is step 5, the saga's point of no return: the chat
// profile becomes "deleted user" with an empty status and the username
// "deleted_<12 hex of the id>" (the real one is free in chat from now on),
// and deleted_at is set. The profile row stays, so the user's messages keep
// their sender.
func (a *Activities) AnonymizeProfile(ctx context.Context, in chatflow.DeletionInput) error {
	if err := a.deletionStep(ctx, in, chatflow.DelStepAnonymize); err != nil {
		return err
	}
	a.deleteAvatarObject(ctx, in.UserID)
	p := db.AnonymizeProfileParams{UserID: in.UserID, DisplayName: chatflow.DeletedDisplayName, Username: chatflow.DeletedUsername(in.UserID)}
	_, err := a.Queries.AnonymizeProfile(ctx, p)
	if _, ok := uniqueViolation(err); ok {
		// Someone chose that name; the long form is beyond any user's reach.
		p.Username = chatflow.DeletedUsernameLong(in.UserID)
		_, err = a.Queries.AnonymizeProfile(ctx, p)
	}
	return err
}

// PublishUserDeleted is step 6: user.deleted on user.events, keyed by the
// user id. The event id is derived from the deletion, so consumers drop the
// copies a retry may produce.
func (a *Activities) PublishUserDeleted(ctx context.Context, in chatflow.DeletionInput) error {
	if err := a.deletionStep(ctx, in, chatflow.DelStepEvent); err != nil {
		return err
	}
	ev, err := json.Marshal(chatflow.UserDeleted{
		Type: chatflow.EventUserDeleted, EventID: in.DeletionID.String() + ":" + chatflow.EventUserDeleted,
		UserID: in.UserID.String(), DeletionID: in.DeletionID.String(), RequestedAt: in.RequestedAt,
	})
	if err != nil {
		return err
	}
	return a.Events.Publish(ctx, events.Record{Topic: chatflow.TopicUserEvents, Key: []byte(in.UserID.String()), Value: ev})
}

// DeleteUserCredentials is step 7: the credentials (and any staged sign-up
// secrets) are deleted, which frees the username and the email, and the
// deletion is marked completed, in one transaction. Credentials already gone
// are a retry's; credentials that are no longer 'deleting' (an operator
// reactivated the user) are a verdict: they stay.
func (a *Activities) DeleteUserCredentials(ctx context.Context, in chatflow.DeletionInput) error {
	return pgx.BeginFunc(ctx, a.Pool, func(tx pgx.Tx) error {
		q := db.New(tx)
		n, err := q.DeleteDeletingUser(ctx, in.UserID)
		if err != nil {
			return err
		}
		if n == 0 {
			u, err := q.GetUserByID(ctx, in.UserID)
			if err == nil {
				return domainFailure(chatflow.Errorf(chatflow.ECodeConflict, "user %s is %s, not deleting: credentials kept", in.UserID, u.Status))
			}
			if !errors.Is(err, pgx.ErrNoRows) {
				return err
			}
		}
		_, err = q.CompleteDeletion(ctx, db.CompleteDeletionParams{ID: in.DeletionID, Step: chatflow.DelStepDeleteCredentials})
		return err
	})
}

// ReactivateUser compensates a deletion that failed before its point of no
// return: the user is 'active' again (sessions stay revoked; they log in
// anew), unless another deletion of theirs is running.
func (a *Activities) ReactivateUser(ctx context.Context, in chatflow.DeletionInput) error {
	_, err := a.Queries.ReactivateDeletingUser(ctx, db.ReactivateDeletingUserParams{ID: in.UserID, DeletionID: in.DeletionID})
	return err
}

// RecordDeletionFailed ends a deletion as failed in auth.deletions, with
// its code, its error and the step it stopped at.
func (a *Activities) RecordDeletionFailed(ctx context.Context, f chatflow.DeletionFailure) error {
	_, err := a.Queries.FailDeletion(ctx, db.FailDeletionParams{ID: f.Input.DeletionID, Step: f.Step, ErrorCode: f.ErrorCode, Error: f.Error})
	return err
}
