package app

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/chatflow/chatflow/db"
)

// Roles a user can hold (auth.users.role); tokens carry it in the role
// claim, read from the database at login and at every refresh.
const (
	RoleUser  = "user"
	RoleAdmin = "admin"
)

// SetAdmin grants (or revokes) the admin role of an existing user: what
// `chatflow admin grant|revoke USERNAME` runs. It is the only way to the
// role: no name, list or claim grants it. The user's next login or token
// refresh carries the new role; admin routes check the database too, so a
// revocation takes effect on them at once.
func SetAdmin(ctx context.Context, pool *pgxpool.Pool, username string, admin bool) error {
	role := RoleUser
	if admin {
		role = RoleAdmin
	}
	n, err := db.New(pool).SetUserRole(ctx, db.SetUserRoleParams{Role: role, Username: username})
	if err != nil {
		return err
	}
	if n == 0 {
		return fmt.Errorf("no user %q", username)
	}
	return nil
}

// Admins lists the users holding the admin role, with their status.
func Admins(ctx context.Context, pool *pgxpool.Pool) ([]db.ListAdminsRow, error) {
	return db.New(pool).ListAdmins(ctx)
}
