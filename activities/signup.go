package activities

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/chatflow/chatflow"
	"github.com/chatflow/chatflow/db"
	"github.com/chatflow/chatflow/events"
)

// Every compensation here undoes only what belongs to a user who is still
// pending: once a user is active, nothing of theirs is deleted or rolled back
// (the SQL carries the guard, so a race with ActivateUser cannot slip past it).

// CreateCredentials stores the user's credentials in state pending. The
// email and password hash come from auth.signup_secrets, where the api
// staged them (the saga's input does not carry them), or, for a saga started
// before that, from its input.
//
// A username held by someone else's pending credentials belongs to an earlier
// run of this very saga (the workflow ID is derived from the username and only
// one run of an ID is ever open): that run has ended without completing, e.g.
// it was terminated or timed out before it could compensate, so its leftovers
// are removed and the insert is tried again.
func (a *Activities) CreateCredentials(ctx context.Context, in chatflow.SignupInput) error {
	email, hash := in.Email, in.PasswordHash
	if in.Staged() {
		sec, done, err := a.stagedSecrets(ctx, in)
		if err != nil || done {
			return err
		}
		email, hash = sec.Email, sec.PasswordHash
	}
	// A verdict ends the saga with no compensation to run: the staged
	// secrets go now.
	verdict := func(err *chatflow.Error) error {
		if _, derr := a.Queries.DeleteSignupSecrets(ctx, in.UserID); derr != nil {
			return derr // retried; the verdict comes again
		}
		return domainFailure(err)
	}
	for try := 0; ; try++ {
		n, err := a.Queries.CreateUser(ctx, db.CreateUserParams{
			ID: in.UserID, Username: in.Username, Email: email, PasswordHash: hash,
		})
		if name, ok := uniqueViolation(err); ok {
			if name == "users_email_key" {
				return verdict(chatflow.Errorf(chatflow.ECodeEmailTaken, "email is already registered"))
			}
			if try == 0 {
				freed, ferr := a.freeStaleUsername(ctx, in)
				if ferr != nil {
					return ferr
				}
				if freed {
					continue
				}
			}
			if try > 0 {
				// Freed, and taken again at once: let Temporal retry the step.
				return fmt.Errorf("username %q was taken again while its stale sign-up was removed", in.Username)
			}
			return verdict(chatflow.Errorf(chatflow.ECodeUsernameTaken, "username is already registered"))
		}
		if err != nil {
			return err
		}
		if n == 0 { // a retry: the row must be ours
			u, err := a.Queries.GetUserByID(ctx, in.UserID)
			if err != nil {
				return err
			}
			if u.Username != in.Username {
				return verdict(chatflow.Errorf(chatflow.ECodeConflict, "user id collision"))
			}
		}
		return nil
	}
}

// stagedSecrets reads the email and password hash the api staged for this
// sign-up. done is true when there are none because an earlier attempt of
// this step has already stored the credentials (and activation or a
// compensation has since removed the row). No row and no credentials means
// the secrets were purged (SignupSecretsTTL) or never staged: the sign-up
// ends as expired.
func (a *Activities) stagedSecrets(ctx context.Context, in chatflow.SignupInput) (sec db.GetSignupSecretsRow, done bool, err error) {
	sid, err := uuid.Parse(in.SignupID)
	if err != nil {
		return sec, false, domainFailure(chatflow.Errorf(chatflow.ECodeValidation, "signup_id %q is not a uuid", in.SignupID))
	}
	sec, err = a.Queries.GetSignupSecrets(ctx, db.GetSignupSecretsParams{SignupID: sid, UserID: in.UserID})
	if !errors.Is(err, pgx.ErrNoRows) {
		return sec, false, err
	}
	u, err := a.Queries.GetUserByID(ctx, in.UserID)
	if err == nil && u.Username == in.Username {
		return sec, true, nil
	}
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return sec, false, err
	}
	return sec, false, domainFailure(chatflow.Errorf(chatflow.ECodeConflict, "the sign-up expired before it ran; sign up again"))
}

// freeStaleUsername removes the pending leftovers of an ended earlier run of
// this sign-up's workflow that hold in.Username; it reports whether it did.
func (a *Activities) freeStaleUsername(ctx context.Context, in chatflow.SignupInput) (bool, error) {
	if !activity.IsActivity(ctx) || activity.GetInfo(ctx).WorkflowExecution.ID != chatflow.SignupWorkflowID(in.Username) {
		return false, nil // not run by the saga of this username: cannot tell
	}
	u, err := a.Queries.GetUserByUsername(ctx, in.Username)
	if errors.Is(err, pgx.ErrNoRows) {
		return true, nil // gone meanwhile
	}
	if err != nil {
		return false, err
	}
	if u.ID == in.UserID || u.Status != "pending" {
		return false, nil
	}
	n, err := a.Queries.DeleteStaleSignup(ctx, u.ID)
	if err != nil {
		return false, err
	}
	if n > 0 {
		activity.GetLogger(ctx).Warn("removed the pending leftovers of an ended sign-up", "username", in.Username, "stale_user_id", u.ID)
	}
	return true, nil
}

