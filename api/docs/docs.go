// Package docs embeds the OpenAPI document and its rendered page.
package docs

import _ "embed"

// OpenAPI is the API description served at /openapi.json.
//
//go:embed openapi.json
var OpenAPI []byte

// Page renders OpenAPI in a browser at /docs.
//
//go:embed docs.html
var Page []byte
