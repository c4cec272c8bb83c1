package api

import (
	"context"

	"github.com/gofiber/fiber/v2"
	"github.com/google/uuid"
	"golang.org/x/crypto/bcrypt"

	"github.com/chatflow/chatflow"
	"github.com/chatflow/chatflow/db"
)

// The caller's password (POST /me/password) and the login time record.

func (s *Server) changePassword(c *fiber.Ctx) error {
	var req struct {
		CurrentPassword string `json:"current_password"`
		NewPassword     string `json:"new_password"`
	}
	if err := decode(c, &req); err != nil {
		return err
	}
	if req.CurrentPassword == "" {
		return chatflow.Errorf(chatflow.ECodeValidation, "current_password is required")
	}
	if err := chatflow.ValidPassword("new_password", req.NewPassword); err != nil {
		return err
	}
	ctx, claims := c.UserContext(), claimsOf(c)
	u, err := s.Queries.GetUserByID(ctx, userID(c))
	if isNotFound(err) {
		return chatflow.Errorf(chatflow.ECodeInvalidToken, "user no longer exists")
	}
	if err != nil {
		return err
	}
	// Charged before the check, to the same counters as login: a stolen
	// access token is no cheaper a way to guess the password than login.
	if err := s.limits.Login(ctx, s.clientIP(c), u.Username); err != nil {
		return err
	}
	if bcrypt.CompareHashAndPassword([]byte(u.PasswordHash), []byte(req.CurrentPassword)) != nil {
		return chatflow.Errorf(chatflow.ECodeInvalidCredentials, "current_password is wrong")
	}
	if err := activeStatus(u.Status); err != nil {
		return err
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(req.NewPassword), s.Cfg.BcryptCost)
	if err != nil {
		return err
	}
	n, err := s.Queries.ChangePassword(ctx, db.ChangePasswordParams{ID: u.ID, OldHash: u.PasswordHash, NewHash: string(hash)})
	if err != nil {
		return err
	}
	if n == 0 {
		return chatflow.Errorf(chatflow.ECodeConflict, "the password or the account changed meanwhile; try again")
	}
	// The hash is replaced before the sessions are revoked: a login that
	// read the old hash took its time before this revocation, and
	// IssueAfter refuses it a session. The caller's own session stays.
	if err := s.Tokens.RevokeUser(context.WithoutCancel(ctx), u.ID.String(), claims.Family); err != nil {
		return &chatflow.Error{
			Code:   chatflow.ECodeUnavailable,
			Detail: "the password is changed but the other sessions could not be ended yet; repeat the request with the new password as current_password",
			Err:    err,
		}
	}
	return c.SendStatus(fiber.StatusNoContent)
}

// activeStatus refuses an account that is not active with its code.
func activeStatus(status string) error {
	switch status {
	case statusActive:
		return nil
	case statusDisabled:
		return chatflow.Errorf(chatflow.ECodeAccountDisabled, "the account is disabled")
	case statusDeleting:
		return chatflow.Errorf(chatflow.ECodeDeletionInProgress, "the account is being deleted")
	default:
		return chatflow.Errorf(chatflow.ECodeInvalidCredentials, "the account is not active")
	}
}

// Account statuses (auth.users.status).
const (
	statusActive   = "active"
	statusDisabled = "disabled"
	statusDeleting = "deleting"
)

// recordLogin stores the time of a successful login. The login has
// succeeded already: a failed write is logged, never the caller's error.
func (s *Server) recordLogin(ctx context.Context, id uuid.UUID) {
	if err := s.Queries.SetLastLogin(context.WithoutCancel(ctx), id); err != nil {
		s.Log.Warn("record last login", "user", id, "error", err)
	}
}