// DeleteCredentials compensates CreateCredentials, the last undo of a failed
// saga; only pending credentials are deleted.
func (a *Activities) DeleteCredentials(ctx context.Context, userID uuid.UUID) error {
	if err := a.Queries.DeleteUser(ctx, userID); err != nil {
		return err
	}
	if a.Metrics != nil {
		a.Metrics.SagaOutcomes.WithLabelValues("compensated").Inc()
	}
	return nil
}

// CreateProfile creates the user's chat profile. A profile holding the
// username whose credentials are gone is the leftover of an ended sign-up
// (this saga holds the username in auth.users already), so it is removed and
// the insert tried again.
func (a *Activities) CreateProfile(ctx context.Context, in chatflow.SignupInput) error {
	params := db.CreateProfileParams{UserID: in.UserID, Username: in.Username, DisplayName: in.DisplayName}
	err := a.Queries.CreateProfile(ctx, params)
	if _, ok := uniqueViolation(err); ok {
		n, derr := a.Queries.DeleteOrphanProfiles(ctx, in.Username)
		if derr != nil {
			return derr
		}
		if n > 0 {
			err = a.Queries.CreateProfile(ctx, params)
		}
	}
	if _, ok := uniqueViolation(err); ok {
		return domainFailure(chatflow.Errorf(chatflow.ECodeUsernameTaken, "chat profile already exists"))
	}
	return err
}

// DeleteProfile compensates CreateProfile; an active user's profile stays.
func (a *Activities) DeleteProfile(ctx context.Context, userID uuid.UUID) error {
	_, err := a.Queries.DeleteSignupProfile(ctx, userID)
	return err
}

// OpenAccount opens the user's customer account with a zero balance.
func (a *Activities) OpenAccount(ctx context.Context, userID uuid.UUID) error {
	return a.Queries.OpenAccount(ctx, userID)
}

// CloseAccount compensates OpenAccount; an active user's account stays.
func (a *Activities) CloseAccount(ctx context.Context, userID uuid.UUID) error {
	_, err := a.Queries.CloseAccount(ctx, userID)
	return err
}

// PublishUserCreated publishes user.created, keyed by user id. The event id
// is the sign-up id, so consumers can drop the copies a retry may produce.
func (a *Activities) PublishUserCreated(ctx context.Context, in chatflow.SignupInput) error {
	return a.publishUser(ctx, in, "user.created")
}

// PublishUserRolledBack compensates PublishUserCreated: a published event
// cannot be taken back, so consumers are told to forget the user — unless the
// user is active after all, whom they must keep.
func (a *Activities) PublishUserRolledBack(ctx context.Context, in chatflow.SignupInput) error {
	active, err := a.UserActive(ctx, in.UserID)
	if err != nil {
		return err
	}
	if active {
		if activity.IsActivity(ctx) {
			activity.GetLogger(ctx).Warn("user is active: user.rolled_back not published", "user_id", in.UserID)
		}
		return nil
	}
	return a.publishUser(ctx, in, "user.rolled_back")
}

// publishUser publishes a user event. The email comes from the stored
// credentials (a staged saga's input has none); a roll-back whose
// credentials are already gone goes out without it.
func (a *Activities) publishUser(ctx context.Context, in chatflow.SignupInput, typ string) error {
	email := in.Email
	if email == "" {
		u, err := a.Queries.GetUserByID(ctx, in.UserID)
		switch {
		case err == nil:
			email = u.Email
		case !errors.Is(err, pgx.ErrNoRows):
			return err
		case typ == "user.created":
			return fmt.Errorf("user.created: the credentials of user %s are gone", in.UserID)
		}
	}
	ev, err := json.Marshal(chatflow.UserCreated{
		Type: typ, EventID: in.SignupID + ":" + typ, UserID: in.UserID.String(), Username: in.Username,
		Email: email, DisplayName: in.DisplayName, CreatedAt: in.RequestedAt,
	})
	if err != nil {
		return err
	}
	return a.Events.Publish(ctx, events.Record{Topic: chatflow.TopicUserEvents, Key: []byte(in.UserID.String()), Value: ev})
}

// ActivateUser lets the user log in; the saga's last step.
func (a *Activities) ActivateUser(ctx context.Context, userID uuid.UUID) error {
	n, err := a.Queries.ActivateUser(ctx, userID)
	if err != nil {
		return err
	}
	if n == 0 {
		// The credentials are gone: no retry brings them back.
		return temporal.NewNonRetryableApplicationError(fmt.Sprintf("activate: user %s not found", userID), "", nil)
	}
	if a.Metrics != nil {
		a.Metrics.SagaOutcomes.WithLabelValues("completed").Inc()
	}
	return nil
}

// UserActive reports whether the user's credentials exist and are active. The
// saga asks it when ActivateUser failed without a verdict (retries exhausted,
// timed out): an attempt may have committed, and then the saga has completed.
func (a *Activities) UserActive(ctx context.Context, userID uuid.UUID) (bool, error) {
	u, err := a.Queries.GetUserByID(ctx, userID)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return u.Status == "active", nil
}
