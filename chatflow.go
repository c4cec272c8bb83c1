package chatflow

import (
	"regexp"
	"strings"
	"time"
	"unicode/utf8"
)

// Limits of the public contract.
const (
	MaxBodyChars     = 4000
	MaxHistoryLimit  = 200
	DefaultHistLimit = 50
	MaxUserSearch    = 50
	MaxRoomNameChars = 100
	MaxClientMsgID   = 64

	MaxDisplayNameChars = 64  // display_name, in characters
	MaxStatusChars      = 200 // status_message, in characters
	MaxSearchQueryBytes = 64  // the q of a search, in bytes
	MaxIdempotencyKey   = 128 // idempotency_key, in bytes
	MaxCursorBytes      = 512 // an opaque paging cursor, in bytes
)

// Message is one chat message as clients see it.
type Message struct {
	MessageID   string    `json:"message_id"`
	RoomID      string    `json:"room_id"`
	Seq         int64     `json:"seq"`
	SenderID    string    `json:"sender_id"`
	ClientMsgID string    `json:"client_msg_id"`
	Body        string    `json:"body"`
	SentAt      time.Time `json:"sent_at"`
	// Kind is empty for a text message; KindGap marks a tombstone.
	Kind string `json:"kind,omitempty"`
	// EditedAt is set once the message was edited (Body is the new text).
	EditedAt *time.Time `json:"edited_at,omitempty"`
	// DeletedAt is set once the message was deleted (Body is then "").
	DeletedAt *time.Time `json:"deleted_at,omitempty"`
	// ReplyTo is the seq of the message this one replies to (0: none).
	ReplyTo int64 `json:"reply_to,omitempty"`
	// Reactions are the current reactions of a text or file message, as
	// reads (history, sync) compute them; never part of a live frame.
	Reactions []Reaction `json:"reactions,omitempty"`
}

// Message kinds besides text. Clients ignore kinds they do not know.
const (
	KindText = "text"
	// KindGap is a tombstone: a seq that can never be delivered (lost by
	// Redis, or refused by Postgres), so that readers never wait on a hole.
	KindGap = "gap"
	// KindSystem is an event the server posts into a room's sequence on a
	// user's behalf (a member left, an account was deleted); the body is a
	// JSON object with at least a "event" field.
	KindSystem = "system"
	// KindTransfer is a money transfer posted into the room it was made in;
	// the body is a JSON object (transfer_id, from_user_id, to_user_id,
	// amount, memo).
	KindTransfer = "transfer"
)

// SignupRequest is what a client sends to create an account.
type SignupRequest struct {
	Username    string `json:"username"`
	Email       string `json:"email"`
	Password    string `json:"password"`
	DisplayName string `json:"display_name"`
}

var (
	usernameRE = regexp.MustCompile(`^[a-z0-9_]{3,32}$`)
	emailRE    = regexp.MustCompile(`^[^@\s]+@[^@\s]+\.[^@\s]+$`)
)

// Normalize trims and lower-cases the fields that are compared case-insensitively.
func (r *SignupRequest) Normalize() {
	r.Username = strings.TrimSpace(r.Username)
	r.Email = strings.ToLower(strings.TrimSpace(r.Email))
	r.DisplayName = strings.TrimSpace(r.DisplayName)
}

// Validate checks the request against the contract (username 3–32 of
// [a-z0-9_], password 8–72 bytes, a plausible email without control
// characters, display name 1–64 characters of one line).
func (r *SignupRequest) Validate() error {
	switch {
	case !ValidUsername(r.Username):
		return Errorf(ECodeValidation, "username must be 3-32 characters of a-z, 0-9 and _")
	case len(r.Email) > 254 || ValidText("email", r.Email, false) != nil || !emailRE.MatchString(r.Email):
		return Errorf(ECodeValidation, "email is not a valid address")
	}
	if err := ValidPassword("password", r.Password); err != nil {
		return err
	}
	if r.DisplayName == "" {
		r.DisplayName = r.Username
	}
	return ValidDisplayName(r.DisplayName)
}

// ValidPassword checks a new password (field names it in the error): at
// least 8 characters and at most 72 bytes, since bcrypt ignores bytes past
// 72 and longer passwords would be silently truncated.
func ValidPassword(field, pw string) error {
	if utf8.RuneCountInString(pw) < 8 || len(pw) > 72 {
		return Errorf(ECodeValidation, "%s must be 8-72 bytes long", field)
	}
	return nil
}

// ValidUsername reports whether s is an acceptable username (3–32 of
// [a-z0-9_], so never a control character).
func ValidUsername(s string) bool { return usernameRE.MatchString(s) }

// ValidDisplayName checks a display name: 1–64 characters of valid UTF-8 on
// one line (no control characters at all).
func ValidDisplayName(s string) error {
	if err := ValidText("display_name", s, false); err != nil {
		return err
	}
	if s == "" || utf8.RuneCountInString(s) > MaxDisplayNameChars {
		return Errorf(ECodeValidation, "display_name must be 1-%d characters", MaxDisplayNameChars)
	}
	return nil
}

