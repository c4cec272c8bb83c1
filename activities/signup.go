package activities

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/chatflow/chatflow"
	"github.com/chatflow/chatflow/db"
	"github.com/chatflow/chatflow/events"
)

// SignupInput is the sign-up saga's input. The password arrives already
// hashed so that no plaintext ever lands in workflow history.
type SignupInput struct {
	SignupID     string    `json:"signup_id"`
	UserID       uuid.UUID `json:"user_id"`
	Username     string    `json:"username"`
	Email        string    `json:"email"`
	PasswordHash string    `json:"password_hash"`
	DisplayName  string    `json:"display_name"`
	RequestedAt  time.Time `json:"requested_at"`
}

// CreateCredentials stores the user's credentials in state pending.
func (a *Activities) CreateCredentials(ctx context.Context, in SignupInput) error {
	n, err := a.Queries.CreateUser(ctx, db.CreateUserParams{
		ID: in.UserID, Username: in.Username, Email: in.Email, PasswordHash: in.PasswordHash,
	})
	if name, ok := uniqueViolation(err); ok {
		if name == "users_email_key" {
			return domainFailure(chatflow.Errorf(chatflow.ECodeEmailTaken, "email is already registered"))
		}
		return domainFailure(chatflow.Errorf(chatflow.ECodeUsernameTaken, "username is already registered"))
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
			return domainFailure(chatflow.Errorf(chatflow.ECodeConflict, "user id collision"))
		}
	}
	return nil
}

// DeleteCredentials compensates CreateCredentials, the last undo of a failed saga.
func (a *Activities) DeleteCredentials(ctx context.Context, userID uuid.UUID) error {
	if err := a.Queries.DeleteUser(ctx, userID); err != nil {
		return err
	}
	if a.Metrics != nil {
		a.Metrics.SagaOutcomes.WithLabelValues("compensated").Inc()
	}
	return nil
}

// CreateProfile creates the user's chat profile.
func (a *Activities) CreateProfile(ctx context.Context, in SignupInput) error {
	err := a.Queries.CreateProfile(ctx, db.CreateProfileParams{
		UserID: in.UserID, Username: in.Username, DisplayName: in.DisplayName,
	})
	if _, ok := uniqueViolation(err); ok {
		return domainFailure(chatflow.Errorf(chatflow.ECodeUsernameTaken, "chat profile already exists"))
	}
	return err
}

// DeleteProfile compensates CreateProfile.
func (a *Activities) DeleteProfile(ctx context.Context, userID uuid.UUID) error {
	return a.Queries.DeleteProfile(ctx, userID)
}

// OpenAccount opens the user's customer account with a zero balance.
func (a *Activities) OpenAccount(ctx context.Context, userID uuid.UUID) error {
	return a.Queries.OpenAccount(ctx, userID)
}

// CloseAccount compensates OpenAccount.
func (a *Activities) CloseAccount(ctx context.Context, userID uuid.UUID) error {
	return a.Queries.CloseAccount(ctx, userID)
}

// PublishUserCreated publishes user.created, keyed by user id. The event id
// is the sign-up id, so consumers can drop the copies a retry may produce.
func (a *Activities) PublishUserCreated(ctx context.Context, in SignupInput) error {
	return a.publishUser(ctx, in, "user.created")
}

// PublishUserRolledBack compensates PublishUserCreated: a published event
// cannot be taken back, so consumers are told to forget the user.
func (a *Activities) PublishUserRolledBack(ctx context.Context, in SignupInput) error {
	return a.publishUser(ctx, in, "user.rolled_back")
}

func (a *Activities) publishUser(ctx context.Context, in SignupInput, typ string) error {
	ev, err := json.Marshal(chatflow.UserCreated{
		Type: typ, EventID: in.SignupID + ":" + typ, UserID: in.UserID.String(), Username: in.Username,
		Email: in.Email, DisplayName: in.DisplayName, CreatedAt: in.RequestedAt,
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
		return fmt.Errorf("activate: user %s not found", userID)
	}
	if a.Metrics != nil {
		a.Metrics.SagaOutcomes.WithLabelValues("completed").Inc()
	}
	return nil
}
