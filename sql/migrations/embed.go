// Package migrations embeds the schema migrations, applied in file-name order.
package migrations

import "embed"

// FS holds the *.sql migration files.
//
//go:embed *.sql
var FS embed.FS