// ValidBody checks a message body: 1–4000 characters of valid UTF-8; "\n"
// and "\t" are the only control characters allowed.
func ValidBody(s string) error {
	if err := ValidText("body", s, true); err != nil {
		return err
	}
	if s == "" {
		return Errorf(ECodeValidation, "body must not be empty")
	}
	if len(s) > MaxBodyChars*4 || utf8.RuneCountInString(s) > MaxBodyChars {
		return Errorf(ECodeValidation, "body must be at most %d characters", MaxBodyChars)
	}
	return nil
}

// ValidClientMsgID checks a client message id: 1–64 printable ASCII characters.
func ValidClientMsgID(s string) error {
	if s == "" || len(s) > MaxClientMsgID {
		return Errorf(ECodeValidation, "client_msg_id must be 1-%d characters", MaxClientMsgID)
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e {
			return Errorf(ECodeValidation, "client_msg_id must be printable ASCII")
		}
	}
	return nil
}

// ValidRoomName checks a room name (already trimmed by the caller): 1–100
// characters of valid UTF-8 on one line.
func ValidRoomName(s string) error {
	if err := ValidText("name", s, false); err != nil {
		return err
	}
	if s == "" || utf8.RuneCountInString(s) > MaxRoomNameChars {
		return Errorf(ECodeValidation, "name must be 1-%d characters", MaxRoomNameChars)
	}
	return nil
}

// ValidStatusMessage checks a status message: 0–200 characters of valid
// UTF-8 on one line (empty clears it).
func ValidStatusMessage(s string) error {
	if err := ValidText("status_message", s, false); err != nil {
		return err
	}
	if utf8.RuneCountInString(s) > MaxStatusChars {
		return Errorf(ECodeValidation, "status_message must be at most %d characters", MaxStatusChars)
	}
	return nil
}

// ValidSearchQuery checks the q of a search (already trimmed by the
// caller): 1–64 bytes of valid UTF-8 on one line.
func ValidSearchQuery(q string) error {
	if err := ValidText("q", q, false); err != nil {
		return err
	}
	if q == "" || len(q) > MaxSearchQueryBytes {
		return Errorf(ECodeValidation, "q must be 1-%d bytes", MaxSearchQueryBytes)
	}
	return nil
}

// ValidIdempotencyKey checks an idempotency key: 1–128 bytes of valid UTF-8
// without control characters.
func ValidIdempotencyKey(k string) error {
	if err := ValidText("idempotency_key", k, false); err != nil {
		return err
	}
	if k == "" || len(k) > MaxIdempotencyKey {
		return Errorf(ECodeValidation, "idempotency_key must be 1-%d bytes", MaxIdempotencyKey)
	}
	return nil
}

// ValidCursor checks an opaque paging cursor a client sent back (field is
// its parameter name, such as "cursor" or "after"): at most 512 bytes of
// valid UTF-8 without control characters. An empty cursor means "from the
// start" and is accepted; whether the cursor decodes is the caller's check.
func ValidCursor(field, s string) error {
	if err := ValidText(field, s, false); err != nil {
		return err
	}
	if len(s) > MaxCursorBytes {
		return Errorf(ECodeValidation, "%s must be at most %d bytes", field, MaxCursorBytes)
	}
	return nil
}

// Signup saga step names, in execution order.
const (
	StepCredentials = "auth.create_credentials"
	StepProfile     = "chat.create_profile"
	StepAccount     = "customer.open_account"
	StepEvent       = "kafka.user_created"
	StepActivate    = "auth.activate"
)

// SignupSteps lists the saga's steps in order.
var SignupSteps = []string{StepCredentials, StepProfile, StepAccount, StepEvent, StepActivate}

// Step and saga statuses.
const (
	StatusPending     = "pending"
	StatusRunning     = "running"
	StatusCompleted   = "completed"
	StatusFailed      = "failed"
	StatusCompensated = "compensated"
)

// StepStatus is the state of one saga step.
type StepStatus struct {
	Name   string `json:"name"`
	Status string `json:"status"`
	Error  string `json:"error,omitempty"`
}

// SignupProgress is what the sign-up status endpoint and the workflow query return.
type SignupProgress struct {
	SignupID  string       `json:"signup_id"`
	Status    string       `json:"status"`
	Steps     []StepStatus `json:"steps"`
	UserID    string       `json:"user_id,omitempty"`
	Error     string       `json:"error,omitempty"`
	ErrorCode string       `json:"error_code,omitempty"`
}

// UserCreated is the event published on the user.events topic.
type UserCreated struct {
	Type        string    `json:"type"`
	EventID     string    `json:"event_id"`
	UserID      string    `json:"user_id"`
	Username    string    `json:"username"`
	Email       string    `json:"email"`
	DisplayName string    `json:"display_name"`
	CreatedAt   time.Time `json:"created_at"`
}

// Kafka topics.
const (
	TopicUserEvents   = "user.events"
	TopicChatMessages = "chat.messages"
)
