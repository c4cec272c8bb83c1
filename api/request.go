package api

import (
	"encoding/json"
	"errors"
	"strconv"

	"github.com/gofiber/fiber/v2"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/chatflow/chatflow"
)

// decode parses a JSON request body, answering validation_failed on garbage.
func decode(c *fiber.Ctx, v any) error {
	body := c.Body()
	if len(body) == 0 {
		return chatflow.Errorf(chatflow.ECodeValidation, "request body must be a JSON object")
	}
	// encoding/json would silently turn invalid UTF-8 and lone surrogates
	// into U+FFFD: refuse them instead of storing a rewritten text.
	if err := chatflow.ValidJSONText(body); err != nil {
		return err
	}
	if err := json.Unmarshal(body, v); err != nil {
		var ute *json.UnmarshalTypeError
		if errors.As(err, &ute) {
			return chatflow.Errorf(chatflow.ECodeValidation, "field %q has the wrong type", ute.Field)
		}
		return chatflow.Errorf(chatflow.ECodeValidation, "request body is not valid JSON")
	}
	return nil
}

// parseUUIDParam reads an id from the path; an id that does not parse names
// nothing, so it is not_found.
func parseUUIDParam(c *fiber.Ctx, name string) (uuid.UUID, error) {
	id, err := uuid.Parse(c.Params(name))
	if err != nil {
		return uuid.Nil, chatflow.Errorf(chatflow.ECodeNotFound, "%s %q is not a known id", name, c.Params(name))
	}
	return id, nil
}

// parseIDs parses user ids from a request body, dropping repeats.
func parseIDs(raw []string) ([]uuid.UUID, error) {
	seen := map[uuid.UUID]bool{}
	var ids []uuid.UUID
	for _, s := range raw {
		id, err := uuid.Parse(s)
		if err != nil {
			return nil, chatflow.Errorf(chatflow.ECodeValidation, "%q is not a user id", s)
		}
		if !seen[id] {
			seen[id] = true
			ids = append(ids, id)
		}
	}
	return ids, nil
}

// queryInt reads a non-negative integer query parameter; has is false when
// it is absent.
func queryInt(c *fiber.Ctx, name string) (n int64, has bool, err error) {
	raw := c.Query(name)
	if raw == "" {
		return 0, false, nil
	}
	n, err = strconv.ParseInt(raw, 10, 64)
	if err != nil || n < 0 {
		return 0, false, chatflow.Errorf(chatflow.ECodeValidation, "%s must be a non-negative integer", name)
	}
	return n, true, nil
}

// isNotFound reports a query that found no row.
func isNotFound(err error) bool { return err != nil && errors.Is(err, pgx.ErrNoRows) }

// pageLimit reads the limit of a paged list with the one rule every list
// follows: absent means def; 1..max is used as is; anything else (0, above
// max, not a number) is validation_failed naming the max. A limit above the
// max is refused rather than clamped, so a client never mistakes a short
// page for the end of the list.
func pageLimit(c *fiber.Ctx, def, max int64) (int64, error) {
	n, has, err := queryInt(c, "limit")
	if err != nil || (has && (n < 1 || n > max)) {
		return 0, chatflow.Errorf(chatflow.ECodeValidation, "limit must be 1-%d", max)
	}
	if !has {
		return def, nil
	}
	return n, nil
}
