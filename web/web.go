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

// FS holds the client's files at its root: index.html, style.css, app.js
// and the scripts that build on it (friends.js, profile.js, money.js,
// social.js, react.js).
var FS fs.FS = sub(static, "static")

func sub(f fs.FS, dir string) fs.FS {
	s, err := fs.Sub(f, dir)
	if err != nil {
		panic(err) // the directory is embedded above; this cannot happen
	}
	return s
}

// csp keeps the page to its own origin (and the attachment store's, given
// as objects: uploads PUT there, previews load from there; blob: for the
// object URL that reads a picked image's size before upload): no inline
// script, no third parties.
func csp(objects string) string {
	if objects != "" {
		objects = " " + objects
	}
	return "default-src 'self'; connect-src 'self' ws: wss:" + objects + "; img-src 'self' data: blob:" + objects + "; " +
		"style-src 'self'; script-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
}

// Index serves index.html; mount it with app.Get("/", web.Index).
func Index(c *fiber.Ctx) error { return serveIndex(c, csp("")) }

// IndexFor is Index for a page that may also reach the object store at
// origin (scheme://host[:port]; empty: none).
func IndexFor(origin string) fiber.Handler {
	policy := csp(origin)
	return func(c *fiber.Ctx) error { return serveIndex(c, policy) }
}

func serveIndex(c *fiber.Ctx, policy string) error {
	b, err := fs.ReadFile(FS, "index.html")
	if err != nil {
		return err
	}
	c.Set(fiber.HeaderContentSecurityPolicy, policy)
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
