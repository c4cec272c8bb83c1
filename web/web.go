// Package web is the browser chat client: plain HTML, CSS and JavaScript
// embedded in the binary and served by the api node at / and /static/.
package web

import (
	"embed"
	"io/fs"
	"net/http"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/filesystem"
)

//go:embed static
var static embed.FS

// FS holds the client's files (index.html, app.js, style.css) at its root.
var FS fs.FS = sub(static, "static")

func sub(f fs.FS, dir string) fs.FS {
	s, err := fs.Sub(f, dir)
	if err != nil {
		panic(err) // the directory is embedded above; this cannot happen
	}
	return s
}

// csp keeps the page to its own origin: no inline script, no third parties.
const csp = "default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data:; " +
	"style-src 'self'; script-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"

// Index serves index.html; mount it with app.Get("/", web.Index).
func Index(c *fiber.Ctx) error {
	b, err := fs.ReadFile(FS, "index.html")
	if err != nil {
		return err
	}
	c.Set(fiber.HeaderContentSecurityPolicy, csp)
	c.Set(fiber.HeaderCacheControl, "no-cache")
	c.Set(fiber.HeaderXContentTypeOptions, "nosniff")
	c.Type("html", "utf-8")
	return c.Send(b)
}

// Static serves the files of FS; mount it with app.Use("/static", web.Static()).
// Unknown paths fall through to the next handler (the API's 404).
func Static() fiber.Handler {
	return filesystem.New(filesystem.Config{Root: http.FS(FS), ContentTypeCharset: "utf-8"})
}
