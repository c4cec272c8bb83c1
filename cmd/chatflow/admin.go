package main

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/chatflow/chatflow/internal/app"
)

const adminUsage = `usage: chatflow admin grant USERNAME | revoke USERNAME | list

  grant   give an existing user the admin role (effective at their next login or refresh)
  revoke  take it away (admin routes refuse the user at once; the role claim goes at the next refresh)
  list    print the users who hold it

Needs only DATABASE_URL (see README.md); it neither signs nor verifies tokens.
`

// runAdmin is `chatflow admin`: the only way to grant the admin role.
func runAdmin(ctx context.Context, args []string) error {
	if len(args) == 0 || (args[0] != "list" && len(args) != 2) || (args[0] == "list" && len(args) != 1) {
		fmt.Fprint(os.Stderr, adminUsage)
		return errors.New("admin: bad arguments")
	}
	_, pool, err := openMigrated(ctx, keysUnused)
	if err != nil {
		return err
	}
	defer pool.Close()
	switch args[0] {
	case "grant", "revoke":
		if err := app.SetAdmin(ctx, pool, args[1], args[0] == "grant"); err != nil {
			return fmt.Errorf("admin %s: %w", args[0], err)
		}
		done := "granted"
		if args[0] == "revoke" {
			done = "revoked"
		}
		fmt.Printf("%s: admin role %s\n", args[1], done)
	case "list":
		admins, err := app.Admins(ctx, pool)
		if err != nil {
			return err
		}
		for _, a := range admins {
			fmt.Printf("%s\t%s\n", a.Username, a.Status)
		}
	default:
		fmt.Fprint(os.Stderr, adminUsage)
		return fmt.Errorf("admin: unknown action %q", args[0])
	}
	return nil
}
